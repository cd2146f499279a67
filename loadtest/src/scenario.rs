//! The scenarios. Each runs `concurrency` workers against the tenants of the run until
//! the [`Budget`] ends, checks every returned row with the leak check, and hands back
//! what it recorded.
//!
//! - `get`: GET a person by id (ids listed beforehand), plus cross-tenant probes: another
//!   tenant's id must answer 404.
//! - `list`: the first page of `list_people` (the request the ceilings compare).
//! - `walk`: full cursor walks of a tenant; every walk must be strictly ascending by id
//!   with no row twice.
//! - `sync`: per tenant, one reader polls `sort=updated_at&updated_after=…` while the
//!   other workers create, update and delete; then the reader catches up and the ledger
//!   says what was missed or duplicated.
//! - `write`: POST with an `Idempotency-Key`, retried with the same key on failure,
//!   replayed on purpose (same response expected) and reused with another body (422).
//! - `mixed`: gets, first pages, walk steps, creates, updates and probes in one stream.
//! - `depth`: keyset vs offset page latency at given page numbers of one tenant.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::Utc;
use clap::ValueEnum;
use progenitor_client::Error;
use uuid::Uuid;

use crate::client::types;
use crate::engine::{ApiResult, Budget, Rng, retry_after, status_of, timed};
use crate::leak::{LeakCheck, LeakStats, Origin, marked_email};
use crate::ledger::{IdempotencyOutcome, SyncLedger, SyncOutcome};
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
    /// A mix of all of the above.
    Mixed,
    /// Keyset vs offset latency by page depth (one tenant, sequential).
    Depth,
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
        }
    }

    /// Whether it needs ids listed before it starts.
    fn needs_ids(self) -> bool {
        matches!(self, Self::Get | Self::Sync | Self::Mixed)
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
    /// How many ids per tenant to list before the run (for `get`, `sync`, `mixed`, and
    /// the leak check's id map).
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
    /// Things worth saying in the report.
    pub notes: Vec<String>,
}

impl Outcome {
    fn merge(&mut self, o: &Self) {
        self.rec.merge(&o.rec);
        self.leaks.merge(&o.leaks);
        self.idempotency.merge(&o.idempotency);
        self.walks.merge(&o.walks);
        self.notes.extend(o.notes.iter().cloned());
    }
}

/// Everything the workers share.
pub struct Shared {
    /// The tenants.
    pub tenants: Vec<Tenant>,
    /// Ids listed per tenant before the run.
    pub ids: Vec<Vec<Uuid>>,
    /// The leak check (knows every listed id's tenant).
    pub leak: LeakCheck,
    /// Options.
    pub opts: Options,
    /// The budget.
    pub budget: Arc<Budget>,
}

impl Shared {
    fn check_rows(
        &self,
        leaks: &mut LeakStats,
        tenant: usize,
        rows: &[types::Person],
        op: &str,
        request: &str,
    ) -> u64 {
        let origin = Origin { op, request };
        rows.iter()
            .filter(|p| {
                self.leak
                    .check(leaks, tenant, p.id, p.email.as_deref(), origin)
            })
            .count() as u64
    }
}

