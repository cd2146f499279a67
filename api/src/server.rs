//! The HTTP application: routes, the middleware stack, and serving with graceful
//! shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use poem::endpoint::make_sync;
use poem::http::{HeaderValue, Method, StatusCode, header};
use poem::listener::TcpAcceptor;
use poem::middleware::{Compression, Cors};
use poem::web::{CompressionAlgo, Data};
use poem::{Endpoint, EndpointExt as _, IntoResponse, Response, Route, Server, get, handler};
use serde_json::Value;
use tokio::sync::watch;

use crate::admission::{Admission, AdmissionLimits};
use crate::front::FrontDoor;
use crate::middleware::{Edge, MAX_HEADER_BYTES, Methods, Problems, REQUEST_ID, RequestHead};
use crate::openapi;
use crate::problem::{Problem, kind};
use crate::state::AppState;

/// The routes served besides the API's own, each `GET` only.
const SYSTEM_ROUTES: [&str; 4] = ["/openapi.json", "/docs", "/healthz", "/readyz"];

/// The whole application as one endpoint, with `/metrics` unless
/// `TENANTRY_METRICS_BIND` moves it to a listener of its own.
pub fn app(state: Arc<AppState>) -> impl Endpoint<Output = Response> {
    let public_metrics = state.settings.metrics_bind.is_none();
    app_with(state, public_metrics)
}

/// The application; `/metrics` is one of its routes when `public_metrics`.
fn app_with(state: Arc<AppState>, public_metrics: bool) -> impl Endpoint<Output = Response> {
    let service = openapi::service(openapi::api());
    let document = openapi::document(&service);
    let methods = Methods::new(
        api_routes(&document)
            .into_iter()
            .chain(SYSTEM_ROUTES.map(|path| (path, vec![Method::GET])))
            .chain(public_metrics.then(|| ("/metrics", vec![Method::GET]))),
    );
    let spec = Static::new("application/json", openapi::pretty(&document));
    let docs = Static::new(
        "text/html; charset=utf-8",
        openapi::docs_html(&service).replacen(
            "<title>Scalar</title>",
            "<title>Tenantry API</title>",
            1,
        ),
    );
    let settings = &state.settings;

    let route = Route::new()
        .nest("/", service)
        .at("/openapi.json", get(make_sync(move |req| spec.serve(&req))))
        .at("/docs", get(make_sync(move |req| docs.serve(&req))))
        .at("/healthz", get(healthz))
        .at("/readyz", get(readyz));
    let route = if public_metrics {
        route.at("/metrics", get(metrics))
    } else {
        route
    };

    let origins = settings.cors_origins.clone();
    let front = FrontDoor::new(state.clone(), &document, crate::v1::OPERATIONS);
    route
        .data(state.auth.clone())
        .data(state.clone())
        .with(Admission::new(
            AdmissionLimits::from(&settings.admission),
            settings.body,
            state.metrics.clone(),
        ))
        .with(Compression::new().algorithms([CompressionAlgo::GZIP, CompressionAlgo::BR]))
        .with(front)
        .with(Problems {
            timeout: settings.request_timeout,
        })
        .with(methods)
        .with(RequestHead)
        .with_if(!origins.is_empty(), cors(&origins))
        .with(Edge {
            metrics: state.metrics.clone(),
            vary_origin: !origins.is_empty(),
        })
}

/// The metrics listener's application (`TENANTRY_METRICS_BIND`): `/metrics` and nothing
/// else; errors are problems like the API's.
pub fn metrics_app(state: Arc<AppState>) -> impl Endpoint<Output = Response> {
    Route::new()
        .at("/metrics", get(metrics))
        .data(state.clone())
        .with(Problems {
            timeout: state.settings.request_timeout,
        })
        .with(Methods::new([("/metrics", vec![Method::GET])]))
        .with(RequestHead)
        .with(Edge {
            metrics: state.metrics.clone(),
            vary_origin: false,
        })
}

/// A document fixed at start-up (the spec, the docs page), served with a strong `ETag`
/// and `Cache-Control`, and 304 to an `If-None-Match` that names it; compressed by the
/// compression layer like any response.
#[derive(Clone)]
struct Static {
    content_type: &'static str,
    body: Arc<str>,
    etag: HeaderValue,
}

impl Static {
    fn new(content_type: &'static str, body: String) -> Self {
        use sha2::Digest as _;
        let digest = sha2::Sha256::digest(body.as_bytes());
        let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
        let etag = HeaderValue::from_str(&format!("\"{hex}\""))
            .unwrap_or_else(|_| HeaderValue::from_static("\"0\""));
        Self {
            content_type,
            body: body.into(),
            etag,
        }
    }

    fn serve(&self, req: &poem::Request) -> Response {
        let fresh = req
            .headers()
            .get_all(header::IF_NONE_MATCH)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|tag| {
                let tag = tag.trim();
                tag == "*" || tag.trim_start_matches("W/") == self.etag
            });
        let builder = Response::builder()
            .header(header::ETAG, self.etag.clone())
            .header(
                header::CACHE_CONTROL,
                "public, max-age=300, must-revalidate",
            );
        if fresh {
            return builder.status(StatusCode::NOT_MODIFIED).finish();
        }
        builder
            .content_type(self.content_type)
            .body(self.body.to_string())
    }
}

