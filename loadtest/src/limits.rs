//! `limits`: rate limits under load, against a server started with small quotas.
//!
//! The quotas are not passed in: they are read from the `RateLimit-Policy` the server
//! sends (`"tenant";q=600;w=10, "credential";q=200;w=10`). On the first tenant of the
//! run, the scenario creates API keys through the API (`POST /v1/api_keys` with the JWT,
//! scope `people:read` only: each key is a credential with a budget of its own), and
//! runs two phases of half the duration each:
//!
//! 1. **one credential over its budget**: key A is greedy (all workers but one, reads
//!    of cost 1 and 2 back to back, 25 ms pause after a 429 — a client that ignores
//!    `Retry-After`); key B is polite (one worker, cost-1 reads at half of what is left
//!    of the tenant's refill rate once A takes its credential's). B must never be
//!    refused: one credential at its limit must not stop another of the same tenant.
//! 2. **the tenant over its budget**: enough keys greedy at once that their credential
//!    budgets together exceed the tenant's, so the tenant policy refuses too.
//!
//! It reports, for every 429, whether it was an RFC 9457 problem with `Retry-After`,
//! `RateLimit` and `RateLimit-Policy` and which policy it named; and, per phase, the units
//! admitted (`X-RateLimit-Cost` of the 2xx) against the most a policy can admit over the
//! phase — `quota + quota × elapsed / window` (a full bucket, then continuous refill) —
//! as a ratio, per credential and for the tenant. The ratio is a report line: it depends
//! on timing (the phase's elapsed time is measured at the client, which brackets the
//! server's decisions), so it is not a pass/fail assertion; a malformed 429 or a refused
//! polite request fails the run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::time::MissedTickBehavior;

use crate::client;
use crate::engine::{Rng, status_of, timed};
use crate::limits_verdict::{Admission, Lane, LimitsOutcome, Phase, PolicyQuota};
use crate::run_state::{Outcome, Shared, seed};
use crate::target::{self, ApiKey};

/// How long a greedy worker pauses after a 429 before it asks again.
const GREEDY_PAUSE: Duration = Duration::from_millis(25);
/// At most this many keys are created (phase 2 needs `tenant quota / credential quota + 1`).
const MAX_KEYS: u64 = 8;

/// Parses `RateLimit-Policy` (draft-ietf-httpapi-ratelimit-headers):
/// `"tenant";q=600;w=60, "credential";q=120;w=60`. Items without a `q` are skipped; `w`
/// defaults to 1 (the draft's default).
pub fn parse_policy_header(value: &str) -> Vec<PolicyQuota> {
    value
        .split(',')
        .filter_map(|item| {
            let mut parts = item.trim().split(';');
            let name = parts.next()?.trim().trim_matches('"').to_owned();
            let mut quota = None;
            let mut window_s = 1;
            for param in parts {
                match param.trim().split_once('=') {
                    Some(("q", v)) => quota = v.trim().parse().ok(),
                    Some(("w", v)) => window_s = v.trim().parse().unwrap_or(1),
                    _ => {}
                }
            }
            Some(PolicyQuota {
                name,
                quota: quota?,
                window_s,
            })
        })
        .collect()
}

#[derive(Clone)]
enum Role {
    Greedy,
    /// One request every this long.
    Polite(Duration),
}

struct LaneSpec {
    name: String,
    role: Role,
    client: client::Client,
    workers: usize,
}

