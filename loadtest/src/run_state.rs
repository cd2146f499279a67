//! What the workers of a run share and what they hand back, below the scenarios that use
//! it (`scenario`, `crm`, `limits`): the scenario chosen and its [`Options`], what was
//! [`Prepared`] before the run, the [`Shared`] state (tenants, ids, the leak check, the
//! budget) with its call and check helpers, [`Who`] a call acts for, the [`Outcome`] the
//! workers record (with its walk and per-credential counters), and the workers' PRNG
//! [`seed`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use clap::ValueEnum;
use progenitor_client::Error;
use uuid::Uuid;

use crate::client;
use crate::engine::{ApiResult, Budget};
use crate::leak::{LeakCheck, LeakStats, Marked, Origin};
use crate::ledger::{IdempotencyOutcome, SyncOutcome};
use crate::limits_verdict::LimitsOutcome;
use crate::stats::Recorder;
use crate::target::Tenant;

/// Which scenario to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    /// GET by id, with cross-tenant probes.
    Get,
    /// The first page of the people list.
    List,
    /// Full cursor walks.
    Walk,
    /// Sync polling while writers change rows.
    Sync,
    /// Idempotent creates with retries and replays.
    Write,
    /// People, accounts, activities, the feed, probes; JWT and API-key workers.
    Mixed,
    /// Keyset vs offset latency by page depth (one tenant, sequential).
    Depth,
    /// Rate limits under load: 429s, admitted units vs quota, credential isolation.
    Limits,
}

impl Scenario {
    /// The scenario's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Get => "get",
            Self::List => "list",
            Self::Walk => "walk",
            Self::Sync => "sync",
            Self::Write => "write",
            Self::Mixed => "mixed",
            Self::Depth => "depth",
            Self::Limits => "limits",
        }
    }

    /// Whether it needs people ids listed before it starts.
    pub fn needs_ids(self) -> bool {
        matches!(self, Self::Get | Self::Sync | Self::Mixed | Self::Limits)
    }

    /// Whether it reads and writes accounts and activities.
    pub fn needs_crm(self) -> bool {
        matches!(self, Self::Mixed)
    }
}

/// How a scenario runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// The scenario.
    pub scenario: Scenario,
    /// Concurrent workers.
    pub concurrency: usize,
    /// Page size of lists and walks.
    pub page_size: u64,
    /// How many ids per tenant (people, accounts, activities) to list before the run (for
    /// `get`, `sync`, `mixed`, `limits`, and the leak check's id map).
    pub prefetch: usize,
    /// The server's sync safety window (`TENANTRY_SYNC_SAFETY_WINDOW_MS`): how long the
    /// sync reader keeps polling after the last write.
    pub sync_window: Duration,
    /// Cross-tenant probes in `get` and `mixed`.
    pub probes: bool,
    /// Page numbers for `depth`.
    pub depth_pages: Vec<u64>,
    /// Samples per page and method for `depth`.
    pub samples: usize,
    /// Percent of `mixed` workers that authenticate with an API key instead of the JWT.
    pub api_key_share: u64,
    /// A name for the run (names the API keys it creates).
    pub label: String,
}

/// The walk checks' counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WalkOutcome {
    /// Walks that reached the last page.
    pub completed: u64,
    /// Rows received by walks.
    pub rows: u64,
    /// Rows a walk returned twice. Must be 0.
    pub duplicates: u64,
    /// Rows out of id order. Must be 0.
    pub out_of_order: u64,
    /// Walks abandoned on an error.
    pub aborted: u64,
}

impl WalkOutcome {
    fn merge(&mut self, o: &Self) {
        self.completed += o.completed;
        self.rows += o.rows;
        self.duplicates += o.duplicates;
        self.out_of_order += o.out_of_order;
        self.aborted += o.aborted;
    }
}

/// What the workers of one kind of credential (`jwt`, `api_key`) did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CredentialCount {
    /// Workers.
    pub workers: u64,
    /// Requests sent.
    pub requests: u64,
    /// 2xx responses.
    pub ok: u64,
    /// Rows leak-checked.
    pub rows_checked: u64,
    /// Foreign rows among them. Must be 0.
    pub foreign_rows: u64,
}

impl CredentialCount {
    fn merge(&mut self, o: &Self) {
        self.workers += o.workers;
        self.requests += o.requests;
        self.ok += o.ok;
        self.rows_checked += o.rows_checked;
        self.foreign_rows += o.foreign_rows;
    }
}

/// What the workers of a run recorded together.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Latencies, statuses, errors.
    pub rec: Recorder,
    /// Leak check counters.
    pub leaks: LeakStats,
    /// `write` / `mixed` idempotency checks.
    pub idempotency: IdempotencyOutcome,
    /// `walk` checks.
    pub walks: WalkOutcome,
    /// `sync` verdict.
    pub sync: Option<SyncOutcome>,
    /// `limits` verdict.
    pub limits: Option<LimitsOutcome>,
    /// Requests and checked rows by kind of credential.
    pub credentials: BTreeMap<String, CredentialCount>,
    /// Things worth saying in the report.
    pub notes: Vec<String>,
}

