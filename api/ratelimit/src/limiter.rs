//! The front: Redis when configured, the in-process backend otherwise and, fail-open, when
//! Redis errs or is slow.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::clock::{self, Clock, SystemClock};
use crate::decision::{Decision, Source};
use crate::gcra::Mode;
use crate::memory::MemoryBackend;
use crate::policy::{Key, Policies};
use crate::redis_backend::RedisBackend;
use crate::{Error, policy::PolicySet};

/// How to reach Redis, and how patiently.
#[derive(Clone)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port[/db]`, or cluster nodes separated by commas (see
    /// [`RedisConfig::new`]). Never logged (it may carry a password).
    url: String,
    /// Prepended to every key (e.g. `"prod:"`), to share a Redis between deployments or
    /// tests. It must not contain `{`, which would move the Cluster hash tag.
    key_prefix: String,
    /// The longest a decision waits for Redis before the in-process backend answers.
    timeout: Duration,
    /// The first pause after a failure before Redis is tried again; it doubles on each
    /// failed retry up to `max_backoff`.
    min_backoff: Duration,
    /// The longest pause between retries while Redis stays down (default 1 s: a probe a
    /// second per instance is cheap, and bounds how long the limiter stays in-process
    /// after Redis is back).
    max_backoff: Duration,
}

impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &"<redacted>")
            .field("key_prefix", &self.key_prefix)
            .field("timeout", &self.timeout)
            .field("min_backoff", &self.min_backoff)
            .field("max_backoff", &self.max_backoff)
            .finish()
    }
}

impl RedisConfig {
    /// Redis at `url`, with a 50 ms deadline per decision and retries after 250 ms, doubling
    /// up to 5 s, while it is down.
    ///
    /// `url` is one server, `redis://[user:password@]host:port[/db]`, or — when it contains a
    /// comma — a Redis Cluster: its node URLs separated by commas, e.g.
    /// `redis://10.0.0.1:6379,redis://10.0.0.2:6379,redis://10.0.0.3:6379`. The nodes are
    /// seeds: the client learns the rest of the cluster from whichever answers, so list
    /// more than one; a cluster behind one address (a managed service's configuration
    /// endpoint) is that URL and a trailing comma. A comma inside a password must be written
    /// `%2C`. On a cluster the deadline, the fallback and the backoff work as on one server.
    pub fn new(url: impl Into<String>) -> RedisConfig {
        RedisConfig {
            url: url.into(),
            key_prefix: String::new(),
            timeout: Duration::from_millis(50),
            min_backoff: Duration::from_millis(250),
            // At most a second between probes while Redis is down, so the limiter is back
            // on Redis about a second after it returns (it was 5 s: 7.7 s measured).
            max_backoff: Duration::from_secs(1),
        }
    }

    /// Sets the key prefix.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> RedisConfig {
        self.key_prefix = prefix.into();
        self
    }

    /// Sets the per-decision deadline.
    pub fn timeout(mut self, timeout: Duration) -> RedisConfig {
        self.timeout = timeout;
        self
    }

    /// Sets the first and the longest pause before Redis is tried again after a failure.
    pub fn backoff(mut self, min: Duration, max: Duration) -> RedisConfig {
        self.min_backoff = min;
        self.max_backoff = max.max(min);
        self
    }
}

/// Builds a [`Limiter`].
#[derive(Debug)]
pub struct LimiterBuilder {
    policies: Policies,
    clock: Option<Arc<dyn Clock>>,
    redis: Option<RedisConfig>,
}