/// Runs the scenario (see the module docs) on the run's first tenant.
pub async fn run(shared: Arc<Shared>) -> anyhow::Result<Outcome> {
    let tenant = &shared.tenants[0];
    let mut total = Outcome::default();
    let mut keys: Vec<ApiKey> = Vec::new();
    let first = target::create_api_key(tenant, "loadtest limits A", &["people:read"]).await?;
    let header = first.policy_header.clone().context(
        "the server sent no RateLimit-Policy: are rate limits enabled (TENANTRY_RATE_LIMIT_ENABLED)?",
    )?;
    keys.push(first);
    let policies = parse_policy_header(&header);
    let find = |name: &str| policies.iter().find(|p| p.name == name).cloned();
    let (Some(tq), Some(cq)) = (find("tenant"), find("credential")) else {
        anyhow::bail!("RateLimit-Policy `{header}` names no `tenant` and `credential` policies");
    };
    let needed = (tq.quota / cq.quota.max(1) + 1).clamp(2, MAX_KEYS) as usize;
    for i in 1..needed {
        let name = format!("loadtest limits {}", lane_name(i));
        keys.push(target::create_api_key(tenant, &name, &["people:read"]).await?);
    }
    let mut outcome = LimitsOutcome {
        policy_header: header,
        tenant: Some(tq.clone()),
        credential: Some(cq.clone()),
        ..LimitsOutcome::default()
    };
    if (needed as u64) * cq.quota <= tq.quota {
        total.notes.push(format!(
            "limits: {MAX_KEYS} keys at most; their credential budgets ({} units) do not exceed \
             the tenant's ({}), so phase 2 cannot reach the tenant's limit",
            needed as u64 * cq.quota,
            tq.quota
        ));
    }

    let left = shared
        .budget
        .deadline()
        .saturating_duration_since(Instant::now());
    let half = left / 2;
    let c = shared.opts.concurrency.max(2);

    // Phase 1: A greedy, B polite at half of the tenant's spare refill rate.
    let applicable = cq.rate() < tq.rate();
    let spare = if applicable {
        (tq.rate() - cq.rate()).min(cq.rate())
    } else {
        cq.rate()
    };
    let period = Duration::from_secs_f64(1.0 / (spare / 2.0).max(0.01));
    let lanes = vec![
        LaneSpec {
            name: lane_label(0, &keys[0]),
            role: Role::Greedy,
            client: keys[0].client.clone(),
            workers: c - 1,
        },
        LaneSpec {
            name: lane_label(1, &keys[1]),
            role: Role::Polite(period),
            client: keys[1].client.clone(),
            workers: 1,
        },
    ];
    let description = format!(
        "key A greedy ({} workers), key B polite (1 request of cost 1 every {:.0} ms)",
        c - 1,
        period.as_secs_f64() * 1000.0
    );
    let run_started = Instant::now();
    let (phase1, out1) = phase(&shared, "credential", description, lanes, half, &tq, &cq).await;
    total.merge(&out1);
    let greedy = &phase1.lanes[0];
    let polite = &phase1.lanes[1];
    outcome.isolation = if !applicable {
        "not applicable"
    } else if polite.refused > 0 {
        "violated"
    } else if greedy.refused == 0 {
        "not exercised"
    } else {
        "held"
    }
    .to_owned();
    outcome.phases.push(phase1);

    // Phase 2: every key greedy, the workers spread over them.
    let k = keys.len();
    let workers = c.max(k);
    let lanes: Vec<LaneSpec> = keys
        .iter()
        .enumerate()
        .map(|(i, key)| LaneSpec {
            name: lane_label(i, key),
            role: Role::Greedy,
            client: key.client.clone(),
            workers: workers / k + usize::from(i < workers % k),
        })
        .collect();
    let left = shared
        .budget
        .deadline()
        .saturating_duration_since(Instant::now());
    let description = format!("{k} keys greedy ({workers} workers)");
    let (phase2, out2) = phase(&shared, "tenant", description, lanes, left, &tq, &cq).await;
    total.merge(&out2);
    outcome.phases.push(phase2);
    outcome.run_elapsed_s = run_started.elapsed().as_secs_f64();
    let run_units = outcome.phases.iter().map(|p| p.tenant.units_ok).sum();
    outcome.run_tenant = Admission::new(run_units, &tq, outcome.run_elapsed_s);

    outcome.refusals = total.rec.refusals.get(&429).cloned().unwrap_or_default();
    let mut revoked = 0;
    for key in &keys {
        match target::revoke_api_key(tenant, key.id).await {
            Ok(()) => revoked += 1,
            Err(e) => total
                .notes
                .push(format!("could not revoke API key {}: {e}", key.prefix)),
        }
    }
    total.notes.push(format!(
        "limits: {} API keys (scope people:read) created through POST /v1/api_keys on `{}`; {revoked} revoked after the run",
        keys.len(),
        tenant.slug
    ));
    total.limits = Some(outcome);
    Ok(total)
}

fn lane_name(i: usize) -> char {
    char::from(b'A' + (i % 26) as u8)
}

fn lane_label(i: usize, key: &ApiKey) -> String {
    format!("{} ({})", lane_name(i), key.prefix)
}

