//! The front door: what every `/v1` request goes through before its body is read.
//!
//! In order, for a request whose route and method name an operation of
//! [`crate::v1::OPERATIONS`] (the route of each operation id comes from the generated spec,
//! so it cannot drift from the handlers; its scope and price from its descriptor):
//!
//! 1. **Credential.** The bearer credential is verified ([`crate::auth`]): a JWT, or an API
//!    key through the authenticator's cache. Without a valid one the request is answered
//!    401 here — **its body is never read** — and costs its client address 1. An API key
//!    that only the database can verify is paid for first: its client address is charged
//!    1 before the lookup and refused (429, policy `ip`) when its budget is spent; a key
//!    that verifies gets the unit back. So a flood of invalid keys from one address costs at
//!    most `TENANTRY_RATE_LIMIT_ANONYMOUS_QUOTA` lookups per window.
//! 2. **Scope and parameters.** A credential without the operation's scope is answered
//!    403 here; a query parameter the operation does not declare, 422 naming it (the same
//!    status and problem type as an unknown field of a body). A write
//!    while the embedded database's disk is below its reserve is answered 507 here
//!    ([`crate::storage`]).
//! 3. **Rate limit.** The operation's price ([`crate::limits::Operation::price`], from the
//!    query string) is charged to the tenant's and the credential's budgets; 429 when
//!    either is spent.
//! 4. The request then goes on, marked with who it is counted against
//!    ([`crate::admission::Who`]) and its charge, to the layers that read the body under a
//!    deadline and hand out slots fairly ([`crate::admission`]), and to its handler, which
//!    takes the verified principal and the charge over. On the way out, the `RateLimit*`
//!    headers are written on every response.
//!
//! A request on `/v1` that names no operation (an unknown route or method) is charged 1 to
//! its credential, or to its client address without one, and answered by the router (its
//! 404/405 reads no body). Other paths (`/docs`, `/openapi.json`, the probes) are not rate
//! limited; they are counted against their client address's anonymous share of slots.
//!
//! **The client address is the peer's, unless the peer is a trusted proxy**
//! (`TENANTRY_TRUSTED_PROXIES`): then it is the right-most `X-Forwarded-For` address that is
//! not a trusted proxy itself ([`client_ip`]). Without trusted proxies the header is
//! ignored — anyone can write it.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use ipnet::IpNet;
use poem::http::{HeaderMap, HeaderName, HeaderValue, Method};
use poem::{Endpoint, IntoResponse, Middleware, Request, Response, Result};
use ratelimit::{Decision, Key, Limiter};
use serde_json::Value;

use crate::admission::Who;
use crate::auth::{Principal, Verification, Verified};
use crate::context::Operation;
use crate::limits::{CredentialKeys, FAILED, RequestCharge, write_headers};
use crate::middleware::{RequestMeta, RouteTemplate, problem_context, render_error};
use crate::problem::{FieldProblem, Problem};
use crate::state::AppState;

/// One operation's route, as the spec declares it.
#[derive(Debug)]
struct OperationRoute {
    template: RouteTemplate,
    method: Method,
    operation: &'static Operation,
    /// The query parameters the spec declares for it.
    query: Vec<String>,
}

impl OperationRoute {
    /// The 422 naming the parameters of `query` this operation does not have, if any —
    /// the same status and problem type as unknown fields of a body.
    fn unknown_parameters(&self, query: &str) -> Option<Problem> {
        let mut unknown: Vec<FieldProblem> = Vec::new();
        for (name, _) in form_urlencoded::parse(query.as_bytes()) {
            if !self.query.iter().any(|known| *known == name)
                && !unknown.iter().any(|u| u.field == name)
            {
                unknown.push(FieldProblem::new(
                    name.into_owned(),
                    "unknown_parameter",
                    "is not a query parameter of this operation",
                ));
            }
        }
        (!unknown.is_empty()).then(|| Problem::validation(unknown))
    }
}

