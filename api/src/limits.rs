//! Rate limits on the HTTP side: what each operation costs, keying requests after
//! authentication, and the headers. The algorithm and its Redis / in-process backends are
//! the `ratelimit` crate.
//!
//! - [`Operation`] and [`Cost`]: an operation's price, declared as an associated const
//!   right above its handler (`Self::GET_ACCOUNT`), listed once more in [`OPERATIONS`] for
//!   the spec (`x-rate-limit-cost`) and the docs. A test checks the list covers every
//!   operation, and the middleware checks at run time that the operation that charged is
//!   the one that answered.
//! - [`RateLimit`]: the middleware on `/v1`. It verifies the bearer credential once (the
//!   operation's security checker reuses the result: [`Authenticated`]), then keys the
//!   request by tenant + credential — or by client IP when there is no valid credential,
//!   which it checks (cost 1) before anything else runs. On the way out it writes
//!   `RateLimit-Policy`, `RateLimit` and `X-RateLimit-Cost` on every response, and
//!   `Retry-After` on a 429.
//! - [`Operation::charge`] / [`Operation::charge_page`]: the handler's first call after
//!   its scope check. It charges the whole cost before any work (429 `quota-exceeded` when
//!   a policy has too little left) and returns a [`Charge`] that gives the cost back when
//!   the work turned out free: a 304, an empty sync page.
//!
//! Rules:
//! 1. Reads of one resource cost 1, writes 5, a list page `1 + limit/50`; an offset page
//!    (`page=N`) adds a surcharge that grows with its depth, so deep offset walks cost
//!    what they cost the database and cursors are the cheap way through.
//! 2. A 304 and an empty sync page cost 0 (charged, then refunded).
//! 3. An authenticated request that fails before its operation charges (bad parameters,
//!    missing scope, unknown route) costs 1, so errors are not a free way to load the API.
//! 4. A refused request costs nothing (`X-RateLimit-Cost: 0`).
//! 5. With limits disabled (`TENANTRY_RATE_LIMIT_ENABLED=false`) nothing is checked and no
//!    header is sent.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex, PoisonError};

use poem::http::{HeaderName, HeaderValue};
use poem::{Endpoint, IntoResponse, Middleware, Request, Response, Result};
use poem_openapi::OperationId;
use poem_openapi::auth::{Bearer, BearerAuthorization as _};
use ratelimit::{Decision, Key, Limiter};
use serde_json::{Value, json};

use crate::auth::Principal;
use crate::middleware::{problem_context, render_error};
use crate::problem::Problem;
use crate::state::AppState;
use crate::v1;

/// Cost units of a read of one resource.
pub const READ: u64 = 1;
/// Cost units of a write (create, update, delete).
pub const WRITE: u64 = 5;
/// A list page costs 1 plus 1 per this many items asked for (`limit`).
pub const ITEMS_PER_UNIT: u64 = 50;
/// Offset-page surcharges by depth: from this many rows skipped, this much more.
/// Tiers like Salesloft's deep-page prices (3, 8, 10, 30).
pub const OFFSET_TIERS: [(u64, u64); 4] = [(10_000, 3), (15_000, 8), (25_000, 10), (50_000, 30)];
/// The dearest request: a 200-item offset page past the last tier. The credential policy
/// must admit at least this much (checked at startup).
pub const MAX_COST: u64 = 1 + v1::MAX_LIMIT / ITEMS_PER_UNIT + OFFSET_TIERS[3].1;

/// How an operation is priced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cost {
    /// Always this many units.
    Fixed(u64),
    /// A read of one resource by id: [`READ`], and nothing when the answer is a 304.
    ConditionalRead,
    /// A list page: `1 + limit/50`.
    Page,
    /// A list page that may be an offset page: `1 + limit/50`, plus the [`OFFSET_TIERS`]
    /// surcharge of its depth with `page`; an empty sync page is free.
    OffsetPage,
}

/// An operation and its price.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Operation {
    /// The operationId.
    pub id: &'static str,
    /// The price.
    pub cost: Cost,
}

impl Operation {
    /// A read: [`READ`].
    pub const fn read(id: &'static str) -> Self {
        Self {
            id,
            cost: Cost::Fixed(READ),
        }
    }

