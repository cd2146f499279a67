//! Rate limits: what each operation costs, and what a request was charged. The algorithm
//! and its Redis / in-process backends are the `ratelimit` crate; the decision is made
//! before the body is read, by [`crate::front`].
//!
//! - [`Cost`]: how an operation is priced; each operation's descriptor
//!   ([`crate::context::Operation`]) carries one.
//! - [`Cost::price`]: the units of one call, from the query string alone (`limit`,
//!   `page`), so the front door charges before the body is read or the handler runs.
//! - [`Charge`]: what a request was charged, taken over by the handler's prologue
//!   ([`crate::context::Operation::begin`]) and given back when the work turned out free:
//!   a 304, an empty sync page.
//!
//! Rules:
//! 1. Reads of one resource cost 1, writes 5, a list page `1 + limit/50`; an offset page
//!    (`page=N`) adds a surcharge that grows with its depth
//!    ([`domain::pagination::OFFSET_SURCHARGES`], ending where offset pages end), so deep
//!    offset walks cost what they cost the database and cursors are the cheap way through.
//! 2. A 304 and an empty sync page cost 0 (charged, then refunded).
//! 3. An authenticated request that fails before its operation runs (bad parameters or
//!    body, missing scope, unknown route, a page past the offset cap, a body too slow or too
//!    large, shed by admission) costs 1: it is charged its price up front and refunded down
//!    to 1, so errors are not a free way to load the API.
//! 4. A refused request costs nothing (`X-RateLimit-Cost: 0`).
//! 5. With limits disabled (`TENANTRY_RATE_LIMIT_ENABLED=false`) nothing is checked and no
//!    header is sent.
//! 6. A request without a valid credential costs its client address 1 (see
//!    [`crate::front`] for the order, and why an uncached API key's lookup is paid first).

use std::sync::{Arc, Mutex, PoisonError};

use poem::Request;
use poem::Response;
use poem::http::{HeaderName, HeaderValue};
use ratelimit::{Decision, Key, Limiter};

use domain::pagination::{
    DEFAULT_LIMIT, MAX_LIMIT, MAX_OFFSET, OFFSET_SURCHARGES, offset_surcharge,
};

use crate::auth::Principal;

/// Cost units of a read of one resource.
pub const READ: u64 = 1;
/// Cost units of a write (create, update, delete).
pub const WRITE: u64 = 5;
/// A list page costs 1 plus 1 per this many items asked for (`limit`).
pub const ITEMS_PER_UNIT: u64 = 50;
/// What a request that fails before its operation runs costs (rule 3).
pub const FAILED: u64 = 1;
/// The dearest request: a 200-item offset page at the deepest tier. The credential policy
/// must admit at least this much (checked at startup).
pub const MAX_COST: u64 = 1 + MAX_LIMIT / ITEMS_PER_UNIT + OFFSET_SURCHARGES[2].1;

/// How an operation is priced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cost {
    /// Always this many units.
    Fixed(u64),
    /// A read of one resource by id: [`READ`], and nothing when the answer is a 304.
    ConditionalRead,
    /// A list page: `1 + limit/50`.
    Page,
    /// A list page that may be an offset page: `1 + limit/50`, plus the surcharge of its
    /// depth with `page`; an empty sync page is free.
    OffsetPage,
}

impl Cost {
    /// The units a call costs with `limit` (default 50) and offset `page`; a page past
    /// the offset cap (refused) costs [`FAILED`].
    pub fn units(&self, limit: Option<u64>, page: Option<u64>) -> u64 {
        match *self {
            Cost::Fixed(units) => units,
            Cost::ConditionalRead => READ,
            Cost::Page | Cost::OffsetPage => {
                let limit = limit.unwrap_or(DEFAULT_LIMIT);
                let base = 1 + limit / ITEMS_PER_UNIT;
                if *self == Cost::Page {
                    return base;
                }
                let skipped = page.map_or(0, |p| p.saturating_sub(1).saturating_mul(limit));
                offset_surcharge(skipped).map_or(FAILED, |extra| base + extra)
            }
        }
    }

