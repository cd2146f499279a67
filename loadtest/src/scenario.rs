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
//! - `mixed`: people (gets, first pages, joined reads with the account name, walk steps,
//!   creates, updates), accounts and activities (gets, first pages, creates, the activity
//!   feed) and cross-tenant probes of all three, in one stream; a share of the workers
//!   (`--api-key-share`) authenticate with an API key created through the API for the
//!   run (and revoked after it) instead of the JWT.
//! - `depth`: keyset vs offset page latency at given page numbers of one tenant.
//! - `limits`: rate limits under load (see `limits`).

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::Utc;
use uuid::Uuid;

use crate::client::types;
use crate::crm;
use crate::engine::{ApiResult, Rng, describe, retry_after, retrying, status_of, timed};
use crate::leak::{LeakCheck, Origin, marked_email};
use crate::ledger::{SyncLedger, SyncOutcome};
use crate::run_state::{
    CredentialCount, Options, Outcome, Prepared, Scenario, Shared, Who, seed, uses_key,
};
use crate::target::{self, Tenant};

/// Lists pages of `$what` of one tenant (200 a page) until `$max` rows; a 429 or 503 is
/// waited out (its `Retry-After`, at most 10 s, five times). `$make` builds the request
/// from `$limit` and `$cursor`.
macro_rules! list_rows {
    ($max:expr, $what:expr, $slug:expr, |$limit:ident, $cursor:ident| $make:expr) => {{
        let max: usize = $max;
        let mut rows = Vec::new();
        let mut next: Option<String> = None;
        for _ in 0..(max.div_ceil(200) + 1) {
            if rows.len() >= max {
                break;
            }
            let mut attempt = 0;
            let page = loop {
                let $limit = 200u64;
                let $cursor = next.clone();
                let result = $make.send().await;
                if matches!(status_of(&result), Some(429 | 503)) && attempt < 5 {
                    attempt += 1;
                    tokio::time::sleep(retry_after(&result, Duration::from_secs(10))).await;
                    continue;
                }
                match result {
                    Ok(rv) => break rv.into_inner(),
                    Err(e) => anyhow::bail!("listing {} of `{}`: {}", $what, $slug, describe(&e)),
                }
            };
            rows.extend(page.data);
            match (page.has_more, page.next_cursor) {
                (true, Some(c)) => next = Some(c),
                _ => break,
            }
        }
        rows.truncate(max);
        rows
    }};
}

/// How many marked accounts and activities `mixed` creates per tenant before the run.
const SETUP_ACCOUNTS: usize = 3;
const SETUP_ACTIVITIES: usize = 10;

