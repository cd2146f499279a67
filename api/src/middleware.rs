//! The middleware stack, outermost first (see [`crate::server::app`]):
//!
//! 1. [`Edge`]: request id (echo a sane `X-Request-Id` or make one), a tracing span
//!    carrying it (and the tenant once authenticated), metrics, one access-log line per
//!    request, problem rendering for what CORS itself refuses, and `Vary: Origin` on
//!    every response when CORS is on.
//! 2. CORS (poem's), only when origins are configured.
//! 3. [`RequestHead`]: checks on the request head before any work — the length of the
//!    URI (414) and of the header fields (431), the `Idempotency-Key` format, and that
//!    `If-Match`/`If-None-Match` are one field of visible ASCII (400).
//! 4. [`Methods`]: `OPTIONS` answered with the route's `Allow` (204), and `Allow` on
//!    every 405.
//! 5. [`Problems`]: the request timeout, and every error rendered as problem+json —
//!    *inside* CORS, so browsers can read error bodies.
//! 6. [`crate::front::FrontDoor`]: on `/v1`, the credential, the scope and the rate limit,
//!    before the body is read; the `RateLimit*` headers on the way out.
//! 7. Compression (poem's; gzip and brotli, request and response).
//! 8. [`crate::admission::Admission`]: the body, read under a deadline and a size cap
//!    (after decompression), then a slot, handed out fairly, held while the request is
//!    served.
//!
//! Layers inside CORS answer with rendered problem responses (never `Err`), so that CORS
//! adds its headers to them.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use poem::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use poem::{Endpoint, IntoResponse, Middleware, Request, Response, Result};
use poem_openapi::OperationId;
use tenancy::TenantId;
use tracing::Instrument as _;

use crate::metrics::Metrics;
use crate::problem::{self, Problem, ProblemContext, kind};

/// The request id header.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// What the edge learns about a request, shared with inner layers through the request's
/// extensions.
#[derive(Debug, Clone)]
pub struct RequestMeta(Arc<MetaInner>);

#[derive(Debug)]
struct MetaInner {
    request_id: String,
    tenant: OnceLock<TenantId>,
}

impl RequestMeta {
    /// The request id.
    pub fn request_id(&self) -> &str {
        &self.0.request_id
    }

    /// Records the authenticated tenant (for the access log).
    pub fn set_tenant(&self, tenant: TenantId) {
        let _ = self.0.tenant.set(tenant);
    }

    fn tenant(&self) -> Option<TenantId> {
        self.0.tenant.get().copied()
    }
}

/// The problem context of `req`.
pub fn problem_context(req: &Request) -> ProblemContext {
    ProblemContext {
        path: req.uri().path().to_owned(),
        request_id: req
            .extensions()
            .get::<RequestMeta>()
            .map(|m| m.request_id().to_owned()),
    }
}

/// A client-supplied request id is echoed only if it is short and plain, so it cannot
/// inject anything into logs or headers.
fn sane_request_id(value: &HeaderValue) -> Option<String> {
    let s = value.to_str().ok()?;
    let ok = (1..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    ok.then(|| s.to_owned())
}

/// The outermost layer; see the module docs.
#[derive(Clone)]
pub struct Edge {
    /// Where request metrics go.
    pub metrics: Metrics,
    /// Whether CORS is on: then every response depends on the request's `Origin` (CORS
    /// headers or not, a 403 for an origin that is not allowed) and says so with
    /// `Vary: Origin`, so that no cache hands one origin's answer to another. poem's CORS
    /// adds it only for some origins and never on preflights.
    pub vary_origin: bool,
}

/// Whether the `Vary` fields of `headers` already cover the (lower-case) field `field`
/// (named, or `*`).
fn varies_on(headers: &HeaderMap, field: &str) -> bool {
    headers
        .get_all(header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|name| name == "*" || name.eq_ignore_ascii_case(field))
}

/// `err` as a problem response, keeping the operation id for metrics.
pub(crate) fn render_error(err: poem::Error, ctx: &ProblemContext) -> Response {
    let operation = err.data::<OperationId>().copied();
    let mut resp = problem::render(err, ctx);
    if let Some(operation) = operation {
        resp.set_data(operation);
    }
    resp
}

impl<E: Endpoint> Middleware<E> for Edge {
    type Output = EdgeEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        EdgeEndpoint {
            inner,
            edge: self.clone(),
        }
    }
}

