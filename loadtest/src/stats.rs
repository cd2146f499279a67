//! What a run measures: one HDR latency histogram per operation, response counts by
//! status, failures by kind, what refusals (429, 503) carried, and the rate-limit units
//! the server charged. Each worker owns a [`Recorder`] (no locks on the hot path); the
//! run merges them at the end and turns the result into a [`Summary`].

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// The slowest latency a histogram tracks exactly (longer ones are clamped to it):
/// above the server's 30 s request timeout.
const MAX_TRACKED_MICROS: u64 = 120_000_000;

/// A latency histogram in microseconds with three significant digits.
#[derive(Debug, Clone)]
pub struct Latency(Histogram<u64>);

impl Default for Latency {
    fn default() -> Self {
        Self::new()
    }
}

impl Latency {
    /// An empty histogram.
    pub fn new() -> Self {
        // 1 µs .. 120 s at 3 significant digits: ~30 KiB, fixed whatever the count.
        match Histogram::new_with_bounds(1, MAX_TRACKED_MICROS, 3) {
            Ok(h) => Self(h),
            Err(e) => unreachable!("constant histogram bounds are valid: {e}"),
        }
    }

    /// Records one latency.
    pub fn record(&mut self, elapsed: Duration) {
        let micros = u64::try_from(elapsed.as_micros())
            .unwrap_or(u64::MAX)
            .clamp(1, MAX_TRACKED_MICROS);
        self.0.saturating_record(micros);
    }

    /// Records one latency given in microseconds.
    pub fn record_micros(&mut self, micros: u64) {
        self.0
            .saturating_record(micros.clamp(1, MAX_TRACKED_MICROS));
    }

    /// Adds `other`'s samples.
    pub fn merge(&mut self, other: &Self) {
        // Same bounds on both sides, so `add` cannot fail; count a failure as lost samples.
        let _ = self.0.add(&other.0);
    }

    /// How many samples.
    #[cfg(test)]
    pub fn count(&self) -> u64 {
        self.0.len()
    }

    /// The summary in milliseconds.
    pub fn summary(&self) -> LatencySummary {
        let ms = |micros: u64| micros as f64 / 1000.0;
        if self.0.is_empty() {
            return LatencySummary::default();
        }
        LatencySummary {
            count: self.0.len(),
            mean_ms: self.0.mean() / 1000.0,
            p50_ms: ms(self.0.value_at_quantile(0.50)),
            p90_ms: ms(self.0.value_at_quantile(0.90)),
            p99_ms: ms(self.0.value_at_quantile(0.99)),
            p999_ms: ms(self.0.value_at_quantile(0.999)),
            max_ms: ms(self.0.max()),
        }
    }
}

/// Percentiles of one operation's latency, in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Samples.
    pub count: u64,
    /// Arithmetic mean.
    pub mean_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Slowest.
    pub max_ms: f64,
}

/// What the refusals of one status (429, 503) carried: each must be an RFC 9457
/// problem with a `Retry-After`; a 429 also with the `RateLimit` fields.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusals {
    /// Responses with this status.
    pub count: u64,
    /// … with a valid `Retry-After` (delay-seconds or an HTTP date).
    pub retry_after: u64,
    /// … with `Content-Type: application/problem+json`.
    pub problem_json: u64,
    /// … with both `RateLimit` and `RateLimit-Policy`.
    pub ratelimit: u64,
    /// The policies the problem bodies named as violated (`violated-policies`).
    pub policies: BTreeMap<String, u64>,
}

impl Refusals {
    fn merge(&mut self, o: &Self) {
        self.count += o.count;
        self.retry_after += o.retry_after;
        self.problem_json += o.problem_json;
        self.ratelimit += o.ratelimit;
        for (p, n) in &o.policies {
            *self.policies.entry(p.clone()).or_default() += n;
        }
    }

    /// Whether every refusal had a `Retry-After` and a problem body (and, if `limits`,
    /// the rate-limit fields).
    pub fn all_well_formed(&self, limits: bool) -> bool {
        self.retry_after == self.count
            && self.problem_json == self.count
            && (!limits || self.ratelimit == self.count)
    }
}

/// The headers of one response that the counters look at (see
/// [`crate::engine::inspect`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResponseMeta {
    /// `X-RateLimit-Cost`: the units the request was charged.
    pub cost: Option<u64>,
    /// A valid `Retry-After`.
    pub retry_after: bool,
    /// `Content-Type: application/problem+json`.
    pub problem_json: bool,
    /// Both `RateLimit` and `RateLimit-Policy`.
    pub ratelimit: bool,
}

