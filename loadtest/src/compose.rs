//! `compose`: assembles `REPORT.md` from the results directory `bench.sh` fills.
//!
//! Expected files (any may be missing; the report then says "not measured"):
//! `env.md`, `commands.txt`, `load.md`, `failed.txt`; run reports `api_list[_r<N>].json`,
//! `minimal_plain[_r<N>].json`, `minimal_rls[_r<N>].json`, `get.json`, `walk.json`,
//! `sync.json`, `write.json`, `mixed.json`, `sweep_c<N>.json`, `overload.json`,
//! `limits.json`, `api_depth.json`, `sqlite_list.json`, `sqlite_get.json`;
//! `sql_depth.json` (from `sql-depth`); pgbench output `pgbench_<name>[_r<N>].out` and
//! its per-transaction logs `pgbench_<name>[_r<N>].log*`; the extra environment of the
//! saturation and rate-limit servers, `saturation_server.txt` and `limits_server.txt`
//! (`NAME=value …`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::report::RunReport;
use crate::sqldepth::DepthReport;
use crate::stats::{Latency, LatencySummary, Refusals};

/// `compose` options.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The results directory.
    #[arg(long)]
    results: PathBuf,
    /// Where to write the report.
    #[arg(long, default_value = "REPORT.md")]
    out: PathBuf,
    /// Instead of composing, print the saturation concurrency found by the
    /// `sweep_c<N>.json` runs.
    #[arg(long)]
    print_saturation: bool,
}

/// A pgbench run: its summary line numbers and, from its per-transaction log, latencies.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pgbench {
    /// Transactions per second (without initial connection time).
    pub tps: f64,
    /// Failed transactions.
    pub failed: u64,
    /// Clients.
    pub clients: u64,
    /// Latency from the per-transaction log (empty when there is none).
    pub latency: LatencySummary,
}

/// Parses pgbench's output (`tps = …`, `number of failed transactions: …`,
/// `number of clients: …`).
pub fn parse_pgbench(text: &str) -> Pgbench {
    let mut out = Pgbench::default();
    for line in text.lines() {
        let line = line.trim();
        let first_number = |s: &str| {
            s.split(|c: char| !(c.is_ascii_digit() || c == '.'))
                .find(|t| !t.is_empty())
                .and_then(|t| t.parse::<f64>().ok())
        };
        if let Some(rest) = line.strip_prefix("tps = ") {
            out.tps = first_number(rest).unwrap_or(0.0);
        } else if let Some(rest) = line.strip_prefix("number of failed transactions:") {
            out.failed = first_number(rest).unwrap_or(0.0) as u64;
        } else if let Some(rest) = line.strip_prefix("number of clients:") {
            out.clients = first_number(rest).unwrap_or(0.0) as u64;
        }
    }
    out
}

/// Adds the latencies of a pgbench per-transaction log (`client tx latency_us script
/// epoch us …`) to `latency`.
pub fn add_pgbench_log(text: &str, latency: &mut Latency) {
    for line in text.lines() {
        if let Some(us) = line
            .split_whitespace()
            .nth(2)
            .and_then(|v| v.parse::<u64>().ok())
        {
            latency.record_micros(us);
        }
    }
}

fn pgbench(dir: &Path, name: &str) -> Option<Pgbench> {
    let text = std::fs::read_to_string(dir.join(format!("pgbench_{name}.out"))).ok()?;
    let mut out = parse_pgbench(&text);
    let prefix = format!("pgbench_{name}.log");
    let mut latency = Latency::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(&prefix)
                && let Ok(log) = std::fs::read_to_string(entry.path())
            {
                add_pgbench_log(&log, &mut latency);
            }
        }
    }
    out.latency = latency.summary();
    Some(out)
}

fn load(dir: &Path, name: &str) -> Option<RunReport> {
    RunReport::read_json(&dir.join(format!("{name}.json"))).ok()
}

/// The interleaved rounds of a run (`<name>_r1.json`, `<name>_r2.json`, …), or the single
/// `<name>.json`.
fn rounds(dir: &Path, name: &str) -> Vec<RunReport> {
    let found: Vec<RunReport> = (1..=20)
        .map_while(|r| load(dir, &format!("{name}_r{r}")))
        .collect();
    if found.is_empty() {
        load(dir, name).into_iter().collect()
    } else {
        found
    }
}

/// The pgbench rounds (`pgbench_<name>_r1.out`, …), or the single `pgbench_<name>.out`.
fn pg_rounds(dir: &Path, name: &str) -> Vec<Pgbench> {
    let found: Vec<Pgbench> = (1..=20)
        .map_while(|r| pgbench(dir, &format!("{name}_r{r}")))
        .collect();
    if found.is_empty() {
        pgbench(dir, name).into_iter().collect()
    } else {
        found
    }
}

/// The median of `values` (the upper one of an even count); `None` when empty.
pub fn median(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied()
}

/// The round whose throughput is the median.
fn median_by<T: Clone>(items: &[T], key: impl Fn(&T) -> f64) -> Option<T> {
    let mut sorted: Vec<&T> = items.iter().collect();
    sorted.sort_by(|a, b| key(a).total_cmp(&key(b)));
    sorted.get(sorted.len() / 2).map(|t| (*t).clone())
}

/// Per-round ratios `a[i] / b[i]`.
fn ratios(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter()
        .zip(b)
        .filter(|(_, d)| **d > 0.0)
        .map(|(n, d)| n / d)
        .collect()
}

fn list_of(values: &[f64], digits: usize) -> String {
    values
        .iter()
        .map(|v| format!("{v:.digits$}"))
        .collect::<Vec<_>>()
        .join(" / ")
}