/// Lists up to `opts.prefetch` ids of each tenant (leak-checked; not measured).
pub async fn prefetch(
    tenants: &[Tenant],
    opts: &Options,
) -> anyhow::Result<(Vec<Vec<Uuid>>, LeakCheck, LeakStats)> {
    let mut leak = LeakCheck::new(tenants.iter().map(|t| t.slug.clone()).collect());
    let mut all = Vec::with_capacity(tenants.len());
    let mut stats = LeakStats::default();
    // Pass 1 collects ids; pass 2 (below) checks them once every tenant's ids are known.
    let mut pages: Vec<Vec<types::Person>> = Vec::new();
    for (t, tenant) in tenants.iter().enumerate() {
        let mut ids = Vec::new();
        let mut rows_of_tenant = Vec::new();
        let mut cursor: Option<String> = None;
        let max_pages = opts.prefetch.div_ceil(200) + 1;
        for _ in 0..max_pages {
            if ids.len() >= opts.prefetch {
                break;
            }
            let mut req = tenant.client.list_people().limit(200u64);
            if let Some(c) = &cursor {
                req = req.cursor(c.clone());
            }
            let page = req
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("listing people of `{}`: {e}", tenant.slug))?
                .into_inner();
            for p in &page.data {
                ids.push(p.id);
                leak.learn(t, p.id);
            }
            rows_of_tenant.extend(page.data);
            match (page.has_more, page.next_cursor) {
                (true, Some(c)) => cursor = Some(c),
                _ => break,
            }
        }
        ids.truncate(opts.prefetch);
        if ids.is_empty() && opts.scenario.needs_ids() {
            anyhow::bail!("tenant `{}` has no people: seed it first", tenant.slug);
        }
        pages.push(rows_of_tenant);
        all.push(ids);
    }
    for (t, rows) in pages.iter().enumerate() {
        for p in rows {
            leak.check(
                &mut stats,
                t,
                p.id,
                p.email.as_deref(),
                Origin {
                    op: "prefetch",
                    request: "GET /v1/people?limit=200",
                },
            );
        }
    }
    Ok((all, leak, stats))
}

/// Runs the scenario's workers until the budget ends.
pub async fn run(shared: Arc<Shared>) -> anyhow::Result<Outcome> {
    let opts = shared.opts.clone();
    let mut total = Outcome::default();
    // However the workers behave, the run ends: the budget's deadline plus time for
    // in-flight requests (35 s client timeout) and the sync catch-up.
    let cap = shared
        .budget
        .deadline()
        .saturating_duration_since(Instant::now())
        + opts.sync_window
        + Duration::from_secs(75);
    let work = async {
        match opts.scenario {
            Scenario::Sync => sync(shared.clone()).await,
            Scenario::Depth => depth(shared.clone()).await,
            _ => {
                let mut handles = Vec::with_capacity(opts.concurrency);
                for w in 0..opts.concurrency {
                    let shared = shared.clone();
                    handles.push(tokio::spawn(async move { worker(shared, w).await }));
                }
                let mut out = Outcome::default();
                for h in handles {
                    out.merge(&h.await.context("a worker panicked")?);
                }
                Ok(out)
            }
        }
    };
    let out = tokio::time::timeout(cap, work)
        .await
        .context("the run did not end within its time cap")??;
    total.merge(&out);
    total.sync = out.sync;
    Ok(total)
}

fn seed(w: usize) -> u64 {
    let nanos = Utc::now().timestamp_subsec_nanos();
    (w as u64 + 1).wrapping_mul(0x100_0000_01B3) ^ u64::from(nanos)
}

async fn worker(shared: Arc<Shared>, w: usize) -> Outcome {
    let mut out = Outcome::default();
    let mut rng = Rng::new(seed(w));
    let n = shared.tenants.len();
    // Walk state for `mixed` (a walk advanced one page at a time) and `walk`.
    let mut walk_cursor: Option<(usize, String)> = None;
    let mut i = w;
    while !shared.budget.over() {
        i += 1;
        let t = i % n;
        match shared.opts.scenario {
            Scenario::Get => {
                if shared.opts.probes && n > 1 && rng.chance(5) {
                    probe(&shared, &mut out, &mut rng, t).await;
                } else {
                    get(&shared, &mut out, &mut rng, t).await;
                }
            }
            Scenario::List => {
                first_page(&shared, &mut out, t).await;
            }
            Scenario::Walk => walk(&shared, &mut out, t).await,
            Scenario::Write => {
                create(&shared, &mut out, &mut rng, t, w).await;
            }
            Scenario::Mixed => match rng.below(100) {
                0..50 => get(&shared, &mut out, &mut rng, t).await,
                50..70 => first_page(&shared, &mut out, t).await,
                70..80 => walk_step(&shared, &mut out, &mut walk_cursor, t).await,
                80..90 => {
                    create(&shared, &mut out, &mut rng, t, w).await;
                }
                90..95 => {
                    update(&shared, &mut out, &mut rng, t, None).await;
                }
                _ if shared.opts.probes && n > 1 => probe(&shared, &mut out, &mut rng, t).await,
                _ => get(&shared, &mut out, &mut rng, t).await,
            },
            Scenario::Sync | Scenario::Depth => break,
        }
    }
    out
}

