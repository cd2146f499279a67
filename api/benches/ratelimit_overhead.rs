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
#![allow(missing_docs)]

use std::sync::Arc;

use api::auth::jwt::{JwtIssuer, TokenType};
use api::auth::{Scope, UnscopedHandle};
use api::settings::{RateLimitSettings, Secret};
use api::{AppState, Settings};
use chrono::TimeDelta;
use criterion::{Criterion, criterion_group, criterion_main};
use domain::identity::{self, TenantCreate};
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
}

/// Serves `settings` over `db` on a spare port; returns the base URL.
async fn serve(db: &Arc<TestDb>, settings: Settings) -> String {
    let state = Arc::new(
        AppState::new(
            db.db().clone(),
            Arc::new(BenchUnscoped(db.clone())),
            settings,
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

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let redis_url = std::env::var("REDIS_URL").ok().filter(|u| !u.is_empty());
    let (db, servers, path, token, client) = runtime.block_on(async {
        let db = Arc::new(TestDb::new(&Backend::Sqlite).await.expect("database"));
        api::bootstrap::migrate(&db.connected.unscoped)
            .await
            .expect("migrations");
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
            base.jwt_secret.expose().as_bytes(),
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
            redis.redis_url = Some(Secret::new(url.clone()));
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
