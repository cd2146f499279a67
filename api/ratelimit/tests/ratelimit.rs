//! The limiter's behaviour on both backends, against a real Redis.
//!
//! Redis tests read `REDIS_URL` (e.g. `redis://127.0.0.1:6379`) and give every test its own
//! key prefix, so they run in parallel on one server. Without `REDIS_URL` they return
//! early with a note — except under `CI=true`, where a missing Redis fails the run. The
//! outage test starts its own `redis-server` on a spare port (same rule for the binary).
//!
//! Time is a [`ManualClock`] shared by both backends (Redis then takes the time as an
//! argument), so refill is driven, not slept for. Two tests use Redis' own clock on
//! purpose: the real-time concurrency run and the outage run.

use std::net::{IpAddr, Ipv4Addr};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ratelimit::{Decision, Key, Limiter, ManualClock, Policies, Policy, RedisConfig, Source};

const MINUTE: Duration = Duration::from_secs(60);

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// `REDIS_URL`, or `None` (with a note) when it is unset outside CI.
fn redis_url(test: &str) -> Option<String> {
    match std::env::var("REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if in_ci() => panic!("{test}: CI=true but REDIS_URL is unset"),
        _ => {
            eprintln!("{test}: REDIS_URL is unset; skipping the Redis part");
            None
        }
    }
}

/// A key prefix no other test (or earlier run) uses.
fn unique_prefix(test: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos();
    format!("test:{test}:{}:{nanos}:", std::process::id())
}

fn policies(tenant: u64, credential: u64, ip: u64, window: Duration) -> Policies {
    Policies::new(
        Policy::new("tenant", tenant, window).expect("tenant policy"),
        Policy::new("credential", credential, window).expect("credential policy"),
        Policy::new("ip", ip, window).expect("ip policy"),
    )
    .expect("policies")
}

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(Duration::from_secs(1_800_000_000)))
}

/// The limiters a behaviour test runs against: in-process always, Redis when reachable;
/// all on `clock`.
fn limiters(test: &str, policies: &Policies, clock: &Arc<ManualClock>) -> Vec<Limiter> {
    let mut out = vec![
        Limiter::builder(policies.clone())
            .clock(clock.clone())
            .build()
            .expect("in-process limiter"),
    ];
    if let Some(url) = redis_url(test) {
        let config = RedisConfig::new(url)
            .key_prefix(unique_prefix(test))
            // Generous: a slow CI machine must not turn these into fallback tests.
            .timeout(Duration::from_secs(2));
        let limiter = Limiter::builder(policies.clone())
            .clock(clock.clone())
            .redis(config)
            .build()
            .expect("Redis limiter");
        out.push(limiter);
    }
    out
}

fn credential<'a>(tenant: &'a str, credential: &'a str) -> Key<'a> {
    Key::Credential { tenant, credential }
}

/// The source a limiter's decisions must come from in these tests (never the fallback).
fn expected_source(limiter: &Limiter) -> Source {
    if limiter.uses_redis() {
        Source::Redis
    } else {
        Source::Memory
    }
}

async fn check(limiter: &Limiter, key: &Key<'_>, cost: u64) -> Decision {
    let d = limiter.check(key, cost).await;
    assert_eq!(
        d.source(),
        expected_source(limiter),
        "decision from an unexpected backend"
    );
    d
}

fn remaining(d: &Decision) -> Vec<u64> {
    d.policies().map(|s| s.remaining).collect()
}

#[tokio::test]
async fn admits_exactly_the_budget_then_refuses_with_a_correct_retry_after() {
    let p = policies(600, 120, 60, MINUTE);
    let clock = clock();
    for limiter in limiters("exact_budget", &p, &clock) {
        let key = credential("t1", "k1");
        for i in 0..120 {
            let d = check(&limiter, &key, 1).await;
            assert!(d.allowed(), "unit {i} of 120 refused");
        }
        let d = check(&limiter, &key, 1).await;
        assert!(!d.allowed());
        assert_eq!(d.cost(), 0);
        assert_eq!(d.violated().map(Policy::name), Some("credential"));
        // One credential unit comes back every 60 s / 120 = 500 ms.
        assert_eq!(d.retry_after(), Some(Duration::from_millis(500)));
        assert_eq!(d.retry_after_header().as_deref(), Some("1"));
        assert_eq!(
            d.policy_header(),
            r#""tenant";q=600;w=60, "credential";q=120;w=60"#
        );
        assert_eq!(
            d.ratelimit_header(),
            r#""tenant";r=480;t=1, "credential";r=0;t=1"#
        );

        clock.advance(Duration::from_millis(499));
        assert!(
            !check(&limiter, &key, 1).await.allowed(),
            "admitted 1 ms early"
        );
        clock.advance(Duration::from_millis(1));
        assert!(
            check(&limiter, &key, 1).await.allowed(),
            "refused at its retry-after"
        );
    }
}

