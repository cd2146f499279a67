//! Per-decision cost of each backend, as the API pays it: `Limiter::check` for an
//! authenticated request (two coupled policies), plus formatting the response headers.
//!
//! Run: `REDIS_URL=redis://127.0.0.1:6379 cargo bench -p ratelimit --bench overhead`
//! (without `REDIS_URL` only the in-process backend is measured). Criterion's "median" is
//! the p50. Keys rotate over 1024 tenants so the in-process map has a realistic size and the
//! budgets (1M units per hour each) never run out: every decision is an admission that writes.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use ratelimit::{Key, Limiter, Policies, Policy, RedisConfig};

const TENANTS: usize = 1024;

fn policies() -> Policies {
    let hour = Duration::from_secs(3600);
    Policies::new(
        Policy::new("tenant", 1_000_000, hour).expect("policy"),
        Policy::new("credential", 1_000_000, hour).expect("policy"),
        Policy::new("ip", 1_000, hour).expect("policy"),
    )
    .expect("policies")
}

fn tenants() -> Vec<String> {
    (0..TENANTS)
        .map(|i| format!("018f3a2b-0000-7000-8000-{i:012}"))
        .collect()
}

fn bench_limiter(
    c: &mut Criterion,
    runtime: &tokio::runtime::Runtime,
    name: &str,
    limiter: &Limiter,
) {
    let tenants = tenants();
    let mut group = c.benchmark_group(name);
    let mut i = 0usize;
    group.bench_function("check", |b| {
        b.to_async(runtime).iter(|| {
            i = (i + 1) % TENANTS;
            let key = Key::Credential {
                tenant: &tenants[i],
                credential: "key_01",
            };
            async move { black_box(limiter.check(&key, 2).await.allowed()) }
        });
    });
    group.bench_function("check+headers", |b| {
        b.to_async(runtime).iter(|| {
            i = (i + 1) % TENANTS;
            let key = Key::Credential {
                tenant: &tenants[i],
                credential: "key_01",
            };
            async move {
                let d = limiter.check(&key, 2).await;
                black_box((
                    d.policy_header().len(),
                    d.ratelimit_header(),
                    d.cost_header(),
                ))
            }
        });
    });
    group.finish();
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");

    let memory = Limiter::in_memory(policies());
    bench_limiter(c, &runtime, "in_process", &memory);

    match std::env::var("REDIS_URL") {
        Ok(url) if !url.is_empty() => {
            let prefix = format!("bench:{}:", std::process::id());
            let limiter = runtime.block_on(async {
                let limiter = Limiter::builder(policies())
                    .redis(RedisConfig::new(url.as_str()).key_prefix(prefix))
                    .build()
                    .expect("limiter");
                limiter.connect().await.expect("Redis reachable");
                limiter
            });
            bench_limiter(c, &runtime, "redis", &limiter);
            assert_eq!(
                limiter.fallbacks(),
                0,
                "some decisions fell back: Redis was slow or down"
            );

            // The floor: one PING round trip through the same client stack.
            let conn = runtime.block_on(async {
                let client = redis::Client::open(url.as_str()).expect("client");
                redis::aio::ConnectionManager::new(client)
                    .await
                    .expect("connection")
            });
            c.bench_function("redis/ping (round-trip floor)", |b| {
                b.to_async(&runtime).iter(|| {
                    let mut conn = conn.clone();
                    async move {
                        let pong: String = redis::cmd("PING")
                            .query_async(&mut conn)
                            .await
                            .expect("PING");
                        black_box(pong)
                    }
                });
            });
        }
        _ => eprintln!("REDIS_URL is unset: the Redis backend is not measured"),
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