/// The [`Edge`] endpoint.
pub struct EdgeEndpoint<E> {
    inner: E,
    edge: Edge,
}

impl<E: Endpoint> Endpoint for EdgeEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> Result<Self::Output> {
        let started = Instant::now();
        let request_id = req
            .headers()
            .get(REQUEST_ID)
            .and_then(sane_request_id)
            .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
        let meta = RequestMeta(Arc::new(MetaInner {
            request_id: request_id.clone(),
            tenant: OnceLock::new(),
        }));
        req.extensions_mut().insert(meta.clone());
        let ctx = problem_context(&req);
        let method = req.method().to_string();
        let span = tracing::info_span!(
            "request",
            request_id = %request_id,
            method = %method,
            path = %ctx.path,
            tenant = tracing::field::Empty,
        );
        self.edge.metrics.started();

        let outcome = self.inner.call(req).instrument(span.clone()).await;
        let mut resp = span.in_scope(|| match outcome {
            Ok(resp) => resp.into_response(),
            Err(err) => render_error(err, &ctx),
        });
        if let Ok(value) = HeaderValue::from_str(&request_id) {
            resp.headers_mut().insert(REQUEST_ID, value);
        }
        if self.edge.vary_origin && !varies_on(resp.headers(), "origin") {
            // Appended: a `Vary` already there (another header's) stays.
            resp.headers_mut()
                .append(header::VARY, HeaderValue::from_static("Origin"));
        }
        if !varies_on(resp.headers(), "accept-encoding") {
            // Any answer may come compressed or not, by the request's `Accept-Encoding`.
            resp.headers_mut()
                .append(header::VARY, HeaderValue::from_static("Accept-Encoding"));
        }

        let operation = resp.data::<OperationId>().map_or("other", |op| op.0);
        let status = resp.status().as_u16();
        let elapsed = started.elapsed();
        self.edge
            .metrics
            .finished(operation, &method, status, elapsed.as_secs_f64());
        if let Some(tenant) = meta.tenant() {
            span.record("tenant", tracing::field::display(tenant));
        }
        span.in_scope(|| {
            tracing::info!(
                target: "tenantry::access",
                status,
                operation,
                latency_ms = elapsed.as_secs_f64() * 1000.0,
                "request completed"
            );
        });
        Ok(resp)
    }
}

/// The longest request target (path and query) accepted, in bytes; longer is a 414
/// problem. Cursors and filters fit many times over.
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// The largest header section accepted, in bytes (each field counted as
/// `name: value` + CRLF); larger is a 431 problem.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Checks on the request head, before any work (see the module docs): the URI and header
/// sizes, and the `Idempotency-Key` format ([`crate::http::check_idempotency_key`]).
///
/// Why the app checks sizes hyper checks too: hyper answers a request head it will not
/// parse itself, with a bare status and no body — 414 past 65,534 bytes of URI, 431 past
/// its ~400 KiB read buffer or 100 header fields (HTTP/1.1; its constants, which poem 3
/// does not let us configure). Below those, these lower limits answer with a problem.
/// Beyond them a client still gets hyper's bare 414/431: the request never reaches poem.
#[derive(Clone, Copy, Debug, Default)]
pub struct RequestHead;

impl<E: Endpoint> Middleware<E> for RequestHead {
    type Output = RequestHeadEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        RequestHeadEndpoint { inner }
    }
}

/// The [`RequestHead`] endpoint.
pub struct RequestHeadEndpoint<E> {
    inner: E,
}

