//! `spawn_app()` and `TestApp`: the real server on port 0, a fresh database, and helpers
//! to make tenants, tokens and requests.

use std::sync::Arc;

use api::auth::jwt::{JwtIssuer, TokenType};
use api::auth::{Scope, UnscopedHandle};
use api::{AppState, Settings};
use chrono::TimeDelta;
use domain::identity::{self, TenantCreate};
use reqwest::{Method, RequestBuilder, Response};
use secrecy::ExposeSecret as _;
use serde_json::{Value, json};
use tenancy::TenantId;
use tenancy::testing::{Backend, TestDb};
use tokio::sync::oneshot;
use uuid::Uuid;

/// The backends to run each test on.
pub fn backends() -> Vec<Backend> {
    tenancy::testing::backends()
}

struct TestUnscoped(Arc<TestDb>);

#[expect(
    clippy::disallowed_types,
    reason = "audited: the test server's authenticator needs the test database's capability"
)]
impl UnscopedHandle for TestUnscoped {
    fn unscoped(&self) -> &tenancy::Unscoped {
        &self.0.connected.unscoped
    }
    fn issuer(&self) -> &tenancy::CtxIssuer {
        &self.0.connected.issuer
    }
}

/// A running server on a fresh database.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// The HTTP client.
    pub client: reqwest::Client,
    /// The server's state (for its settings and keys).
    pub state: Arc<AppState>,
    /// The database.
    pub db: Arc<TestDb>,
    issuer: JwtIssuer,
    shutdown: Option<oneshot::Sender<()>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// A tenant made for a test, with an all-scopes user token.
#[derive(Debug, Clone)]
pub struct TestTenant {
    /// Its id.
    pub id: Uuid,
    /// Its first admin.
    pub admin_id: Uuid,
    /// A user JWT with every scope.
    pub token: String,
}