    /// The units of a call with `query` (the request's query string), read as the
    /// operation will read it: a `limit` or `page` that does not parse, or is out of range,
    /// fails the request before it runs, so it costs [`FAILED`].
    pub fn price(&self, query: &str) -> u64 {
        if matches!(self, Cost::Fixed(_) | Cost::ConditionalRead) {
            return self.units(None, None);
        }
        let (mut limit, mut page) = (None, None);
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            let slot = match name.as_ref() {
                "limit" => &mut limit,
                "page" => &mut page,
                _ => continue,
            };
            match value.parse::<u64>() {
                Ok(n) if slot.is_none() => *slot = Some(n),
                _ => return FAILED,
            }
        }
        if limit.is_some_and(|l| !(1..=MAX_LIMIT).contains(&l)) || page == Some(0) {
            return FAILED;
        }
        self.units(limit, page)
    }

    /// How the cost varies, in words; `None` when it never does.
    pub fn rule(&self) -> Option<String> {
        match self {
            Cost::Fixed(_) => None,
            Cost::ConditionalRead => Some("0 when the answer is 304 Not Modified".to_owned()),
            Cost::Page => Some(format!("1 + limit/{ITEMS_PER_UNIT} (integer division)")),
            Cost::OffsetPage => {
                let extra: Vec<String> = OFFSET_SURCHARGES
                    .iter()
                    .map(|(_, e)| e.to_string())
                    .collect();
                let from: Vec<String> = OFFSET_SURCHARGES
                    .iter()
                    .map(|(f, _)| f.to_string())
                    .collect();
                Some(format!(
                    "1 + limit/{ITEMS_PER_UNIT} (integer division); an offset page (`page`) adds \
                     {} from {} rows skipped (offset pages end at {MAX_OFFSET}); an empty sync \
                     page (`sort=updated_at`) costs 0",
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
pub struct Charge(Option<RequestCharge>);

impl Charge {
    /// Takes over the charge the front door made for `req`, priced as `operation`
    /// (nothing when limits are disabled).
    pub(crate) fn take(req: &Request, operation: &'static str) -> Self {
        let Some(charge) = req.extensions().get::<RequestCharge>() else {
            return Self(None);
        };
        if charge.0.operation != operation {
            // A handler took another operation's charge: a programming error the tests
            // catch; in production the request keeps its charge.
            tracing::error!(
                charged = charge.0.operation,
                answered = operation,
                "operation took another operation's charge"
            );
            debug_assert!(false, "{operation} took {}'s charge", charge.0.operation);
        }
        charge.state().taken = true;
        Self(Some(charge.clone()))
    }

    /// Gives the whole cost back: the answer was free (a 304, an empty sync page).
    pub async fn refund(self) {
        let Some(charge) = self.0 else { return };
        charge.refund_to(0).await;
    }
}

/// The tenant and credential a request is counted against, as the limiter's [`Key`] wants
/// them. The tenant id is formatted into a buffer, not a `String`.
#[derive(Debug)]
pub(crate) struct CredentialKeys {
    tenant: [u8; uuid::fmt::Hyphenated::LENGTH],
    credential: String,
}

impl CredentialKeys {
    pub(crate) fn of(principal: &Principal) -> Self {
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

    /// The credential's stable id.
    pub(crate) fn credential(&self) -> &str {
        &self.credential
    }

    pub(crate) fn key(&self) -> Key<'_> {
        Key::Credential {
            // Always ASCII: `encode_lower` wrote it.
            tenant: std::str::from_utf8(&self.tenant).unwrap_or_default(),
            credential: &self.credential,
        }
    }
}

/// What the front door charged an authenticated request, shared with its handler through
/// the request's extensions. One allocation per request.
#[derive(Clone, Debug)]
pub(crate) struct RequestCharge(Arc<ChargeInner>);

#[derive(Debug)]
struct ChargeInner {
    limiter: Limiter,
    keys: CredentialKeys,
    /// The operation priced, or `""` for a request that matched none.
    operation: &'static str,
    state: Mutex<ChargeState>,
}

#[derive(Debug)]
struct ChargeState {
    /// Whether the operation took the charge over (it ran).
    taken: bool,
    /// The units charged so far.
    charged: u64,
    /// The decision to report in the headers.
    decision: Decision,
}

impl RequestCharge {
    /// `units` for `operation`, charged with `decision`.
    pub(crate) fn new(
        limiter: Limiter,
        keys: CredentialKeys,
        operation: &'static str,
        units: u64,
        decision: Decision,
    ) -> Self {
        Self(Arc::new(ChargeInner {
            limiter,
            keys,
            operation,
            state: Mutex::new(ChargeState {
                taken: false,
                charged: units,
                decision,
            }),
        }))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, ChargeState> {
        self.0.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Gives back what was charged above `units`.
    async fn refund_to(&self, units: u64) {
        let excess = self.state().charged.saturating_sub(units);
        if excess == 0 {
            return;
        }
        let decision = self.0.limiter.refund(&self.0.keys.key(), excess).await;
        let mut state = self.state();
        state.charged = units;
        state.decision = decision;
    }

    /// The units finally charged and the decision to report, once the response is known:
    /// a request whose operation never ran is refunded down to [`FAILED`] (rule 3).
    pub(crate) async fn settle(&self) -> (u64, Decision) {
        if !self.state().taken {
            self.refund_to(FAILED).await;
        }
        let state = self.state();
        (state.charged, state.decision.clone())
    }
}

// The field names, lower-cased as HTTP/2 sends them (`ratelimit::headers` has their
// registered spelling).
const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
const RATELIMIT_COST: HeaderName = HeaderName::from_static("x-ratelimit-cost");

/// Writes the rate-limit fields of `decision` on `resp`, which was charged `cost` units.
/// `policy` is the `RateLimit-Policy` value prepared for the decision's key, if any.
pub(crate) fn write_headers(
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
                ratelimit::RedisConfig::new(secrecy::ExposeSecret::expose_secret(url))
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
        let op = Cost::Page;
        assert_eq!(op.units(None, None), 2);
        assert_eq!(op.units(Some(1), None), 1);
        assert_eq!(op.units(Some(49), None), 1);
        assert_eq!(op.units(Some(200), None), 5);
    }

    #[test]
    fn offset_pages_cost_more_the_deeper_they_go_and_nothing_past_the_cap() {
        let op = Cost::OffsetPage;
        // 100 per page: page 26 skips 2 500 rows, page 101 the last 10 000.
        let at = |page| op.units(Some(100), Some(page));
        assert_eq!(
            [
                at(1),
                at(25),
                at(26),
                at(51),
                at(76),
                at(101),
                at(102),
                at(501)
            ],
            [3, 3, 5, 7, 11, 11, FAILED, FAILED]
        );
        assert_eq!(op.units(Some(200), Some(51)), MAX_COST);
        assert_eq!(op.units(Some(200), Some(u64::MAX)), FAILED);
        // Cursor-only lists never pay the surcharge.
        assert_eq!(Cost::Page.units(Some(100), Some(501)), 3);
    }

    #[test]
    fn the_price_is_read_from_the_query_as_the_operation_reads_it() {
        let op = Cost::OffsetPage;
        assert_eq!(op.price(""), 2);
        assert_eq!(op.price("limit=200"), 5);
        assert_eq!(op.price("cursor=abc&limit=100&page=26"), 5);
        assert_eq!(op.price("limit=%32%30%30"), 5);
        // What the operation refuses costs what a failed request costs.
        for bad in [
            "limit=0",
            "limit=201",
            "limit=x",
            "page=0",
            "page=-1",
            "limit=1&limit=2",
            "limit=100&page=102",
        ] {
            assert_eq!(op.price(bad), FAILED, "{bad}");
        }
        assert_eq!(Cost::Fixed(WRITE).price("limit=x"), WRITE);
    }

    #[test]
    fn small_costs_are_written_like_any_other() {
        for cost in [0, 1, 9, 10, 35, u64::MAX] {
            assert_eq!(cost_value(cost), cost.to_string().as_str());
        }
    }
}
