//! Prometheus metrics, exported at `/metrics` in the text format.
//!
//! Labelled by operation id (bounded: one per spec operation, plus `other` for
//! unmatched routes and the system endpoints), never by path or tenant, so the
//! cardinality stays fixed.

use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

/// The server's metrics, in a registry of their own (tests run several servers in one
/// process).
#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    duration: HistogramVec,
    in_flight: IntGauge,
    /// Requests shed (503) by admission control because the server was overloaded.
    shed: IntCounter,
    /// Requests refused by a rate limit, by violated policy (`tenant`, `credential`, `ip`).
    rate_limited: IntCounterVec,
    /// Decisions the in-process limiter made because Redis failed or was slow.
    limiter_fallbacks: IntCounter,
    /// Redis calls of the limiter that failed or timed out.
    limiter_redis_failures: IntCounter,
    /// 1 while the limiter's Redis answers, 0 while it is failing or not configured.
    limiter_redis_up: IntGauge,
    /// Serializes [`Metrics::observe_limiter`], whose read-then-add must not interleave.
    observing: std::sync::Arc<std::sync::Mutex<()>>,
}

impl Metrics {
    /// Registers the metrics.
    ///
    /// # Errors
    /// Only on a programming error (duplicate or invalid metric names).
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(Some("tenantry".to_owned()), None)?;
        let requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests by operation, method and status",
            ),
            &["operation", "method", "status"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "HTTP request latency by operation",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
            ]),
            &["operation"],
        )?;
        let in_flight = IntGauge::new("http_requests_in_flight", "Requests being served")?;
        let shed = IntCounter::new(
            "http_requests_shed_total",
            "Requests shed with 503 because too many were in flight and queued",
        )?;
        let rate_limited = IntCounterVec::new(
            Opts::new(
                "rate_limited_total",
                "Requests refused (429) by a rate limit, by violated policy",
            ),
            &["policy"],
        )?;
        let limiter_fallbacks = IntCounter::new(
            "rate_limit_fallbacks_total",
            "Rate-limit decisions made in-process because Redis failed or was slow",
        )?;
        let limiter_redis_failures = IntCounter::new(
            "rate_limit_redis_failures_total",
            "Rate-limiter calls to Redis that failed or timed out",
        )?;
        let limiter_redis_up = IntGauge::new(
            "rate_limit_redis_up",
            "1 while the rate limiter's Redis answers; 0 while it fails or is not configured",
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(in_flight.clone()))?;
        registry.register(Box::new(shed.clone()))?;
        registry.register(Box::new(rate_limited.clone()))?;
        registry.register(Box::new(limiter_fallbacks.clone()))?;
        registry.register(Box::new(limiter_redis_failures.clone()))?;
        registry.register(Box::new(limiter_redis_up.clone()))?;
        Ok(Self {
            registry,
            requests,
            duration,
            in_flight,
            shed,
            rate_limited,
            limiter_fallbacks,
            limiter_redis_failures,
            limiter_redis_up,
            observing: std::sync::Arc::default(),
        })
    }

    /// A request was shed by admission control.
    pub fn shed(&self) {
        self.shed.inc();
    }

    /// A request was refused by the rate-limit `policy`.
    pub fn rate_limited(&self, policy: &str) {
        self.rate_limited.with_label_values(&[policy]).inc();
    }

    /// Brings the limiter's counters up to date (they are kept by the limiter itself and
    /// read at scrape time).
    pub fn observe_limiter(&self, stats: Option<ratelimit::Stats>) {
        let stats = stats.unwrap_or(ratelimit::Stats {
            fallbacks: 0,
            redis_failures: 0,
            redis_healthy: false,
        });
        let _serial = self
            .observing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let catch_up = |counter: &IntCounter, total: u64| {
            counter.inc_by(total.saturating_sub(counter.get()));
        };
        catch_up(&self.limiter_fallbacks, stats.fallbacks);
        catch_up(&self.limiter_redis_failures, stats.redis_failures);
        self.limiter_redis_up.set(i64::from(stats.redis_healthy));
    }

    /// A request started.
    pub fn started(&self) {
        self.in_flight.inc();
    }

    /// A request finished.
    pub fn finished(&self, operation: &str, method: &str, status: u16, seconds: f64) {
        self.in_flight.dec();
        self.requests
            .with_label_values(&[operation, method, &status.to_string()])
            .inc();
        self.duration
            .with_label_values(&[operation])
            .observe(seconds);
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap_or_default()
    }
}