#[tokio::test]
async fn a_cost_of_five_uses_five_units() {
    let p = policies(600, 120, 60, MINUTE);
    let clock = clock();
    for limiter in limiters("cost_weighting", &p, &clock) {
        let key = credential("t1", "k1");
        let d = check(&limiter, &key, 5).await;
        assert!(d.allowed());
        assert_eq!(d.cost_header(), "5");
        assert_eq!(remaining(&d), [595, 115]);
        for _ in 0..23 {
            assert!(check(&limiter, &key, 5).await.allowed());
        }
        // 24 × 5 = 120: the credential is spent, even for one unit.
        let d = check(&limiter, &key, 1).await;
        assert!(!d.allowed());
        assert_eq!(remaining(&d), [480, 0]);
    }
}

#[tokio::test]
async fn a_refused_request_consumes_nothing_from_either_policy() {
    let p = policies(600, 10, 60, MINUTE);
    let clock = clock();
    for limiter in limiters("refusal_is_free", &p, &clock) {
        let key = credential("t1", "k1");
        assert!(check(&limiter, &key, 7).await.allowed());
        let refused = check(&limiter, &key, 5).await;
        assert!(!refused.allowed());
        assert_eq!(remaining(&refused), [593, 3]);
        // The 3 units left are still all there.
        let d = check(&limiter, &key, 3).await;
        assert!(d.allowed());
        assert_eq!(remaining(&d), [590, 0]);
    }
}

#[tokio::test]
async fn the_credential_limit_binds_while_the_tenant_budget_remains() {
    let p = policies(600, 120, 60, MINUTE);
    let clock = clock();
    for limiter in limiters("credential_binds", &p, &clock) {
        let noisy = credential("t1", "noisy");
        assert!(check(&limiter, &noisy, 120).await.allowed());
        let d = check(&limiter, &noisy, 1).await;
        assert!(!d.allowed());
        assert_eq!(d.violated().map(Policy::name), Some("credential"));
        assert_eq!(remaining(&d), [480, 0]);
        // The tenant's other integration is unaffected.
        let d = check(&limiter, &credential("t1", "quiet"), 1).await;
        assert!(d.allowed());
        assert_eq!(remaining(&d), [479, 119]);
    }
}

#[tokio::test]
async fn the_tenant_budget_binds_across_its_credentials() {
    let p = policies(10, 6, 60, MINUTE);
    let clock = clock();
    for limiter in limiters("tenant_binds", &p, &clock) {
        assert!(check(&limiter, &credential("t1", "a"), 6).await.allowed());
        assert!(check(&limiter, &credential("t1", "b"), 4).await.allowed());
        let d = check(&limiter, &credential("t1", "b"), 1).await;
        assert!(!d.allowed());
        assert_eq!(d.violated().map(Policy::name), Some("tenant"));
        assert_eq!(d.retry_after(), Some(Duration::from_secs(6)));
        assert_eq!(remaining(&d), [0, 2]);
    }
}

#[tokio::test]
async fn two_tenants_are_independent() {
    let p = policies(10, 10, 60, MINUTE);
    let clock = clock();
    for limiter in limiters("tenants_independent", &p, &clock) {
        assert!(check(&limiter, &credential("t1", "k"), 10).await.allowed());
        assert!(!check(&limiter, &credential("t1", "k"), 1).await.allowed());
        // Same credential id, other tenant: a separate budget on both policies.
        let d = check(&limiter, &credential("t2", "k"), 10).await;
        assert!(d.allowed());
        assert_eq!(remaining(&d), [0, 0]);
    }
}

