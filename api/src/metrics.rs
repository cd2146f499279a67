//! Prometheus metrics, exported at `/metrics` in the text format.
//!
//! Labelled by operation id (bounded: one per spec operation, plus `other` for
//! unmatched routes and the system endpoints), never by path or tenant, so the
//! cardinality stays fixed.

use prometheus::{
    HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

/// The server's metrics, in a registry of their own (tests run several servers in one
/// process).
#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    duration: HistogramVec,
    in_flight: IntGauge,
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
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(in_flight.clone()))?;
        Ok(Self {
            registry,
            requests,
            duration,
            in_flight,
        })
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
