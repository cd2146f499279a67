//! The middleware stack, outermost first (see [`crate::server::app`]):
//!
//! 1. [`Edge`]: request id (echo a sane `X-Request-Id` or make one), a tracing span
//!    carrying it (and the tenant once authenticated), metrics, one access-log line per
//!    request, problem rendering for what CORS itself refuses, and `Vary: Origin` on
//!    every response when CORS is on.
//! 2. CORS (poem's), only when origins are configured.
//! 3. [`RequestHead`]: checks on the request head before any work — the length of the
//!    URI (414) and of the header fields (431), and the `Idempotency-Key` format (400).
//! 4. [`Methods`]: `OPTIONS` answered with the route's `Allow` (204), and `Allow` on
//!    every 405.
//! 5. [`Admission`]: overload protection — at most `max_in_flight` requests run at once,
//!    at most `max_queued` more wait (each at most `queue_timeout`), and the rest are shed
//!    at once with 503 + `Retry-After`, so the server never queues without bound. The
//!    probes and `/metrics` are never shed.
//! 6. [`Problems`]: the request timeout, and every error rendered as problem+json —
//!    *inside* CORS, so browsers can read error bodies.
//! 7. [`crate::limits::RateLimit`]: on `/v1`, verifies the credential once, keys the rate
//!    limits by tenant + credential (client IP without one) and writes the `RateLimit*`
//!    headers — inside the timeout, outside compression, so every answer gets them.
//! 8. Compression (poem's; gzip and brotli, request and response).
//! 9. [`BodyLimit`]: caps the (decompressed) request body.
//!
//! Layers inside CORS answer with rendered problem responses (never `Err`), so that CORS
//! adds its headers to them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use poem::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use poem::{Body, Endpoint, IntoResponse, Middleware, Request, Response, Result};
use poem_openapi::OperationId;
use tenancy::TenantId;
use tokio::sync::Semaphore;
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

/// Whether the `Vary` fields of `headers` already cover `Origin` (named, or `*`).
fn varies_on_origin(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|name| name == "*" || name.eq_ignore_ascii_case("origin"))
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
        if self.edge.vary_origin && !varies_on_origin(resp.headers()) {
            // Appended: a `Vary` already there (another header's) stays.
            resp.headers_mut()
                .append(header::VARY, HeaderValue::from_static("Origin"));
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
    crate::http::check_idempotency_key(req.headers()).err()
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
pub struct Methods(Arc<Vec<(Vec<Segment>, HeaderValue)>>);

/// One segment of a route template.
#[derive(Debug)]
enum Segment {
    /// Matches itself.
    Literal(String),
    /// `{name}`: matches any non-empty segment.
    Param,
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
                let segments = template
                    .split('/')
                    .map(|segment| {
                        if segment.starts_with('{') && segment.ends_with('}') {
                            Segment::Param
                        } else {
                            Segment::Literal(segment.to_owned())
                        }
                    })
                    .collect();
                let allow = HeaderValue::from_str(&allow)
                    .unwrap_or_else(|_| HeaderValue::from_static("OPTIONS"));
                (segments, allow)
            })
            .collect();
        Self(Arc::new(table))
    }

    /// The `Allow` value of the route `path` matches, if any.
    fn allow(&self, path: &str) -> Option<&HeaderValue> {
        self.0.iter().find_map(|(segments, allow)| {
            let mut parts = path.split('/');
            let matched = segments
                .iter()
                .all(|segment| match (segment, parts.next()) {
                    (Segment::Literal(literal), Some(part)) => literal == part,
                    (Segment::Param, Some(part)) => !part.is_empty(),
                    (_, None) => false,
                })
                && parts.next().is_none();
            matched.then_some(allow)
        })
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

/// Overload protection (see the module docs): a bounded number of requests run, a
/// bounded number wait for a bounded time, the rest are shed with 503 + `Retry-After`.
///
/// Shedding early is cheaper than queuing: a request refused here costs no credential
/// check, no rate-limit call and no database connection, and the client learns at once
/// that it should back off instead of timing out after many seconds.
#[derive(Clone, Debug)]
pub struct Admission(Arc<AdmissionInner>);

#[derive(Debug)]
struct AdmissionInner {
    running: Semaphore,
    waiting: AtomicUsize,
    max_queued: usize,
    queue_timeout: Duration,
    metrics: Metrics,
}

/// The limits of [`Admission`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdmissionLimits {
    /// Requests served at once (at least 1).
    pub max_in_flight: usize,
    /// Requests that may wait for a slot; more are shed at once.
    pub max_queued: usize,
    /// How long a request may wait for a slot before it is shed.
    pub queue_timeout: Duration,
}

