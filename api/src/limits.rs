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
//!   operation's security checker takes the result over instead of verifying again), then
//!   keys the request by tenant + credential — or by client address ([`client_ip`]) when
//!   there is no valid credential, which it charges (cost 1) before anything else runs. On
//!   the way out it writes `RateLimit-Policy`, `RateLimit` and `X-RateLimit-Cost` on every
//!   response, and `Retry-After` on a 429.
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
//! 6. **A credential that fails verification costs its client address 1, and an API key
//!    is charged before the database is asked about it.** Verifying a JWT or a malformed
//!    key, or a key verified within `TENANTRY_API_KEY_CACHE_SECS` (the authenticator's
//!    cache), needs no database; a well-formed key outside the cache needs a lookup. The
//!    checksum is no barrier to an attacker (CRC32 is public), so before that lookup the
//!    client address is charged 1, and refused (429, policy `ip`) when its budget is spent
//!    — without the lookup. A key that verifies gets the unit back (it is held to its
//!    tenant's and its own budgets), and is cached, so its next requests skip this step; one
//!    that does not keeps the charge. So a flood of invalid keys from one address costs at
//!    most `TENANTRY_RATE_LIMIT_ANONYMOUS_QUOTA` lookups per window, and credential stuffing
//!    spread over many addresses costs one lookup per address and unit of their budgets.
//!    The price: while an address is over its budget, a valid key's first request from it
//!    (one not yet cached on this instance) is refused too — it cannot be told from the
//!    others without the lookup.
//! 7. **The client address is the peer's, unless the peer is a trusted proxy**
//!    (`TENANTRY_TRUSTED_PROXIES`): then it is the right-most `X-Forwarded-For` address
//!    that is not a trusted proxy itself ([`client_ip`]). Without trusted proxies the header
//!    is ignored — anyone can write it.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex, PoisonError};

use ipnet::IpNet;
use poem::http::{HeaderMap, HeaderName, HeaderValue, Uri};
use poem::{Endpoint, IntoResponse, Middleware, Request, Response, Result};
use poem_openapi::OperationId;
use ratelimit::{Decision, Key, Limiter};
use serde_json::{Value, json};

use crate::auth::{Principal, Verification};
use crate::middleware::{RequestMeta, render_error};
use crate::problem::{Problem, ProblemContext};
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
        let limits = req.extensions().get::<RequestLimits>();
        let Some((limits, keys)) = limits.and_then(|l| Some((l, l.0.keys.as_ref()?))) else {
            // Limits disabled (or no verified credential, which no operation runs with):
            // nothing to charge.
            return Ok(Charge {
                limits: None,
                operation: self.id,
                units: 0,
            });
        };
        let decision = limits.0.limiter.check(&keys.key(), units).await;
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
        let Some(keys) = &limits.0.keys else { return };
        if self.units == 0 {
            return;
        }
        let decision = limits.0.limiter.refund(&keys.key(), self.units).await;
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

/// What [`RateLimit`] learned about a request with a bearer credential, shared through the
/// request's extensions with the operation's security checker ([`take_verified`]) and its
/// charge ([`Operation::charge`]). One allocation per request.
#[derive(Clone, Debug)]
struct RequestLimits(Arc<LimitsInner>);

type Outcome = (&'static str, u64, Decision);

#[derive(Debug)]
struct LimitsInner {
    limiter: Limiter,
    /// The bearer token the middleware verified.
    token: String,
    /// The budgets of an authenticated request; `None` when its credential failed (it is
    /// then the client address's request, and its operation never runs).
    keys: Option<CredentialKeys>,
    /// What the middleware, the checker and the operation hand each other.
    shared: Mutex<Shared>,
}

/// The tenant and credential a request is counted against, as the limiter's [`Key`] wants
/// them. The tenant id is formatted into a buffer, not a `String`.
#[derive(Debug)]
struct CredentialKeys {
    tenant: [u8; uuid::fmt::Hyphenated::LENGTH],
    credential: String,
}

impl CredentialKeys {
    fn of(principal: &Principal) -> Self {
        let mut tenant = [0; uuid::fmt::Hyphenated::LENGTH];
        principal
            .ctx()
            .tenant()
            .as_uuid()
            .hyphenated()
            .encode_lower(&mut tenant);
        Self {
            tenant,
            credential: principal.credential().id(),
        }
    }

    fn key(&self) -> Key<'_> {
        Key::Credential {
            // Always ASCII: `encode_lower` wrote it.
            tenant: std::str::from_utf8(&self.tenant).unwrap_or_default(),
            credential: &self.credential,
        }
    }
}