impl LimiterBuilder {
    /// Uses `clock` instead of the system clock — for Redis too, whose script then takes the
    /// time as an argument instead of reading its own (see the crate docs).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> LimiterBuilder {
        self.clock = Some(clock);
        self
    }

    /// Uses Redis, with the in-process backend as the fail-open fallback.
    pub fn redis(mut self, config: RedisConfig) -> LimiterBuilder {
        self.redis = Some(config);
        self
    }

    /// The limiter. With Redis this must run inside a Tokio runtime; it does not wait for a
    /// connection (see [`Limiter::connect`]).
    pub fn build(self) -> Result<Limiter, Error> {
        let (redis, prefix) = match self.redis {
            Some(config) => {
                if config.key_prefix.contains('{') || config.key_prefix.contains('}') {
                    return Err(Error::InvalidConfig(
                        "the Redis key prefix must not contain '{' or '}'".into(),
                    ));
                }
                if config.timeout.is_zero() {
                    return Err(Error::InvalidConfig(
                        "the Redis timeout must be positive".into(),
                    ));
                }
                let backend = RedisBackend::new(&config.url, self.clock.clone())?;
                let breaker = Breaker::new(config.min_backoff, config.max_backoff);
                (
                    Some(RedisPart {
                        backend,
                        breaker,
                        timeout: config.timeout,
                    }),
                    config.key_prefix,
                )
            }
            None => (None, String::new()),
        };
        Ok(Limiter::assemble(
            self.policies,
            self.clock.unwrap_or_else(|| Arc::new(SystemClock)),
            redis,
            prefix,
        ))
    }
}

/// Redis and what the limiter knows about its health.
#[derive(Debug)]
struct RedisPart {
    backend: RedisBackend,
    breaker: Breaker,
    timeout: Duration,
}

/// A cost-weighted rate limiter over [`Policies`]. Cheap to clone; clones share state.
///
/// Redis is used when configured; when it errs or misses its deadline the decision comes
/// from the in-process backend instead (fail-open: the API keeps serving, each instance
/// limiting on its own), the fallback is logged and counted, and Redis is tried again after
/// a backoff until it answers.
#[derive(Clone, Debug)]
pub struct Limiter {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    policies: Policies,
    clock: Arc<dyn Clock>,
    /// The backend when there is no Redis, and the fallback when there is.
    memory: MemoryBackend,
    redis: Option<RedisPart>,
    /// Prepended to storage keys (Redis only; the in-process store is private anyway).
    prefix: String,
    /// Decisions made by the fallback because Redis failed or was skipped while down.
    fallbacks: AtomicU64,
    /// Redis calls that erred or missed the deadline.
    redis_failures: AtomicU64,
}

/// Counters for `/metrics`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stats {
    /// Decisions the in-process fallback made while Redis was failing.
    pub fallbacks: u64,
    /// Redis calls that failed or timed out.
    pub redis_failures: u64,
    /// Whether Redis is configured and currently believed healthy.
    pub redis_healthy: bool,
}

impl Limiter {
    /// A builder over `policies`: in-process, system clock, until told otherwise.
    pub fn builder(policies: Policies) -> LimiterBuilder {
        LimiterBuilder {
            policies,
            clock: None,
            redis: None,
        }
    }

    /// An in-process limiter on the system clock.
    pub fn in_memory(policies: Policies) -> Limiter {
        Limiter::assemble(policies, Arc::new(SystemClock), None, String::new())
    }

    fn assemble(
        policies: Policies,
        clock: Arc<dyn Clock>,
        redis: Option<RedisPart>,
        prefix: String,
    ) -> Limiter {
        Limiter {
            inner: Arc::new(Inner {
                policies,
                clock,
                memory: MemoryBackend::new(),
                redis,
                prefix,
                fallbacks: AtomicU64::new(0),
                redis_failures: AtomicU64::new(0),
            }),
        }
    }

    /// The policies enforced.
    pub fn policies(&self) -> &Policies {
        &self.inner.policies
    }

    /// Whether Redis is configured.
    pub fn uses_redis(&self) -> bool {
        self.inner.redis.is_some()
    }

    /// Connects to Redis and loads the script, within the configured deadline ×10 (for
    /// startup logs and readiness; decisions do not need it). `Ok` without Redis.
    pub async fn connect(&self) -> Result<(), Error> {
        let Some(redis) = &self.inner.redis else {
            return Ok(());
        };
        let deadline = redis.timeout * 10;
        match tokio::time::timeout(deadline, redis.backend.load()).await {
            Ok(result) => result,
            Err(_) => Err(Error::Timeout(deadline)),
        }
    }