/// Lists up to `opts.prefetch` ids of each tenant (people; for `mixed` also accounts and
/// activities), creates what `mixed` needs (a few marked accounts and activities, and an
/// API key per tenant when `--api-key-share` > 0). Leak-checked, not measured.
pub async fn prepare(tenants: &mut [Tenant], opts: &Options) -> anyhow::Result<Prepared> {
    let mut p = Prepared {
        leak: LeakCheck::new(tenants.iter().map(|t| t.slug.clone()).collect()),
        ..Prepared::default()
    };
    let crm = opts.scenario.needs_crm();
    // Pass 1 collects ids; pass 2 (below) checks the rows once every tenant's ids are known.
    let mut people_rows: Vec<Vec<types::Person>> = Vec::new();
    let mut account_rows: Vec<Vec<types::Account>> = Vec::new();
    let mut activity_rows: Vec<Vec<types::Activity>> = Vec::new();
    for (t, tenant) in tenants.iter().enumerate() {
        let people = list_rows!(opts.prefetch, "people", tenant.slug, |limit, cursor| {
            let mut r = tenant.client.list_people().limit(limit);
            if let Some(c) = cursor {
                r = r.cursor(c);
            }
            r
        });
        if people.is_empty() && opts.scenario.needs_ids() {
            anyhow::bail!("tenant `{}` has no people: seed it first", tenant.slug);
        }
        let (accounts, activities) = if crm {
            let accounts = list_rows!(opts.prefetch, "accounts", tenant.slug, |limit, cursor| {
                let mut r = tenant.client.list_accounts().limit(limit);
                if let Some(c) = cursor {
                    r = r.cursor(c);
                }
                r
            });
            let activities =
                list_rows!(opts.prefetch, "activities", tenant.slug, |limit, cursor| {
                    let mut r = tenant.client.list_activities().limit(limit);
                    if let Some(c) = cursor {
                        r = r.cursor(c);
                    }
                    r
                });
            (accounts, activities)
        } else {
            (Vec::new(), Vec::new())
        };
        for r in &people {
            p.leak.learn(t, r.id);
        }
        for r in &accounts {
            p.leak.learn(t, r.id);
        }
        for r in &activities {
            p.leak.learn(t, r.id);
        }
        p.ids.push(people.iter().map(|r| r.id).collect());
        p.accounts.push(accounts.iter().map(|r| r.id).collect());
        p.activities.push(activities.iter().map(|r| r.id).collect());
        p.marked_accounts.push(Vec::new());
        people_rows.push(people);
        account_rows.push(accounts);
        activity_rows.push(activities);
    }
    let prefetch_origin = |op| Origin {
        op,
        request: "GET /v1/…?limit=200 (prefetch)",
    };
    for t in 0..tenants.len() {
        for r in &people_rows[t] {
            p.leak
                .check_value(&mut p.stats, t, r, prefetch_origin("prefetch_people"));
        }
        for r in &account_rows[t] {
            p.leak
                .check_value(&mut p.stats, t, r, prefetch_origin("prefetch_accounts"));
        }
        for r in &activity_rows[t] {
            p.leak
                .check_value(&mut p.stats, t, r, prefetch_origin("prefetch_activities"));
        }
    }
    if crm {
        setup_crm(tenants, &mut p).await?;
    }
    if opts.scenario == Scenario::Mixed
        && opts.api_key_share > 0
        && (0..opts.concurrency).any(|w| uses_key(w, opts.concurrency, opts.api_key_share))
    {
        for tenant in tenants.iter_mut() {
            let name = format!("loadtest {}", opts.label);
            let key = target::create_api_key(tenant, &name, crm::MIXED_KEY_SCOPES).await?;
            p.notes.push(format!(
                "`{}`: API key {} ({}) created through POST /v1/api_keys for the run, revoked after it",
                tenant.slug, key.prefix, key.id
            ));
            tenant.api_key = Some(key);
        }
    }
    Ok(p)
}

/// Creates a few marked accounts and activities per tenant (so that reads return rows
/// the marker check can judge, and the feed has entries); learns their ids.
async fn setup_crm(tenants: &[Tenant], p: &mut Prepared) -> anyhow::Result<()> {
    for (t, tenant) in tenants.iter().enumerate() {
        let origin = Origin {
            op: "setup",
            request: "POST /v1/accounts | /v1/activities (setup)",
        };
        for _ in 0..SETUP_ACCOUNTS {
            let body = crm::new_account(&tenant.slug, "setup")
                .context("building a marked account name")?;
            let account = retrying(5, || {
                tenant.client.create_account().body(body.clone()).send()
            })
            .await
            .map_err(|e| {
                anyhow::anyhow!("creating an account of `{}`: {}", tenant.slug, describe(&e))
            })?
            .into_inner();
            p.leak.check_value(&mut p.stats, t, &account, origin);
            p.leak.learn(t, account.id);
            p.accounts[t].push(account.id);
            p.marked_accounts[t].push(account.id);
        }
        let people = &p.ids[t];
        for n in 0..SETUP_ACTIVITIES.min(people.len()) {
            let person = people[(n * 7919) % people.len()];
            let body = crm::new_activity(&tenant.slug, person, n)
                .context("building a marked activity subject")?;
            let activity = retrying(5, || {
                tenant.client.create_activity().body(body.clone()).send()
            })
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "creating an activity of `{}`: {}",
                    tenant.slug,
                    describe(&e)
                )
            })?
            .into_inner();
            p.leak.check_value(&mut p.stats, t, &activity, origin);
            p.leak.learn(t, activity.id);
            p.activities[t].push(activity.id);
        }
    }
    Ok(())
}