#[derive(Debug)]
struct Shared {
    /// The verification, until the operation's security checker takes it.
    verified: Option<Result<Principal, Problem>>,
    /// The operation that charged, the units it was finally charged, and the decision to
    /// report.
    outcome: Option<Outcome>,
}

impl RequestLimits {
    fn shared(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.0.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn record(&self, operation: &'static str, charged: u64, decision: Decision) {
        self.shared().outcome = Some((operation, charged, decision));
    }

    fn take(&self) -> Option<Outcome> {
        self.shared().outcome.take()
    }
}

/// The verification of `token` that [`RateLimit`] made for `req`, for the operation's
/// security checker: taken, not cloned, so a credential is verified once per request.
/// `None` when limits are off, the middleware saw another token, or it was taken already
/// (the checker then verifies the token itself).
pub(crate) fn take_verified(req: &Request, token: &str) -> Option<Result<Principal, Problem>> {
    let limits = req.extensions().get::<RequestLimits>()?;
    if limits.0.token != token {
        return None;
    }
    limits.shared().verified.take()
}

/// The bearer token of `headers`, exactly as the operations' `Bearer` extractor reads it
/// (the first `Authorization` field; the scheme in any case, then one space; visible
/// ASCII; blanks before the token skipped) — a test holds the two together — without its
/// copy and typed-header machinery, which would run twice per request otherwise.
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let bytes = headers.get(poem::http::header::AUTHORIZATION)?.as_bytes();
    // What `HeaderValue::to_str` accepts (a field value holds no control characters but
    // tab), checked a word at a time.
    let value = std::str::from_utf8(bytes).ok().filter(|v| v.is_ascii())?;
    let (scheme, rest) = value.split_at_checked(6)?;
    let token = rest.strip_prefix(' ')?;
    scheme
        .eq_ignore_ascii_case("Bearer")
        .then(|| token.trim_start())
}

/// The client address a request without a valid credential is counted against: the peer,
/// or — only when the peer is one of `trusted` proxies — the right-most address in
/// `X-Forwarded-For` that is not itself a trusted proxy (see the module docs).
///
/// Each proxy appends the address it received the request from, so the right end of the
/// list is what our own proxies saw and the left end is whatever the client wrote. Walking
/// from the right, trusted hops are skipped; the first other address is the client. A
/// malformed hop stops the walk at the last address known good (a proxy's), so a garbled
/// or forged value never gets a budget of its own. An IPv4-mapped IPv6 address counts as
/// its IPv4 address, on both sides of the comparison.
pub fn client_ip(peer: Option<IpAddr>, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let peer = peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |ip| ip.to_canonical());
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let mut client = peer;
    // Several `X-Forwarded-For` fields are one list, in order.
    for field in headers.get_all(X_FORWARDED_FOR).iter().rev() {
        let Ok(list) = field.to_str() else {
            return client;
        };
        for hop in list.rsplit(',') {
            let Some(ip) = parse_hop(hop) else {
                return client;
            };
            if !is_trusted(&ip) {
                return ip;
            }
            client = ip;
        }
    }
    // Every hop was a trusted proxy: the left-most is where the request entered.
    client
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// One `X-Forwarded-For` hop: an IPv4 or IPv6 address, optionally with a port as some
/// proxies write it (`192.0.2.7:4711`, `[2001:db8::1]:4711`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    let ip = if let Ok(ip) = hop.parse::<IpAddr>() {
        ip
    } else if let Some(rest) = hop.strip_prefix('[') {
        let (addr, port) = rest.split_once(']')?;
        if !(port.is_empty() || port.strip_prefix(':').is_some_and(is_port)) {
            return None;
        }
        IpAddr::V6(addr.parse().ok()?)
    } else {
        let (addr, port) = hop.split_once(':')?;
        if !is_port(port) {
            return None;
        }
        IpAddr::V4(addr.parse().ok()?)
    };
    Some(ip.to_canonical())
}

fn is_port(s: &str) -> bool {
    s.parse::<u16>().is_ok()
}

/// The rate-limit middleware on `/v1` (see the module docs).
#[derive(Clone)]
pub struct RateLimit {
    /// The state: its limiter (none when disabled), authenticator and settings.
    pub state: Arc<AppState>,
}

impl<E: Endpoint> Middleware<E> for RateLimit {
    type Output = RateLimitEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        let policies = self.state.limiter.as_ref().map(Limiter::policies);
        let value = |header: &str| HeaderValue::from_str(header).ok();
        RateLimitEndpoint {
            inner,
            state: self.state.clone(),
            authenticated_policy: policies.and_then(|p| value(p.authenticated_header())),
            anonymous_policy: policies.and_then(|p| value(p.anonymous_header())),
        }
    }
}