async fn get(shared: &Shared, out: &mut Outcome, rng: &mut Rng, t: usize) {
    let ids = &shared.ids[t];
    if ids.is_empty() || !shared.budget.take() {
        return;
    }
    let id = ids[rng.below(ids.len())];
    let tenant = &shared.tenants[t];
    let result = timed(
        &mut out.rec,
        "get_person",
        tenant.client.get_person().id(id).send(),
    )
    .await;
    if let Ok(rv) = result {
        let person = rv.into_inner();
        if person.id != id {
            out.rec.error("wrong_row");
        }
        let request = format!("GET /v1/people/{id}");
        shared.check_rows(&mut out.leaks, t, &[person], "get_person", &request);
    }
}

/// GETs another tenant's id with tenant `t`'s token: must be 404.
async fn probe(shared: &Shared, out: &mut Outcome, rng: &mut Rng, t: usize) {
    let n = shared.tenants.len();
    let other = (t + 1 + rng.below(n - 1)) % n;
    let ids = &shared.ids[other];
    if ids.is_empty() || !shared.budget.take() {
        return;
    }
    let id = ids[rng.below(ids.len())];
    let result = timed(
        &mut out.rec,
        "get_foreign_person",
        shared.tenants[t].client.get_person().id(id).send(),
    )
    .await;
    match result {
        Ok(rv) => {
            // The id is known to be `other`'s: the check records it as a leak.
            let request = format!("GET /v1/people/{id}");
            let person = rv.into_inner();
            if shared.check_rows(&mut out.leaks, t, &[person], "get_foreign_person", &request) == 0
            {
                out.rec.error("foreign_get_not_404");
            }
        }
        Err(Error::ErrorResponse(rv)) if rv.status().as_u16() == 404 => {}
        Err(_) => out.rec.error("foreign_get_not_404"),
    }
}

async fn first_page(shared: &Shared, out: &mut Outcome, t: usize) {
    if !shared.budget.take() {
        return;
    }
    let tenant = &shared.tenants[t];
    let limit = shared.opts.page_size;
    let result = timed(
        &mut out.rec,
        "list_people",
        tenant.client.list_people().limit(limit).send(),
    )
    .await;
    if let Ok(rv) = result {
        let page = rv.into_inner();
        let request = format!("GET /v1/people?limit={limit}");
        shared.check_rows(&mut out.leaks, t, &page.data, "list_people", &request);
    }
}

/// One page of a walk kept across calls (`mixed`).
async fn walk_step(
    shared: &Shared,
    out: &mut Outcome,
    state: &mut Option<(usize, String)>,
    t: usize,
) {
    if !shared.budget.take() {
        return;
    }
    let (t, cursor) = match state.take() {
        Some((t, c)) => (t, Some(c)),
        None => (t, None),
    };
    let tenant = &shared.tenants[t];
    let limit = shared.opts.page_size;
    let mut req = tenant.client.list_people().limit(limit);
    let mut request = format!("GET /v1/people?limit={limit}");
    if let Some(c) = &cursor {
        req = req.cursor(c.clone());
        request.push_str(&format!("&cursor={c}"));
    }
    if let Ok(rv) = timed(&mut out.rec, "list_people_next", req.send()).await {
        let page = rv.into_inner();
        shared.check_rows(&mut out.leaks, t, &page.data, "list_people_next", &request);
        out.walks.rows += page.data.len() as u64;
        match (page.has_more, page.next_cursor) {
            (true, Some(c)) => *state = Some((t, c)),
            _ => out.walks.completed += 1,
        }
    }
}