/// The problem with `req`'s head, if any.
fn head_problem(req: &Request) -> Option<Problem> {
    let uri = req
        .uri()
        .path_and_query()
        .map_or(0, |target| target.as_str().len());
    if uri > MAX_URI_BYTES {
        return Some(Problem::new(
            StatusCode::URI_TOO_LONG,
            kind::URI_TOO_LONG,
            format!("the request target is {uri} bytes long; at most {MAX_URI_BYTES} are accepted"),
        ));
    }
    let headers: usize = req
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if headers > MAX_HEADER_BYTES {
        return Some(Problem::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            kind::HEADERS_TOO_LARGE,
            format!(
                "the header fields are {headers} bytes together; at most {MAX_HEADER_BYTES} \
                 are accepted"
            ),
        ));
    }
    crate::http::check_idempotency_key(req.headers())
        .and_then(|()| check_preconditions(req.headers()))
        .err()
}

/// `If-Match` and `If-None-Match` must be one field of visible ASCII: poem's typed header
/// extraction drops any other value as absent, which would turn a conditional write into
/// an unconditional one (a lost update). Their content is checked by the operations.
fn check_preconditions(headers: &HeaderMap) -> std::result::Result<(), Problem> {
    for name in [header::IF_MATCH, header::IF_NONE_MATCH] {
        let mut values = headers.get_all(&name).iter();
        let ok = match (values.next(), values.next()) {
            (None, _) => true,
            (Some(value), None) => value.to_str().is_ok(),
            (Some(_), Some(_)) => false,
        };
        if !ok {
            let field = if name == header::IF_MATCH {
                "If-Match"
            } else {
                "If-None-Match"
            };
            return Err(Problem::invalid_parameter(
                field,
                "must be one ETag returned by this API, like \"3\", in one header field",
            ));
        }
    }
    Ok(())
}

impl<E: Endpoint> Endpoint for RequestHeadEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> Result<Self::Output> {
        if let Some(problem) = head_problem(&req) {
            return Ok(problem.into_response_for(&problem_context(&req)));
        }
        self.inner.call(req).await.map(IntoResponse::into_response)
    }
}

/// The methods each route answers (see the module docs): `OPTIONS` on a route is a 204
/// with its `Allow`, and every 405 carries it. poem's router knows neither.
#[derive(Clone, Debug, Default)]
pub struct Methods(Arc<Vec<(RouteTemplate, HeaderValue)>>);

/// A route template as the spec writes it (`/v1/people/{id}`), for matching paths.
#[derive(Debug, Clone)]
pub struct RouteTemplate(Vec<Segment>);

/// One segment of a route template.
#[derive(Debug, Clone)]
enum Segment {
    /// Matches itself.
    Literal(String),
    /// `{name}`: matches any non-empty segment.
    Param,
}

impl RouteTemplate {
    /// The template `template`.
    pub fn new(template: &str) -> Self {
        Self(
            template
                .split('/')
                .map(|segment| {
                    if segment.starts_with('{') && segment.ends_with('}') {
                        Segment::Param
                    } else {
                        Segment::Literal(segment.to_owned())
                    }
                })
                .collect(),
        )
    }

    /// Whether the template has no parameter (`/v1/activities/feed`).
    pub fn is_literal(&self) -> bool {
        self.0.iter().all(|s| matches!(s, Segment::Literal(_)))
    }

    /// Whether `path` matches the template.
    pub fn matches(&self, path: &str) -> bool {
        let mut parts = path.split('/');
        self.0.iter().all(|segment| match (segment, parts.next()) {
            (Segment::Literal(literal), Some(part)) => literal == part,
            (Segment::Param, Some(part)) => !part.is_empty(),
            (_, None) => false,
        }) && parts.next().is_none()
    }
}