/// The [`RateLimit`] endpoint.
pub struct RateLimitEndpoint<E> {
    inner: E,
    state: Arc<AppState>,
    /// `RateLimit-Policy` as every authenticated response sends it, made once.
    authenticated_policy: Option<HeaderValue>,
    /// `RateLimit-Policy` as every response keyed by client address sends it.
    anonymous_policy: Option<HeaderValue>,
}

/// How [`RateLimitEndpoint::admit`] let a request through to its operation.
enum Admitted {
    /// No valid credential: charged to the client address already.
    Anonymous(Decision),
    /// A verified credential: the operation charges its budgets.
    Authenticated(RequestLimits),
}

impl<E: Endpoint> Endpoint for RateLimitEndpoint<E> {
    type Output = Response;

    // One await on the inner endpoint, whatever the path: the inner future is the bulk of
    // this one's size, and each further state holding it would be copied along with every
    // move of the whole middleware stack's future.
    async fn call(&self, mut req: Request) -> Result<Self::Output> {
        let path = req.uri().path();
        let limited = path == "/v1" || path.starts_with("/v1/");
        let limiter = self.state.limiter.as_ref().filter(|_| limited);
        let (admitted, ctx) = match limiter {
            Some(limiter) => {
                let ctx = LazyContext::of(&req);
                match self.admit(limiter, &mut req, &ctx).await {
                    Ok(admitted) => (Some((limiter, admitted)), Some(ctx)),
                    Err(refused) => return Ok(refused),
                }
            }
            None => (None, None),
        };
        let result = self.inner.call(req).await;
        let (Some((limiter, admitted)), Some(ctx)) = (admitted, ctx) else {
            return result.map(IntoResponse::into_response);
        };
        let mut resp = match result {
            Ok(resp) => resp.into_response(),
            Err(err) => render_error(err, &ctx.get()),
        };
        let limits = match admitted {
            Admitted::Authenticated(limits) => limits,
            Admitted::Anonymous(decision) => {
                let policy = self.anonymous_policy.as_ref();
                write_headers(&mut resp, &decision, decision.cost(), policy);
                return Ok(resp);
            }
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
                let Some(keys) = &limits.0.keys else {
                    return Ok(resp);
                };
                let decision = limiter.check(&keys.key(), 1).await;
                (decision.cost(), decision)
            }
        };
        if !decision.allowed() {
            self.refused(&decision);
        }
        let policy = self.authenticated_policy.as_ref();
        write_headers(&mut resp, &decision, charged, policy);
        Ok(resp)
    }
}

impl<E: Endpoint> RateLimitEndpoint<E> {
    /// Everything before the operation runs: verifies the bearer credential (handing the
    /// result on through `req`'s extensions) and charges the client address when there is
    /// no valid credential — before an uncached API key's database lookup, when there is one
    /// (module docs, rule 6). `Err` is the 429 of a request refused before anything ran.
    async fn admit(
        &self,
        limiter: &Limiter,
        req: &mut Request,
        ctx: &LazyContext,
    ) -> Result<Admitted, Response> {
        let Some(token) = bearer_token(req.headers()).map(str::to_owned) else {
            return self.charge_address(limiter, req, ctx).await;
        };
        let auth = &self.state.auth;
        let (result, charged) = match auth.verify(&token).await {
            Verification::Done(result) => (result, None),
            Verification::Lookup(lookup) => {
                // Only the database can verify this key: its client address pays for the
                // lookup first, so invalid keys cannot buy lookups past the address's budget.
                let ip = Key::Ip(self.client_ip(req));
                let decision = limiter.check(&ip, 1).await;
                if !decision.allowed() {
                    return Err(self.refuse(&decision, ctx));
                }
                let result = auth.lookup(lookup).await;
                if result.is_ok() {
                    // A valid key is held to its own budgets: the address gets its unit back.
                    limiter.refund(&ip, 1).await;
                    (result, None)
                } else {
                    (result, Some(decision))
                }
            }
        };
        let keys = result.as_ref().ok().map(CredentialKeys::of);
        let authenticated = keys.is_some();
        let limits = RequestLimits(Arc::new(LimitsInner {
            limiter: limiter.clone(),
            token,
            keys,
            shared: Mutex::new(Shared {
                verified: Some(result),
                outcome: None,
            }),
        }));
        req.extensions_mut().insert(limits.clone());
        if authenticated {
            return Ok(Admitted::Authenticated(limits));
        }
        // The checker answers 401 from the verification handed over above.
        match charged {
            Some(decision) => Ok(Admitted::Anonymous(decision)),
            None => self.charge_address(limiter, req, ctx).await,
        }
    }