/// What one worker saw.
#[derive(Debug, Default, Clone)]
pub struct Recorder {
    /// Latency per operation name (`get_person`, `walk_page`, …), every response
    /// included, errors too: a fast 503 is still a response the client waited for.
    pub ops: BTreeMap<String, Latency>,
    /// Responses by HTTP status.
    pub statuses: BTreeMap<u16, u64>,
    /// Failures without a usable response, or with one that broke a check, by kind
    /// (`transport`, `invalid_payload`, `unexpected_status`, …).
    pub errors: BTreeMap<String, u64>,
    /// Requests sent.
    pub requests: u64,
    /// What 429 and 503 responses carried, by status.
    pub refusals: BTreeMap<u16, Refusals>,
    /// `X-RateLimit-Cost` summed over 2xx responses: the units admitted.
    pub units_ok: u64,
    /// `X-RateLimit-Cost` summed over every response (failed requests cost 1, refused 0).
    pub units_all: u64,
}

impl Recorder {
    /// Records a request of `op` that took `elapsed` and answered `status`
    /// (`None`: no HTTP status, e.g. a connection error).
    pub fn record(&mut self, op: &str, elapsed: Duration, status: Option<u16>) {
        self.requests += 1;
        self.ops.entry(op.to_owned()).or_default().record(elapsed);
        if let Some(status) = status {
            *self.statuses.entry(status).or_default() += 1;
        }
    }

    /// Records what a response of `status` carried (`violated`: the policies its problem
    /// body named).
    pub fn response(&mut self, status: u16, meta: ResponseMeta, violated: &[String]) {
        let cost = meta.cost.unwrap_or(0);
        self.units_all += cost;
        if (200..300).contains(&status) {
            self.units_ok += cost;
        }
        if matches!(status, 429 | 503) {
            let r = self.refusals.entry(status).or_default();
            r.count += 1;
            r.retry_after += u64::from(meta.retry_after);
            r.problem_json += u64::from(meta.problem_json);
            r.ratelimit += u64::from(meta.ratelimit);
            for p in violated {
                *r.policies.entry(p.clone()).or_default() += 1;
            }
        }
    }

    /// Counts one failure of `kind`.
    pub fn error(&mut self, kind: &str) {
        *self.errors.entry(kind.to_owned()).or_default() += 1;
    }

    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: &Self) {
        for (op, latency) in &other.ops {
            self.ops.entry(op.clone()).or_default().merge(latency);
        }
        for (status, n) in &other.statuses {
            *self.statuses.entry(*status).or_default() += n;
        }
        for (kind, n) in &other.errors {
            *self.errors.entry(kind.clone()).or_default() += n;
        }
        self.requests += other.requests;
        for (status, r) in &other.refusals {
            self.refusals.entry(*status).or_default().merge(r);
        }
        self.units_ok += other.units_ok;
        self.units_all += other.units_all;
    }

    /// The summary of a run that lasted `elapsed`.
    pub fn summary(&self, elapsed: Duration) -> Summary {
        let secs = elapsed.as_secs_f64().max(f64::EPSILON);
        let count = |range: std::ops::RangeInclusive<u16>| -> u64 {
            self.statuses
                .iter()
                .filter(|(s, _)| range.contains(s))
                .map(|(_, n)| n)
                .sum()
        };
        let mut all = Latency::new();
        for latency in self.ops.values() {
            all.merge(latency);
        }
        Summary {
            requests: self.requests,
            elapsed_s: elapsed.as_secs_f64(),
            throughput_rps: self.requests as f64 / secs,
            ok_rps: (count(200..=399)) as f64 / secs,
            all: all.summary(),
            ops: self
                .ops
                .iter()
                .map(|(op, l)| (op.clone(), l.summary()))
                .collect(),
            statuses: self.statuses.clone(),
            errors: self.errors.clone(),
            status_4xx: count(400..=499),
            status_5xx: count(500..=599),
            refusals: self.refusals.clone(),
            units_ok: self.units_ok,
            units_all: self.units_all,
        }
    }
}