/// A full walk of tenant `t`.
async fn walk(shared: &Shared, out: &mut Outcome, t: usize) {
    let tenant = &shared.tenants[t];
    let limit = shared.opts.page_size;
    let mut cursor: Option<String> = None;
    let mut last: Option<Uuid> = None;
    let mut seen = HashSet::new();
    // A bound on the pages of one walk, whatever the server answers.
    for _ in 0..1_000_000 {
        if !shared.budget.take() {
            return;
        }
        let mut req = tenant.client.list_people().limit(limit);
        let mut request = format!("GET /v1/people?limit={limit}");
        if let Some(c) = &cursor {
            req = req.cursor(c.clone());
            request.push_str(&format!("&cursor={c}"));
        }
        let Ok(rv) = timed(&mut out.rec, "walk_page", req.send()).await else {
            out.walks.aborted += 1;
            return;
        };
        let page = rv.into_inner();
        shared.check_rows(&mut out.leaks, t, &page.data, "walk_page", &request);
        for p in &page.data {
            out.walks.rows += 1;
            if !seen.insert(p.id) {
                out.walks.duplicates += 1;
            }
            if last.is_some_and(|l| p.id <= l) {
                out.walks.out_of_order += 1;
            }
            last = Some(p.id);
        }
        match (page.has_more, page.next_cursor) {
            (true, Some(c)) => cursor = Some(c),
            (true, None) => {
                out.rec.error("has_more_without_cursor");
                out.walks.aborted += 1;
                return;
            }
            (false, _) => {
                out.walks.completed += 1;
                return;
            }
        }
    }
}

fn retryable(status: Option<u16>) -> bool {
    matches!(status, None | Some(409 | 429 | 500 | 502 | 503 | 504))
}

fn new_person(tenant: &Tenant, w: usize, first: &str) -> Option<types::PersonCreate> {
    let local = format!("lt-{}", Uuid::new_v4().simple());
    Some(types::PersonCreate {
        account_id: None,
        email: Some(marked_email(&local, &tenant.slug)),
        first_name: first.parse().ok()?,
        last_name: format!("Loadtest{w}").parse().ok()?,
        phone: None,
        stage: None,
        title: None,
    })
}

/// An idempotent create with retries, sometimes a deliberate replay (same key, same
/// body: same response) and a conflicting reuse (same key, other body: 422). Returns the
/// created person.
async fn create(
    shared: &Shared,
    out: &mut Outcome,
    rng: &mut Rng,
    t: usize,
    w: usize,
) -> Option<types::Person> {
    let tenant = &shared.tenants[t];
    let body = new_person(tenant, w, "Load")?;
    let key = Uuid::new_v4().to_string();
    let mut created: Option<types::Person> = None;
    for attempt in 0..4 {
        if !shared.budget.take() {
            return None;
        }
        let op = if attempt == 0 {
            "create_person"
        } else {
            "create_person_retry"
        };
        if attempt > 0 {
            out.idempotency.retries += 1;
        }
        let result = timed(
            &mut out.rec,
            op,
            tenant
                .client
                .create_person()
                .idempotency_key(key.clone())
                .body(body.clone())
                .send(),
        )
        .await;
        let status = status_of(&result);
        let wait = retry_after(&result, Duration::from_secs(1));
        match result {
            Ok(rv) => {
                created = Some(rv.into_inner());
                break;
            }
            Err(_) if retryable(status) && attempt < 3 => {
                if Instant::now() + wait >= shared.budget.deadline() {
                    return None;
                }
                tokio::time::sleep(wait).await;
            }
            Err(_) => return None,
        }
    }
    let person = created?;
    out.idempotency.created += 1;
    let request = "POST /v1/people";
    shared.check_rows(
        &mut out.leaks,
        t,
        std::slice::from_ref(&person),
        "create_person",
        request,
    );

    if rng.chance(20) && shared.budget.take() {
        let replay = timed(
            &mut out.rec,
            "create_person_replay",
            tenant
                .client
                .create_person()
                .idempotency_key(key.clone())
                .body(body.clone())
                .send(),
        )
        .await;
        match replay {
            Ok(rv) => {
                let replayed = rv
                    .headers()
                    .get("idempotent-replayed")
                    .is_some_and(|v| v.as_bytes() == b"true");
                if replayed && rv.into_inner().id == person.id {
                    out.idempotency.replays_ok += 1;
                } else {
                    out.idempotency.replays_wrong += 1;
                }
            }
            Err(_) => out.idempotency.replays_wrong += 1,
        }
    }
    if rng.chance(5) && shared.budget.take() {
        let other = new_person(tenant, w, "Different")?;
        let conflict = timed(
            &mut out.rec,
            "create_person_conflict",
            tenant
                .client
                .create_person()
                .idempotency_key(key)
                .body(other)
                .send(),
        )
        .await;
        if status_of(&conflict) == Some(422) {
            out.idempotency.conflicts_ok += 1;
        } else {
            out.idempotency.conflicts_wrong += 1;
        }
    }
    Some(person)
}