#[tokio::test]
async fn the_budget_refills_as_the_injected_clock_advances() {
    let p = policies(60, 60, 60, MINUTE);
    let clock = clock();
    for limiter in limiters("refill", &p, &clock) {
        let key = credential("t1", "k1");
        assert!(check(&limiter, &key, 60).await.allowed());
        assert!(!check(&limiter, &key, 1).await.allowed());
        // One unit per second: 10 s bring back exactly 10.
        clock.advance(Duration::from_secs(10));
        let d = check(&limiter, &key, 0).await;
        assert_eq!(remaining(&d), [10, 10]);
        assert!(check(&limiter, &key, 10).await.allowed());
        assert!(!check(&limiter, &key, 1).await.allowed());
        // A whole window later the budget is full again, and no more than full.
        clock.advance(MINUTE * 3);
        let d = check(&limiter, &key, 0).await;
        assert_eq!(remaining(&d), [60, 60]);
        assert_eq!(
            d.ratelimit_header(),
            r#""tenant";r=60;t=0, "credential";r=60;t=0"#
        );
    }
}

#[tokio::test]
async fn a_refund_gives_units_back_up_to_the_quota() {
    let p = policies(600, 120, 60, MINUTE);
    let clock = clock();
    for limiter in limiters("refund", &p, &clock) {
        let key = credential("t1", "k1");
        assert!(check(&limiter, &key, 5).await.allowed());
        let d = limiter.refund(&key, 5).await;
        assert_eq!(d.source(), expected_source(&limiter));
        assert_eq!(remaining(&d), [600, 120]);
        let d = limiter.refund(&key, 5).await;
        assert_eq!(remaining(&d), [600, 120]);
    }
}

#[tokio::test]
async fn unauthenticated_requests_are_limited_per_ip() {
    let p = policies(600, 120, 3, MINUTE);
    let clock = clock();
    for limiter in limiters("per_ip", &p, &clock) {
        let a = Key::Ip(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)));
        let b = Key::Ip(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)));
        assert!(check(&limiter, &a, 3).await.allowed());
        let d = check(&limiter, &a, 1).await;
        assert!(!d.allowed());
        assert_eq!(d.violated().map(Policy::name), Some("ip"));
        assert_eq!(d.policy_header(), r#""ip";q=3;w=60"#);
        assert!(check(&limiter, &b, 1).await.allowed());
    }
}

#[tokio::test]
async fn a_cost_above_a_quota_is_refused_without_charging() {
    let p = policies(600, 120, 60, MINUTE);
    let clock = clock();
    for limiter in limiters("too_costly", &p, &clock) {
        let key = credential("t1", "k1");
        let d = limiter.check(&key, 121).await;
        assert!(!d.allowed());
        assert_eq!(d.violated().map(Policy::name), Some("credential"));
        assert_eq!(remaining(&check(&limiter, &key, 0).await), [600, 120]);
    }
}

#[tokio::test]
async fn an_effectively_unlimited_quota_works_on_both_backends() {
    // A billion units a minute (what load tests configure) is past Lua's exact range;
    // Redis then rounds by a millionth of a unit, never a whole one.
    let p = policies(1_000_000_000, 1_000_000_000, 60, MINUTE);
    let clock = clock();
    for limiter in limiters("unlimited", &p, &clock) {
        let key = credential("t1", "k1");
        for _ in 0..10 {
            assert!(check(&limiter, &key, 35).await.allowed());
        }
        clock.advance(Duration::from_millis(7));
        let d = check(&limiter, &key, 1).await;
        assert!(d.allowed());
        // 351 spent, 116 666.67 refilled in 7 ms: capped at the quota.
        assert_eq!(remaining(&d), [999_999_999, 999_999_999]);
    }
}

/// A small deterministic generator, so the parity run is reproducible without a crate.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % below
    }
}

#[tokio::test]
async fn redis_and_the_in_process_backend_agree_decision_by_decision() {
    let p = policies(40, 15, 5, Duration::from_secs(10));
    let clock = clock();
    let limiters = limiters("parity", &p, &clock);
    let [memory, redis] = limiters.as_slice() else {
        return; // no Redis here; nothing to compare
    };
    let tenants = ["t1", "t2"];
    let credentials = ["a", "b", "c"];
    let mut rng = Lcg(42);
    let mut refused = 0;
    for step in 0..400 {
        let ip = Key::Ip(IpAddr::V4(Ipv4Addr::new(198, 51, 100, rng.next(2) as u8)));
        let key = match rng.next(5) {
            0 => ip,
            _ => credential(
                tenants[rng.next(2) as usize],
                credentials[rng.next(3) as usize],
            ),
        };
        let cost = rng.next(7);
        let refund = rng.next(10) == 0;
        let (m, r) = if refund {
            (
                memory.refund(&key, cost).await,
                redis.refund(&key, cost).await,
            )
        } else {
            (
                memory.check(&key, cost).await,
                redis.check(&key, cost).await,
            )
        };
        assert_eq!(r.source(), Source::Redis);
        let summary = |d: &Decision| {
            let states: Vec<_> = d.policies().map(|s| (s.remaining, s.reset)).collect();
            (
                d.allowed(),
                d.cost(),
                d.retry_after(),
                d.violated().map(|p| p.name().to_owned()),
                states,
            )
        };
        assert_eq!(
            summary(&m),
            summary(&r),
            "step {step}: {key:?} cost {cost} refund {refund}"
        );
        refused += usize::from(!m.allowed());
        clock.advance(Duration::from_micros(rng.next(400_000)));
    }
    assert!(
        refused > 40,
        "the run should exercise refusals, got {refused}"
    );
}