    /// A request without a valid credential costs its client address 1, before anything
    /// runs.
    async fn charge_address(
        &self,
        limiter: &Limiter,
        req: &Request,
        ctx: &LazyContext,
    ) -> Result<Admitted, Response> {
        let decision = limiter.check(&Key::Ip(self.client_ip(req)), 1).await;
        if decision.allowed() {
            Ok(Admitted::Anonymous(decision))
        } else {
            Err(self.refuse(&decision, ctx))
        }
    }
}

impl<E> RateLimitEndpoint<E> {
    fn client_ip(&self, req: &Request) -> IpAddr {
        client_ip(
            req.remote_addr().as_socket_addr().map(|a| a.ip()),
            req.headers(),
            &self.state.settings.rate_limit.trusted_proxies,
        )
    }

    /// The 429 for a request its client address has no budget left for.
    fn refuse(&self, decision: &Decision, ctx: &LazyContext) -> Response {
        self.refused(decision);
        let mut resp = Problem::quota_exceeded(decision).into_response_for(&ctx.get());
        write_headers(&mut resp, decision, 0, self.anonymous_policy.as_ref());
        resp
    }

    fn refused(&self, decision: &Decision) {
        let policy = decision.violated().map_or("unknown", |p| p.name());
        self.state.metrics.rate_limited(policy);
    }
}

/// What a problem response needs of the request, kept cheaply (a shared URI and the
/// request id's `Arc`) and made into a [`ProblemContext`] only when there is a problem.
struct LazyContext {
    uri: Uri,
    meta: Option<RequestMeta>,
}

impl LazyContext {
    fn of(req: &Request) -> Self {
        Self {
            uri: req.uri().clone(),
            meta: req.extensions().get::<RequestMeta>().cloned(),
        }
    }

    fn get(&self) -> ProblemContext {
        ProblemContext {
            path: self.uri.path().to_owned(),
            request_id: self.meta.as_ref().map(|m| m.request_id().to_owned()),
        }
    }
}

/// Writes the rate-limit fields of `decision` on `resp`, which was charged `cost` units.
/// `policy` is the `RateLimit-Policy` value prepared for the decision's key, if any.
fn write_headers(
    resp: &mut Response,
    decision: &Decision,
    cost: u64,
    policy: Option<&HeaderValue>,
) {
    debug_assert!(policy.is_none_or(|p| p == decision.policy_header()));
    let headers = resp.headers_mut();
    let policy = policy
        .cloned()
        .or_else(|| HeaderValue::from_str(decision.policy_header()).ok());
    if let Some(policy) = policy {
        headers.insert(RATELIMIT_POLICY, policy);
    }
    if let Ok(value) = HeaderValue::from_str(&decision.ratelimit_header()) {
        headers.insert(RATELIMIT, value);
    }
    headers.insert(RATELIMIT_COST, cost_value(cost));
    if let Some(retry) = decision.retry_after_header()
        && let Ok(value) = HeaderValue::from_str(&retry)
    {
        headers.insert(poem::http::header::RETRY_AFTER, value);
    }
}