/// The sweep: concurrency → report.
fn sweep(dir: &Path) -> BTreeMap<usize, RunReport> {
    let mut out = BTreeMap::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(c) = name
                .strip_prefix("sweep_c")
                .and_then(|r| r.strip_suffix(".json"))
                .and_then(|c| c.parse().ok())
                && let Ok(r) = RunReport::read_json(&entry.path())
            {
                out.insert(c, r);
            }
        }
    }
    out
}

/// The saturation point of a sweep: the lowest concurrency reaching 90% of the best
/// successful throughput.
pub fn saturation(points: &BTreeMap<usize, f64>) -> Option<usize> {
    let best = points.values().copied().fold(0.0, f64::max);
    points
        .iter()
        .find(|(_, rps)| **rps >= 0.9 * best)
        .map(|(c, _)| *c)
}

fn fmt_ratio(num: f64, den: f64) -> String {
    if den > 0.0 {
        format!("{:.2}", num / den)
    } else {
        "n/a".to_owned()
    }
}

fn yes(ok: bool) -> &'static str {
    if ok { "met" } else { "**NOT met**" }
}

/// A server's extra environment, as bench.sh recorded it (`NAME=value …` on one line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// The line as written.
    pub line: String,
    vars: BTreeMap<String, String>,
}

impl ServerConfig {
    /// Parses `NAME=value NAME=value`.
    pub fn parse(line: &str) -> Self {
        let vars = line
            .split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Self {
            line: line.trim().to_owned(),
            vars,
        }
    }

    /// A numeric variable.
    pub fn get(&self, name: &str) -> Option<u64> {
        self.vars.get(name)?.parse().ok()
    }
}

fn server_config(dir: &Path, name: &str) -> Option<ServerConfig> {
    let text = std::fs::read_to_string(dir.join(name)).ok()?;
    let line = text.lines().find(|l| !l.trim().is_empty())?;
    Some(ServerConfig::parse(line))
}

/// What `mixed` checked, by credential and by kind of row.
fn mixed_checks(m: &RunReport) -> String {
    let mut md = String::new();
    if !m.credentials.is_empty() {
        md.push_str("By credential in the `mixed` run:\n\n| credential | workers | requests | 2xx | rows checked | foreign |\n|---|---:|---:|---:|---:|---:|\n");
        for (kind, c) in &m.credentials {
            let name = match kind.as_str() {
                "api_key" => "API key (`Bearer tnt_…`, created through the API)",
                "jwt" => "JWT",
                other => other,
            };
            let _ = writeln!(
                md,
                "| {name} | {} | {} | {} | {} | {} |",
                c.workers, c.requests, c.ok, c.rows_checked, c.foreign_rows
            );
        }
        md.push('\n');
    }
    if !m.leaks.by_kind.is_empty() {
        let kinds: Vec<String> = m
            .leaks
            .by_kind
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        let _ = writeln!(
            md,
            "Rows leak-checked in the `mixed` run, by kind: {} ({} foreign, {} unmarked).",
            kinds.join(", "),
            m.leaks.foreign_rows,
            m.leaks.unmarked_rows
        );
    }
    md
}

/// The 503s of `runs` together.
fn shed_stats(runs: &[&RunReport]) -> Refusals {
    let mut total = Refusals::default();
    for r in runs {
        if let Some(s) = r.summary.refusals.get(&503) {
            total.count += s.count;
            total.retry_after += s.retry_after;
            total.problem_json += s.problem_json;
        }
    }
    total
}

/// Entry point.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let dir = &args.results;
    if args.print_saturation {
        let points: BTreeMap<usize, f64> = sweep(dir)
            .into_iter()
            .map(|(c, r)| (c, r.summary.ok_rps))
            .collect();
        let c = saturation(&points).context("no sweep_c<N>.json results")?;
        println!("{c}");
        return Ok(());
    }
    let md = compose(dir);
    std::fs::write(&args.out, md).with_context(|| format!("writing {}", args.out.display()))?;
    Ok(())
}

