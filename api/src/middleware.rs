//! The middleware stack, outermost first (see [`crate::server::app`]):
//!
//! 1. [`Edge`]: request id (echo a sane `X-Request-Id` or make one), a tracing span
//!    carrying it (and the tenant once authenticated), metrics, one access-log line per
//!    request, and problem rendering for what CORS itself refuses.
//! 2. CORS (poem's), only when origins are configured.
//! 3. [`Problems`]: the request timeout, and every error rendered as problem+json —
//!    *inside* CORS, so browsers can read error bodies.
//! 4. [`crate::limits::RateLimit`]: on `/v1`, verifies the credential once, keys the rate
//!    limits by tenant + credential (client IP without one) and writes the `RateLimit*`
//!    headers — inside the timeout, outside compression, so every answer gets them.
//! 5. Compression (poem's; gzip and brotli, request and response).
//! 6. [`BodyLimit`]: caps the (decompressed) request body.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use poem::http::{HeaderName, HeaderValue, StatusCode};
use poem::{Body, Endpoint, IntoResponse, Middleware, Request, Response, Result};
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
