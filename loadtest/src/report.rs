//! The report of one run, as JSON (for `compose` and other tools) and Markdown (for
//! people), and the rules that make a run fail.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;

use crate::leak::LeakStats;
use crate::ledger::{IdempotencyOutcome, SyncOutcome};
use crate::limits_verdict::LimitsOutcome;
use crate::run_state::{CredentialCount, WalkOutcome};
use crate::stats::{LatencySummary, Summary};

/// One run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    /// A name for the run (`api-list`, `minimal-plain`, …).
    pub label: String,
    /// The scenario.
    pub scenario: String,
    /// The server.
    pub base_url: String,
    /// When the measured phase started.
    pub started_at: Option<DateTime<Utc>>,
    /// Workers.
    pub concurrency: usize,
    /// Tenant slugs.
    pub tenants: Vec<String>,
    /// Their tenant ids (from the JWT `tenant` claim; `null` for API keys).
    #[serde(default)]
    pub tenant_ids: Vec<Option<uuid::Uuid>>,
    /// The time cap, seconds.
    pub duration_cap_s: f64,
    /// The request cap.
    pub max_requests: u64,
    /// Page size of lists.
    pub page_size: u64,
    /// The numbers.
    pub summary: Summary,
    /// The leak check.
    pub leaks: LeakStats,
    /// Walk checks (`walk`, `mixed`).
    pub walks: Option<WalkOutcome>,
    /// Idempotency checks (`write`, `mixed`, `sync`).
    pub idempotency: Option<IdempotencyOutcome>,
    /// The sync verdict (`sync`).
    pub sync: Option<SyncOutcome>,
    /// The rate-limit verdict (`limits`).
    #[serde(default)]
    pub limits: Option<LimitsOutcome>,
    /// Requests and checked rows by kind of credential (`jwt`, `api_key`).
    #[serde(default)]
    pub credentials: BTreeMap<String, CredentialCount>,
    /// Why the run failed (empty: it passed).
    pub failures: Vec<String>,
    /// Remarks.
    pub notes: Vec<String>,
}

impl RunReport {
    /// Fills `failures` from the checks: leaks, sync misses or duplicates, broken walks,
    /// wrong idempotent replays, broken joins, and for `limits` malformed 429s or a
    /// credential refused for another's use. (5xx are reported, not failed on: the
    /// overload run judges them.)
    pub fn judge(&mut self) {
        let mut failures = Vec::new();
        if self.leaks.foreign_rows > 0 {
            failures.push(format!(
                "LEAK: {} row(s) of another tenant returned (evidence in the report)",
                self.leaks.foreign_rows
            ));
        }
        if let Some(sync) = &self.sync {
            if sync.missed > 0 {
                failures.push(format!(
                    "sync: {} acknowledged change(s) missed",
                    sync.missed
                ));
            }
            if sync.duplicated > 0 {
                failures.push(format!(
                    "sync: {} row version(s) duplicated",
                    sync.duplicated
                ));
            }
            if !sync.caught_up {
                failures.push("sync: the reader did not catch up before its time cap".to_owned());
            }
        }
        if let Some(w) = &self.walks
            && (w.duplicates > 0 || w.out_of_order > 0)
        {
            failures.push(format!(
                "walk: {} duplicate(s), {} out of order",
                w.duplicates, w.out_of_order
            ));
        }
        if let Some(i) = &self.idempotency
            && (i.replays_wrong > 0 || i.conflicts_wrong > 0)
        {
            failures.push(format!(
                "idempotency: {} wrong replay(s), {} wrong conflict answer(s)",
                i.replays_wrong, i.conflicts_wrong
            ));
        }
        for kind in ["feed_person_mismatch", "joined_account_name_missing"] {
            if let Some(n) = self.summary.errors.get(kind) {
                failures.push(format!("join: {n} {kind}"));
            }
        }
        if let Some(l) = &self.limits {
            failures.extend(l.failures());
        }
        if self
            .summary
            .errors
            .get("invalid_payload")
            .copied()
            .unwrap_or(0)
            > 0
        {
            failures
                .push("drift: responses that do not match the spec (invalid_payload)".to_owned());
        }
        self.failures = failures;
    }

