//! What rate limiting adds to a request, side by side in one run: the same endpoint
//! (`GET /v1/accounts/{id}`, cost 1, SQLite) on three servers over one database — limits
//! disabled, the in-process limiter, and the Redis limiter on loopback. The difference of
//! the medians (criterion's p50) is the limiter's overhead per request.
//!
//! Run: `REDIS_URL=redis://127.0.0.1:6379 cargo bench -p api --bench ratelimit_overhead`
//! (without `REDIS_URL` the Redis server is left out).
//!
//! Criterion measures the servers one after the other, so a change in background load
//! between them shows up as a difference. Before it, an interleaved run sends one request
//! to each server in turn (rotating which goes first), round after round, and prints each
//! server's percentiles and the p50 difference to the disabled one: the same conditions
//! for all three.
//!
//! Wall-clock numbers on a shared 2-core machine move by several µs from run to run, so the
//! bench also has a repeatable measure: with `RATELIMIT_OVERHEAD_CALLS=N` it skips all of
//! the above and calls the app `N` times in-process (no sockets, one thread) on the server
//! named by `RATELIMIT_OVERHEAD_SERVER` (`disabled` or `in-process`), for an instruction
//! count under callgrind — or, with `RATELIMIT_OVERHEAD_TRANSPORT=http`, sends the `N`
//! requests over loopback HTTP with the bench's client (so the count includes writing and
//! parsing the extra response fields). Two counts with different `N` cancel the setup:
//!
//! ```sh
//! cargo bench -p api --bench ratelimit_overhead --no-run   # prints the binary's path
//! for server in disabled in-process; do for n in 500 2500; do
//!   RATELIMIT_OVERHEAD_CALLS=$n RATELIMIT_OVERHEAD_SERVER=$server \
//!     valgrind --tool=callgrind --callgrind-out-file=cg.$server.$n <binary> --bench
//! done; done
//! # instructions per request: (Ir(2500) - Ir(500)) / 2000, per server; the limiter's
//! # overhead is the in-process figure minus the disabled one.
//! ```
#![allow(missing_docs)]

use std::sync::Arc;

use api::auth::jwt::{JwtIssuer, TokenType};
use api::auth::{Scope, UnscopedHandle};
use api::settings::RateLimitSettings;
use api::{AppState, Settings};
use chrono::TimeDelta;
use criterion::{Criterion, criterion_group, criterion_main};
use domain::identity::{self, TenantCreate};
use secrecy::ExposeSecret as _;
use tenancy::TenantId;
use tenancy::testing::{Backend, TestDb};

struct BenchUnscoped(Arc<TestDb>);

#[expect(
    clippy::disallowed_types,
    reason = "audited: the benchmark server's authenticator needs the test database's capability"
)]
impl UnscopedHandle for BenchUnscoped {
    fn unscoped(&self) -> &tenancy::Unscoped {
        &self.0.connected.unscoped
    }
    fn issuer(&self) -> &tenancy::CtxIssuer {
        &self.0.connected.issuer
    }
}

/// Serves `settings` over `db` on a spare port; returns the base URL.
async fn serve(db: &Arc<TestDb>, settings: Settings) -> String {
    let state = Arc::new(
        AppState::new(
            db.db().clone(),
            Arc::new(BenchUnscoped(db.clone())),
            settings.clone(),
            &api::bootstrap::secrets(&settings).expect("explicit secrets"),
        )
        .expect("state"),
    );
    let bound = api::server::bind("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind");
    let base = format!("http://{}", bound.addr);
    tokio::spawn(api::server::serve(bound, state, std::future::pending()));
    base
}

/// A migrated database with one tenant, and an all-scopes user token for it.
async fn fixture() -> (Arc<TestDb>, Settings, String) {
    let db = Arc::new(TestDb::new(&Backend::Sqlite).await.expect("database"));
    migrations::up(&db.raw).await.expect("migrations");
    let base = Settings::for_tests("sqlite::memory:");
    let tenant = identity::create_tenant(
        &db.connected.unscoped,
        TenantCreate {
            slug: "bench".to_owned(),
            name: "Bench".to_owned(),
            plan: None,
            admin_email: "admin@bench.test".to_owned(),
            admin_name: "Admin".to_owned(),
        },
    )
    .await
    .expect("tenant");
    let issuer = JwtIssuer::new(
        api::bootstrap::secrets(&base)
            .expect("explicit secrets")
            .jwt_secret
            .expose_secret()
            .as_bytes(),
        &base.jwt_issuer,
        &base.jwt_audience,
    );
    let token = issuer
        .issue(
            TenantId::from_uuid(tenant.tenant.id.as_uuid()),
            TokenType::User,
            &tenant.admin.id.to_string(),
            &Scope::all_names(),
            TimeDelta::hours(1),
        )
        .expect("token");
    (db, base, token)
}