/// The front door middleware (see the module docs).
#[derive(Clone)]
pub struct FrontDoor {
    state: Arc<AppState>,
    routes: Arc<Vec<OperationRoute>>,
}

impl FrontDoor {
    /// The front door of `state`'s server, with the routes of `document` (the generated
    /// spec) priced from `operations`.
    pub fn new(state: Arc<AppState>, document: &Value, operations: &'static [Operation]) -> Self {
        let mut routes = Vec::new();
        for (path, item) in document["paths"].as_object().into_iter().flatten() {
            for (method, spec) in item.as_object().into_iter().flatten() {
                let (Ok(method), Some(id)) = (
                    method.to_ascii_uppercase().parse::<Method>(),
                    spec["operationId"].as_str(),
                ) else {
                    continue;
                };
                let Some(operation) = operations.iter().find(|op| op.id == id) else {
                    // The tests check every operation is priced; unpriced, it is charged
                    // like an unknown route.
                    continue;
                };
                let query = spec["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|p| p["in"] == "query")
                    .filter_map(|p| p["name"].as_str().map(str::to_owned))
                    .collect();
                routes.push(OperationRoute {
                    template: RouteTemplate::new(path),
                    method,
                    operation,
                    query,
                });
            }
        }
        Self {
            state,
            routes: Arc::new(routes),
        }
    }
}

impl<E: Endpoint> Middleware<E> for FrontDoor {
    type Output = FrontDoorEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        let policies = self.state.limiter.as_ref().map(Limiter::policies);
        let value = |header: &str| HeaderValue::from_str(header).ok();
        FrontDoorEndpoint {
            inner,
            door: self.clone(),
            authenticated_policy: policies.and_then(|p| value(p.authenticated_header())),
            anonymous_policy: policies.and_then(|p| value(p.anonymous_header())),
        }
    }
}

/// The [`FrontDoor`] endpoint.
pub struct FrontDoorEndpoint<E> {
    inner: E,
    door: FrontDoor,
    /// `RateLimit-Policy` as every authenticated response sends it, made once.
    authenticated_policy: Option<HeaderValue>,
    /// `RateLimit-Policy` as every response keyed by client address sends it.
    anonymous_policy: Option<HeaderValue>,
}

/// What the front door decided for a request that goes on.
enum Admitted {
    /// No valid credential, and no operation to answer 401 for: charged to the client
    /// address (when limits are on).
    Anonymous(Option<Decision>),
    /// A verified credential, charged (when limits are on).
    Authenticated(Option<RequestCharge>),
}

impl<E: Endpoint> Endpoint for FrontDoorEndpoint<E> {
    type Output = Response;

    // One await on the inner endpoint, whatever the path: the inner future is the bulk of
    // this one's size, and each further state holding it would be copied along with every
    // move of the whole middleware stack's future.
    async fn call(&self, mut req: Request) -> Result<Self::Output> {
        let path = req.uri().path();
        let admitted = if path == "/v1" || path.starts_with("/v1/") {
            match self.admit(&mut req).await {
                Ok(admitted) => Some(admitted),
                Err(answered) => return Ok(answered),
            }
        } else {
            let ip = self.client_ip(&req);
            req.extensions_mut().insert(Who::Anonymous(ip));
            None
        };
        let ctx = admitted.as_ref().map(|_| problem_context(&req));
        let result = self.inner.call(req).await;
        let (Some(admitted), Some(ctx)) = (admitted, ctx) else {
            return result.map(IntoResponse::into_response);
        };
        let mut resp = match result {
            Ok(resp) => resp.into_response(),
            Err(err) => render_error(err, &ctx),
        };
        match admitted {
            Admitted::Anonymous(Some(decision)) => {
                let policy = self.anonymous_policy.as_ref();
                write_headers(&mut resp, &decision, decision.cost(), policy);
            }
            Admitted::Authenticated(Some(charge)) => self.settle(&charge, &mut resp).await,
            Admitted::Anonymous(None) | Admitted::Authenticated(None) => {}
        }
        Ok(resp)
    }
}