#[tokio::test]
async fn redis_keys_share_the_tenant_hash_tag_and_expire_when_full() {
    let Some(url) = redis_url("keys") else { return };
    let prefix = unique_prefix("keys");
    let clock = clock();
    let limiter = Limiter::builder(policies(600, 120, 60, MINUTE))
        .clock(clock.clone())
        .redis(RedisConfig::new(url.as_str()).key_prefix(prefix.as_str()))
        .build()
        .expect("limiter");
    assert!(limiter.check(&credential("t9", "k9"), 5).await.allowed());

    let client = redis::Client::open(url.as_str()).expect("client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connection");
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .expect("KEYS");
    keys.sort();
    assert_eq!(
        keys,
        [
            format!("{prefix}rl:{{t:t9}}:c:k9"),
            format!("{prefix}rl:{{t:t9}}:t")
        ]
    );
    for key in &keys {
        let ttl: i64 = redis::cmd("PTTL")
            .arg(key)
            .query_async(&mut conn)
            .await
            .expect("PTTL");
        // 5 units are 0.5 s of the tenant's budget and 2.5 s of the credential's.
        let full_in_ms = if key.ends_with(":t") { 501 } else { 2_501 };
        assert!(ttl > 0 && ttl <= full_in_ms, "{key}: PTTL {ttl}");
    }
}

/// Spends a tenant's budget from many tasks over several limiters; returns the admitted cost.
async fn hammer(limiters: &[Limiter], tasks: usize, tenant: &str, until: Option<Instant>) -> u64 {
    hammer_timed(limiters, tasks, tenant, until).await.0
}

/// When the decisions of a run were made, as far as the clients can tell: each decision
/// happened between its call and its answer.
#[derive(Debug, Clone, Copy)]
struct Span {
    first_call: Instant,
    first_answer: Instant,
    last_call: Instant,
    last_answer: Instant,
}

impl Span {
    /// The longest the decisions can have spanned.
    fn longest(&self) -> Duration {
        self.last_answer - self.first_call
    }

    /// The shortest the decisions can have spanned.
    fn shortest(&self) -> Duration {
        self.last_call.saturating_duration_since(self.first_answer)
    }
}

