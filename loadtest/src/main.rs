//! `loadtest`: Tenantry's load and correctness tool, and the baselines it is measured
//! against.
//!
//! It talks to a running Tenantry over HTTP only, through a client generated at build
//! time from the committed `openapi/openapi.json` (see `build.rs`): a change of the spec
//! that breaks this code breaks the build, and a server that no longer answers as the
//! spec says shows up as `invalid_payload` errors, which fail the run.
//!
//! Layout:
//! - `client`: the generated client (progenitor);
//! - `target`: base URL (loopback only), credentials (passed in, or minted with
//!   `tenantry token`), one client per tenant;
//! - `engine`: the budget (deadline + request cap: every run ends by itself), the
//!   progress bar, timed calls;
//! - `scenario`: `get`, `list`, `walk`, `sync`, `write`, `mixed`, `depth`, `limits`;
//!   `crm`: the accounts and activities operations of `mixed`; `limits`: rate limits
//!   under load (429s, admitted units against the quota, credential isolation);
//!   `run_state`: what their workers share (options, tenants, ids, the leak check, the
//!   budget) and the outcome they record; `limits_verdict`: the `limits` verdict;
//! - `leak`: the per-row tenant check; `ledger`: sync and idempotency bookkeeping;
//! - `stats`: HDR histograms and counters; `report`: one run as JSON + Markdown;
//! - `minimal`: the `minimal-server` baseline (poem + tokio-postgres, no auth, no limits,
//!   no cursor signing), plain or under row-level security;
//! - `sqldepth`: keyset vs offset straight against PostgreSQL;
//! - `compose`: assembles `REPORT.md` from a `bench.sh` results directory.
//!
//! Rules: traffic only to loopback addresses; every loop is bounded in count and time;
//! any foreign row, sync miss or duplicate fails the run (exit code 2).

mod client;
mod compose;
mod crm;
mod engine;
mod leak;
mod ledger;
mod limits;
mod limits_verdict;
mod minimal;
mod report;
mod run_state;
mod scenario;
mod sqldepth;
mod stats;
mod target;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};

use crate::engine::{Budget, parse_duration};
use crate::report::RunReport;
use crate::run_state::{Options, Scenario, Shared};

/// Tenantry's load and correctness tool.
#[derive(Parser, Debug)]
#[command(name = "loadtest", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a scenario against a running Tenantry (or the minimal server).
    Run(RunArgs),
    /// Serve the people list the way a minimal hand-written service would: poem +
    /// tokio-postgres, the same SQL as the API, no auth, no limits, no cursor signing.
    MinimalServer(minimal::Args),
    /// Measure keyset vs offset page latency by depth straight against PostgreSQL.
    SqlDepth(sqldepth::Args),
    /// Assemble REPORT.md from a bench.sh results directory.
    Compose(compose::Args),
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// The scenario.
    #[arg(value_enum)]
    scenario: Scenario,
    /// The server (loopback only).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    base_url: String,
    /// Tenants to act as: comma-separated slugs (tokens minted with `tenantry token`),
    /// or a number N: the first N seeded tenants in `<data dir>/tenants.json`.
    #[arg(long, value_delimiter = ',')]
    tenants: Vec<String>,
    /// A credential passed in instead: `SLUG=TOKEN` (repeatable). The slug is the
    /// tenant's marker for the leak check.
    #[arg(long = "token")]
    tokens: Vec<String>,
    /// The `tenantry` binary used to mint tokens (run with this process's environment,
    /// which must match the server's: DATABASE_URL, TENANTRY_DATA_DIR, secrets).
    #[arg(long, default_value = "tenantry")]
    tenantry_bin: PathBuf,
    /// Where `tenantry` keeps tenants.json (for `--tenants N`).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Concurrent workers.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Time cap: `15s`, `2m`, `500ms`.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    duration: Duration,
    /// Request cap: the run stops after this many requests even if time is left.
    #[arg(long, default_value_t = 1_000_000)]
    max_requests: u64,
    /// Page size of lists and walks (1..=200).
    #[arg(long, default_value_t = 50)]
    page_size: u64,
    /// Ids per tenant listed before the run.
    #[arg(long, default_value_t = 2000)]
    prefetch: usize,
    /// The server's sync safety window in ms (TENANTRY_SYNC_SAFETY_WINDOW_MS).
    #[arg(long, default_value_t = 2000)]
    sync_window_ms: u64,
    /// No cross-tenant probes (GET of another tenant's id, which must be 404).
    #[arg(long)]
    no_probes: bool,
    /// Page numbers for `depth`.
    #[arg(long, value_delimiter = ',', default_value = "1,100,1000,10000")]
    depth_pages: Vec<u64>,
    /// Samples per page and method for `depth`.
    #[arg(long, default_value_t = 30)]
    samples: usize,
    /// Percent of `mixed` workers that authenticate with an API key the run creates
    /// through the API (and revokes after it) instead of the JWT; 0 for none.
    #[arg(long, default_value_t = 25, value_parser = clap::value_parser!(u64).range(0..=100))]
    api_key_share: u64,
    /// A name for the run in the report.
    #[arg(long)]
    label: Option<String>,
    /// Write the JSON report here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the Markdown report here (default: print it).
    #[arg(long)]
    md: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let code = runtime.block_on(async move {
        match cli.command {
            Command::Run(args) => run(args).await,
            Command::MinimalServer(args) => minimal::serve(args).await.map(|()| 0),
            Command::SqlDepth(args) => sqldepth::run(args).await.map(|()| 0),
            Command::Compose(args) => compose::run(&args).map(|()| 0),
        }
    })?;
    // Worker tasks are done; don't wait for idle connections to close.
    runtime.shutdown_timeout(Duration::from_secs(1));
    if code != 0 {
        std::process::exit(code);
    }
    Ok(())
}