/// The numbers of a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Requests sent.
    pub requests: u64,
    /// Wall time of the measured phase, seconds.
    pub elapsed_s: f64,
    /// Requests per second, all responses.
    pub throughput_rps: f64,
    /// 2xx/3xx responses per second.
    pub ok_rps: f64,
    /// Latency over all operations.
    pub all: LatencySummary,
    /// Latency per operation.
    pub ops: BTreeMap<String, LatencySummary>,
    /// Responses by HTTP status.
    pub statuses: BTreeMap<u16, u64>,
    /// Failures by kind.
    pub errors: BTreeMap<String, u64>,
    /// 4xx responses.
    pub status_4xx: u64,
    /// 5xx responses.
    pub status_5xx: u64,
    /// What 429 and 503 responses carried, by status.
    #[serde(default)]
    pub refusals: BTreeMap<u16, Refusals>,
    /// Rate-limit units admitted (`X-RateLimit-Cost` of 2xx responses).
    #[serde(default)]
    pub units_ok: u64,
    /// Rate-limit units charged over every response.
    #[serde(default)]
    pub units_all: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_the_recorded_distribution() {
        let mut latency = Latency::new();
        for ms in 1..=1000u64 {
            latency.record(Duration::from_millis(ms));
        }
        let s = latency.summary();
        assert_eq!(s.count, 1000);
        // Three significant digits: within 0.1% of the exact order statistic.
        assert!((s.p50_ms - 500.0).abs() <= 1.0, "{s:?}");
        assert!((s.p90_ms - 900.0).abs() <= 1.0, "{s:?}");
        assert!((s.p99_ms - 990.0).abs() <= 1.0, "{s:?}");
        assert!((s.p999_ms - 999.0).abs() <= 1.0, "{s:?}");
        assert!((s.max_ms - 1000.0).abs() <= 1.0, "{s:?}");
    }

    #[test]
    fn an_empty_histogram_summarizes_to_zeros() {
        assert_eq!(Latency::new().summary(), LatencySummary::default());
    }

    #[test]
    fn latencies_beyond_the_tracked_range_are_clamped_not_lost() {
        let mut latency = Latency::new();
        latency.record(Duration::from_secs(3600));
        latency.record(Duration::ZERO);
        assert_eq!(latency.count(), 2);
        // Within the histogram's precision (3 significant digits) of the clamp.
        assert!(latency.summary().max_ms <= MAX_TRACKED_MICROS as f64 / 1000.0 * 1.001);
    }

    #[test]
    fn merged_recorders_add_counts_and_statuses() {
        let mut a = Recorder::default();
        a.record("get", Duration::from_millis(2), Some(200));
        a.record("get", Duration::from_millis(4), Some(503));
        a.error("transport");
        let mut b = Recorder::default();
        b.record("get", Duration::from_millis(3), Some(200));
        b.record("list", Duration::from_millis(5), Some(404));
        b.record("list", Duration::from_millis(5), None);
        b.error("transport");
        a.merge(&b);
        assert_eq!(a.requests, 5);
        assert_eq!(a.statuses.get(&200), Some(&2));
        assert_eq!(a.errors.get("transport"), Some(&2));
        let s = a.summary(Duration::from_secs(2));
        assert_eq!(s.requests, 5);
        assert!((s.throughput_rps - 2.5).abs() < 1e-9);
        assert!((s.ok_rps - 1.0).abs() < 1e-9);
        assert_eq!((s.status_4xx, s.status_5xx), (1, 1));
        assert_eq!(s.ops["get"].count, 3);
        assert_eq!(s.all.count, 5);
    }

    #[test]
    fn refusals_count_what_their_headers_carried_and_units_add_up() {
        let full = ResponseMeta {
            cost: Some(0),
            retry_after: true,
            problem_json: true,
            ratelimit: true,
        };
        let mut a = Recorder::default();
        a.response(429, full, &["credential".to_owned()]);
        a.response(
            200,
            ResponseMeta {
                cost: Some(2),
                ..ResponseMeta::default()
            },
            &[],
        );
        a.response(
            404,
            ResponseMeta {
                cost: Some(1),
                ..ResponseMeta::default()
            },
            &[],
        );
        let mut b = Recorder::default();
        b.response(
            429,
            ResponseMeta {
                retry_after: false,
                ..full
            },
            &["tenant".to_owned()],
        );
        b.response(
            503,
            ResponseMeta {
                cost: None,
                retry_after: true,
                problem_json: true,
                ratelimit: false,
            },
            &[],
        );
        a.merge(&b);
        let r429 = &a.refusals[&429];
        assert_eq!((r429.count, r429.retry_after, r429.ratelimit), (2, 1, 2));
        assert!(!r429.all_well_formed(true));
        assert_eq!(r429.policies.get("tenant"), Some(&1));
        assert!(a.refusals[&503].all_well_formed(false));
        assert!(!a.refusals[&503].all_well_formed(true));
        assert_eq!((a.units_ok, a.units_all), (2, 3));
        let s = a.summary(Duration::from_secs(1));
        assert_eq!(s.refusals, a.refusals);
        assert_eq!(s.units_ok, 2);
    }
}