    /// Whether the run passed its checks.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }

    /// The Markdown rendering.
    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let s = &self.summary;
        let _ = writeln!(md, "# loadtest: {} ({})\n", self.label, self.scenario);
        let _ = writeln!(
            md,
            "{} · {} worker(s) · tenants: {} · cap {:.0}s / {} requests · page size {}\n",
            self.base_url,
            self.concurrency,
            self.tenants.join(", "),
            self.duration_cap_s,
            self.max_requests,
            self.page_size
        );
        let _ = writeln!(
            md,
            "**{}** requests in {:.1}s: **{:.0} req/s** ({:.0} ok/s); 4xx {}, 5xx {}\n",
            s.requests, s.elapsed_s, s.throughput_rps, s.ok_rps, s.status_4xx, s.status_5xx
        );
        md.push_str(&latency_table(
            s.ops
                .iter()
                .map(|(k, v)| (k.as_str(), v))
                .chain([("all", &s.all)]),
        ));
        md.push('\n');
        let statuses: Vec<String> = s
            .statuses
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        let errors: Vec<String> = s.errors.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        let _ = writeln!(md, "Statuses: {}  ", or_none(&statuses.join(", ")));
        let _ = writeln!(md, "Errors: {}\n", or_none(&errors.join(", ")));
        for line in refusal_lines(s) {
            let _ = writeln!(md, "{line}  ");
        }
        let l = &self.leaks;
        let kinds: Vec<String> = l.by_kind.iter().map(|(k, n)| format!("{k} {n}")).collect();
        let _ = writeln!(
            md,
            "\nLeak check: {} rows checked ({}), {} foreign, {} unmarked\n",
            l.checked_rows,
            or_none(&kinds.join(", ")),
            l.foreign_rows,
            l.unmarked_rows
        );
        for (kind, c) in &self.credentials {
            let _ = writeln!(
                md,
                "- credential `{kind}`: {} worker(s), {} requests, {} 2xx, {} rows checked, {} foreign",
                c.workers, c.requests, c.ok, c.rows_checked, c.foreign_rows
            );
        }
        if !self.credentials.is_empty() {
            md.push('\n');
        }
        for e in &l.evidence {
            let _ = writeln!(
                md,
                "- LEAK {} `{}`: token of `{}` got {} {} (marker text {:?}, marker {:?}, owned by {:?})",
                e.op,
                e.request,
                e.token_tenant,
                if e.kind.is_empty() { "row" } else { &e.kind },
                e.row_id,
                e.row_marker,
                e.marker_tenant,
                e.known_owner
            );
        }
        if let Some(w) = &self.walks {
            let _ = writeln!(
                md,
                "Walks: {} completed, {} rows, {} duplicates, {} out of order, {} aborted\n",
                w.completed, w.rows, w.duplicates, w.out_of_order, w.aborted
            );
        }
        if let Some(i) = &self.idempotency {
            let _ = writeln!(
                md,
                "Idempotency: {} created, {} retries, replays {} ok / {} wrong, conflicts {} ok (422) / {} wrong\n",
                i.created,
                i.retries,
                i.replays_ok,
                i.replays_wrong,
                i.conflicts_ok,
                i.conflicts_wrong
            );
        }
        if let Some(y) = &self.sync {
            let _ = writeln!(
                md,
                "Sync: {} rows acknowledged, {} received; missed {}, duplicated {}; caught up: {}\n",
                y.acknowledged_rows, y.received_rows, y.missed, y.duplicated, y.caught_up
            );
        }
        if let Some(l) = &self.limits {
            md.push_str(&limits_markdown(l));
        }
        for n in &self.notes {
            let _ = writeln!(md, "- {n}");
        }
        if self.failures.is_empty() {
            md.push_str("\n**PASS**\n");
        } else {
            md.push_str("\n**FAIL**\n\n");
            for f in &self.failures {
                let _ = writeln!(md, "- {f}");
            }
        }
        md
    }

    /// Writes `<path>` as JSON.
    pub fn write_json(&self, path: &Path) -> anyhow::Result<()> {
        let json = serde_json::to_vec_pretty(self)?;
        std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))
    }

    /// Reads a report written by [`write_json`](Self::write_json).
    pub fn read_json(path: &Path) -> anyhow::Result<Self> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))
    }
}