async fn run(args: RunArgs) -> anyhow::Result<i32> {
    target::check_loopback(&args.base_url)?;
    if !(1..=200).contains(&args.page_size) {
        bail!("--page-size must be 1..=200");
    }
    if args.concurrency == 0 || args.concurrency > 4096 {
        bail!("--concurrency must be 1..=4096");
    }
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(target::default_data_dir);
    let slugs = target::tenant_slugs(&args.tenants, &data_dir)?;
    let mut tenants: Vec<target::Tenant> = Vec::new();
    for slug in &slugs {
        tenants.push(
            target::minted(&args.base_url, &args.tenantry_bin, slug, args.concurrency).await?,
        );
    }
    for token in &args.tokens {
        tenants.push(target::from_token_arg(
            &args.base_url,
            token,
            args.concurrency,
        )?);
    }
    if tenants.is_empty() {
        bail!("no tenant: pass --tenants SLUG,… or --token SLUG=TOKEN");
    }
    let label = args
        .label
        .clone()
        .unwrap_or_else(|| args.scenario.name().to_owned());
    let opts = Options {
        scenario: args.scenario,
        concurrency: args.concurrency,
        page_size: args.page_size,
        prefetch: args.prefetch,
        sync_window: Duration::from_millis(args.sync_window_ms),
        probes: !args.no_probes,
        depth_pages: args.depth_pages.clone(),
        samples: args.samples,
        api_key_share: args.api_key_share,
        label: label.clone(),
    };
    let mut prepared = scenario::prepare(&mut tenants, &opts)
        .await
        .context("preparing the run")?;
    let prefetch_leaks = std::mem::take(&mut prepared.stats);
    let setup_notes = std::mem::take(&mut prepared.notes);
    let budget = Arc::new(Budget::new(args.duration, args.max_requests));
    let started_at = chrono::Utc::now();
    let (bar, ticker) = engine::progress(budget.clone(), &label);
    let interrupt = {
        let budget = budget.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                budget.stop();
            }
        })
    };
    let shared = Arc::new(Shared::new(tenants, prepared, opts.clone(), budget.clone()));
    let outcome = scenario::run(shared.clone()).await;
    let elapsed = budget.started().elapsed();
    budget.stop();
    interrupt.abort();
    let _ = ticker.await;
    bar.finish_and_clear();
    let teardown_notes = scenario::teardown(&shared).await;
    let mut outcome = outcome?;
    outcome.leaks.merge(&prefetch_leaks);
    let mut notes = setup_notes;
    notes.append(&mut outcome.notes);
    notes.extend(teardown_notes);

    let mut report = RunReport {
        label,
        scenario: args.scenario.name().to_owned(),
        base_url: args.base_url.clone(),
        started_at: Some(started_at),
        concurrency: args.concurrency,
        tenants: shared.tenants.iter().map(|t| t.slug.clone()).collect(),
        tenant_ids: shared.tenants.iter().map(|t| t.tenant_id).collect(),
        duration_cap_s: args.duration.as_secs_f64(),
        max_requests: args.max_requests,
        page_size: args.page_size,
        summary: outcome.rec.summary(elapsed),
        leaks: outcome.leaks,
        walks: matches!(args.scenario, Scenario::Walk | Scenario::Mixed).then_some(outcome.walks),
        idempotency: matches!(
            args.scenario,
            Scenario::Write | Scenario::Mixed | Scenario::Sync
        )
        .then_some(outcome.idempotency),
        sync: outcome.sync,
        limits: outcome.limits,
        credentials: outcome.credentials,
        failures: Vec::new(),
        notes,
    };
    report.judge();
    if let Some(path) = &args.json {
        report.write_json(path)?;
    }
    let md = report.markdown();
    match &args.md {
        Some(path) => {
            std::fs::write(path, &md).with_context(|| format!("writing {}", path.display()))?
        }
        None => println!("{md}"),
    }
    let s = &report.summary;
    eprintln!(
        "{}: {} requests, {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, 5xx {}, leaks {} — {}",
        report.label,
        s.requests,
        s.throughput_rps,
        s.all.p50_ms,
        s.all.p99_ms,
        s.status_5xx,
        report.leaks.foreign_rows,
        if report.passed() { "PASS" } else { "FAIL" }
    );
    Ok(if report.passed() { 0 } else { 2 })
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    #[test]
    fn the_cli_is_well_formed_and_parses_a_run() {
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "loadtest",
            "run",
            "mixed",
            "--tenants",
            "a,b",
            "--duration",
            "5s",
            "--max-requests",
            "10",
        ]);
        let Ok(Cli {
            command: Command::Run(args),
        }) = cli
        else {
            panic!("did not parse");
        };
        assert_eq!(args.scenario, Scenario::Mixed);
        assert_eq!(args.tenants, vec!["a", "b"]);
        assert_eq!(args.duration, Duration::from_secs(5));
        assert_eq!(args.max_requests, 10);
    }
}
