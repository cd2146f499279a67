//! The rate limiter's Redis killed (`kill -9`) under load, and restarted on the same port
//! (empty: no persistence), at the API level: a server of the test's own (in-process,
//! embedded SQLite) limits through a `redis-server` of the test's own while retrying
//! writers and a reader run. Without Redis the limiter fails open to its in-process
//! fallback — writes keep being acknowledged, no 5xx — and once Redis answers again the
//! limiter returns to it by itself: `/metrics` says Redis is up, and the restarted, empty
//! Redis holds the limiter's keys again.

use std::time::{Duration, Instant};

use api::Settings;

use crate::live;
use crate::process::spare_port;
use crate::redis::Redis;
use crate::{Clients, Load, Op, acked_past, assert_stored_once, metric, scrape, until};

/// `/metrics`: 1 while the limiter's Redis answers.
const REDIS_UP: &str = "tenantry_rate_limit_redis_up";
/// `/metrics`: decisions made in-process because Redis failed.
const FALLBACKS: &str = "tenantry_rate_limit_fallbacks_total";
/// The limiter's keys in Redis (`TENANTRY_RATE_LIMIT_KEY_PREFIX` is `faults:`).
const KEYS: &str = "faults:rl:*";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serial_redis_killed_under_load_fails_open_and_the_limiter_returns_to_it() {
    let port = spare_port();
    let Some(redis) = Redis::start(port).await else {
        return;
    };
    let dir =
        std::env::temp_dir().join(format!("tenantry-redis-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).expect("a data directory");
    let mut settings =
        Settings::for_tests(&format!("sqlite://{}/tenantry.db?mode=rwc", dir.display()));
    settings.redis_url = Some(redis.url().into());
    let limits = &mut settings.rate_limit;
    // Limits on, over an hour's window. The clients spend ~10-30 thousand units in the
    // test (a write costs 5, a read 1): an hour's budget of 200 000 is never reached (no
    // 429), yet the clients spend faster than it refills (55 a second), so each key's
    // debt — and with it the key's life in Redis, which ends when its budget is full
    // again — grows, and the keys stay there to be seen.
    limits.tenant_quota = 200_000;
    limits.credential_quota = 200_000;
    limits.window = Duration::from_secs(3600);
    // A slow answer of a loaded host is not an outage: only the kill should fall back.
    limits.redis_timeout = Duration::from_millis(250);
    limits.key_prefix = "faults:".to_owned();
    let server = live::start(settings).await;
    let base = std::slice::from_ref(&server.base);

    let writers = Clients::writers(3, Load::People, &server);
    let readers = Clients::start(100, 1, Op::Read, base, &server.token);
    let tally = writers.tally.clone();
    acked_past(&tally, 0, 20).await;

    // On Redis: its keys are there, and the limiter has not fallen back.
    until(
        "the limiter's keys in Redis",
        Duration::from_secs(30),
        async || !redis.keys(KEYS).is_empty(),
    )
    .await;
    let metrics = scrape(&server.base).await;
    assert_eq!(metric(&metrics, REDIS_UP), Some(1.0), "{metrics}");
    let fallbacks_before = metric(&metrics, FALLBACKS).expect("the fallback counter");

    // kill -9, writers still writing.
    let acked_at_kill = tally.lock().expect("tally").acked.len();
    let statuses_at_kill = tally.lock().expect("tally").statuses.clone();
    redis.kill();
    let killed = Instant::now();
    let noticed = until(
        "the limiter notices Redis is gone",
        Duration::from_secs(30),
        async || metric(&scrape(&server.base).await, REDIS_UP) == Some(0.0),
    )
    .await;
    // Writes go on without Redis, for 5 s and at least 20 of them.
    let mut acked = acked_at_kill;
    while killed.elapsed() < Duration::from_secs(5) || acked < acked_at_kill + 20 {
        acked_past(&tally, acked, 1).await;
        acked = tally.lock().expect("tally").acked.len();
    }
    let down_for = killed.elapsed();
    let metrics = scrape(&server.base).await;
    let fallbacks_down = metric(&metrics, FALLBACKS).expect("the fallback counter");
    assert!(
        fallbacks_down > fallbacks_before,
        "without Redis, decisions fall back in-process: {metrics}"
    );
    assert_eq!(metric(&metrics, REDIS_UP), Some(0.0), "{metrics}");
    let statuses_down = tally.lock().expect("tally").statuses.clone();

    // Restarted on the same port, empty.
    let redis = Redis::start(port).await.expect("redis-server restarts");
    let acked_at_restart = tally.lock().expect("tally").acked.len();
    let back = until(
        "the limiter back on Redis",
        Duration::from_secs(30),
        async || metric(&scrape(&server.base).await, REDIS_UP) == Some(1.0),
    )
    .await;
    let keys = until(
        "the limiter's keys in the restarted Redis",
        Duration::from_secs(30),
        async || !redis.keys(KEYS).is_empty(),
    )
    .await;
    // And it stays there: 20 more writes, decided on Redis.
    let fallbacks_back = metric(&scrape(&server.base).await, FALLBACKS).expect("fallbacks");
    let acked = tally.lock().expect("tally").acked.len();
    acked_past(&tally, acked, 20).await;
    // Still on Redis (a single reply slower than the deadline would fall back for a
    // moment, and the next probe return: tolerated), its keys kept there.
    until(
        "the limiter still on Redis",
        Duration::from_secs(10),
        async || metric(&scrape(&server.base).await, REDIS_UP) == Some(1.0),
    )
    .await;
    let fallbacks_after = metric(&scrape(&server.base).await, FALLBACKS).expect("fallbacks");
    let key_count = redis.keys(KEYS).len();
    assert!(key_count > 0, "the limiter's keys in the restarted Redis");

    println!(
        "Redis kill -9: noticed in {} ms (/metrics redis_up 0); down {} ms, {} writes \
         acknowledged meanwhile, {} decisions made in-process; attempts by status before the \
         kill {statuses_at_kill:?}, by its end {statuses_down:?}",
        noticed.as_millis(),
        down_for.as_millis(),
        acked_at_restart - acked_at_kill,
        fallbacks_down - fallbacks_before,
    );
    println!(
        "Redis restarted: limiter back on it (/metrics redis_up 1) in {} ms, its keys in the \
         new Redis in {} ms ({key_count} keys `{KEYS}` now); in-process decisions after it was \
         back: {}",
        back.as_millis(),
        keys.as_millis(),
        fallbacks_after - fallbacks_back,
    );

    drop(tally);
    // No 5xx but 503 with Retry-After (none expected), no 429, nothing else.
    let tally = writers.finish(&[503], "").await;
    readers.finish(&[503], "").await;
    assert_stored_once(&server, Load::People, &tally).await;
    server.stop().await;
    drop(redis);
    let _ = std::fs::remove_dir_all(&dir);
}