impl Methods {
    /// The table for `routes`: each a path template (`/v1/people/{id}`, as the spec
    /// writes it) with the methods it serves. `HEAD` is added where `GET` is (poem answers
    /// it with the `GET` handler), `OPTIONS` everywhere (this layer answers it).
    pub fn new<'a>(routes: impl IntoIterator<Item = (&'a str, Vec<Method>)>) -> Self {
        const ORDER: [Method; 7] = [
            Method::GET,
            Method::HEAD,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
        ];
        let table = routes
            .into_iter()
            .map(|(template, mut methods)| {
                if methods.contains(&Method::GET) {
                    methods.push(Method::HEAD);
                }
                methods.push(Method::OPTIONS);
                let allow = ORDER
                    .iter()
                    .filter(|m| methods.contains(m))
                    .map(Method::as_str)
                    .collect::<Vec<_>>()
                    .join(", ");
                let allow = HeaderValue::from_str(&allow)
                    .unwrap_or_else(|_| HeaderValue::from_static("OPTIONS"));
                (RouteTemplate::new(template), allow)
            })
            .collect();
        Self(Arc::new(table))
    }

    /// The `Allow` value of the route `path` matches, if any.
    fn allow(&self, path: &str) -> Option<&HeaderValue> {
        self.0
            .iter()
            .find_map(|(template, allow)| template.matches(path).then_some(allow))
    }
}

impl<E: Endpoint> Middleware<E> for Methods {
    type Output = MethodsEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        MethodsEndpoint {
            inner,
            methods: self.clone(),
        }
    }
}

/// The [`Methods`] endpoint.
pub struct MethodsEndpoint<E> {
    inner: E,
    methods: Methods,
}

impl<E: Endpoint> Endpoint for MethodsEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> Result<Self::Output> {
        let allow = self.methods.allow(req.uri().path()).cloned();
        if let (Some(allow), &Method::OPTIONS) = (&allow, req.method()) {
            // A CORS preflight never gets here (CORS answers it); this is a client asking
            // what the route supports (RFC 9110, 9.3.7).
            return Ok(Response::builder()
                .status(StatusCode::NO_CONTENT)
                .header(header::ALLOW, allow.clone())
                .finish());
        }
        let mut resp = self.inner.call(req).await?.into_response();
        if let (Some(allow), StatusCode::METHOD_NOT_ALLOWED) = (allow, resp.status()) {
            resp.headers_mut().insert(header::ALLOW, allow);
        }
        Ok(resp)
    }
}

/// The request timeout, and errors rendered as problem+json responses (inside CORS; see
/// the module docs).
#[derive(Clone, Copy, Debug)]
pub struct Problems {
    /// How long a request may run before it is abandoned with 503 (dropping its future
    /// rolls back an open transaction).
    pub timeout: Duration,
}

impl<E: Endpoint> Middleware<E> for Problems {
    type Output = ProblemsEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        ProblemsEndpoint {
            inner,
            timeout: self.timeout,
        }
    }
}

/// The [`Problems`] endpoint.
pub struct ProblemsEndpoint<E> {
    inner: E,
    timeout: Duration,
}

impl<E: Endpoint> Endpoint for ProblemsEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> Result<Self::Output> {
        let ctx = problem_context(&req);
        match tokio::time::timeout(self.timeout, self.inner.call(req)).await {
            Ok(Ok(resp)) => Ok(resp.into_response()),
            Ok(Err(err)) => Ok(render_error(err, &ctx)),
            Err(_elapsed) => {
                tracing::warn!(timeout_ms = self.timeout.as_millis(), "request timed out");
                Ok(Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    kind::UNAVAILABLE,
                    "the request took too long and was abandoned",
                )
                .into_response_for(&ctx))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_short_request_ids_are_echoed() {
        let ok = HeaderValue::from_static("abc-123_x.y:z");
        assert_eq!(sane_request_id(&ok).as_deref(), Some("abc-123_x.y:z"));
        for bad in ["", "has space", "new\u{7f}line", "<script>"] {
            if let Ok(value) = HeaderValue::from_str(bad) {
                assert!(sane_request_id(&value).is_none(), "{bad}");
            }
        }
        let long =
            HeaderValue::from_str(&"a".repeat(129)).unwrap_or(HeaderValue::from_static("x y"));
        assert!(sane_request_id(&long).is_none());
    }
}