/// Starts the server against a fresh database on `backend`.
pub async fn spawn_app(backend: &Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

/// Like [`spawn_app`], with the test's settings changed by `configure`.
pub async fn spawn_app_with(backend: &Backend, configure: impl FnOnce(&mut Settings)) -> TestApp {
    start(backend, configure, None).await.0
}

/// Like [`spawn_app`], with `/metrics` on a listener of its own (`TENANTRY_METRICS_BIND`
/// on port 0); also returns that listener's `http://127.0.0.1:<port>`.
pub async fn spawn_app_with_metrics_listener(backend: &Backend) -> (TestApp, String) {
    let metrics_addr: std::net::SocketAddr = "127.0.0.1:0".parse().expect("addr");
    let (app, metrics) = start(
        backend,
        |s| s.metrics_bind = Some(metrics_addr),
        Some(metrics_addr),
    )
    .await;
    (app, metrics.expect("metrics bound"))
}

/// A fresh database, the settings, the server on port 0 (and on `metrics`, when given, a
/// metrics listener of its own); returns the app and the metrics listener's base URL.
async fn start(
    backend: &Backend,
    configure: impl FnOnce(&mut Settings),
    metrics: Option<std::net::SocketAddr>,
) -> (TestApp, Option<String>) {
    let db = Arc::new(TestDb::new(backend).await.expect("fresh test database"));
    migrations::up(&db.raw).await.expect("migrations apply");
    let mut settings = Settings::for_tests("sqlite::memory:");
    configure(&mut settings);
    let secrets = api::bootstrap::secrets(&settings).expect("the test settings name their secrets");
    let issuer = JwtIssuer::new(
        secrets.jwt_secret.expose_secret().as_bytes(),
        &settings.jwt_issuer,
        &settings.jwt_audience,
    );
    let state = Arc::new(
        AppState::new(
            db.db().clone(),
            Arc::new(TestUnscoped(db.clone())),
            settings,
            &secrets,
        )
        .expect("state builds"),
    );
    let mut bound = api::server::bind("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind port 0");
    if let Some(addr) = metrics {
        bound = bound
            .with_metrics(addr)
            .await
            .expect("bind the metrics port 0");
    }
    let base = format!("http://{}", bound.addr);
    let metrics_base = bound.metrics_addr.map(|addr| format!("http://{addr}"));
    let (tx, rx) = oneshot::channel::<()>();
    let server_state = state.clone();
    tokio::spawn(async move {
        let _ = api::server::serve(bound, server_state, async {
            let _ = rx.await;
        })
        .await;
    });
    let app = TestApp {
        base,
        client: reqwest::Client::builder().build().expect("client"),
        state,
        db,
        issuer,
        shutdown: Some(tx),
    };
    (app, metrics_base)
}

/// Another server instance over the same database (and settings), as behind a load
/// balancer; stopped when dropped.
pub struct Instance {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// Its state (its own limiter).
    pub state: Arc<AppState>,
    shutdown: Option<oneshot::Sender<()>>,
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

impl TestApp {
    /// Starts another instance of this server: same database and settings, its own state
    /// (so its own in-process limiter, or the same Redis when `REDIS_URL` is configured).
    pub async fn another_instance(&self) -> Instance {
        let state = Arc::new(
            AppState::new(
                self.db.db().clone(),
                Arc::new(TestUnscoped(self.db.clone())),
                self.state.settings.clone(),
                &api::bootstrap::secrets(&self.state.settings).expect("explicit secrets"),
            )
            .expect("state builds"),
        );
        let bound = api::server::bind("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("bind port 0");
        let base = format!("http://{}", bound.addr);
        let (tx, rx) = oneshot::channel::<()>();
        let server_state = state.clone();
        tokio::spawn(async move {
            let _ = api::server::serve(bound, server_state, async {
                let _ = rx.await;
            })
            .await;
        });
        Instance {
            base,
            state,
            shutdown: Some(tx),
        }
    }

    /// A new tenant (slug made unique from `hint`) with its admin and a full token.
    pub async fn tenant(&self, hint: &str) -> TestTenant {
        let slug = format!("{hint}-{}", &Uuid::now_v7().simple().to_string()[24..]);
        let new = identity::create_tenant(
            &self.db.connected.unscoped,
            TenantCreate {
                slug,
                name: format!("Tenant {hint}"),
                plan: None,
                admin_email: format!("admin@{hint}.test"),
                admin_name: "Admin".to_owned(),
            },
        )
        .await
        .expect("tenant created");
        let mut tenant = TestTenant {
            id: new.tenant.id.as_uuid(),
            admin_id: new.admin.id,
            token: String::new(),
        };
        tenant.token = self.token(&tenant, &Scope::ALL);
        tenant
    }

    /// A user token for `tenant` with `scopes`.
    pub fn token(&self, tenant: &TestTenant, scopes: &[Scope]) -> String {
        let scopes: Vec<String> = scopes.iter().map(|s| s.as_str().to_owned()).collect();
        self.issuer
            .issue(
                TenantId::from_uuid(tenant.id),
                TokenType::User,
                &tenant.admin_id.to_string(),
                &scopes,
                TimeDelta::hours(1),
            )
            .expect("token signs")
    }

    /// The issuer tests forge tokens with.
    pub fn issuer(&self) -> &JwtIssuer {
        &self.issuer
    }

    /// A request to `path` (relative to the server) without credentials.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, format!("{}{path}", self.base))
    }

    /// An API key of the legacy form (no tenant part: `tnt_<prefix>_<secret><check>`), as
    /// keys were issued before keys named their tenant, stored for `tenant` with `scopes`.
    pub async fn legacy_key(&self, tenant: &TestTenant, scopes: &[String]) -> String {
        use api::auth::api_key::{KEY_PREFIX, checksum, hash_secret};
        let prefix = format!("Lg{}", &Uuid::now_v7().simple().to_string()[26..]);
        let secret = "S".repeat(32);
        identity::create_api_key(
            &self.tenant_db(tenant),
            identity::ApiKeyCreate {
                name: "legacy".to_owned(),
                prefix: format!("{KEY_PREFIX}{prefix}"),
                secret_hash: hash_secret(self.state.auth.pepper(), &secret),
                scopes: scopes.to_vec(),
                created_by: None,
            },
        )
        .await
        .expect("stored");
        let body = format!("{KEY_PREFIX}{prefix}_{secret}");
        format!("{body}{}", checksum(&body))
    }

    /// A request authenticated with `token`.
    /// A handle of `tenant`'s own, as its admin (for writing fixtures the API cannot).
    pub fn tenant_db(&self, tenant: &TestTenant) -> tenancy::TenantDb {
        self.db.db().tenant(&self.db.connected.issuer.issue(
            TenantId::from_uuid(tenant.id),
            tenancy::Actor::User(tenant.admin_id),
        ))
    }

    pub fn authed(&self, method: Method, path: &str, token: &str) -> RequestBuilder {
        self.request(method, path).bearer_auth(token)
    }

    /// `GET path` as `tenant`.
    pub async fn get(&self, tenant: &TestTenant, path: &str) -> Response {
        self.authed(Method::GET, path, &tenant.token)
            .send()
            .await
            .expect("request sent")
    }

    /// `POST path` with a JSON body as `tenant`.
    pub async fn post(&self, tenant: &TestTenant, path: &str, body: &Value) -> Response {
        self.authed(Method::POST, path, &tenant.token)
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    /// `PATCH path` with a JSON body as `tenant`.
    pub async fn patch(&self, tenant: &TestTenant, path: &str, body: &Value) -> Response {
        self.authed(Method::PATCH, path, &tenant.token)
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    /// `DELETE path` as `tenant`.
    pub async fn delete(&self, tenant: &TestTenant, path: &str) -> Response {
        self.authed(Method::DELETE, path, &tenant.token)
            .send()
            .await
            .expect("request sent")
    }

    /// Creates an account and returns its JSON.
    pub async fn create_account(&self, tenant: &TestTenant, name: &str) -> Value {
        let resp = self
            .post(tenant, "/v1/accounts", &json!({ "name": name }))
            .await;
        ok_json(resp, 201).await
    }

    /// Creates a person (optionally at an account) and returns its JSON.
    pub async fn create_person(
        &self,
        tenant: &TestTenant,
        first_name: &str,
        account_id: Option<&str>,
    ) -> Value {
        let body =
            json!({ "first_name": first_name, "last_name": "Test", "account_id": account_id });
        ok_json(self.post(tenant, "/v1/people", &body).await, 201).await
    }

    /// Logs an activity with a person and returns its JSON.
    pub async fn create_activity(
        &self,
        tenant: &TestTenant,
        person_id: &str,
        subject: &str,
    ) -> Value {
        let body = json!({ "person_id": person_id, "kind": "call", "subject": subject });
        ok_json(self.post(tenant, "/v1/activities", &body).await, 201).await
    }
}

/// Asserts `resp` has `status` and returns its JSON body.
pub async fn ok_json(resp: Response, status: u16) -> Value {
    let actual = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    assert_eq!(actual, status, "unexpected status; body: {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// Asserts `resp` is an RFC 9457 problem with `status` and `type` ending in `kind`, that
/// it carries the request id (matching `X-Request-Id`) and the path, and returns it.
pub async fn problem(resp: Response, status: u16, kind: &str) -> Value {
    let actual = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let request_id = resp
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let path = resp.url().path().to_owned();
    let text = resp.text().await.expect("body");
    assert_eq!(actual, status, "unexpected status; body: {text}");
    assert_eq!(
        content_type, "application/problem+json",
        "not a problem: {text}"
    );
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    assert_eq!(
        body["type"],
        format!("https://tenantry.dev/problems/{kind}"),
        "{text}"
    );
    assert_eq!(body["status"], status, "{text}");
    assert!(
        body["title"].as_str().is_some_and(|t| !t.is_empty()),
        "{text}"
    );
    assert!(!request_id.is_empty());
    assert_eq!(body["request_id"], request_id.as_str(), "{text}");
    assert_eq!(body["instance"], path.as_str(), "{text}");
    assert!(body["errors"].is_array(), "{text}");
    body
}

/// The fields named in a problem's `errors`.
pub fn error_fields(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .filter_map(|e| e["field"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The value of header `name` of `resp` (empty when absent).
pub fn header(resp: &Response, name: &str) -> String {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// The string at `value[key]`.
pub fn s<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key].as_str().unwrap_or_default()
}