/// The whole report.
pub fn compose(dir: &Path) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# Tenantry performance report\n");
    md.push_str(
        "Generated by `loadtest/bench.sh` (`loadtest compose`). Everything below was measured \
         in one run of that script on the machine described here; every number is from the \
         results directory it wrote. Rerun with `bash loadtest/bench.sh`.\n\n",
    );
    if let Ok(env) = std::fs::read_to_string(dir.join("env.md")) {
        md.push_str("## Machine and data\n\n");
        md.push_str(&env);
        md.push('\n');
    }

    let api_rounds = rounds(dir, "api_list");
    let minimal_rounds = rounds(dir, "minimal_plain");
    let minimal_rls_rounds = rounds(dir, "minimal_rls");
    let pg_plain_rounds = pg_rounds(dir, "plain");
    let pg_rls_rounds = pg_rounds(dir, "rls");
    let rps = |runs: &[RunReport]| runs.iter().map(|r| r.summary.ok_rps).collect::<Vec<_>>();
    let tps = |runs: &[Pgbench]| runs.iter().map(|p| p.tps).collect::<Vec<_>>();
    let api = median_by(&api_rounds, |r| r.summary.ok_rps);
    let minimal = median_by(&minimal_rounds, |r| r.summary.ok_rps);
    let minimal_rls = median_by(&minimal_rls_rounds, |r| r.summary.ok_rps);
    let pg_plain = median_by(&pg_plain_rounds, |p| p.tps);
    let pg_rls = median_by(&pg_rls_rounds, |p| p.tps);
    let api_vs_minimal = ratios(&rps(&api_rounds), &rps(&minimal_rounds));
    let api_vs_pgbench = ratios(&rps(&api_rounds), &tps(&pg_plain_rounds));
    let rls_vs_plain_pg = ratios(&tps(&pg_rls_rounds), &tps(&pg_plain_rounds));
    let rls_vs_plain_min = ratios(&rps(&minimal_rls_rounds), &rps(&minimal_rounds));
    let sql_depth: Option<DepthReport> = std::fs::read(dir.join("sql_depth.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let api_depth = load(dir, "api_depth");
    let overload = load(dir, "overload");
    let limits = load(dir, "limits");
    let sync = load(dir, "sync");
    let sweep = sweep(dir);
    let scenario_names = ["get", "walk", "sync", "write", "mixed"];
    let scenarios: Vec<(&str, Option<RunReport>)> =
        scenario_names.iter().map(|n| (*n, load(dir, n))).collect();

    // ---- Goals first: the verdicts, then the tables they come from.
    let mut all_runs: Vec<&RunReport> = Vec::new();
    for r in api_rounds
        .iter()
        .chain(&minimal_rounds)
        .chain(&minimal_rls_rounds)
        .chain(api_depth.iter())
        .chain(overload.iter())
        .chain(limits.iter())
    {
        all_runs.push(r);
    }
    for (_, r) in &scenarios {
        if let Some(r) = r {
            all_runs.push(r);
        }
    }
    for r in sweep.values() {
        all_runs.push(r);
    }
    let sqlite_list = load(dir, "sqlite_list");
    let sqlite_get = load(dir, "sqlite_get");
    for r in [&sqlite_list, &sqlite_get].into_iter().flatten() {
        all_runs.push(r);
    }
    let checked: u64 = all_runs.iter().map(|r| r.leaks.checked_rows).sum();
    let leaked: u64 = all_runs.iter().map(|r| r.leaks.foreign_rows).sum();
    let unmarked: u64 = all_runs.iter().map(|r| r.leaks.unmarked_rows).sum();

    md.push_str("## Goals\n\n| goal | measured | verdict |\n|---|---|---|\n");
    match &sql_depth {
        Some(d) => {
            let p = |n: u64| d.pages.iter().find(|r| r.page == n);
            match (p(1), p(10_000)) {
                (Some(a), Some(b)) => {
                    let ratio = b.keyset.p50_ms / a.keyset.p50_ms.max(1e-9);
                    let _ = writeln!(
                        md,
                        "| keyset p50 at page 10 000 ≤ 1.3× page 1 (SQL) | {:.3} ms vs {:.3} ms = {:.2}× | {} |",
                        b.keyset.p50_ms, a.keyset.p50_ms, ratio, yes(ratio <= 1.3)
                    );
                }
                _ => md.push_str("| keyset p50 at page 10 000 ≤ 1.3× page 1 (SQL) | pages missing | not measured |\n"),
            }
        }
        None => {
            md.push_str("| keyset p50 at page 10 000 ≤ 1.3× page 1 (SQL) | — | not measured |\n")
        }
    }
    if let Some(d) = &api_depth {
        let (a, b) = (
            d.summary.ops.get("keyset_page_1"),
            d.summary.ops.get("keyset_page_10000"),
        );
        if let (Some(a), Some(b)) = (a, b) {
            let ratio = b.p50_ms / a.p50_ms.max(1e-9);
            let _ = writeln!(
                md,
                "| keyset p50 at page 10 000 ≤ 1.3× page 1 (through the API) | {:.2} ms vs {:.2} ms = {:.2}× | {} |",
                b.p50_ms,
                a.p50_ms,
                ratio,
                yes(ratio <= 1.3)
            );
        }
    }
    match median(api_vs_minimal.clone()) {
        Some(ratio) => {
            let _ = writeln!(
                md,
                "| API list throughput ≥ 80% of the minimal server | median of {} interleaved rounds: {:.0}% (rounds: {}%) | {} |",
                api_vs_minimal.len(),
                ratio * 100.0,
                list_of(
                    &api_vs_minimal.iter().map(|r| r * 100.0).collect::<Vec<_>>(),
                    0
                ),
                yes(ratio >= 0.8)
            );
        }
        None => {
            md.push_str("| API list throughput ≥ 80% of the minimal server | — | not measured |\n")
        }
    }
    let _ = writeln!(
        md,
        "| zero leaked rows | {leaked} foreign of {checked} rows checked in {} runs ({unmarked} unmarked) | {} |",
        all_runs.len(),
        yes(leaked == 0 && checked > 0)
    );
    match &overload {
        Some(o) => {
            let _ = writeln!(
                md,
                "| zero 5xx under 2× saturation | {} 5xx of {} requests at concurrency {} (503: {}) | {} |",
                o.summary.status_5xx,
                o.summary.requests,
                o.concurrency,
                o.summary.statuses.get(&503).copied().unwrap_or(0),
                yes(o.summary.status_5xx == 0)
            );
        }
        None => md.push_str("| zero 5xx under 2× saturation | — | not measured |\n"),
    }
    if !sweep.is_empty() {
        let top = sweep.iter().next_back();
        let shed = shed_stats(&sweep.values().collect::<Vec<_>>());
        match top {
            Some((c, _)) if shed.count > 0 => {
                let _ = writeln!(
                    md,
                    "| overload beyond the admission limit is shed with 503 + Retry-After | {} 503s in the sweep (up to concurrency {c}), Retry-After on {} | {} |",
                    shed.count,
                    shed.retry_after,
                    yes(shed.retry_after == shed.count)
                );
            }
            Some((c, _)) => {
                let _ = writeln!(
                    md,
                    "| overload beyond the admission limit is shed with 503 + Retry-After | no 503 up to concurrency {c} | not exercised |"
                );
            }
            None => {}
        }
    }
    match limits.as_ref().and_then(|r| r.limits.as_ref()) {
        Some(l) => {
            let r = &l.refusals;
            let named: u64 = r.policies.values().sum();
            let _ = writeln!(
                md,
                "| every 429 is problem+json with Retry-After, RateLimit and RateLimit-Policy | {} 429s: Retry-After {}, problem+json {}, RateLimit {}, policy named {} | {} |",
                r.count,
                r.retry_after,
                r.problem_json,
                r.ratelimit,
                named,
                yes(r.count > 0 && r.all_well_formed(true) && named >= r.count)
            );
            let polite = l
                .phases
                .first()
                .and_then(|p| p.lanes.iter().find(|lane| lane.role == "polite"));
            let greedy = l
                .phases
                .first()
                .and_then(|p| p.lanes.iter().find(|lane| lane.role == "greedy"));
            let _ = writeln!(
                md,
                "| a credential over its budget does not stop another of its tenant | greedy key: {} 429s; polite key: {} of {} requests refused | {} |",
                greedy.map_or(0, |g| g.refused),
                polite.map_or(0, |p| p.refused),
                polite.map_or(0, |p| p.requests),
                match l.isolation.as_str() {
                    "held" => "met",
                    "violated" => "**NOT met**",
                    other => other,
                }
            );
        }
        None => md.push_str(
            "| every 429 is problem+json with Retry-After, RateLimit and RateLimit-Policy | — | not measured |\n",
        ),
    }
    match sync.as_ref().and_then(|s| s.sync.as_ref()) {
        Some(s) => {
            let _ = writeln!(
                md,
                "| sync: zero missed, zero duplicated | {} missed, {} duplicated of {} acknowledged rows ({} received; caught up: {}) | {} |",
                s.missed,
                s.duplicated,
                s.acknowledged_rows,
                s.received_rows,
                s.caught_up,
                yes(s.missed == 0 && s.duplicated == 0 && s.caught_up)
            );
        }
        None => md.push_str("| sync: zero missed, zero duplicated | — | not measured |\n"),
    }
    md.push('\n');

    // ---- Ceilings.
    md.push_str("## Ceilings: the same page, three ways\n\n");
    md.push_str(
        "`GET /v1/people?limit=50` (first page) for one tenant; the SQL is the API's (keyset on \
         `(tenant_id, id)`, `LIMIT 51`). Same concurrency for all three. pgbench runs the SQL \
         alone in prepared mode; the minimal server is poem + tokio-postgres with the same SQL \
         and no auth, limits or cursor signing; the API is `tenantry serve`. All share the \
         2 cores with PostgreSQL and the load generator.\n\n",
    );
    md.push_str("| target | concurrency | ok req/s (tps) | p50 ms | p90 ms | p99 ms | p99.9 ms | non-2xx | API / this |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    let api_rps = api.as_ref().map_or(0.0, |a| a.summary.ok_rps);
    let row_run = |md: &mut String, name: &str, r: &Option<RunReport>| match r {
        Some(r) => {
            let s = &r.summary;
            let non_ok = s.status_4xx + s.status_5xx + s.errors.values().sum::<u64>();
            let _ = writeln!(
                md,
                "| {name} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {non_ok} | {} |",
                r.concurrency,
                s.ok_rps,
                s.all.p50_ms,
                s.all.p90_ms,
                s.all.p99_ms,
                s.all.p999_ms,
                fmt_ratio(api_rps, s.ok_rps)
            );
        }
        None => {
            let _ = writeln!(md, "| {name} | — | not measured | | | | | | |");
        }
    };
    let row_pg = |md: &mut String, name: &str, p: &Option<Pgbench>| match p {
        Some(p) => {
            let l = &p.latency;
            let _ = writeln!(
                md,
                "| {name} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {} failed | {} |",
                p.clients,
                p.tps,
                l.p50_ms,
                l.p90_ms,
                l.p99_ms,
                l.p999_ms,
                p.failed,
                fmt_ratio(api_rps, p.tps)
            );
        }
        None => {
            let _ = writeln!(md, "| {name} | — | not measured | | | | | | |");
        }
    };
    row_run(&mut md, "Tenantry API (PostgreSQL)", &api);
    row_run(&mut md, "minimal server (poem + tokio-postgres)", &minimal);
    row_pg(&mut md, "pgbench (SQL only, prepared)", &pg_plain);
    md.push('\n');
    if api_rounds.len() > 1 {
        let _ = writeln!(
            md,
            "Each row is that target's median round. Per round (interleaved, in order), ok req/s: \
             API {}; minimal {}; pgbench {}. API / minimal per round: {} (median {}); API / \
             pgbench per round: {} (median {}).\n",
            list_of(&rps(&api_rounds), 0),
            list_of(&rps(&minimal_rounds), 0),
            list_of(&tps(&pg_plain_rounds), 0),
            list_of(&api_vs_minimal, 2),
            median(api_vs_minimal.clone()).map_or_else(|| "n/a".to_owned(), |m| format!("{m:.2}")),
            list_of(&api_vs_pgbench, 2),
            median(api_vs_pgbench.clone()).map_or_else(|| "n/a".to_owned(), |m| format!("{m:.2}")),
        );
    }

    // ---- Isolation.
    md.push_str("## Isolation cost: compile-time scoping vs row-level security\n\n");
    md.push_str(
        "Plain: `WHERE tenant_id = $1` in the statement (what Tenantry's scoped builders \
         emit). RLS: a policy `USING (tenant_id = current_setting('app.tenant_id')::uuid)` on \
         `people`, queried as a non-superuser role, each request in a transaction: `BEGIN; \
         SET LOCAL app.tenant_id = '…'` (pgbench: `set_config(…, true)`, the same thing as a \
         function so it can be prepared)`; SELECT … ; COMMIT` — four round trips instead of one.\n\n",
    );
    md.push_str(
        "| variant | ok req/s (tps) | p50 ms | p99 ms | RLS / plain |\n|---|---:|---:|---:|---:|\n",
    );
    let iso =
        |md: &mut String, name: &str, rps: Option<f64>, p50: f64, p99: f64, base: Option<f64>| {
            match rps {
                Some(rps) => {
                    let ratio = base.map_or_else(|| "1.00".to_owned(), |b| fmt_ratio(rps, b));
                    let _ = writeln!(md, "| {name} | {rps:.0} | {p50:.2} | {p99:.2} | {ratio} |");
                }
                None => {
                    let _ = writeln!(md, "| {name} | not measured | | | |");
                }
            }
        };
    iso(
        &mut md,
        "pgbench, plain filter",
        pg_plain.as_ref().map(|p| p.tps),
        pg_plain.as_ref().map_or(0.0, |p| p.latency.p50_ms),
        pg_plain.as_ref().map_or(0.0, |p| p.latency.p99_ms),
        None,
    );
    iso(
        &mut md,
        "pgbench, RLS + SET LOCAL",
        pg_rls.as_ref().map(|p| p.tps),
        pg_rls.as_ref().map_or(0.0, |p| p.latency.p50_ms),
        pg_rls.as_ref().map_or(0.0, |p| p.latency.p99_ms),
        pg_plain.as_ref().map(|p| p.tps),
    );
    iso(
        &mut md,
        "minimal server, plain filter",
        minimal.as_ref().map(|r| r.summary.ok_rps),
        minimal.as_ref().map_or(0.0, |r| r.summary.all.p50_ms),
        minimal.as_ref().map_or(0.0, |r| r.summary.all.p99_ms),
        None,
    );
    iso(
        &mut md,
        "minimal server, RLS + SET LOCAL",
        minimal_rls.as_ref().map(|r| r.summary.ok_rps),
        minimal_rls.as_ref().map_or(0.0, |r| r.summary.all.p50_ms),
        minimal_rls.as_ref().map_or(0.0, |r| r.summary.all.p99_ms),
        minimal.as_ref().map(|r| r.summary.ok_rps),
    );
    md.push('\n');
    if pg_rls_rounds.len() > 1 {
        let _ = writeln!(
            md,
            "Rows are median rounds. RLS / plain per round: pgbench {} (median {}); minimal server \
             {} (median {}).\n",
            list_of(&rls_vs_plain_pg, 2),
            median(rls_vs_plain_pg.clone()).map_or_else(|| "n/a".to_owned(), |m| format!("{m:.2}")),
            list_of(&rls_vs_plain_min, 2),
            median(rls_vs_plain_min.clone())
                .map_or_else(|| "n/a".to_owned(), |m| format!("{m:.2}")),
        );
    }

    // ---- Depth.
    md.push_str("## Depth: keyset vs offset\n\n");
    match &sql_depth {
        Some(d) => {
            let _ = writeln!(
                md,
                "SQL only (one connection, sequential, prepared; the API's statements), one tenant \
                 with {} live people, {} rows a page. At each depth the keyset samples run first, \
                 then the offset samples (each after 3 warm-up queries): interleaved, every deep \
                 offset scan would evict the CPU caches right before the next keyset sample.\n",
                d.rows, d.page_size
            );
            md.push_str("| page | rows skipped | keyset p50 ms | keyset p99 ms | offset p50 ms | offset p99 ms | offset / keyset (p50) |\n|---:|---:|---:|---:|---:|---:|---:|\n");
            for r in &d.pages {
                let _ = writeln!(
                    md,
                    "| {} | {} | {:.3} | {:.3} | {:.3} | {:.3} | {} |",
                    r.page,
                    r.row_offset,
                    r.keyset.p50_ms,
                    r.keyset.p99_ms,
                    r.offset.p50_ms,
                    r.offset.p99_ms,
                    fmt_ratio(r.offset.p50_ms, r.keyset.p50_ms)
                );
            }
            md.push('\n');
        }
        None => md.push_str("SQL depth: not measured.\n\n"),
    }
    if let Some(d) = &api_depth {
        md.push_str("Through the API (HTTP, auth, cursor signing; sequential):\n\n");
        md.push_str("| page | keyset p50 ms | keyset p99 ms | offset p50 ms | offset p99 ms |\n|---:|---:|---:|---:|---:|\n");
        let mut pages: Vec<u64> = d
            .summary
            .ops
            .keys()
            .filter_map(|k| k.strip_prefix("keyset_page_").and_then(|p| p.parse().ok()))
            .collect();
        pages.sort_unstable();
        for p in pages {
            let k = d.summary.ops.get(&format!("keyset_page_{p}"));
            let o = d.summary.ops.get(&format!("offset_page_{p}"));
            let cell = |l: Option<&LatencySummary>, f: fn(&LatencySummary) -> f64| {
                l.map_or_else(|| "refused".to_owned(), |l| format!("{:.2}", f(l)))
            };
            let _ = writeln!(
                md,
                "| {p} | {} | {} | {} | {} |",
                cell(k, |l| l.p50_ms),
                cell(k, |l| l.p99_ms),
                cell(o, |l| l.p50_ms),
                cell(o, |l| l.p99_ms)
            );
        }
        for n in &d.notes {
            let _ = writeln!(md, "\n- {n}");
        }
        md.push('\n');
    }

    // ---- SQLite vs PostgreSQL.
    md.push_str("## SQLite (embedded) vs PostgreSQL\n\n");
    md.push_str(
        "The same `tenantry` binary and the same scenarios, once with `DATABASE_URL=sqlite://…` \
         (the embedded default) and once against PostgreSQL, same concurrency, same seeded \
         tenants' size. (PostgreSQL's `people` table also holds the depth tenant's rows; \
         every query reads one tenant's index range, so the per-request work is the same.)\n\n",
    );
    md.push_str("| scenario | SQLite ok req/s | SQLite p50 / p99 ms | PostgreSQL ok req/s | PostgreSQL p50 / p99 ms | SQLite / PostgreSQL |\n|---|---:|---:|---:|---:|---:|\n");
    let pg_get = scenarios
        .iter()
        .find(|(n, _)| *n == "get")
        .and_then(|(_, r)| r.clone());
    for (name, lite, pg) in [
        ("list (first page)", &sqlite_list, &api),
        ("get by id", &sqlite_get, &pg_get),
    ] {
        match (lite, pg) {
            (Some(l), Some(p)) => {
                let _ = writeln!(
                    md,
                    "| {name} | {:.0} | {:.2} / {:.2} | {:.0} | {:.2} / {:.2} | {} |",
                    l.summary.ok_rps,
                    l.summary.all.p50_ms,
                    l.summary.all.p99_ms,
                    p.summary.ok_rps,
                    p.summary.all.p50_ms,
                    p.summary.all.p99_ms,
                    fmt_ratio(l.summary.ok_rps, p.summary.ok_rps)
                );
            }
            _ => {
                let _ = writeln!(md, "| {name} | not measured | | | | |");
            }
        }
    }
    md.push('\n');

    // ---- Scenarios.
    md.push_str("## Scenarios against the API (PostgreSQL)\n\n");
    md.push_str(
        "404s in `get` and `mixed` are the cross-tenant probes (expected: another tenant's id \
         must be not found); 422s are the deliberate reuses of an `Idempotency-Key` with another \
         body (expected). `sync` runs one reader per tenant and the other workers as writers; its \
         time includes the reader's catch-up after the safety window. `mixed` covers people \
         (gets, first pages, joined reads with `include_account_name=true`, walk steps, \
         creates, updates), accounts and activities (gets, first pages, creates), the activity \
         feed and cross-tenant probes of all three; part of its workers authenticate with an \
         API key created for the run through `POST /v1/api_keys` instead of the JWT.\n\n",
    );
    md.push_str("| scenario | concurrency | requests | req/s | p50 ms | p90 ms | p99 ms | p99.9 ms | statuses | errors | checks |\n|---|---:|---:|---:|---:|---:|---:|---:|---|---|---|\n");
    for (name, r) in &scenarios {
        match r {
            Some(r) => {
                let s = &r.summary;
                let statuses: Vec<String> = s
                    .statuses
                    .iter()
                    .map(|(k, v)| format!("{k}: {v}"))
                    .collect();
                let errors: Vec<String> =
                    s.errors.iter().map(|(k, v)| format!("{k}: {v}")).collect();
                let mut checks = vec![format!(
                    "leaks {}/{}",
                    r.leaks.foreign_rows, r.leaks.checked_rows
                )];
                if let Some(w) = &r.walks {
                    checks.push(format!(
                        "walks {} ({} dup, {} disorder)",
                        w.completed, w.duplicates, w.out_of_order
                    ));
                }
                if let Some(i) = &r.idempotency {
                    checks.push(format!(
                        "created {}, retries {}, replays {}/{} ok, 422 on reuse {}/{}",
                        i.created,
                        i.retries,
                        i.replays_ok,
                        i.replays_ok + i.replays_wrong,
                        i.conflicts_ok,
                        i.conflicts_ok + i.conflicts_wrong
                    ));
                }
                if let Some(y) = &r.sync {
                    checks.push(format!(
                        "sync missed {}, dup {}, of {}",
                        y.missed, y.duplicated, y.acknowledged_rows
                    ));
                }
                let _ = writeln!(
                    md,
                    "| {name} | {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} | {} |",
                    r.concurrency,
                    s.requests,
                    s.throughput_rps,
                    s.all.p50_ms,
                    s.all.p90_ms,
                    s.all.p99_ms,
                    s.all.p999_ms,
                    statuses.join(", "),
                    if errors.is_empty() {
                        "none".to_owned()
                    } else {
                        errors.join(", ")
                    },
                    checks.join("; ")
                );
            }
            None => {
                let _ = writeln!(md, "| {name} | not measured | | | | | | | | | |");
            }
        }
    }
    md.push('\n');
    md.push_str("Per-operation latency of the `mixed` run:\n\n");
    if let Some((_, Some(m))) = scenarios.iter().find(|(n, _)| *n == "mixed") {
        md.push_str(&crate::report::latency_table(
            m.summary.ops.iter().map(|(k, v)| (k.as_str(), v)),
        ));
        md.push('\n');
        md.push_str(&mixed_checks(m));
    }
    md.push('\n');

    // ---- Saturation.
    md.push_str("## Saturation and overload\n\n");
    let shed_config = server_config(dir, "saturation_server.txt");
    if let Some(cfg) = &shed_config {
        let _ = writeln!(
            md,
            "The API for this section was started with `{}`: past that many requests in \
             flight and queued, it is to shed load with 503 + `Retry-After` instead of queueing \
             without bound.\n",
            cfg.line
        );
    }
    if sweep.is_empty() {
        md.push_str("Not measured.\n\n");
    } else {
        md.push_str("`list` at rising concurrency (short runs):\n\n| concurrency | ok req/s | p50 ms | p99 ms | 429 | 503 | 503 with Retry-After | other 5xx |\n|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        for (c, r) in &sweep {
            let s = &r.summary;
            let n503 = s.statuses.get(&503).copied().unwrap_or(0);
            let _ = writeln!(
                md,
                "| {c} | {:.0} | {:.2} | {:.2} | {} | {n503} | {} | {} |",
                s.ok_rps,
                s.all.p50_ms,
                s.all.p99_ms,
                s.statuses.get(&429).copied().unwrap_or(0),
                s.refusals.get(&503).map_or(0, |r| r.retry_after),
                s.status_5xx - n503
            );
        }
        let points: BTreeMap<usize, f64> =
            sweep.iter().map(|(c, r)| (*c, r.summary.ok_rps)).collect();
        if let Some(c) = saturation(&points) {
            let _ = writeln!(
                md,
                "\nSaturation (lowest concurrency reaching 90% of the best throughput): **{c}**.\n"
            );
        }
    }
    let shed_runs: Vec<&RunReport> = sweep.values().chain(overload.iter()).collect();
    let shed = shed_stats(&shed_runs);
    let worst_p99 = sweep
        .values()
        .map(|r| (r.concurrency, r.summary.all.p99_ms))
        .fold((0, 0.0), |a, b| if b.1 > a.1 { b } else { a });
    if !sweep.is_empty() && shed.count == 0 {
        let top = sweep.keys().next_back().copied().unwrap_or(0);
        let capacity = shed_config.as_ref().and_then(|c| {
            Some(c.get("TENANTRY_MAX_IN_FLIGHT")? + c.get("TENANTRY_MAX_QUEUED").unwrap_or(0))
        });
        let why = match capacity {
            Some(cap) if (top as u64) > cap => format!(
                "although concurrency {top} exceeds the configured {cap} in flight + queued: \
                 this server build does not shed"
            ),
            Some(cap) => {
                format!("no concurrency measured exceeded the configured {cap} in flight + queued")
            }
            None => "no admission limit was configured".to_owned(),
        };
        let _ = writeln!(
            md,
            "No request was shed (no 503) at any concurrency measured — {why}. Beyond \
             saturation the server queues (p99 grows to {:.0} ms at concurrency {}).\n",
            worst_p99.1, worst_p99.0
        );
    } else if shed.count > 0 {
        let _ = writeln!(
            md,
            "Shed requests (sweep and overload): {} 503s; `Retry-After` on {}, \
             `application/problem+json` on {} — {}. (The sweep's `list` workers do not wait \
             after a 503: each sends its next request at once, so the 503 count is what \
             clients that ignore `Retry-After` provoke, and their cost is part of the ok req/s \
             of that row.)\n",
            shed.count,
            shed.retry_after,
            shed.problem_json,
            if shed.retry_after == shed.count {
                "every 503 carried Retry-After"
            } else {
                "**not every 503 carried Retry-After**"
            }
        );
    }
    if let Some(o) = &overload {
        let s = &o.summary;
        let statuses: Vec<String> = s
            .statuses
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        let _ = writeln!(
            md,
            "Overload run (`{}` at concurrency {}): {} requests, {:.0} ok req/s, p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms; statuses {}; errors {:?}.\n",
            o.scenario,
            o.concurrency,
            s.requests,
            s.ok_rps,
            s.all.p50_ms,
            s.all.p99_ms,
            s.all.p999_ms,
            statuses.join(", "),
            s.errors
        );
    }

    // ---- Rate limits.
    md.push_str("## Rate limits under load (429)\n\n");
    match &limits {
        Some(r) => {
            if let Some(cfg) = server_config(dir, "limits_server.txt") {
                let _ = writeln!(
                    md,
                    "A separate API process, same database, started with `{}`. The `limits` \
                     scenario reads the quotas from the `RateLimit-Policy` the server sends, \
                     creates API keys through `POST /v1/api_keys` (scope `people:read`; each key \
                     is a credential with its own budget inside its tenant's) on `{}`, and \
                     runs two phases (see `loadtest/src/limits.rs`). \"Bound\" is the most a \
                     policy can admit over the phase: a full bucket plus continuous refill, \
                     `quota + quota × elapsed / window`, with the elapsed time measured at the \
                     client (which brackets the server's decisions); the ratio is a measurement, \
                     not an assertion.\n",
                    cfg.line,
                    r.tenants.first().map_or("?", String::as_str)
                );
            }
            match &r.limits {
                Some(l) => md.push_str(&crate::report::limits_markdown(l)),
                None => md.push_str("The run recorded no rate-limit verdict.\n\n"),
            }
            let s = &r.summary;
            let _ = writeln!(
                md,
                "{} requests in {:.1} s; statuses {}; errors {}; leaks {}/{}.\n",
                s.requests,
                s.elapsed_s,
                s.statuses
                    .iter()
                    .map(|(k, v)| format!("{k}: {v}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                if s.errors.is_empty() {
                    "none".to_owned()
                } else {
                    format!("{:?}", s.errors)
                },
                r.leaks.foreign_rows,
                r.leaks.checked_rows
            );
        }
        None => md.push_str("Not measured.\n\n"),
    }

    // ---- Leak evidence, failures.
    let failures: Vec<String> = all_runs
        .iter()
        .flat_map(|r| {
            r.failures
                .iter()
                .map(move |f| format!("`{}`: {f}", r.label))
        })
        .collect();
    md.push_str("## Correctness checks\n\n");
    let _ = writeln!(
        md,
        "Every row of every response was checked against the credential's tenant — by its \
         marker (a person's email, an account's name, an activity's subject ending in \
         `@<slug>.test`, as the seed and this tool write them) and by the ids each tenant \
         listed before the run or created during it — and so was every row a response \
         embeds (a joined read's account, an activity's person, a feed entry's person): \
         {checked} rows, {leaked} foreign, {unmarked} unmarked. Cross-tenant GETs (another \
         tenant's id with this tenant's credential) are part of `get` and `mixed`: they must \
         answer 404.\n"
    );
    if failures.is_empty() {
        md.push_str("No run failed its checks.\n\n");
    } else {
        md.push_str("Runs that failed their checks:\n\n");
        for f in failures {
            let _ = writeln!(md, "- {f}");
        }
        md.push('\n');
    }
    for r in &all_runs {
        for e in &r.leaks.evidence {
            let _ = writeln!(
                md,
                "- LEAK in `{}`: {} `{}` with the token of `{}` returned {} {} ({:?})",
                r.label, e.op, e.request, e.token_tenant, e.kind, e.row_id, e.row_marker
            );
        }
    }

    if let Ok(load) = std::fs::read_to_string(dir.join("load.md")) {
        md.push_str(
            "## Machine load during the runs\n\nThe machine is shared: other work running during a \
             run (e.g. builds) takes cores from the server, the database and the load generator \
             alike and lowers every number of that run. At the start of each run:\n\n\
             | run | 1-min load average | rustc processes running |\n|---|---:|---:|\n",
        );
        md.push_str(&load);
        md.push('\n');
    }
    if let Ok(failed) = std::fs::read_to_string(dir.join("failed.txt"))
        && !failed.trim().is_empty()
    {
        md.push_str("Runs that exited non-zero (failed checks, or no result):\n\n```text\n");
        md.push_str(&failed);
        md.push_str("```\n\n");
    }
    if let Ok(cmds) = std::fs::read_to_string(dir.join("commands.txt")) {
        md.push_str("## How to reproduce\n\n`bash loadtest/bench.sh` runs all of the following (logged as run):\n\n```sh\n");
        md.push_str(&cmds);
        md.push_str("```\n");
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    const PGBENCH: &str = "pgbench (15.20 (Debian 15.20-0+deb12u1))
transaction type: list.sql
scaling factor: 1
query mode: prepared
number of clients: 16
number of threads: 2
maximum number of tries: 1
duration: 10 s
number of transactions actually processed: 123456
number of failed transactions: 0 (0.000%)
latency average = 1.296 ms
initial connection time = 20.123 ms
tps = 12345.678901 (without initial connection time)
";

    #[test]
    fn pgbench_output_is_parsed() {
        let p = parse_pgbench(PGBENCH);
        assert!((p.tps - 12345.678901).abs() < 1e-6);
        assert_eq!((p.failed, p.clients), (0, 16));
    }

    #[test]
    fn pgbench_logs_give_latencies() {
        let mut l = Latency::new();
        add_pgbench_log(
            "0 1 1500 0 1700000000 1\n0 2 2500 0 1700000000 2\ngarbage\n",
            &mut l,
        );
        let s = l.summary();
        assert_eq!(s.count, 2);
        assert!((s.max_ms - 2.5).abs() < 0.01, "{s:?}");
    }

    #[test]
    fn the_median_takes_the_middle_value() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0]), Some(4.0));
        assert_eq!(median(Vec::new()), None);
        assert_eq!(ratios(&[2.0, 3.0], &[4.0, 0.0]), vec![0.5]);
    }

    #[test]
    fn saturation_is_the_first_concurrency_near_the_best_throughput() {
        let points: BTreeMap<usize, f64> = [
            (1, 1000.0),
            (2, 1800.0),
            (4, 2600.0),
            (8, 2800.0),
            (16, 2750.0),
        ]
        .into();
        assert_eq!(saturation(&points), Some(4));
        assert_eq!(saturation(&BTreeMap::new()), None);
    }

    #[test]
    fn a_server_config_line_gives_its_numbers() {
        let c = ServerConfig::parse("TENANTRY_MAX_IN_FLIGHT=32 TENANTRY_MAX_QUEUED=64 X=y\n");
        assert_eq!(c.get("TENANTRY_MAX_IN_FLIGHT"), Some(32));
        assert_eq!(c.get("TENANTRY_MAX_QUEUED"), Some(64));
        assert_eq!(c.get("X"), None);
        assert_eq!(
            c.line,
            "TENANTRY_MAX_IN_FLIGHT=32 TENANTRY_MAX_QUEUED=64 X=y"
        );
    }

    #[test]
    fn the_saturation_table_counts_503s_with_retry_after_apart() {
        use crate::stats::Summary;
        let dir = std::env::temp_dir().join(format!("loadtest-compose-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).ok();
        let sweep_run = |c: usize, n503: u64, with_retry: u64| RunReport {
            label: format!("sweep-c{c}"),
            scenario: "list".into(),
            concurrency: c,
            summary: Summary {
                requests: 100,
                statuses: [(200, 100 - n503), (503, n503)]
                    .into_iter()
                    .filter(|(_, n)| *n > 0)
                    .collect(),
                status_5xx: n503,
                refusals: if n503 > 0 {
                    [(
                        503,
                        Refusals {
                            count: n503,
                            retry_after: with_retry,
                            problem_json: n503,
                            ..Refusals::default()
                        },
                    )]
                    .into()
                } else {
                    BTreeMap::new()
                },
                ..Summary::default()
            },
            ..RunReport::default()
        };
        for (c, n, r) in [(16, 0, 0), (256, 10, 9)] {
            sweep_run(c, n, r)
                .write_json(&dir.join(format!("sweep_c{c}.json")))
                .ok();
        }
        std::fs::write(
            dir.join("saturation_server.txt"),
            "TENANTRY_MAX_IN_FLIGHT=32 TENANTRY_MAX_QUEUED=64\n",
        )
        .ok();
        let md = compose(&dir);
        std::fs::remove_dir_all(&dir).ok();
        assert!(
            md.contains("| 256 | 0 | 0.00 | 0.00 | 0 | 10 | 9 | 0 |"),
            "{md}"
        );
        assert!(md.contains("**not every 503 carried Retry-After**"), "{md}");
        assert!(
            md.contains("`TENANTRY_MAX_IN_FLIGHT=32 TENANTRY_MAX_QUEUED=64`"),
            "{md}"
        );
    }

    #[test]
    fn an_empty_results_directory_composes_a_report_that_says_not_measured() {
        let md = compose(Path::new("/nonexistent-results"));
        assert!(md.contains("## Goals"));
        assert!(md.contains("not measured"));
    }
}