impl<E> FrontDoorEndpoint<E> {
    /// Steps 1–3 of the module docs. `Err` is the answer of a request refused here.
    async fn admit(&self, req: &mut Request) -> Result<Admitted, Response> {
        let route = self.route(req);
        let limiter = self.door.state.limiter.as_ref();
        let verified = match bearer_token(req.headers()) {
            None => Err((
                Problem::unauthenticated("send `Authorization: Bearer <JWT or API key>`"),
                None,
            )),
            Some(token) => self.verify(token, limiter, req).await?,
        };
        let principal = match verified {
            Ok(principal) => principal,
            Err((problem, charged)) => {
                let decision = match (charged, limiter) {
                    (Some(decision), _) => Some(decision),
                    (None, Some(limiter)) => Some(self.charge_address(limiter, req).await?),
                    (None, None) => None,
                };
                let Some(_route) = route else {
                    // The router answers (404/405); the body is never read (dropped here,
                    // so no layer inside reads it either).
                    drop(req.take_body());
                    let ip = self.client_ip(req);
                    req.extensions_mut().insert(Who::Anonymous(ip));
                    return Ok(Admitted::Anonymous(decision));
                };
                let mut resp = problem.into_response_for(&problem_context(req));
                if let Some(decision) = &decision {
                    write_headers(
                        &mut resp,
                        decision,
                        decision.cost(),
                        self.anonymous_policy.as_ref(),
                    );
                }
                return Err(resp);
            }
        };

        let ctx = principal.ctx();
        tracing::Span::current().record("tenant", tracing::field::display(ctx.tenant()));
        if let Some(meta) = req.extensions().get::<RequestMeta>() {
            meta.set_tenant(ctx.tenant());
        }
        // The credential's id, built once: the admission share and the rate-limit key.
        let keys = CredentialKeys::of(&principal);
        let who = Who::credential(ctx.tenant().as_uuid(), keys.credential());
        let (operation, units, refused) = match route {
            Some(route) if !principal.has(route.operation.scope) => (
                "",
                FAILED,
                Some(crate::auth::insufficient_scope(route.operation.scope)),
            ),
            Some(route) => {
                let query = req.uri().query().unwrap_or_default();
                match route.unknown_parameters(query) {
                    Some(problem) => ("", FAILED, Some(problem)),
                    None => (route.operation.id, route.operation.price(query), None),
                }
            }
            None => ("", FAILED, None),
        };
        // A write while the storage is nearly full: refused before anything is charged or
        // read ([`crate::storage`]).
        if route.is_some()
            && is_write(req.method())
            && let Some(problem) = self.door.state.storage.refuse_write()
        {
            return Err(problem.into_response_for(&problem_context(req)));
        }
        let charge = match limiter {
            Some(limiter) => {
                let decision = limiter.check(&keys.key(), units).await;
                if !decision.allowed() {
                    return Err(self.refuse(&decision, req, self.authenticated_policy.as_ref()));
                }
                Some(RequestCharge::new(
                    limiter.clone(),
                    keys,
                    operation,
                    units,
                    decision,
                ))
            }
            None => None,
        };
        if let Some(problem) = refused {
            let mut resp = problem.into_response_for(&problem_context(req));
            if let Some(charge) = &charge {
                self.settle(charge, &mut resp).await;
            }
            return Err(resp);
        }
        let extensions = req.extensions_mut();
        extensions.insert(who);
        extensions.insert(Verified(principal));
        if let Some(charge) = &charge {
            extensions.insert(charge.clone());
        }
        Ok(Admitted::Authenticated(charge))
    }