/// Revokes the API keys the run created; returns what to note in the report.
pub async fn teardown(shared: &Shared) -> Vec<String> {
    let mut notes = Vec::new();
    for tenant in &shared.tenants {
        if let Some(key) = &tenant.api_key
            && let Err(e) = target::revoke_api_key(tenant, key.id).await
        {
            notes.push(format!("could not revoke API key {}: {e}", key.prefix));
        }
    }
    notes
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
            Scenario::Limits => crate::limits::run(shared.clone()).await,
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
    total.limits = out.limits;
    Ok(total)
}

async fn worker(shared: Arc<Shared>, w: usize) -> Outcome {
    let mut out = Outcome::default();
    let mut rng = Rng::new(seed(w));
    let n = shared.tenants.len();
    let key = shared.key_worker(w);
    // Walk state for `mixed` (a walk advanced one page at a time) and `walk`.
    let mut walk_cursor: Option<(usize, String)> = None;
    let mut i = w;
    while !shared.budget.over() {
        i += 1;
        let who = Who { t: i % n, key };
        match shared.opts.scenario {
            Scenario::Get => {
                if shared.opts.probes && n > 1 && rng.chance(5) {
                    probe(&shared, &mut out, &mut rng, who).await;
                } else {
                    get(&shared, &mut out, &mut rng, who).await;
                }
            }
            Scenario::List => {
                first_page(&shared, &mut out, who, false).await;
            }
            Scenario::Walk => walk(&shared, &mut out, who).await,
            Scenario::Write => {
                create(&shared, &mut out, &mut rng, who, w).await;
            }
            Scenario::Mixed => {
                mixed_step(&shared, &mut out, &mut rng, &mut walk_cursor, who, w).await;
            }
            Scenario::Sync | Scenario::Depth | Scenario::Limits => break,
        }
    }
    let kind = if key { "api_key" } else { "jwt" };
    let ok = out
        .rec
        .statuses
        .iter()
        .filter(|(s, _)| (200..300).contains(*s))
        .map(|(_, n)| n)
        .sum();
    out.credentials.insert(
        kind.to_owned(),
        CredentialCount {
            workers: 1,
            requests: out.rec.requests,
            ok,
            rows_checked: out.leaks.checked_rows,
            foreign_rows: out.leaks.foreign_rows,
        },
    );
    out
}

/// One operation of `mixed`, picked at random: about 60% people, 20% accounts, 15%
/// activities, 5% cross-tenant probes.
async fn mixed_step(
    shared: &Shared,
    out: &mut Outcome,
    rng: &mut Rng,
    walk_cursor: &mut Option<(usize, String)>,
    who: Who,
    w: usize,
) {
    let probes = shared.opts.probes && shared.tenants.len() > 1;
    match rng.below(100) {
        0..27 => get(shared, out, rng, who).await,
        27..35 => first_page(shared, out, who, false).await,
        35..41 => first_page(shared, out, who, true).await,
        41..47 => walk_step(shared, out, walk_cursor, who).await,
        47..53 => {
            create(shared, out, rng, who, w).await;
        }
        53..56 => {
            update(shared, out, rng, who, None).await;
        }
        56..64 => crm::get_account(shared, out, rng, who).await,
        64..68 => crm::list_accounts(shared, out, who).await,
        68..70 => crm::create_account(shared, out, who).await,
        70..76 => crm::get_activity(shared, out, rng, who).await,
        76..80 => crm::list_activities(shared, out, who).await,
        80..86 => crm::activity_feed(shared, out, who).await,
        86..90 => crm::create_activity(shared, out, rng, who).await,
        90..93 if probes => probe(shared, out, rng, who).await,
        93..95 if probes => crm::probe(shared, out, rng, who).await,
        _ => get(shared, out, rng, who).await,
    }
}