/// Changes the title of a listed person of tenant `t` (or `id`); returns the new row.
async fn update(
    shared: &Shared,
    out: &mut Outcome,
    rng: &mut Rng,
    t: usize,
    id: Option<Uuid>,
) -> Option<types::Person> {
    let ids = &shared.ids[t];
    let id = id.or_else(|| (!ids.is_empty()).then(|| ids[rng.below(ids.len())]))?;
    if !shared.budget.take() {
        return None;
    }
    let body = types::PersonUpdate {
        title: Some(format!("T{}", rng.below(1_000_000))),
        ..Default::default()
    };
    let tenant = &shared.tenants[t];
    let result: ApiResult<types::Person> = timed(
        &mut out.rec,
        "update_person",
        tenant.client.update_person().id(id).body(body).send(),
    )
    .await;
    let person = result.ok()?.into_inner();
    let request = format!("PATCH /v1/people/{id}");
    shared.check_rows(
        &mut out.leaks,
        t,
        std::slice::from_ref(&person),
        "update_person",
        &request,
    );
    Some(person)
}

/// The sync scenario: one reader per tenant, the other workers write.
async fn sync(shared: Arc<Shared>) -> anyhow::Result<Outcome> {
    let n = shared.tenants.len();
    let writers = shared.opts.concurrency.saturating_sub(n).max(n);
    let ledgers: Vec<Arc<Mutex<SyncLedger>>> = (0..n).map(|_| Arc::default()).collect();
    let left = Arc::new(AtomicUsize::new(writers));
    let done_at: Arc<Mutex<Option<Instant>>> = Arc::default();
    // Changes strictly after this instant are what the readers must see.
    let since = Utc::now() - chrono::TimeDelta::seconds(1);

    let mut readers = Vec::with_capacity(n);
    for (t, ledger) in ledgers.iter().enumerate() {
        let (shared, ledger, left, done_at) = (
            shared.clone(),
            ledger.clone(),
            left.clone(),
            done_at.clone(),
        );
        readers.push(tokio::spawn(async move {
            reader(&shared, t, &ledger, since, &left, &done_at).await
        }));
    }
    let mut handles = Vec::with_capacity(writers);
    for w in 0..writers {
        let (shared, ledger, left, done_at) = (
            shared.clone(),
            ledgers[w % n].clone(),
            left.clone(),
            done_at.clone(),
        );
        handles.push(tokio::spawn(async move {
            let out = writer(&shared, w, w % n, &ledger).await;
            if left.fetch_sub(1, Ordering::SeqCst) == 1
                && let Ok(mut at) = done_at.lock()
            {
                *at = Some(Instant::now());
            }
            out
        }));
    }
    let mut total = Outcome::default();
    for h in handles {
        total.merge(&h.await.context("a writer panicked")?);
    }
    let mut caught_up = true;
    for h in readers {
        let (out, ok) = h.await.context("a reader panicked")?;
        caught_up &= ok;
        total.merge(&out);
    }
    let mut verdict = SyncOutcome {
        caught_up,
        ..SyncOutcome::default()
    };
    for ledger in &ledgers {
        let ledger = ledger
            .lock()
            .map_err(|_| anyhow::anyhow!("a sync ledger was poisoned"))?;
        let o = ledger.outcome(caught_up);
        verdict.acknowledged_rows += o.acknowledged_rows;
        verdict.received_rows += o.received_rows;
        verdict.missed += o.missed;
        verdict.duplicated += o.duplicated;
        verdict.missed_examples.extend(o.missed_examples);
        verdict.duplicate_examples.extend(o.duplicate_examples);
    }
    total.sync = Some(verdict);
    Ok(total)
}

