//! A server of the test's own, started in-process exactly as `tenantry serve` starts one
//! (`bootstrap::open`: the production pool, migrations), with one tenant and a token of
//! it. Stopped when dropped. [`prepare`] alone readies a database (and a token) for
//! servers run as processes of their own.

use std::sync::Arc;

use api::auth::Scope;
use api::auth::jwt::{JwtIssuer, TokenType};
use api::{AppState, Settings};
use chrono::TimeDelta;
use domain::identity::{self, TenantCreate};
use secrecy::ExposeSecret as _;
use tenancy::{Connected, TenantId};
use tokio::sync::oneshot;

/// A running server.
pub struct Server {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// A token of the tenant `faults`, with every scope.
    pub token: String,
    shutdown: Option<oneshot::Sender<()>>,
    stopped: Option<oneshot::Receiver<()>>,
}

impl Server {
    /// A server running elsewhere (another process) at `base`, reached with `token`.
    pub fn at(base: String, token: String) -> Self {
        Self {
            base,
            token,
            shutdown: None,
            stopped: None,
        }
    }

    /// Stops the server and waits until it has (its pool closed with it).
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(rx) = self.stopped.take() {
            let _ = rx.await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Migrates the database of `settings` and creates the tenant `faults` unless it exists;
/// returns the open database and a token of the tenant (signed with the settings' JWT
/// secret, so any server configured with that secret accepts it).
pub async fn prepare(settings: &Settings) -> (Connected, String) {
    let connected = api::bootstrap::open(settings).await.expect("migrated");
    let known = api::bootstrap::find_tenant(&connected, "faults")
        .await
        .expect("tenant lookup");
    let (tenant, admin) = match known {
        Some(known) => (known.id, known.admin_id.expect("an admin")),
        None => {
            let new = identity::create_tenant(
                &connected.unscoped,
                TenantCreate {
                    slug: "faults".to_owned(),
                    name: "Faults".to_owned(),
                    plan: None,
                    admin_email: "admin@faults.test".to_owned(),
                    admin_name: "Admin".to_owned(),
                },
            )
            .await
            .expect("tenant");
            (new.tenant.id.as_uuid(), new.admin.id)
        }
    };
    let secrets = api::bootstrap::secrets(settings).expect("the test settings name their secrets");
    let issuer = JwtIssuer::new(
        secrets.jwt_secret.expose_secret().as_bytes(),
        &settings.jwt_issuer,
        &settings.jwt_audience,
    );
    let scopes: Vec<String> = Scope::ALL.iter().map(|s| s.as_str().to_owned()).collect();
    let token = issuer
        .issue(
            TenantId::from_uuid(tenant),
            TokenType::User,
            &admin.to_string(),
            &scopes,
            TimeDelta::hours(1),
        )
        .expect("token");
    (connected, token)
}

/// Starts a server with `settings`; creates the tenant `faults` unless it exists.
pub async fn start(settings: Settings) -> Server {
    let (connected, token) = prepare(&settings).await;
    let secrets = api::bootstrap::secrets(&settings).expect("the test settings name their secrets");
    let state = Arc::new(
        AppState::new(
            connected.db,
            Arc::new((connected.unscoped, connected.issuer)),
            settings,
            &secrets,
        )
        .expect("state"),
    );
    let bound = api::server::bind("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind");
    let base = format!("http://{}", bound.addr);
    let (tx, rx) = oneshot::channel::<()>();
    let (done_tx, done_rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = api::server::serve(bound, state, async {
            let _ = rx.await;
        })
        .await;
        let _ = done_tx.send(());
    });
    Server {
        base,
        token,
        shutdown: Some(tx),
        stopped: Some(done_rx),
    }
}