    /// Settles what `charge` finally cost and writes the rate-limit headers on `resp`.
    async fn settle(&self, charge: &RequestCharge, resp: &mut Response) {
        let (charged, decision) = charge.settle().await;
        write_headers(resp, &decision, charged, self.authenticated_policy.as_ref());
    }

    /// The operation `req` names, if any.
    fn route(&self, req: &Request) -> Option<&OperationRoute> {
        let path = req.uri().path();
        // `HEAD` is served by the `GET` handler.
        let method = match *req.method() {
            Method::HEAD => &Method::GET,
            ref method => method,
        };
        // A literal path (`/v1/activities/feed`) is a resource of its own, never an `{id}`
        // of its parent: only its own routes may match it, as in the router.
        let literal = self
            .door
            .routes
            .iter()
            .any(|route| route.template.is_literal() && route.template.matches(path));
        self.door.routes.iter().find(|route| {
            route.method == method
                && route.template.matches(path)
                && (!literal || route.template.is_literal())
        })
    }

    /// Verifies `token`; an API key only the database can verify is paid for by the
    /// client address first. `Ok(Err((problem, decision)))` is a credential that did not
    /// verify, with the address's decision when it was charged already; `Err` is the 429 of
    /// an address with no budget left for the lookup.
    async fn verify(
        &self,
        token: &str,
        limiter: Option<&Limiter>,
        req: &Request,
    ) -> Result<Result<Principal, (Problem, Option<Decision>)>, Response> {
        let auth = &self.door.state.auth;
        let lookup = match auth.verify(token).await {
            Verification::Done(result) => return Ok(result.map_err(|problem| (problem, None))),
            Verification::Lookup(lookup) => lookup,
        };
        let Some(limiter) = limiter else {
            return Ok(auth.lookup(lookup).await.map_err(|problem| (problem, None)));
        };
        let ip = Key::Ip(self.client_ip(req));
        let decision = limiter.check(&ip, 1).await;
        if !decision.allowed() {
            return Err(self.refuse(&decision, req, self.anonymous_policy.as_ref()));
        }
        match auth.lookup(lookup).await {
            Ok(principal) => {
                // A valid key is held to its own budgets: the address gets its unit back.
                limiter.refund(&ip, 1).await;
                Ok(Ok(principal))
            }
            Err(problem) => Ok(Err((problem, Some(decision)))),
        }
    }

    /// A request without a valid credential costs its client address 1; `Err` is the 429
    /// when its budget is spent.
    async fn charge_address(&self, limiter: &Limiter, req: &Request) -> Result<Decision, Response> {
        let decision = limiter.check(&Key::Ip(self.client_ip(req)), 1).await;
        if decision.allowed() {
            Ok(decision)
        } else {
            Err(self.refuse(&decision, req, self.anonymous_policy.as_ref()))
        }
    }

    fn client_ip(&self, req: &Request) -> IpAddr {
        client_ip(
            req.remote_addr().as_socket_addr().map(|a| a.ip()),
            req.headers(),
            &self.door.state.settings.rate_limit.trusted_proxies,
        )
    }

    /// The 429 of a refused decision.
    fn refuse(&self, decision: &Decision, req: &Request, policy: Option<&HeaderValue>) -> Response {
        let name = decision.violated().map_or("unknown", |p| p.name());
        self.door.state.metrics.rate_limited(name);
        let mut resp = Problem::quota_exceeded(decision).into_response_for(&problem_context(req));
        write_headers(&mut resp, decision, 0, policy);
        resp
    }
}

/// Whether `method` writes.
fn is_write(method: &Method) -> bool {
    matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    )
}

/// The bearer token of `headers`, exactly as the operations' `Bearer` extractor reads it
/// (the first `Authorization` field; the scheme in any case, then one space; visible
/// ASCII; blanks before the token skipped) — a test holds the two together — without its
/// copy and typed-header machinery.
pub(crate) fn bearer_token(headers: &HeaderMap) -> Option<&str> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