/// One line per refusal status (429, 503): how many, and how many carried what they must.
pub fn refusal_lines(s: &Summary) -> Vec<String> {
    s.refusals
        .iter()
        .map(|(status, r)| {
            let policies: Vec<String> =
                r.policies.iter().map(|(p, n)| format!("{p} {n}")).collect();
            format!(
                "{status}: {} — Retry-After on {}, application/problem+json on {}, RateLimit + \
                 RateLimit-Policy on {}{}",
                r.count,
                r.retry_after,
                r.problem_json,
                r.ratelimit,
                if policies.is_empty() {
                    String::new()
                } else {
                    format!("; violated policies: {}", policies.join(", "))
                }
            )
        })
        .collect()
}

/// The `limits` verdict as Markdown: the policies, each phase's admission per credential
/// and for the tenant, the 429s, and the isolation verdict.
pub fn limits_markdown(l: &LimitsOutcome) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "Rate-limit policies (from the server's `RateLimit-Policy`): `{}`\n",
        l.policy_header
    );
    md.push_str(
        "| phase | credential | role | workers | requests | 2xx | 429 | other | 429 named | units admitted | bound (q + q·t/w) | admitted / bound |\n\
         |---|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|\n",
    );
    for p in &l.phases {
        for lane in &p.lanes {
            let named: Vec<String> = lane
                .policies
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect();
            let _ = writeln!(
                md,
                "| {} ({:.1} s) | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.0} | {:.2} |",
                p.name,
                p.elapsed_s,
                lane.name,
                lane.role,
                lane.workers,
                lane.requests,
                lane.ok,
                lane.refused,
                lane.other,
                or_none(&named.join(", ")),
                lane.admission.units_ok,
                lane.admission.bound,
                lane.admission.ratio
            );
        }
        let _ = writeln!(
            md,
            "| {} ({:.1} s) | **tenant (all keys)** | | | | | | | | {} | {:.0} | {:.2} |",
            p.name, p.elapsed_s, p.tenant.units_ok, p.tenant.bound, p.tenant.ratio
        );
    }
    if l.run_elapsed_s > 0.0 {
        let _ = writeln!(
            md,
            "| both phases ({:.1} s) | **tenant (all keys)** | | | | | | | | {} | {:.0} | {:.2} |",
            l.run_elapsed_s, l.run_tenant.units_ok, l.run_tenant.bound, l.run_tenant.ratio
        );
    }
    let r = &l.refusals;
    let named: u64 = r.policies.values().sum();
    let _ = writeln!(
        md,
        "\nEvery 429 ({}): Retry-After {}, application/problem+json {}, RateLimit + \
         RateLimit-Policy {}, a violated policy named {} — {}.  ",
        r.count,
        r.retry_after,
        r.problem_json,
        r.ratelimit,
        named,
        if r.count > 0 && r.all_well_formed(true) && named >= r.count {
            "all well-formed"
        } else {
            "**not all well-formed**"
        }
    );
    let _ = writeln!(
        md,
        "One credential over its budget vs another of the same tenant (phase `credential`): **{}**.\n",
        l.isolation
    );
    for p in &l.phases {
        let _ = writeln!(md, "- phase `{}`: {}", p.name, p.description);
    }
    md.push('\n');
    md
}

fn or_none(s: &str) -> &str {
    if s.is_empty() { "none" } else { s }
}