fn bench(c: &mut Criterion) {
    if let Some(calls) = std::env::var("RATELIMIT_OVERHEAD_CALLS")
        .ok()
        .and_then(|n| n.parse().ok())
    {
        let server = std::env::var("RATELIMIT_OVERHEAD_SERVER").unwrap_or_default();
        in_process_calls(calls, &server);
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let redis_url = std::env::var("REDIS_URL").ok().filter(|u| !u.is_empty());
    let (db, servers, path, token, client) = runtime.block_on(async {
        let (db, base, token) = fixture().await;

        let mut servers = Vec::new();
        let mut disabled = base.clone();
        disabled.rate_limit.enabled = false;
        servers.push(("limits disabled", serve(&db, disabled).await));
        let mut memory = base.clone();
        memory.rate_limit = RateLimitSettings::generous();
        servers.push(("in-process limiter", serve(&db, memory).await));
        if let Some(url) = &redis_url {
            let mut redis = base.clone();
            redis.rate_limit = RateLimitSettings::generous();
            redis.rate_limit.key_prefix = format!("bench:{}:", std::process::id());
            redis.redis_url = Some(url.clone().into());
            servers.push(("redis limiter", serve(&db, redis).await));
        } else {
            eprintln!("REDIS_URL is unset: the Redis limiter is not measured");
        }

        let client = reqwest::Client::new();
        let created: serde_json::Value = client
            .post(format!("{}/v1/accounts", servers[0].1))
            .bearer_auth(&token)
            .json(&serde_json::json!({ "name": "Globex" }))
            .send()
            .await
            .expect("create")
            .json()
            .await
            .expect("account");
        let path = format!(
            "/v1/accounts/{}",
            created["id"].as_str().unwrap_or_default()
        );
        (db, servers, path, token, client)
    });

    interleaved(&runtime, &client, &servers, &path, &token);

    let mut group = c.benchmark_group("GET /v1/accounts/{id}");
    for (name, base) in &servers {
        let url = format!("{base}{path}");
        // Every server answers 200 with the headers it should (or none when disabled).
        runtime.block_on(async {
            let resp = client
                .get(&url)
                .bearer_auth(&token)
                .send()
                .await
                .expect("get");
            assert_eq!(resp.status().as_u16(), 200, "{name}");
            let limited = resp.headers().contains_key("ratelimit");
            assert_eq!(limited, *name != "limits disabled", "{name}");
        });
        group.bench_function(*name, |b| {
            b.to_async(&runtime).iter(|| async {
                let resp = client
                    .get(&url)
                    .bearer_auth(&token)
                    .send()
                    .await
                    .expect("get");
                assert_eq!(resp.status().as_u16(), 200);
                resp.bytes().await.expect("body").len()
            });
        });
    }
    group.finish();
    // The database file goes when the servers are done with it.
    runtime.shutdown_background();
    drop(db);
}

/// `calls` requests to `server`'s app (`disabled` or `in-process`) without sockets, on one
/// thread: the repeatable measure (see the module docs).
fn in_process_calls(calls: usize, server: &str) {
    use poem::Endpoint as _;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let (db, mut settings, token) = fixture().await;
        match server {
            "disabled" => settings.rate_limit.enabled = false,
            "in-process" => settings.rate_limit = RateLimitSettings::generous(),
            other => panic!("RATELIMIT_OVERHEAD_SERVER={other:?}: use disabled or in-process"),
        }
        let state = Arc::new(
            AppState::new(
                db.db().clone(),
                Arc::new(BenchUnscoped(db.clone())),
                settings.clone(),
                &api::bootstrap::secrets(&settings).expect("explicit secrets"),
            )
            .expect("state"),
        );
        if std::env::var("RATELIMIT_OVERHEAD_TRANSPORT").is_ok_and(|t| t == "http") {
            http_calls(calls, server, state, &token).await;
            return;
        }
        let app = api::server::app(state);
        let bearer = format!("Bearer {token}");
        let request = |method: poem::http::Method, path: &str| {
            poem::Request::builder()
                .method(method)
                .uri(path.parse().expect("uri"))
                .header("authorization", bearer.as_str())
        };
        let created = app
            .call(
                request(poem::http::Method::POST, "/v1/accounts")
                    .content_type("application/json")
                    .body(r#"{"name":"Globex"}"#),
            )
            .await
            .expect("create");
        assert_eq!(created.status().as_u16(), 201);
        let created: serde_json::Value =
            serde_json::from_slice(&created.into_body().into_vec().await.expect("body"))
                .expect("account");
        let path = format!(
            "/v1/accounts/{}",
            created["id"].as_str().unwrap_or_default()
        );
        for _ in 0..calls {
            let resp = app
                .call(request(poem::http::Method::GET, &path).finish())
                .await
                .expect("get");
            assert_eq!(resp.status().as_u16(), 200);
            assert_eq!(
                resp.headers().contains_key("ratelimit"),
                server != "disabled"
            );
            std::hint::black_box(resp.into_body().into_vec().await.expect("body"));
        }
    });
}