async fn get(shared: &Shared, out: &mut Outcome, rng: &mut Rng, who: Who) {
    let ids = &shared.ids[who.t];
    if ids.is_empty() || !shared.budget.take() {
        return;
    }
    let id = ids[rng.below(ids.len())];
    let result = timed(
        &mut out.rec,
        "get_person",
        shared.client(who).get_person().id(id).send(),
    )
    .await;
    if let Ok(rv) = result {
        let person = rv.into_inner();
        if person.id != id {
            out.rec.error("wrong_row");
        }
        let request = format!("GET /v1/people/{id}");
        shared.check(&mut out.leaks, who.t, &person, "get_person", &request);
    }
}

/// GETs another tenant's person with tenant `who.t`'s credential: must be 404.
async fn probe(shared: &Shared, out: &mut Outcome, rng: &mut Rng, who: Who) {
    let n = shared.tenants.len();
    let other = (who.t + 1 + rng.below(n - 1)) % n;
    let ids = &shared.ids[other];
    if ids.is_empty() || !shared.budget.take() {
        return;
    }
    let id = ids[rng.below(ids.len())];
    let result = timed(
        &mut out.rec,
        "get_foreign_person",
        shared.client(who).get_person().id(id).send(),
    )
    .await;
    let request = format!("GET /v1/people/{id}");
    shared.expect_404(out, who.t, result, "get_foreign_person", &request);
}

/// The first page of the people list; `joined`: with `include_account_name=true` (one
/// joined query: each person's account name, checked with the person; every person with
/// an `account_id` must come with its name, whatever accounts were deleted).
async fn first_page(shared: &Shared, out: &mut Outcome, who: Who, joined: bool) {
    if !shared.budget.take() {
        return;
    }
    let limit = shared.opts.page_size;
    let mut req = shared.client(who).list_people().limit(limit);
    let (op, request) = if joined {
        req = req.include_account_name(true);
        (
            "list_people_with_account",
            format!("GET /v1/people?limit={limit}&include_account_name=true"),
        )
    } else {
        ("list_people", format!("GET /v1/people?limit={limit}"))
    };
    if let Ok(rv) = timed(&mut out.rec, op, req.send()).await {
        let page = rv.into_inner();
        if joined
            && page
                .data
                .iter()
                .any(|p| p.account_id.is_some() && p.account_name.is_none())
        {
            // A live person names a live account or none: deleting an account unlinks its
            // people in the same transaction (`delete_account`'s contract), so a person
            // with an `account_id` and no `account_name` is a broken join or a broken delete.
            out.rec.error("joined_account_name_missing");
        }
        shared.check_all(&mut out.leaks, who.t, &page.data, op, &request);
    }
}

/// One page of a walk kept across calls (`mixed`).
async fn walk_step(
    shared: &Shared,
    out: &mut Outcome,
    state: &mut Option<(usize, String)>,
    who: Who,
) {
    if !shared.budget.take() {
        return;
    }
    let (t, cursor) = match state.take() {
        Some((t, c)) => (t, Some(c)),
        None => (who.t, None),
    };
    let who = Who { t, key: who.key };
    let limit = shared.opts.page_size;
    let mut req = shared.client(who).list_people().limit(limit);
    let mut request = format!("GET /v1/people?limit={limit}");
    if let Some(c) = &cursor {
        req = req.cursor(c.clone());
        request.push_str(&format!("&cursor={c}"));
    }
    if let Ok(rv) = timed(&mut out.rec, "list_people_next", req.send()).await {
        let page = rv.into_inner();
        shared.check_all(&mut out.leaks, t, &page.data, "list_people_next", &request);
        out.walks.rows += page.data.len() as u64;
        match (page.has_more, page.next_cursor) {
            (true, Some(c)) => *state = Some((t, c)),
            _ => out.walks.completed += 1,
        }
    }
}