/// [`hammer`], also returning when the decisions were made.
async fn hammer_timed(
    limiters: &[Limiter],
    tasks: usize,
    tenant: &str,
    until: Option<Instant>,
) -> (u64, Span) {
    let admitted = Arc::new(AtomicU64::new(0));
    let now = Instant::now();
    let span = Arc::new(std::sync::Mutex::new(Span {
        first_call: now + Duration::from_secs(3600),
        first_answer: now + Duration::from_secs(3600),
        last_call: now,
        last_answer: now,
    }));
    let mut handles = Vec::new();
    for task in 0..tasks {
        let limiter = limiters[task % limiters.len()].clone();
        let admitted = admitted.clone();
        let span = span.clone();
        let tenant = tenant.to_owned();
        handles.push(tokio::spawn(async move {
            let credential = format!("client{task}");
            let key = Key::Credential {
                tenant: &tenant,
                credential: &credential,
            };
            loop {
                // Costs 1..=5 in the timed run; 1 in the frozen one (so it ends exact).
                let cost = if until.is_some() {
                    1 + (task as u64 % 5)
                } else {
                    1
                };
                let called = Instant::now();
                let d = limiter.check(&key, cost).await;
                let answered = Instant::now();
                {
                    let mut span = span.lock().expect("span");
                    span.first_call = span.first_call.min(called);
                    span.first_answer = span.first_answer.min(answered);
                    span.last_call = span.last_call.max(called);
                    span.last_answer = span.last_answer.max(answered);
                }
                assert_ne!(d.source(), Source::Fallback, "Redis failed during the run");
                if d.allowed() {
                    admitted.fetch_add(cost, Ordering::Relaxed);
                }
                match until {
                    Some(deadline) if Instant::now() >= deadline => break,
                    Some(_) if !d.allowed() => tokio::task::yield_now().await,
                    Some(_) => {}
                    None if !d.allowed() => break,
                    None => {}
                }
            }
        }));
    }
    for handle in handles {
        handle.await.expect("task");
    }
    let span = *span.lock().expect("span");
    (admitted.load(Ordering::Relaxed), span)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_clients_on_four_limiters_sharing_redis_spend_exactly_the_quota() {
    let Some(url) = redis_url("concurrency_exact") else {
        return;
    };
    let prefix = unique_prefix("concurrency_exact");
    let quota = 1_000;
    let p = policies(quota, quota, 60, MINUTE);
    let clock = clock();
    let limiters: Vec<Limiter> = (0..4)
        .map(|_| {
            Limiter::builder(p.clone())
                .clock(clock.clone())
                .redis(
                    RedisConfig::new(url.as_str())
                        .key_prefix(prefix.as_str())
                        .timeout(Duration::from_secs(2)),
                )
                .build()
                .expect("limiter")
        })
        .collect();
    // Time stands still, so every task ends at its first refusal and nothing refills.
    let admitted = hammer(&limiters, 64, "shared", None).await;
    assert_eq!(admitted, quota);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_clients_on_four_limiters_over_one_real_window_get_the_burst_plus_the_refill() {
    let Some(url) = redis_url("concurrency_window") else {
        return;
    };
    let prefix = unique_prefix("concurrency_window");
    let quota = 2_000;
    let window = Duration::from_secs(2);
    let p = policies(quota, quota, 60, window);
    // No injected clock: the script reads Redis' TIME, as in production.
    let limiters: Vec<Limiter> = (0..4)
        .map(|_| {
            Limiter::builder(p.clone())
                .redis(
                    RedisConfig::new(url.as_str())
                        .key_prefix(prefix.as_str())
                        .timeout(Duration::from_secs(2)),
                )
                .build()
                .expect("limiter")
        })
        .collect();
    let started = Instant::now();
    let (admitted, span) = hammer_timed(&limiters, 64, "shared", Some(started + window)).await;
    // GCRA over one window: the full burst plus what refilled while the decisions were
    // made. Bounded by what the clients saw of when that was — so a stall of the machine
    // (a busy 2-core host) widens the bounds instead of failing the test — with the slack
    // of one decision's cost at either end (costs are 1 to 5).
    let refill = |over: Duration| quota as f64 * over.as_secs_f64() / window.as_secs_f64();
    let lowest = quota as f64 + refill(span.shortest()) - 5.0;
    let highest = quota as f64 + refill(span.longest()) + 5.0;
    eprintln!(
        "admitted {admitted} cost units; decisions spanned {:?} to {:?}: expected {lowest:.0} to {highest:.0}",
        span.shortest(),
        span.longest(),
    );
    assert!(
        (lowest..=highest).contains(&(admitted as f64)),
        "admitted {admitted}, expected {lowest:.0} to {highest:.0}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_clients_on_the_in_process_backend_spend_exactly_the_quota() {
    let quota = 1_000;
    let limiter = Limiter::builder(policies(quota, quota, 60, MINUTE))
        .clock(clock())
        .build()
        .expect("limiter");
    assert_eq!(hammer(&[limiter], 64, "shared", None).await, quota);
}

/// A `redis-server` of this test's own, stopped when dropped.
struct OwnRedis {
    child: Child,
    port: u16,
}

impl OwnRedis {
    /// Starts one on `port` (0: a spare one), or returns `None` when there is no
    /// `redis-server` outside CI.
    async fn start(port: u16) -> Option<OwnRedis> {
        let port = if port == 0 {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a spare port");
            listener.local_addr().expect("address").port()
        } else {
            port
        };
        let spawned = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(e) if in_ci() => panic!("CI=true but redis-server cannot start: {e}"),
            Err(e) => {
                eprintln!("redis-server unavailable ({e}); skipping");
                return None;
            }
        };
        let server = OwnRedis { child, port };
        let client = redis::Client::open(server.url()).expect("client");
        for _ in 0..100 {
            if let Ok(mut conn) = client.get_multiplexed_async_connection().await
                && redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .is_ok()
            {
                return Some(server);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("redis-server on port {port} did not come up");
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn shutdown(mut self) {
        let client = redis::Client::open(self.url()).expect("client");
        if let Ok(mut conn) = client.get_multiplexed_async_connection().await {
            // The server closes the connection instead of answering.
            let _ = redis::cmd("SHUTDOWN")
                .arg("NOSAVE")
                .query_async::<()>(&mut conn)
                .await;
        }
        let _ = self.child.wait();
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_redis_stops_the_fallback_answers_and_redis_enforces_again_once_back() {
    let Some(server) = OwnRedis::start(0).await else {
        return;
    };
    let port = server.port;
    let url = server.url();
    let p = policies(600, 5, 60, MINUTE);
    let build = |timeout: Duration| {
        Limiter::builder(p.clone())
            .redis(
                RedisConfig::new(url.as_str())
                    .timeout(timeout)
                    .backoff(Duration::from_millis(20), Duration::from_millis(100)),
            )
            .build()
            .expect("limiter")
    };
    let limiter = build(Duration::from_millis(50));
    limiter.connect().await.expect("Redis is up");
    let key = credential("t1", "k1");
    assert_eq!(limiter.check(&key, 1).await.source(), Source::Redis);

    server.shutdown().await;
    for _ in 0..20 {
        let started = Instant::now();
        let d = limiter.check(&key, 1).await;
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "a decision waited on a dead Redis"
        );
        assert_eq!(d.source(), Source::Fallback);
    }
    assert!(limiter.fallbacks() >= 20);
    let stats = limiter.stats();
    assert!(
        !stats.redis_healthy && stats.redis_failures >= 1,
        "{stats:?}"
    );

    // Redis returns (empty, as after a restart without persistence) on the same port.
    let _server = OwnRedis::start(port).await.expect("redis-server restarts");
    let deadline = Instant::now() + Duration::from_secs(10);
    while limiter.check(&key, 0).await.source() != Source::Redis {
        assert!(
            Instant::now() < deadline,
            "the limiter never went back to Redis"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(limiter.stats().redis_healthy);

    // Shared limits again: what this limiter spends, a fresh instance sees refused.
    assert!(limiter.check(&key, 5).await.allowed());
    let other = build(Duration::from_secs(2));
    let d = other.check(&key, 1).await;
    assert_eq!(d.source(), Source::Redis);
    assert!(
        !d.allowed(),
        "the budget spent through one instance must bind the other"
    );
    assert_eq!(d.violated().map(Policy::name), Some("credential"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_redis_is_cut_off_at_the_deadline_and_used_again_when_it_answers() {
    let Some(server) = OwnRedis::start(0).await else {
        return;
    };
    let limiter = Limiter::builder(policies(600, 120, 60, MINUTE))
        .redis(
            RedisConfig::new(server.url())
                .timeout(Duration::from_millis(50))
                .backoff(Duration::from_millis(20), Duration::from_millis(100)),
        )
        .build()
        .expect("limiter");
    limiter.connect().await.expect("Redis is up");
    let key = credential("t1", "k1");
    assert_eq!(limiter.check(&key, 1).await.source(), Source::Redis);

    // Redis stops answering (but keeps the connection) for 600 ms.
    let client = redis::Client::open(server.url()).expect("client");
    let mut admin = client
        .get_multiplexed_async_connection()
        .await
        .expect("connection");
    let _: () = redis::cmd("CLIENT")
        .arg(&["PAUSE", "600", "ALL"])
        .query_async(&mut admin)
        .await
        .expect("CLIENT PAUSE");
    let started = Instant::now();
    let d = limiter.check(&key, 1).await;
    assert_eq!(d.source(), Source::Fallback);
    assert!(d.allowed());
    // It did not wait for Redis (paused for 600 ms): the bound is the pause, not the
    // 50 ms deadline, so a busy machine's scheduling delays cannot trip it.
    assert!(
        started.elapsed() < Duration::from_millis(550),
        "waited {:?}",
        started.elapsed()
    );
    assert_eq!(limiter.stats().redis_failures, 1);

    let deadline = Instant::now() + Duration::from_secs(10);
    while limiter.check(&key, 0).await.source() != Source::Redis {
        assert!(
            Instant::now() < deadline,
            "the limiter never went back to Redis"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(server);
}