/// Each path of the spec (`/v1/people/{id}`) with its methods.
fn api_routes(document: &Value) -> Vec<(&str, Vec<Method>)> {
    document["paths"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(path, item)| {
            let methods = item
                .as_object()
                .into_iter()
                .flatten()
                .filter_map(|(method, _)| method.to_ascii_uppercase().parse().ok())
                .collect();
            (path.as_str(), methods)
        })
        .collect()
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

/// Readiness: the storage has its reserve free, and the database answers within
/// `TENANTRY_DB_ACQUIRE_TIMEOUT_MS`.
#[handler]
async fn readyz(state: Data<&Arc<AppState>>) -> Response {
    if state.storage.refuse_write().is_some() {
        tracing::warn!("readiness: the storage is nearly full");
        return Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            kind::UNAVAILABLE,
            "the storage is nearly full: writes are paused",
        )
        .into_response();
    }
    let ping = tokio::time::timeout(state.settings.db_acquire_timeout, state.tenants.ping()).await;
    match ping {
        Ok(Ok(())) => Response::builder()
            .content_type("application/json")
            .body(r#"{"status":"ready"}"#),
        Err(_elapsed) => {
            tracing::warn!("readiness: the database did not answer in time");
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                kind::UNAVAILABLE,
                "the database did not answer in time",
            )
            .into_response()
        }
        Ok(Err(e)) => {
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
    metrics: Option<(TcpAcceptor, SocketAddr)>,
    /// The metrics listener's address, once bound by [`Bound::with_metrics`].
    pub metrics_addr: Option<SocketAddr>,
}

/// Binds `addr`.
///
/// # Errors
/// When the address cannot be bound.
pub async fn bind(addr: SocketAddr) -> std::io::Result<Bound> {
    let (acceptor, addr) = listen(addr).await?;
    Ok(Bound {
        acceptor,
        addr,
        metrics: None,
        metrics_addr: None,
    })
}

async fn listen(addr: SocketAddr) -> std::io::Result<(TcpAcceptor, SocketAddr)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    Ok((TcpAcceptor::from_tokio(listener)?, addr))
}

impl Bound {
    /// Also binds the metrics listener, at `addr`. [`serve`] binds
    /// `TENANTRY_METRICS_BIND` itself when this was not called; calling it first gives the
    /// real port of `…:0` (tests) and fails before serving when the address is taken.
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub async fn with_metrics(mut self, addr: SocketAddr) -> std::io::Result<Self> {
        let (acceptor, addr) = listen(addr).await?;
        self.metrics = Some((acceptor, addr));
        self.metrics_addr = Some(addr);
        Ok(self)
    }
}

/// HTTP/2's limit on a request's header list (RFC 9113 accounting: name + value + 32 per
/// field), above the app's [`MAX_HEADER_BYTES`], so that a header section between the two
/// gets the app's 431 problem rather than h2's bare 431. poem's default is 16 KiB, the
/// same as the app's limit in a smaller accounting.
const HTTP2_MAX_HEADER_LIST_BYTES: u32 = 2 * MAX_HEADER_BYTES as u32;

/// Serves `state` on `bound` until `shutdown` completes, then drains in-flight requests
/// (for at most 30 seconds). With a metrics listener (bound by [`Bound::with_metrics`], or
/// here from `TENANTRY_METRICS_BIND`), `/metrics` is served there only.
///
/// # Errors
/// When the metrics address cannot be bound, or a server fails.
pub async fn serve(
    bound: Bound,
    state: Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let scrapes = match (bound.metrics, state.settings.metrics_bind) {
        (Some(bound), _) => Some(bound),
        (None, Some(addr)) => Some(listen(addr).await?),
        (None, None) => None,
    };
    let scrapes = scrapes.map(|(acceptor, addr)| {
        tracing::info!(addr = %addr, "serving /metrics on its own listener");
        acceptor
    });
    // One shutdown for both servers; a server that stops on its own stops the other.
    let public_metrics = scrapes.is_none();
    let (stop, _) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let public = async {
        let result = Server::new_with_acceptor(bound.acceptor)
            .http2_max_header_list_size(HTTP2_MAX_HEADER_LIST_BYTES)
            .run_with_graceful_shutdown(
                app_with(state.clone(), public_metrics),
                stopped(stop.subscribe()),
                Some(Duration::from_secs(30)),
            )
            .await;
        stop.send_replace(true);
        result
    };
    let private = async {
        let Some(acceptor) = scrapes else {
            return Ok(());
        };
        let result = Server::new_with_acceptor(acceptor)
            .run_with_graceful_shutdown(
                metrics_app(state.clone()),
                stopped(stop.subscribe()),
                Some(Duration::from_secs(5)),
            )
            .await;
        stop.send_replace(true);
        result
    };
    let servers = async { tokio::join!(public, private) };
    tokio::pin!(servers);
    let (public, private) = tokio::select! {
        results = &mut servers => results,
        () = shutdown => {
            stop.send_replace(true);
            servers.await
        }
    };
    public.and(private)
}