/// A Markdown latency table, one row per operation.
pub fn latency_table<'a>(rows: impl IntoIterator<Item = (&'a str, &'a LatencySummary)>) -> String {
    let mut md = String::from(
        "| operation | count | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms |\n|---|---:|---:|---:|---:|---:|---:|\n",
    );
    for (op, l) in rows {
        let _ = writeln!(
            md,
            "| {op} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
            l.count, l.p50_ms, l.p90_ms, l.p99_ms, l.p999_ms, l.max_ms
        );
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::leak::Evidence;

    fn report() -> RunReport {
        RunReport {
            label: "api-list".into(),
            scenario: "list".into(),
            base_url: "http://127.0.0.1:8080".into(),
            concurrency: 4,
            tenants: vec!["seed-a-0".into()],
            ..RunReport::default()
        }
    }

    #[test]
    fn a_clean_run_passes_and_says_so() {
        let mut r = report();
        r.leaks.checked_rows = 10;
        r.leaks.by_kind.insert("person".into(), 10);
        r.judge();
        assert!(r.passed());
        let md = r.markdown();
        assert!(md.contains("**PASS**"), "{md}");
        assert!(
            md.contains("10 rows checked (person 10), 0 foreign"),
            "{md}"
        );
    }

    #[test]
    fn a_limits_run_with_a_malformed_429_fails_and_shows_its_phases() {
        use crate::limits_verdict::{Admission, Lane, Phase};
        use crate::stats::Refusals;
        let mut r = report();
        r.scenario = "limits".into();
        r.limits = Some(LimitsOutcome {
            policy_header: r#""tenant";q=600;w=10, "credential";q=200;w=10"#.into(),
            phases: vec![Phase {
                name: "credential".into(),
                elapsed_s: 10.0,
                lanes: vec![Lane {
                    name: "A".into(),
                    role: "greedy".into(),
                    refused: 3,
                    admission: Admission {
                        units_ok: 390,
                        bound: 400.0,
                        ratio: 0.975,
                    },
                    ..Lane::default()
                }],
                ..Phase::default()
            }],
            refusals: Refusals {
                count: 3,
                retry_after: 2,
                problem_json: 3,
                ratelimit: 3,
                policies: [("credential".to_owned(), 3)].into(),
            },
            isolation: "held".into(),
            ..LimitsOutcome::default()
        });
        r.judge();
        assert_eq!(r.failures.len(), 1, "{:?}", r.failures);
        let md = r.markdown();
        assert!(
            md.contains("| 390 | 400 | 0.97 |") || md.contains("| 390 | 400 | 0.98 |"),
            "{md}"
        );
        assert!(md.contains("**not all well-formed**"), "{md}");
    }

    #[test]
    fn a_leak_fails_the_run_with_its_evidence() {
        let mut r = report();
        r.leaks.foreign_rows = 1;
        r.leaks.evidence.push(Evidence {
            op: "list_people".into(),
            request: "GET /v1/people?limit=50".into(),
            token_tenant: "seed-a-0".into(),
            kind: "person".into(),
            row_id: uuid::Uuid::nil(),
            row_marker: Some("x@seed-a-1.test".into()),
            marker_tenant: Some("seed-a-1".into()),
            known_owner: None,
        });
        r.judge();
        assert!(!r.passed());
        let md = r.markdown();
        assert!(
            md.contains("**FAIL**") && md.contains("LEAK list_people"),
            "{md}"
        );
        assert!(md.contains("x@seed-a-1.test"), "{md}");
    }

    #[test]
    fn sync_misses_duplicates_and_drift_fail_the_run() {
        let mut r = report();
        r.sync = Some(SyncOutcome {
            missed: 1,
            duplicated: 2,
            caught_up: true,
            ..SyncOutcome::default()
        });
        r.summary.errors.insert("invalid_payload".into(), 3);
        r.judge();
        assert_eq!(r.failures.len(), 3, "{:?}", r.failures);
    }

    #[test]
    fn the_json_report_round_trips() {
        let mut r = report();
        r.summary.requests = 42;
        r.summary.statuses.insert(200, 42);
        let dir = std::env::temp_dir().join(format!("loadtest-report-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).ok();
        let path = dir.join("r.json");
        r.write_json(&path).ok();
        let back = RunReport::read_json(&path).ok();
        std::fs::remove_dir_all(&dir).ok();
        assert_eq!(back, Some(r));
    }

    #[test]
    fn the_latency_table_has_one_row_per_operation() {
        let l = LatencySummary {
            count: 3,
            p50_ms: 1.5,
            ..LatencySummary::default()
        };
        let md = latency_table([("get_person", &l), ("all", &l)]);
        assert_eq!(md.lines().count(), 4);
        assert!(md.contains("| get_person | 3 | 1.50 |"));
    }
}
