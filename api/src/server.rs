//! The HTTP application: routes, the middleware stack, and serving with graceful
//! shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use poem::endpoint::make_sync;
use poem::http::{HeaderValue, Method, StatusCode, header};
use poem::listener::{Acceptor as _, TcpAcceptor};
use poem::middleware::{Compression, Cors};
use poem::web::{CompressionAlgo, Data, Html};
use poem::{Endpoint, EndpointExt as _, IntoResponse, Response, Route, Server, get, handler};

use crate::limits::RateLimit;
use crate::middleware::{Admission, BodyLimit, Edge, Problems, REQUEST_ID};
use crate::openapi;
use crate::problem::{Problem, kind};
use crate::state::AppState;

/// The whole application as one endpoint.
pub fn app(state: Arc<AppState>) -> impl Endpoint<Output = Response> {
    let service = openapi::service(openapi::api(&state));
    let spec = openapi::pretty(&openapi::document(&service));
    let docs = openapi::docs_html(&service);
    let settings = &state.settings;

    let route = Route::new()
        .nest("/", service)
        .at(
            "/openapi.json",
            get(make_sync(move |_| {
                Response::builder()
                    .content_type("application/json")
                    .body(spec.clone())
            })),
        )
        .at("/docs", get(make_sync(move |_| Html(docs.clone()))))
        .at("/healthz", get(healthz))
        .at("/readyz", get(readyz))
        .at("/metrics", get(metrics));

    let origins = settings.cors_origins.clone();
    route
        .data(state.auth.clone())
        .data(state.clone())
        .with(BodyLimit {
            max: settings.body_limit_bytes,
        })
        .with(Compression::new().algorithms([CompressionAlgo::GZIP, CompressionAlgo::BR]))
        .with(RateLimit {
            state: state.clone(),
        })
        .with(Problems {
            timeout: settings.request_timeout,
        })
        .with(Admission::new(settings.admission, state.metrics.clone()))
        .with_if(!origins.is_empty(), cors(&origins))
        .with(Edge {
            metrics: state.metrics.clone(),
        })
}

/// CORS for the configured origins (`*` allows any).
fn cors(origins: &[String]) -> Cors {
    let mut cors = Cors::new()
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers([
            header::AUTHORIZATION.as_str(),
            header::CONTENT_TYPE.as_str(),
            header::IF_MATCH.as_str(),
            header::IF_NONE_MATCH.as_str(),
            "idempotency-key",
            REQUEST_ID.as_str(),
        ])
        .expose_headers([
            header::ETAG.as_str(),
            header::LINK.as_str(),
            header::LOCATION.as_str(),
            header::RETRY_AFTER.as_str(),
            REQUEST_ID.as_str(),
            "idempotent-replayed",
            "ratelimit-policy",
            "ratelimit",
            "x-ratelimit-cost",
        ])
        .max_age(600);
    if !origins.iter().any(|o| o == "*") {
        cors = cors.allow_origins(origins.iter().map(String::as_str));
    }
    cors
}

/// Liveness: the process answers.
#[handler]
fn healthz() -> Response {
    Response::builder()
        .content_type("application/json")
        .body(r#"{"status":"ok"}"#)
}

/// Readiness: the database answers.
#[handler]
async fn readyz(state: Data<&Arc<AppState>>) -> Response {
    match state.db.ping().await {
        Ok(()) => Response::builder()
            .content_type("application/json")
            .body(r#"{"status":"ready"}"#),
        Err(e) => {
            crate::problem::log_internal(&e);
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                kind::UNAVAILABLE,
                "the database is not reachable",
            )
            .into_response()
        }
    }
}

/// Prometheus metrics.
#[handler]
fn metrics(state: Data<&Arc<AppState>>) -> Response {
    state
        .metrics
        .observe_limiter(state.limiter.as_ref().map(ratelimit::Limiter::stats));
    let mut resp = state.metrics.render().into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    resp
}

/// A bound, not yet serving, server.
pub struct Bound {
    acceptor: TcpAcceptor,
    /// The address it listens on (with the real port when bound to port 0).
    pub addr: SocketAddr,
}

/// Binds `addr`.
///
/// # Errors
/// When the address cannot be bound.
pub async fn bind(addr: SocketAddr) -> std::io::Result<Bound> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let acceptor = TcpAcceptor::from_tokio(listener)?;
    let _ = acceptor.local_addr();
    Ok(Bound { acceptor, addr })
}

/// Serves `state` on `bound` until `shutdown` completes, then drains in-flight requests
/// (for at most 30 seconds).
///
/// # Errors
/// When the server fails.
pub async fn serve(
    bound: Bound,
    state: Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> std::io::Result<()> {
    Server::new_with_acceptor(bound.acceptor)
        .run_with_graceful_shutdown(app(state), shutdown, Some(Duration::from_secs(30)))
        .await
}