/// `calls` requests to a server of `state` over loopback HTTP (see the module docs).
async fn http_calls(calls: usize, server: &str, state: Arc<AppState>, token: &str) {
    let bound = api::server::bind("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind");
    let base = format!("http://{}", bound.addr);
    tokio::spawn(api::server::serve(bound, state, std::future::pending()));
    let client = reqwest::Client::new();
    let created: serde_json::Value = client
        .post(format!("{base}/v1/accounts"))
        .bearer_auth(token)
        .json(&serde_json::json!({ "name": "Globex" }))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("account");
    let url = format!(
        "{base}/v1/accounts/{}",
        created["id"].as_str().unwrap_or_default()
    );
    for _ in 0..calls {
        let resp = client
            .get(&url)
            .bearer_auth(token)
            .send()
            .await
            .expect("get");
        assert_eq!(resp.status().as_u16(), 200);
        assert_eq!(
            resp.headers().contains_key("ratelimit"),
            server != "disabled"
        );
        std::hint::black_box(resp.bytes().await.expect("body"));
    }
}

/// One request to each server in turn for `ROUNDS` rounds; prints the percentiles.
fn interleaved(
    runtime: &tokio::runtime::Runtime,
    client: &reqwest::Client,
    servers: &[(&str, String)],
    path: &str,
    token: &str,
) {
    const ROUNDS: usize = 5_000;
    let mut samples: Vec<Vec<f64>> = vec![Vec::with_capacity(ROUNDS); servers.len()];
    runtime.block_on(async {
        for round in 0..ROUNDS + 200 {
            // Each round starts at another server, so none always follows the same one.
            for turn in 0..servers.len() {
                let i = (round + turn) % servers.len();
                let base = &servers[i].1;
                let started = std::time::Instant::now();
                let resp = client
                    .get(format!("{base}{path}"))
                    .bearer_auth(token)
                    .send()
                    .await
                    .expect("get");
                assert_eq!(resp.status().as_u16(), 200);
                resp.bytes().await.expect("body");
                // The first 200 rounds warm up connections and caches.
                if round >= 200 {
                    samples[i].push(started.elapsed().as_secs_f64() * 1e6);
                }
            }
        }
    });
    let pct = |v: &[f64], p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    eprintln!("\ninterleaved, {ROUNDS} rounds (µs):");
    eprintln!("| server | p50 | p90 | p99 | p50 − disabled |\n|---|---:|---:|---:|---:|");
    let mut base_p50 = 0.0;
    for (i, (name, _)) in servers.iter().enumerate() {
        let v = &mut samples[i];
        v.sort_by(f64::total_cmp);
        let p50 = pct(v, 0.5);
        if i == 0 {
            base_p50 = p50;
        }
        eprintln!(
            "| {name} | {p50:.1} | {:.1} | {:.1} | {:+.1} |",
            pct(v, 0.9),
            pct(v, 0.99),
            p50 - base_p50
        );
    }
    eprintln!();
}

criterion_group!(benches, bench);
criterion_main!(benches);