    /// Decides whether a request of `cost` units by `key` may proceed and, if so, charges
    /// it to every policy of the key. A refusal charges nothing. Cost 0 always passes and
    /// only reports the budgets. A cost above a policy's whole quota is refused without
    /// touching any backend.
    pub async fn check(&self, key: &Key<'_>, cost: u64) -> Decision {
        let set = self.inner.policies.set_for(key);
        if cost > set.max_cost {
            let violated = set
                .policies
                .iter()
                .position(|p| p.quota() < cost)
                .unwrap_or(0);
            let source = if self.uses_redis() {
                Source::Redis
            } else {
                Source::Memory
            };
            return Decision::too_costly(set, violated, source);
        }
        self.decide(set, key, cost, Mode::Check).await
    }

    /// Gives `cost` units back to every policy of `key` — for work that turned out cheaper
    /// than charged (a 304, an empty page) — and reports the budgets after it. A budget
    /// never grows past its quota.
    pub async fn refund(&self, key: &Key<'_>, cost: u64) -> Decision {
        let set = self.inner.policies.set_for(key);
        let cost = cost.min(set.max_cost);
        self.decide(set, key, cost, Mode::Refund).await
    }

    async fn decide(&self, set: &Arc<PolicySet>, key: &Key<'_>, cost: u64, mode: Mode) -> Decision {
        let inner = &*self.inner;
        // In-process: no timer, no breaker, no string keys — a lock and two map lookups.
        let Some(redis) = &inner.redis else {
            let now = clock::now_us(inner.clock.as_ref());
            return inner
                .memory
                .decide(set, key, cost, mode, now, Source::Memory);
        };
        let attempt = redis.breaker.attempt();
        if attempt != Attempt::Skip {
            let keys = key.storage_keys(&inner.prefix);
            // Boxed: the Redis call's state is large, and only this branch needs it — so
            // the futures of `check` and of every caller stay small for the in-process path.
            let call = Box::pin(tokio::time::timeout(
                redis.timeout,
                redis.backend.decide(set, &keys, cost, mode),
            ));
            let failure = match call.await {
                Ok(Ok(decision)) => {
                    redis.breaker.succeeded(attempt);
                    return decision;
                }
                Ok(Err(err)) => err,
                Err(_) => Error::Timeout(redis.timeout),
            };
            inner.redis_failures.fetch_add(1, Ordering::Relaxed);
            redis.breaker.failed(attempt, &failure);
        }
        inner.fallbacks.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(target: "ratelimit", "decided by the in-process fallback");
        let now = clock::now_us(inner.clock.as_ref());
        inner
            .memory
            .decide(set, key, cost, mode, now, Source::Fallback)
    }

    /// Decisions the in-process fallback has made while Redis was failing.
    pub fn fallbacks(&self) -> u64 {
        self.inner.fallbacks.load(Ordering::Relaxed)
    }

    /// The counters, for `/metrics`.
    pub fn stats(&self) -> Stats {
        Stats {
            fallbacks: self.fallbacks(),
            redis_failures: self.inner.redis_failures.load(Ordering::Relaxed),
            redis_healthy: self
                .inner
                .redis
                .as_ref()
                .is_some_and(|r| !r.breaker.open.load(Ordering::Acquire)),
        }
    }
}

/// Whether this decision may call Redis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Attempt {
    /// Redis is believed healthy.
    Normal,
    /// Redis failed; this call is the one allowed to see whether it is back.
    Probe,
    /// Redis failed and it is not time to try again (or another call is probing).
    Skip,
}

/// A circuit breaker: after a failure, Redis is left alone for a backoff (doubling while
/// probes keep failing), then one call probes it; success closes the breaker.
#[derive(Debug)]
struct Breaker {
    /// The fast path: a healthy Redis costs one atomic load per decision.
    open: AtomicBool,
    state: Mutex<BreakerState>,
    min: Duration,
    max: Duration,
}