impl Outcome {
    /// Adds `o` into `self` (all but the `sync` and `limits` verdicts).
    pub fn merge(&mut self, o: &Self) {
        self.rec.merge(&o.rec);
        self.leaks.merge(&o.leaks);
        self.idempotency.merge(&o.idempotency);
        self.walks.merge(&o.walks);
        for (k, c) in &o.credentials {
            self.credentials.entry(k.clone()).or_default().merge(c);
        }
        self.notes.extend(o.notes.iter().cloned());
    }
}

/// Which tenant a call acts for, and with which of its credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Who {
    /// The tenant's index in the run.
    pub t: usize,
    /// Whether to authenticate with the tenant's API key instead of its JWT.
    pub key: bool,
}

impl Who {
    /// Tenant `t` with its JWT.
    pub fn jwt(t: usize) -> Self {
        Self { t, key: false }
    }
}

/// What was listed and created before the run.
#[derive(Debug, Default)]
pub struct Prepared {
    /// People ids per tenant.
    pub ids: Vec<Vec<Uuid>>,
    /// Account ids per tenant (listed, and the marked ones created for the run).
    pub accounts: Vec<Vec<Uuid>>,
    /// The marked accounts created for the run, per tenant: new people link to them, so
    /// joined reads return marked account names.
    pub marked_accounts: Vec<Vec<Uuid>>,
    /// Activity ids per tenant (listed, and created for the run).
    pub activities: Vec<Vec<Uuid>>,
    /// The leak check, knowing every listed and created id's tenant.
    pub leak: LeakCheck,
    /// The leak check's counts over what was listed and created.
    pub stats: LeakStats,
    /// Remarks for the report.
    pub notes: Vec<String>,
}

/// Everything the workers share.
pub struct Shared {
    /// The tenants.
    pub tenants: Vec<Tenant>,
    /// People ids listed per tenant before the run.
    pub ids: Vec<Vec<Uuid>>,
    /// Account ids per tenant.
    pub accounts: Vec<Vec<Uuid>>,
    /// Marked account ids per tenant (created for the run).
    pub marked_accounts: Vec<Vec<Uuid>>,
    /// Activity ids per tenant.
    pub activities: Vec<Vec<Uuid>>,
    /// The leak check (knows every listed id's tenant, learns created ones).
    pub leak: LeakCheck,
    /// Options.
    pub opts: Options,
    /// The budget.
    pub budget: Arc<Budget>,
}

impl Shared {
    /// Builds the shared state from the tenants and what was prepared.
    pub fn new(tenants: Vec<Tenant>, p: Prepared, opts: Options, budget: Arc<Budget>) -> Self {
        Self {
            tenants,
            ids: p.ids,
            accounts: p.accounts,
            marked_accounts: p.marked_accounts,
            activities: p.activities,
            leak: p.leak,
            opts,
            budget,
        }
    }

    /// The client `who` calls with.
    pub fn client(&self, who: Who) -> &client::Client {
        self.tenants[who.t].client(who.key)
    }

    /// Leak-checks `value` (and what it embeds) as returned to tenant `t`; returns the
    /// number of foreign rows.
    pub fn check(
        &self,
        leaks: &mut LeakStats,
        t: usize,
        value: &dyn Marked,
        op: &str,
        request: &str,
    ) -> u64 {
        self.leak
            .check_value(leaks, t, value, Origin { op, request })
    }

    /// Leak-checks every item of `rows`; returns the number of foreign rows.
    pub fn check_all<R: Marked>(
        &self,
        leaks: &mut LeakStats,
        t: usize,
        rows: &[R],
        op: &str,
        request: &str,
    ) -> u64 {
        rows.iter()
            .map(|r| self.check(leaks, t, r, op, request))
            .sum()
    }

    /// The answer to a GET of another tenant's id: 404, or a leak (checked and recorded).
    pub fn expect_404<T: Marked>(
        &self,
        out: &mut Outcome,
        t: usize,
        result: ApiResult<T>,
        op: &str,
        request: &str,
    ) {
        match result {
            Ok(rv) => {
                // The id is known to be another tenant's: the check records it as a leak.
                if self.check(&mut out.leaks, t, &rv.into_inner(), op, request) == 0 {
                    out.rec.error("foreign_get_not_404");
                }
            }
            Err(Error::ErrorResponse(rv)) if rv.status().as_u16() == 404 => {}
            Err(_) => out.rec.error("foreign_get_not_404"),
        }
    }

    /// Whether worker `w` authenticates with an API key: the first
    /// `api_key_share`% of the workers (rounded down), when the tenants have keys.
    pub fn key_worker(&self, w: usize) -> bool {
        uses_key(w, self.opts.concurrency, self.opts.api_key_share)
            && self.tenants.iter().all(|t| t.api_key.is_some())
    }
}

/// Whether worker `w` of `concurrency` is among the first `share`% (rounded down).
pub fn uses_key(w: usize, concurrency: usize, share: u64) -> bool {
    (w as u64 + 1) * 100 <= share * concurrency as u64
}

/// A seed for worker `w`'s PRNG.
pub fn seed(w: usize) -> u64 {
    let nanos = Utc::now().timestamp_subsec_nanos();
    (w as u64 + 1).wrapping_mul(0x100_0000_01B3) ^ u64::from(nanos)
}