fn ack(ledger: &Mutex<SyncLedger>, id: Uuid, version: i64, deleted: bool) {
    if let Ok(mut l) = ledger.lock() {
        l.ack(id, version, deleted);
    }
}

async fn writer(shared: &Shared, w: usize, t: usize, ledger: &Mutex<SyncLedger>) -> Outcome {
    let mut out = Outcome::default();
    let mut rng = Rng::new(seed(w) ^ 0xABCD);
    // Rows this writer created and has not deleted, with their last version.
    let mut own: Vec<(Uuid, i64)> = Vec::new();
    while !shared.budget.over() {
        match rng.below(100) {
            0..60 => {
                if let Some(p) = update(shared, &mut out, &mut rng, t, None).await {
                    ack(ledger, p.id, p.version, false);
                }
            }
            60..85 => {
                if let Some(p) = create(shared, &mut out, &mut rng, t, w).await {
                    ack(ledger, p.id, p.version, false);
                    own.push((p.id, p.version));
                }
            }
            _ => {
                if own.is_empty() || !shared.budget.take() {
                    continue;
                }
                let (id, version) = own.swap_remove(rng.below(own.len()));
                let result = timed(
                    &mut out.rec,
                    "delete_person",
                    shared.tenants[t].client.delete_person().id(id).send(),
                )
                .await;
                if result.is_ok() {
                    ack(ledger, id, version, true);
                }
            }
        }
    }
    out
}