/// Runs `lanes` for `duration`; returns the phase's numbers and everything recorded.
async fn phase(
    shared: &Arc<Shared>,
    name: &str,
    description: String,
    lanes: Vec<LaneSpec>,
    duration: Duration,
    tq: &PolicyQuota,
    cq: &PolicyQuota,
) -> (Phase, Outcome) {
    let started = Instant::now();
    let deadline = started + duration;
    let mut handles = Vec::new();
    for (l, lane) in lanes.iter().enumerate() {
        for w in 0..lane.workers.max(1) {
            let (shared, client, role) = (shared.clone(), lane.client.clone(), lane.role.clone());
            let seed = seed(l * 1000 + w);
            handles.push((
                l,
                tokio::spawn(async move {
                    match role {
                        Role::Greedy => greedy(&shared, &client, deadline, seed).await,
                        Role::Polite(period) => polite(&shared, &client, deadline, period).await,
                    }
                }),
            ));
        }
    }
    let mut per_lane: Vec<Outcome> = lanes.iter().map(|_| Outcome::default()).collect();
    for (l, h) in handles {
        match h.await {
            Ok(out) => per_lane[l].merge(&out),
            Err(e) => per_lane[l]
                .notes
                .push(format!("a limits worker failed: {e}")),
        }
    }
    let elapsed_s = started.elapsed().as_secs_f64();
    let mut total = Outcome::default();
    let mut phase = Phase {
        name: name.to_owned(),
        description,
        elapsed_s,
        ..Phase::default()
    };
    let mut tenant_units = 0;
    for (spec, out) in lanes.iter().zip(&per_lane) {
        let rec = &out.rec;
        let ok: u64 = rec
            .statuses
            .iter()
            .filter(|(s, _)| (200..300).contains(*s))
            .map(|(_, n)| n)
            .sum();
        let refusals = rec.refusals.get(&429).cloned().unwrap_or_default();
        tenant_units += rec.units_ok;
        phase.lanes.push(Lane {
            name: spec.name.clone(),
            role: match spec.role {
                Role::Greedy => "greedy",
                Role::Polite(_) => "polite",
            }
            .to_owned(),
            workers: spec.workers.max(1),
            requests: rec.requests,
            ok,
            refused: refusals.count,
            other: rec.requests.saturating_sub(ok + refusals.count),
            policies: refusals.policies.clone(),
            admission: Admission::new(rec.units_ok, cq, elapsed_s),
        });
        total.merge(out);
    }
    phase.tenant = Admission::new(tenant_units, tq, elapsed_s);
    (phase, total)
}

/// Reads of cost 1 (`get_person`) and 2 (`list_people`, 50 a page) back to back; after a
/// 429, a short pause and again.
async fn greedy(shared: &Shared, client: &client::Client, deadline: Instant, seed: u64) -> Outcome {
    let mut out = Outcome::default();
    let mut rng = Rng::new(seed);
    let ids = &shared.ids[0];
    while Instant::now() < deadline && shared.budget.take() {
        let refused = if rng.chance(70) && !ids.is_empty() {
            let id = ids[rng.below(ids.len())];
            let result = timed(
                &mut out.rec,
                "get_person",
                client.get_person().id(id).send(),
            )
            .await;
            let status = status_of(&result);
            if let Ok(rv) = result {
                let request = format!("GET /v1/people/{id}");
                shared.check(&mut out.leaks, 0, &rv.into_inner(), "get_person", &request);
            }
            status == Some(429)
        } else {
            let result = timed(
                &mut out.rec,
                "list_people",
                client.list_people().limit(50u64).send(),
            )
            .await;
            let status = status_of(&result);
            if let Ok(rv) = result {
                let rows = rv.into_inner().data;
                shared.check_all(
                    &mut out.leaks,
                    0,
                    &rows,
                    "list_people",
                    "GET /v1/people?limit=50",
                );
            }
            status == Some(429)
        };
        if refused {
            tokio::time::sleep(GREEDY_PAUSE).await;
        }
    }
    out
}

/// One `get_person` (cost 1) every `period`.
async fn polite(
    shared: &Shared,
    client: &client::Client,
    deadline: Instant,
    period: Duration,
) -> Outcome {
    let mut out = Outcome::default();
    let mut rng = Rng::new(seed(9999));
    let ids = &shared.ids[0];
    let mut ticks = tokio::time::interval(period);
    // A late tick is not made up with a burst.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if Instant::now() >= deadline || ids.is_empty() || !shared.budget.take() {
            break;
        }
        let id = ids[rng.below(ids.len())];
        let result = timed(
            &mut out.rec,
            "polite_get_person",
            client.get_person().id(id).send(),
        )
        .await;
        if let Ok(rv) = result {
            let request = format!("GET /v1/people/{id}");
            shared.check(
                &mut out.leaks,
                0,
                &rv.into_inner(),
                "polite_get_person",
                &request,
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_header_gives_each_policys_quota_and_window() {
        let p = parse_policy_header(r#""tenant";q=600;w=10, "credential";q=200;w=10"#);
        assert_eq!(
            p,
            vec![
                PolicyQuota {
                    name: "tenant".into(),
                    quota: 600,
                    window_s: 10
                },
                PolicyQuota {
                    name: "credential".into(),
                    quota: 200,
                    window_s: 10
                },
            ]
        );
        assert_eq!(parse_policy_header(r#""ip";q=60"#)[0].window_s, 1);
        assert!(parse_policy_header(r#""broken";w=10, garbage"#).is_empty());
    }
}