/// `cost` as a field value; the common small costs without formatting or allocating.
fn cost_value(cost: u64) -> HeaderValue {
    const DIGITS: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
    match usize::try_from(cost).ok().and_then(|i| DIGITS.get(i)) {
        Some(digit) => HeaderValue::from_static(digit),
        None => HeaderValue::from(cost),
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

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter()
            .map(|n| n.parse().expect("a CIDR block"))
            .collect()
    }

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(X_FORWARDED_FOR, HeaderValue::from_str(v).expect("value"));
        }
        headers
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("an address")
    }

    #[test]
    fn without_trusted_proxies_the_peer_is_the_client_whatever_the_headers_say() {
        let headers = forwarded(&["203.0.113.9"]);
        let peer = Some(ip("198.51.100.1"));
        assert_eq!(client_ip(peer, &headers, &[]), ip("198.51.100.1"));
        // A peer outside the trusted blocks cannot pick its budget by spoofing the header.
        let trusted = nets(&["10.0.0.0/8"]);
        assert_eq!(client_ip(peer, &headers, &trusted), ip("198.51.100.1"));
        assert_eq!(
            client_ip(None, &headers, &trusted),
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        );
    }

    #[test]
    fn behind_trusted_proxies_the_client_is_the_right_most_untrusted_hop() {
        let trusted = nets(&["10.0.0.0/8", "2001:db8:ffff::/48"]);
        let peer = Some(ip("10.0.0.2"));
        // The client wrote the left-most value itself; the proxies appended the rest.
        let headers = forwarded(&["1.1.1.1, 203.0.113.9, 10.0.0.7"]);
        assert_eq!(client_ip(peer, &headers, &trusted), ip("203.0.113.9"));
        // Several fields are one list.
        let headers = forwarded(&["1.1.1.1", "203.0.113.9", "10.0.0.7"]);
        assert_eq!(client_ip(peer, &headers, &trusted), ip("203.0.113.9"));
        // Ports and brackets as some proxies write them; IPv4-mapped peers and hops.
        let headers = forwarded(&["[2001:db8::5]:4711, 10.0.0.9:80"]);
        assert_eq!(client_ip(peer, &headers, &trusted), ip("2001:db8::5"));
        let mapped = Some(ip("::ffff:10.0.0.2"));
        let headers = forwarded(&["::ffff:203.0.113.9"]);
        assert_eq!(client_ip(mapped, &headers, &trusted), ip("203.0.113.9"));
        // No header: the proxy itself; every hop trusted: the left-most.
        assert_eq!(client_ip(peer, &HeaderMap::new(), &trusted), ip("10.0.0.2"));
        let headers = forwarded(&["10.9.9.9, 2001:db8:ffff::1"]);
        assert_eq!(client_ip(peer, &headers, &trusted), ip("10.9.9.9"));
    }

    #[test]
    fn a_malformed_hop_stops_at_the_last_trusted_address() {
        let trusted = nets(&["10.0.0.0/8"]);
        let peer = Some(ip("10.0.0.2"));
        let proxy = "10.0.0.2";
        for (value, client) in [
            ("203.0.113.9, unknown", proxy),
            ("203.0.113.9, 10.0.0.7, ", proxy),
            ("203.0.113.9,,10.0.0.7", "10.0.0.7"),
            ("203.0.113.9, 10.0.0.7 10.0.0.8", proxy),
            ("203.0.113.9, 999.0.0.1", proxy),
            ("203.0.113.9, 203.0.113.10:99999", proxy),
            ("203.0.113.9, [2001:db8::1]x", proxy),
            ("203.0.113.9, _", proxy),
        ] {
            let headers = forwarded(&[value]);
            assert_eq!(client_ip(peer, &headers, &trusted), ip(client), "{value}");
        }
        // A value that is not visible ASCII is malformed too.
        let mut headers = HeaderMap::new();
        headers.append(
            X_FORWARDED_FOR,
            HeaderValue::from_bytes(b"203.0.113.9\xff").expect("opaque bytes"),
        );
        assert_eq!(client_ip(peer, &headers, &trusted), ip("10.0.0.2"));
    }

    #[test]
    fn the_bearer_token_is_read_exactly_as_the_operations_read_it() {
        use poem_openapi::auth::{Bearer, BearerAuthorization as _};
        let cases: &[&[&[u8]]] = &[
            &[b"Bearer abc.def"],
            &[b"bearer abc"],
            &[b"BEARER  \t abc "],
            &[b"Bearer "],
            &[b"Bearer  "],
            &[b"Bearer"],
            &[b"Bearerabc"],
            &[b"Bearer\tabc"],
            &[b"Basic dXNlcjpwYXNz"],
            &[b"Bearer t\xc3\xa9"],
            &[b"Bearer first", b"Bearer second"],
            &[b"Basic x", b"Bearer second"],
            &[b"Bear"],
            &[b""],
            &[],
        ];
        for values in cases {
            let mut req = Request::builder();
            for value in *values {
                req = req.header(
                    poem::http::header::AUTHORIZATION,
                    HeaderValue::from_bytes(value).expect("value"),
                );
            }
            let req = req.finish();
            let theirs = Bearer::from_request(&req).ok().map(|b| b.token);
            assert_eq!(bearer_token(req.headers()), theirs.as_deref(), "{values:?}");
        }
    }

    #[test]
    fn small_costs_are_written_like_any_other() {
        for cost in [0, 1, 9, 10, 35, u64::MAX] {
            assert_eq!(cost_value(cost), cost.to_string().as_str());
        }
    }

    #[test]
    fn every_operation_is_priced_once() {
        let mut ids: Vec<&str> = OPERATIONS.iter().map(|op| op.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), OPERATIONS.len());
    }
}