/// Polls tenant `t`'s changes since `since` until the writers are done and a poll issued
/// after the safety window found nothing more. Returns whether it caught up in time.
async fn reader(
    shared: &Shared,
    t: usize,
    ledger: &Mutex<SyncLedger>,
    since: chrono::DateTime<Utc>,
    writers_left: &AtomicUsize,
    done_at: &Mutex<Option<Instant>>,
) -> (Outcome, bool) {
    let mut out = Outcome::default();
    let tenant = &shared.tenants[t];
    let limit = 200u64;
    let hard_cap = shared.budget.deadline() + shared.opts.sync_window + Duration::from_secs(30);
    let mut cursor: Option<String> = None;
    for _ in 0..500_000 {
        if Instant::now() >= hard_cap {
            return (out, false);
        }
        let issued = Instant::now();
        let mut req = tenant.client.list_people().limit(limit);
        let request;
        if let Some(c) = &cursor {
            req = req.cursor(c.clone());
            request = format!("GET /v1/people?limit={limit}&cursor={c}");
        } else {
            req = req.sort(types::Sort::UpdatedAt).updated_after(since);
            request = format!(
                "GET /v1/people?limit={limit}&sort=updated_at&updated_after={}",
                since.to_rfc3339()
            );
        }
        let Ok(rv) = timed(&mut out.rec, "sync_poll", req.send()).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let page = rv.into_inner();
        shared.check_rows(&mut out.leaks, t, &page.data, "sync_poll", &request);
        if let Ok(mut l) = ledger.lock() {
            for p in &page.data {
                l.see(p.id, p.version, p.deleted_at.is_some());
            }
        }
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => out.rec.error("sync_page_without_cursor"),
        }
        if !page.has_more {
            let settled = writers_left.load(Ordering::SeqCst) == 0
                && done_at.lock().ok().and_then(|at| *at).is_some_and(|at| {
                    issued >= at + shared.opts.sync_window + Duration::from_millis(500)
                });
            if settled {
                return (out, true);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    (out, false)
}

/// Keyset vs offset by depth, through the API, on the first tenant.
async fn depth(shared: Arc<Shared>) -> anyhow::Result<Outcome> {
    let mut out = Outcome::default();
    let tenant = &shared.tenants[0];
    let size = shared.opts.page_size;
    let mut pages = shared.opts.depth_pages.clone();
    pages.sort_unstable();
    pages.dedup();
    // Walk once, remembering the cursor that starts each target page.
    let mut starts: Vec<(u64, Option<String>)> = Vec::new();
    let mut position = 0u64;
    let mut cursor: Option<String> = None;
    let walk_started = Instant::now();
    for &page in &pages {
        let offset = (page.max(1) - 1) * size;
        while position < offset {
            if !shared.budget.take() {
                anyhow::bail!(
                    "depth: the budget ended while walking to page {page} (row {position} of {offset})"
                );
            }
            let step = (offset - position).min(200);
            let mut req = tenant.client.list_people().limit(step);
            if let Some(c) = &cursor {
                req = req.cursor(c.clone());
            }
            let rv = timed(&mut out.rec, "depth_walk", req.send())
                .await
                .map_err(|e| anyhow::anyhow!("depth walk: {e}"))?;
            let list = rv.into_inner();
            shared.check_rows(
                &mut out.leaks,
                0,
                &list.data,
                "depth_walk",
                "GET /v1/people?cursor=…",
            );
            position += list.data.len() as u64;
            match (list.has_more, list.next_cursor) {
                (true, Some(c)) => cursor = Some(c),
                _ => anyhow::bail!(
                    "depth: tenant `{}` has only {position} people, page {page} needs {offset}",
                    tenant.slug
                ),
            }
        }
        starts.push((page, cursor.clone()));
    }
    out.notes.push(format!(
        "API depth: walked {position} rows to reach the deepest page in {:.1}s",
        walk_started.elapsed().as_secs_f64()
    ));
    // Offset pages the API refuses (beyond its maximum offset) are probed once, not sampled.
    let mut offset_ok = Vec::new();
    for &(page, _) in &starts {
        if !shared.budget.take() {
            break;
        }
        let probe = tenant
            .client
            .list_people()
            .limit(size)
            .page(page)
            .send()
            .await;
        match status_of(&probe) {
            Some(200) => offset_ok.push(page),
            status => out.notes.push(format!(
                "API offset page {page} (row offset {}) answered {} — the API caps offset pagination; cursors have no cap",
                (page - 1) * size,
                status.map_or_else(|| "no response".to_owned(), |s| s.to_string())
            )),
        }
    }
    for _ in 0..shared.opts.samples {
        for (page, start) in &starts {
            if !shared.budget.take() {
                return Ok(out);
            }
            let mut req = tenant.client.list_people().limit(size);
            if let Some(c) = start {
                req = req.cursor(c.clone());
            }
            let op = format!("keyset_page_{page}");
            if let Ok(rv) = timed(&mut out.rec, &op, req.send()).await {
                shared.check_rows(
                    &mut out.leaks,
                    0,
                    &rv.into_inner().data,
                    &op,
                    "GET /v1/people?cursor=…",
                );
            }
            if offset_ok.contains(page) && shared.budget.take() {
                let op = format!("offset_page_{page}");
                let req = tenant.client.list_people().limit(size).page(*page);
                if let Ok(rv) = timed(&mut out.rec, &op, req.send()).await {
                    let request = format!("GET /v1/people?limit={size}&page={page}");
                    shared.check_rows(&mut out.leaks, 0, &rv.into_inner().data, &op, &request);
                }
            }
        }
    }
    Ok(out)
}