/// A full walk of tenant `who.t`.
async fn walk(shared: &Shared, out: &mut Outcome, who: Who) {
    let limit = shared.opts.page_size;
    let mut cursor: Option<String> = None;
    let mut last: Option<Uuid> = None;
    let mut seen = HashSet::new();
    // A bound on the pages of one walk, whatever the server answers.
    for _ in 0..1_000_000 {
        if !shared.budget.take() {
            return;
        }
        let mut req = shared.client(who).list_people().limit(limit);
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
        shared.check_all(&mut out.leaks, who.t, &page.data, "walk_page", &request);
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

fn new_person(
    tenant: &Tenant,
    w: usize,
    first: &str,
    account: Option<Uuid>,
) -> Option<types::PersonCreate> {
    let local = format!("lt-{}", Uuid::new_v4().simple());
    Some(types::PersonCreate {
        account_id: account,
        email: Some(marked_email(&local, &tenant.slug).parse().ok()?),
        first_name: first.parse().ok()?,
        last_name: format!("Loadtest{w}").parse().ok()?,
        phone: None,
        stage: None,
        title: None,
    })
}

/// An idempotent create with retries, sometimes a deliberate replay (same key, same
/// body: same response) and a conflicting reuse (same key, other body: 422). Returns the
/// created person. In `mixed`, half the new people belong to one of the run's marked
/// accounts (so joined reads return marked account names).
async fn create(
    shared: &Shared,
    out: &mut Outcome,
    rng: &mut Rng,
    who: Who,
    w: usize,
) -> Option<types::Person> {
    let tenant = &shared.tenants[who.t];
    let client = shared.client(who);
    let marked = &shared.marked_accounts[who.t];
    let account = (!marked.is_empty() && rng.chance(50)).then(|| marked[rng.below(marked.len())]);
    let body = new_person(tenant, w, "Load", account)?;
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
            client
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
    if shared.check(
        &mut out.leaks,
        who.t,
        &person,
        "create_person",
        "POST /v1/people",
    ) == 0
    {
        shared.leak.learn_created(who.t, person.id);
    }
    if person.account_id != account {
        out.rec.error("wrong_row");
    }

    if rng.chance(20) && shared.budget.take() {
        let replay = timed(
            &mut out.rec,
            "create_person_replay",
            client
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
        let other = new_person(tenant, w, "Different", account)?;
        let conflict = timed(
            &mut out.rec,
            "create_person_conflict",
            client
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

/// Changes the title of a listed person of tenant `who.t` (or `id`); returns the new row.
async fn update(
    shared: &Shared,
    out: &mut Outcome,
    rng: &mut Rng,
    who: Who,
    id: Option<Uuid>,
) -> Option<types::Person> {
    let ids = &shared.ids[who.t];
    let id = id.or_else(|| (!ids.is_empty()).then(|| ids[rng.below(ids.len())]))?;
    if !shared.budget.take() {
        return None;
    }
    let body = types::PersonUpdate {
        title: Some(format!("T{}", rng.below(1_000_000)).parse().ok()?),
        ..Default::default()
    };
    let result: ApiResult<types::Person> = timed(
        &mut out.rec,
        "update_person",
        shared.client(who).update_person().id(id).body(body).send(),
    )
    .await;
    let person = result.ok()?.into_inner();
    let request = format!("PATCH /v1/people/{id}");
    shared.check(&mut out.leaks, who.t, &person, "update_person", &request);
    Some(person)
}

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
                if let Some(p) = update(shared, &mut out, &mut rng, Who::jwt(t), None).await {
                    ack(ledger, p.id, p.version, false);
                }
            }
            60..85 => {
                if let Some(p) = create(shared, &mut out, &mut rng, Who::jwt(t), w).await {
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
        shared.check_all(&mut out.leaks, t, &page.data, "sync_poll", &request);
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
            shared.check_all(
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
                shared.check_all(
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
                    shared.check_all(&mut out.leaks, 0, &rv.into_inner().data, &op, &request);
                }
            }
        }
    }
    Ok(out)
}