#[derive(Debug)]
struct BreakerState {
    retry_at: Instant,
    backoff: Duration,
    probing: bool,
}

impl Breaker {
    fn new(min: Duration, max: Duration) -> Breaker {
        Breaker {
            open: AtomicBool::new(false),
            state: Mutex::new(BreakerState {
                retry_at: Instant::now(),
                backoff: min,
                probing: false,
            }),
            min,
            max,
        }
    }

    fn attempt(&self) -> Attempt {
        if !self.open.load(Ordering::Acquire) {
            return Attempt::Normal;
        }
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if !self.open.load(Ordering::Acquire) {
            return Attempt::Normal;
        }
        if !state.probing && Instant::now() >= state.retry_at {
            state.probing = true;
            Attempt::Probe
        } else {
            Attempt::Skip
        }
    }

    fn succeeded(&self, attempt: Attempt) {
        if attempt != Attempt::Probe {
            return;
        }
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.probing = false;
        state.backoff = self.min;
        self.open.store(false, Ordering::Release);
        tracing::info!(target: "ratelimit", "Redis answers again: rate limits are shared again");
    }

    fn failed(&self, attempt: Attempt, err: &Error) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match attempt {
            Attempt::Probe => {
                state.probing = false;
                state.backoff = (state.backoff * 2).min(self.max);
                state.retry_at = Instant::now() + state.backoff;
                tracing::debug!(target: "ratelimit", error = %err, retry_in_ms = state.backoff.as_millis(), "Redis still failing");
            }
            Attempt::Normal if !self.open.load(Ordering::Acquire) => {
                state.backoff = self.min;
                state.retry_at = Instant::now() + state.backoff;
                self.open.store(true, Ordering::Release);
                tracing::warn!(
                    target: "ratelimit",
                    error = %err,
                    retry_in_ms = state.backoff.as_millis(),
                    "Redis failed: limiting in-process (fail-open) until it answers again"
                );
            }
            // Another call already opened the breaker.
            Attempt::Normal | Attempt::Skip => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err() -> Error {
        Error::Timeout(Duration::from_millis(1))
    }

    #[test]
    fn a_failure_opens_the_breaker_until_the_backoff_has_passed() {
        let breaker = Breaker::new(Duration::from_secs(60), Duration::from_secs(60));
        assert_eq!(breaker.attempt(), Attempt::Normal);
        breaker.failed(Attempt::Normal, &err());
        assert_eq!(breaker.attempt(), Attempt::Skip);
        breaker.state.lock().expect("lock").retry_at = Instant::now();
        assert_eq!(breaker.attempt(), Attempt::Probe);
        // Only one probe at a time.
        assert_eq!(breaker.attempt(), Attempt::Skip);
        breaker.succeeded(Attempt::Probe);
        assert_eq!(breaker.attempt(), Attempt::Normal);
    }

    #[test]
    fn failed_probes_double_the_backoff_up_to_the_maximum() {
        let breaker = Breaker::new(Duration::from_millis(10), Duration::from_millis(30));
        breaker.failed(Attempt::Normal, &err());
        for expected in [20, 30, 30] {
            let mut state = breaker.state.lock().expect("lock");
            state.retry_at = Instant::now();
            drop(state);
            assert_eq!(breaker.attempt(), Attempt::Probe);
            breaker.failed(Attempt::Probe, &err());
            let state = breaker.state.lock().expect("lock");
            assert_eq!(state.backoff, Duration::from_millis(expected));
        }
    }

    #[test]
    fn a_late_failure_of_a_normal_call_does_not_reset_an_open_breaker() {
        let breaker = Breaker::new(Duration::from_millis(10), Duration::from_millis(30));
        breaker.failed(Attempt::Normal, &err());
        let retry_at = breaker.state.lock().expect("lock").retry_at;
        breaker.failed(Attempt::Normal, &err());
        assert_eq!(breaker.state.lock().expect("lock").retry_at, retry_at);
    }
}