    /// A read of one resource that answers `If-None-Match`: [`READ`], 0 on a 304.
    pub const fn conditional_read(id: &'static str) -> Self {
        Self {
            id,
            cost: Cost::ConditionalRead,
        }
    }

    /// A write: [`WRITE`].
    pub const fn write(id: &'static str) -> Self {
        Self {
            id,
            cost: Cost::Fixed(WRITE),
        }
    }

    /// A cursor-only list page.
    pub const fn page(id: &'static str) -> Self {
        Self {
            id,
            cost: Cost::Page,
        }
    }

    /// A list page with offset pages too.
    pub const fn offset_page(id: &'static str) -> Self {
        Self {
            id,
            cost: Cost::OffsetPage,
        }
    }

    /// The units a call costs with `limit` (default 50) and offset `page`.
    pub fn units(&self, limit: Option<u64>, page: Option<u64>) -> u64 {
        match self.cost {
            Cost::Fixed(units) => units,
            Cost::ConditionalRead => READ,
            Cost::Page | Cost::OffsetPage => {
                let limit = limit.unwrap_or(v1::DEFAULT_LIMIT);
                let base = 1 + limit / ITEMS_PER_UNIT;
                let skipped = page.map_or(0, |p| p.saturating_sub(1).saturating_mul(limit));
                let surcharge = match self.cost {
                    Cost::OffsetPage => OFFSET_TIERS
                        .iter()
                        .rev()
                        .find(|(from, _)| skipped >= *from)
                        .map_or(0, |(_, extra)| *extra),
                    _ => 0,
                };
                base + surcharge
            }
        }
    }

    /// Charges this fixed-cost operation to the request's budgets.
    ///
    /// # Errors
    /// 429 `quota-exceeded` when a policy has too little left (nothing is charged).
    pub async fn charge(&self, req: &Request) -> Result<Charge, Problem> {
        self.charge_units(req, self.units(None, None)).await
    }

    /// Charges this list operation for a page of `limit` items at offset `page`.
    ///
    /// # Errors
    /// As [`Operation::charge`].
    pub async fn charge_page(
        &self,
        req: &Request,
        limit: Option<u64>,
        page: Option<u64>,
    ) -> Result<Charge, Problem> {
        self.charge_units(req, self.units(limit, page)).await
    }

    async fn charge_units(&self, req: &Request, units: u64) -> Result<Charge, Problem> {
        let Some(limits) = req.extensions().get::<RequestLimits>() else {
            // Limits disabled: nothing to charge.
            return Ok(Charge {
                limits: None,
                operation: self.id,
                units: 0,
            });
        };
        let decision = limits.0.limiter.check(&limits.key(), units).await;
        let allowed = decision.allowed();
        if !allowed {
            let problem = Problem::quota_exceeded(&decision);
            limits.record(self.id, 0, decision);
            return Err(problem);
        }
        limits.record(self.id, units, decision);
        Ok(Charge {
            limits: Some(limits.clone()),
            operation: self.id,
            units,
        })
    }

    /// What the spec publishes: `x-rate-limit-cost` (the cost with default parameters)
    /// and, when it varies, `x-rate-limit-cost-rule`.
    pub fn spec_extensions(&self) -> Vec<(&'static str, Value)> {
        let mut out = vec![("x-rate-limit-cost", json!(self.units(None, None)))];
        if let Some(rule) = self.rule() {
            out.push(("x-rate-limit-cost-rule", json!(rule)));
        }
        out
    }

    /// How the cost varies, in words; `None` when it never does.
    pub fn rule(&self) -> Option<String> {
        match self.cost {
            Cost::Fixed(_) => None,
            Cost::ConditionalRead => Some("0 when the answer is 304 Not Modified".to_owned()),
            Cost::Page => Some(format!("1 + limit/{ITEMS_PER_UNIT} (integer division)")),
            Cost::OffsetPage => {
                let extra: Vec<String> = OFFSET_TIERS.iter().map(|(_, e)| e.to_string()).collect();
                let from: Vec<String> = OFFSET_TIERS.iter().map(|(f, _)| f.to_string()).collect();
                Some(format!(
                    "1 + limit/{ITEMS_PER_UNIT} (integer division); an offset page (`page`) adds \
                     {} from {} rows skipped; an empty sync page (`sort=updated_at`) costs 0",
                    extra.join(" / "),
                    from.join(" / "),
                ))
            }
        }
    }
}