impl Admission {
    /// Admission control with `limits`; sheds are counted in `metrics`.
    pub fn new(limits: AdmissionLimits, metrics: Metrics) -> Self {
        Self(Arc::new(AdmissionInner {
            running: Semaphore::new(limits.max_in_flight.clamp(1, Semaphore::MAX_PERMITS)),
            waiting: AtomicUsize::new(0),
            max_queued: limits.max_queued,
            queue_timeout: limits.queue_timeout,
            metrics,
        }))
    }

    /// Waits for a slot; `None` when the request must be shed.
    async fn admit(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        let inner = &*self.0;
        if let Ok(permit) = inner.running.try_acquire() {
            return Some(permit);
        }
        // Take a place in the queue, if one is left; the guard gives it back however the
        // wait ends (admitted, timed out, or the client went away and the future dropped).
        let queued = inner
            .waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < inner.max_queued).then_some(n + 1)
            })
            .is_ok();
        if !queued {
            return None;
        }
        struct Place<'a>(&'a AtomicUsize);
        impl Drop for Place<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::AcqRel);
            }
        }
        let _place = Place(&inner.waiting);
        match tokio::time::timeout(inner.queue_timeout, inner.running.acquire()).await {
            Ok(Ok(permit)) => Some(permit),
            // Timed out (or the semaphore closed, which never happens): shed.
            Ok(Err(_)) | Err(_) => None,
        }
    }
}

/// Paths that are never shed: a liveness probe failing under load would get a busy
/// instance restarted, which only adds to the overload.
fn never_shed(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/metrics")
}

impl<E: Endpoint> Middleware<E> for Admission {
    type Output = AdmissionEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        AdmissionEndpoint {
            inner,
            admission: self.clone(),
        }
    }
}

/// The [`Admission`] endpoint.
pub struct AdmissionEndpoint<E> {
    inner: E,
    admission: Admission,
}

impl<E: Endpoint> Endpoint for AdmissionEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> Result<Self::Output> {
        if never_shed(req.uri().path()) {
            return self.inner.call(req).await.map(IntoResponse::into_response);
        }
        let Some(_slot) = self.admission.admit().await else {
            self.admission.0.metrics.shed();
            tracing::warn!("overloaded: request shed");
            return Ok(Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                kind::UNAVAILABLE,
                "the server is overloaded; retry after Retry-After seconds",
            )
            .into_response_for(&problem_context(&req)));
        };
        self.inner.call(req).await.map(IntoResponse::into_response)
    }
}

/// Caps the request body at `max` bytes: 413 when `Content-Length` says more, or when
/// a chunked or compressed body turns out longer. Bodies are buffered (JSON only).
#[derive(Clone, Copy, Debug)]
pub struct BodyLimit {
    /// The cap in bytes.
    pub max: usize,
}

impl<E: Endpoint> Middleware<E> for BodyLimit {
    type Output = BodyLimitEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        BodyLimitEndpoint {
            inner,
            max: self.max,
        }
    }
}

/// The [`BodyLimit`] endpoint.
pub struct BodyLimitEndpoint<E> {
    inner: E,
    max: usize,
}

impl<E: Endpoint> Endpoint for BodyLimitEndpoint<E> {
    type Output = E::Output;