/// A cost charged to a request, that can be given back.
#[derive(Debug)]
#[must_use = "a charge is refunded with `refund` when the work turned out free"]
pub struct Charge {
    limits: Option<RequestLimits>,
    operation: &'static str,
    units: u64,
}

impl Charge {
    /// Gives the whole cost back: the answer was free (a 304, an empty sync page).
    pub async fn refund(self) {
        let Some(limits) = self.limits else { return };
        if self.units == 0 {
            return;
        }
        let decision = limits.0.limiter.refund(&limits.key(), self.units).await;
        limits.record(self.operation, 0, decision);
    }
}

/// Every operation's price, for the spec and the docs. The tests check that the spec's
/// operations are exactly these (`tests/api/rate_limits.rs`) and that each handler charges
/// its own entry (`tests/api/coverage.rs`).
pub const OPERATIONS: &[Operation] = &[
    v1::accounts::AccountsApi::CREATE_ACCOUNT,
    v1::accounts::AccountsApi::GET_ACCOUNT,
    v1::accounts::AccountsApi::LIST_ACCOUNTS,
    v1::accounts::AccountsApi::UPDATE_ACCOUNT,
    v1::accounts::AccountsApi::DELETE_ACCOUNT,
    v1::people::PeopleApi::CREATE_PERSON,
    v1::people::PeopleApi::GET_PERSON,
    v1::people::PeopleApi::LIST_PEOPLE,
    v1::people::PeopleApi::UPDATE_PERSON,
    v1::people::PeopleApi::DELETE_PERSON,
    v1::activities::ActivitiesApi::CREATE_ACTIVITY,
    v1::activities::ActivitiesApi::GET_ACTIVITY,
    v1::activities::ActivitiesApi::LIST_ACTIVITIES,
    v1::activities::ActivitiesApi::LIST_ACTIVITY_FEED,
    v1::activities::ActivitiesApi::UPDATE_ACTIVITY,
    v1::activities::ActivitiesApi::DELETE_ACTIVITY,
    v1::api_keys::ApiKeysApi::CREATE_API_KEY,
    v1::api_keys::ApiKeysApi::LIST_API_KEYS,
    v1::api_keys::ApiKeysApi::REVOKE_API_KEY,
];

/// The operation with `id`.
pub fn operation(id: &str) -> Option<&'static Operation> {
    OPERATIONS.iter().find(|op| op.id == id)
}

/// The docs' rate-limit section: the rules and every operation's price.
pub fn docs_markdown() -> String {
    let mut rows = String::new();
    for op in OPERATIONS {
        let rule = op.rule().unwrap_or_default();
        rows.push_str(&format!(
            "| `{}` | {} | {rule} |\n",
            op.id,
            op.units(None, None)
        ));
    }
    format!(
        "**Rate limits.** Every operation has a cost in units (`x-rate-limit-cost` on each \
operation; `X-RateLimit-Cost` on each response says what a request was charged). Two budgets \
apply together, refilled continuously: your tenant's, and a smaller one per credential (API key \
or token), so one integration cannot use up its tenant's budget. A request goes through only \
if both have room, and a refused request costs nothing. Every `/v1` response carries the \
IETF headers, e.g. with the default quotas \
`RateLimit-Policy: \"tenant\";q=600;w=60, \"credential\";q=300;w=60` (quota units per window \
in seconds) and `RateLimit: \"tenant\";r=583;t=2, \"credential\";r=283;t=4` \
(units left, seconds until full). Over budget: `429` with `Retry-After` and a \
`quota-exceeded` problem whose `violated-policies` names the budget. Requests without a valid \
credential are limited per client IP (policy `ip`). Cursors are the cheap way through a \
collection: offset pages cost more the deeper they go.\n\n\
| operation | cost (defaults) | how it varies |\n|---|---|---|\n{rows}"
    )
}

// The field names, lower-cased as HTTP/2 sends them (`ratelimit::headers` has their
// registered spelling).
const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
const RATELIMIT_COST: HeaderName = HeaderName::from_static("x-ratelimit-cost");

/// The request's keys and limiter, shared by the middleware and the operation's charge.
#[derive(Clone, Debug)]
struct RequestLimits(Arc<LimitsInner>);

type Outcome = (&'static str, u64, Decision);

#[derive(Debug)]
struct LimitsInner {
    limiter: Limiter,
    tenant: String,
    credential: String,
    /// The operation that charged, the units it was finally charged, and the decision to
    /// report.
    outcome: Mutex<Option<Outcome>>,
}

impl RequestLimits {
    fn key(&self) -> Key<'_> {
        Key::Credential {
            tenant: &self.0.tenant,
            credential: &self.0.credential,
        }
    }

    fn record(&self, operation: &'static str, charged: u64, decision: Decision) {
        *self
            .0
            .outcome
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some((operation, charged, decision));
    }

    fn take(&self) -> Option<Outcome> {
        self.0
            .outcome
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

/// The outcome of verifying a request's bearer credential in [`RateLimit`], reused by the
/// operation's security checker so a credential is verified once per request.
#[derive(Clone, Debug)]
pub struct Authenticated {
    /// The credential verified.
    pub token: String,
    /// What verifying it gave.
    pub result: Result<Principal, Problem>,
}

/// The rate-limit middleware on `/v1` (see the module docs).
#[derive(Clone)]
pub struct RateLimit {
    /// The state: its limiter (none when disabled) and authenticator.
    pub state: Arc<AppState>,
}

impl<E: Endpoint> Middleware<E> for RateLimit {
    type Output = RateLimitEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        RateLimitEndpoint {
            inner,
            state: self.state.clone(),
        }
    }
}

/// The [`RateLimit`] endpoint.
pub struct RateLimitEndpoint<E> {
    inner: E,
    state: Arc<AppState>,
}

impl<E: Endpoint> Endpoint for RateLimitEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> Result<Self::Output> {
        let path = req.uri().path();
        let limited = path == "/v1" || path.starts_with("/v1/");
        let (Some(limiter), true) = (&self.state.limiter, limited) else {
            return self.inner.call(req).await.map(IntoResponse::into_response);
        };
        let ctx = problem_context(&req);

        let principal = match Bearer::from_request(&req) {
            Ok(bearer) => {
                let result = self.state.auth.authenticate(&bearer.token).await;
                let principal = result.as_ref().ok().cloned();
                req.extensions_mut().insert(Authenticated {
                    token: bearer.token,
                    result,
                });
                principal
            }
            Err(_) => None,
        };

        let Some(principal) = principal else {
            // No valid credential: the client IP's budget, checked before anything runs.
            let ip = req
                .remote_addr()
                .as_socket_addr()
                .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.ip());
            let decision = limiter.check(&Key::Ip(ip), 1).await;
            let mut resp = if decision.allowed() {
                match self.inner.call(req).await {
                    Ok(resp) => resp.into_response(),
                    Err(err) => render_error(err, &ctx),
                }
            } else {
                self.refused(&decision);
                Problem::quota_exceeded(&decision).into_response_for(&ctx)
            };
            write_headers(&mut resp, &decision, decision.cost());
            return Ok(resp);
        };

        let limits = RequestLimits(Arc::new(LimitsInner {
            limiter: limiter.clone(),
            tenant: principal.ctx().tenant().to_string(),
            credential: principal.credential().id(),
            outcome: Mutex::new(None),
        }));
        req.extensions_mut().insert(limits.clone());
        let mut resp = match self.inner.call(req).await {
            Ok(resp) => resp.into_response(),
            Err(err) => render_error(err, &ctx),
        };
        let (charged, decision) = match limits.take() {
            Some((operation, charged, decision)) => {
                let answered = resp.data::<OperationId>().map(|op| op.0);
                if answered.is_some_and(|a| a != operation) {
                    // A handler charged with another operation's price: a programming error
                    // the tests catch; in production the request keeps its answer.
                    tracing::error!(charged = operation, answered = ?answered, "operation charged another operation's cost");
                    debug_assert!(false, "{answered:?} charged as {operation}");
                }
                (charged, decision)
            }
            // The request failed before its operation charged: it costs 1.
            None => {
                let decision = limiter.check(&limits.key(), 1).await;
                (decision.cost(), decision)
            }
        };
        if !decision.allowed() {
            self.refused(&decision);
        }
        write_headers(&mut resp, &decision, charged);
        Ok(resp)
    }
}