    async fn call(&self, mut req: Request) -> Result<Self::Output> {
        let declared = req
            .headers()
            .get(poem::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > self.max as u64) {
            return Err(problem::too_large().into());
        }
        let body = req.take_body();
        if !body.is_empty() {
            let bytes = body.into_bytes_limit(self.max).await?;
            req.set_body(Body::from_bytes(bytes));
        }
        self.inner.call(req).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use poem::EndpointExt as _;
    use std::sync::Mutex;
    use tokio::sync::{mpsc, oneshot};

    /// An endpoint that reports each request it starts and answers only when released.
    #[derive(Clone)]
    struct Gate {
        entered: mpsc::UnboundedSender<()>,
        releases: Arc<Mutex<Vec<oneshot::Receiver<()>>>>,
    }

    impl Endpoint for Gate {
        type Output = Response;

        async fn call(&self, _req: Request) -> Result<Response> {
            let release = self.releases.lock().unwrap().pop();
            let _ = self.entered.send(());
            if let Some(release) = release {
                let _ = release.await;
            }
            Ok(Response::builder().status(StatusCode::OK).finish())
        }
    }

    /// An [`Admission`]-wrapped [`Gate`]: `gates` requests block until their sender fires.
    fn gated(
        limits: AdmissionLimits,
        gates: usize,
    ) -> (
        Arc<impl Endpoint<Output = Response>>,
        Admission,
        mpsc::UnboundedReceiver<()>,
        Vec<oneshot::Sender<()>>,
    ) {
        let (tx, rx) = mpsc::unbounded_channel();
        let (senders, receivers): (Vec<_>, Vec<_>) = (0..gates).map(|_| oneshot::channel()).unzip();
        let gate = Gate {
            entered: tx,
            releases: Arc::new(Mutex::new(receivers)),
        };
        let admission = Admission::new(limits, Metrics::new().unwrap());
        let ep = Arc::new(gate.with(admission.clone()));
        (ep, admission, rx, senders)
    }

    fn get(path: &str) -> Request {
        Request::builder().uri(path.parse().unwrap()).finish()
    }

    async fn queued_until(admission: &Admission, n: usize) {
        while admission.0.waiting.load(Ordering::Acquire) != n {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn sheds_past_the_queue_and_serves_the_queued_once_a_slot_frees() {
        let limits = AdmissionLimits {
            max_in_flight: 1,
            max_queued: 1,
            queue_timeout: Duration::from_secs(3600),
        };
        let (ep, admission, mut entered, mut release) = gated(limits, 1);
        let first = tokio::spawn({
            let ep = ep.clone();
            async move { ep.call(get("/v1/people")).await }
        });
        entered.recv().await.unwrap();
        let second = tokio::spawn({
            let ep = ep.clone();
            async move { ep.call(get("/v1/people")).await }
        });
        queued_until(&admission, 1).await;

        // Slot taken, queue full: shed at once, as a problem with Retry-After.
        let shed = ep.call(get("/v1/people")).await.unwrap();
        assert_eq!(shed.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(shed.headers()["retry-after"], "1");
        assert_eq!(shed.headers()["content-type"], problem::PROBLEM_JSON);
        let body = shed.into_body().into_string().await.unwrap();
        assert!(body.contains("overloaded"), "{body}");
        // The probes are never shed.
        let probe = ep.call(get("/healthz")).await.unwrap();
        assert_eq!(probe.status(), StatusCode::OK);
        entered.recv().await.unwrap(); // the probe ran

        // The first finishes; the queued one gets its slot and is served.
        release.pop().unwrap().send(()).unwrap();
        assert_eq!(first.await.unwrap().unwrap().status(), StatusCode::OK);
        assert_eq!(second.await.unwrap().unwrap().status(), StatusCode::OK);
        assert_eq!(admission.0.waiting.load(Ordering::Acquire), 0);
        assert_eq!(admission.0.running.available_permits(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_queued_request_is_shed_after_the_queue_timeout() {
        let limits = AdmissionLimits {
            max_in_flight: 1,
            max_queued: 4,
            queue_timeout: Duration::from_millis(250),
        };
        let (ep, admission, mut entered, _release) = gated(limits, 1);
        let _first = tokio::spawn({
            let ep = ep.clone();
            async move { ep.call(get("/v1/people")).await }
        });
        entered.recv().await.unwrap();
        // Paused time jumps ahead to the timeout once every task is idle.
        let waited = tokio::time::Instant::now();
        let resp = ep.call(get("/v1/people")).await.unwrap();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(waited.elapsed() >= Duration::from_millis(250));
        assert_eq!(admission.0.waiting.load(Ordering::Acquire), 0);
    }

    #[tokio::test]
    async fn a_client_that_gives_up_while_queued_frees_its_place() {
        let limits = AdmissionLimits {
            max_in_flight: 1,
            max_queued: 1,
            queue_timeout: Duration::from_secs(3600),
        };
        let (ep, admission, mut entered, _release) = gated(limits, 1);
        let _first = tokio::spawn({
            let ep = ep.clone();
            async move { ep.call(get("/v1/people")).await }
        });
        entered.recv().await.unwrap();
        let queued = tokio::spawn({
            let ep = ep.clone();
            async move { ep.call(get("/v1/people")).await }
        });
        queued_until(&admission, 1).await;
        queued.abort();
        let _ = queued.await;
        assert_eq!(admission.0.waiting.load(Ordering::Acquire), 0);
    }

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