impl<E> RateLimitEndpoint<E> {
    fn refused(&self, decision: &Decision) {
        let policy = decision.violated().map_or("unknown", |p| p.name());
        self.state.metrics.rate_limited(policy);
    }
}

/// Writes the rate-limit fields of `decision` on `resp`, which was charged `cost` units.
fn write_headers(resp: &mut Response, decision: &Decision, cost: u64) {
    let headers = resp.headers_mut();
    let mut put = |name: HeaderName, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    };
    put(RATELIMIT_POLICY, decision.policy_header());
    put(RATELIMIT, &decision.ratelimit_header());
    put(RATELIMIT_COST, &cost.to_string());
    if let Some(retry) = decision.retry_after_header() {
        put(poem::http::header::RETRY_AFTER, &retry);
    }
}

/// The spec's rate-limit extensions for the operation `id`.
pub fn spec_extensions(id: &str) -> Vec<(&'static str, Value)> {
    operation(id)
        .map(Operation::spec_extensions)
        .unwrap_or_default()
}

/// Builds the limiter the settings describe, or `None` when limits are disabled.
///
/// # Errors
/// When a policy is invalid, the credential quota cannot admit the dearest operation, or
/// `REDIS_URL` does not parse.
pub fn limiter(settings: &crate::Settings) -> Result<Option<Limiter>, ratelimit::Error> {
    let s = &settings.rate_limit;
    if !s.enabled {
        return Ok(None);
    }
    let policies = ratelimit::Policies::new(
        ratelimit::Policy::new("tenant", s.tenant_quota, s.window)?,
        ratelimit::Policy::new("credential", s.credential_quota, s.window)?,
        ratelimit::Policy::new("ip", s.anonymous_quota, s.window)?,
    )?;
    if policies.max_cost() < MAX_COST {
        return Err(ratelimit::Error::InvalidPolicy(format!(
            "TENANTRY_RATE_LIMIT_TENANT_QUOTA and TENANTRY_RATE_LIMIT_CREDENTIAL_QUOTA must be \
             at least {MAX_COST}, the cost of the dearest request"
        )));
    }
    let limiter = match &settings.redis_url {
        None => Limiter::in_memory(policies),
        Some(url) => Limiter::builder(policies)
            .redis(
                ratelimit::RedisConfig::new(url.expose())
                    .key_prefix(s.key_prefix.as_str())
                    .timeout(s.redis_timeout),
            )
            .build()?,
    };
    Ok(Some(limiter))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_pages_cost_one_plus_one_per_fifty_items() {
        let op = Operation::page("list_x");
        assert_eq!(op.units(None, None), 2);
        assert_eq!(op.units(Some(1), None), 1);
        assert_eq!(op.units(Some(49), None), 1);
        assert_eq!(op.units(Some(200), None), 5);
    }

    #[test]
    fn offset_pages_cost_more_the_deeper_they_go() {
        let op = Operation::offset_page("list_x");
        // 100 per page: page 101 skips 10 000 rows.
        let at = |page| op.units(Some(100), Some(page));
        assert_eq!(
            [at(1), at(100), at(101), at(151), at(251), at(501)],
            [3, 3, 6, 11, 13, 33]
        );
        assert_eq!(op.units(Some(200), Some(u64::MAX)), MAX_COST);
        // Cursor-only lists never pay the surcharge.
        assert_eq!(Operation::page("list_y").units(Some(100), Some(501)), 3);
    }

    #[test]
    fn every_operation_is_priced_once() {
        let mut ids: Vec<&str> = OPERATIONS.iter().map(|op| op.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), OPERATIONS.len());
    }
}
