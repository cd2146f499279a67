//! The run engine: a request budget that always ends (a deadline and a request cap),
//! the progress bar, a small PRNG, and the timed call wrapper that turns every
//! response of the generated client into a latency sample, a status count, what its
//! headers say (the units charged; for a 429 or 503, whether it carried `Retry-After`,
//! a problem body and the `RateLimit` fields) and, for a failure without a status, an
//! error kind.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use progenitor_client::{Error, ResponseValue};
use reqwest::header::{CONTENT_TYPE, HeaderMap, RETRY_AFTER};

use crate::client::types::Problem;
use crate::stats::{Recorder, ResponseMeta};

/// The result of one call of the generated client.
pub type ApiResult<T> = Result<ResponseValue<T>, Error<Problem>>;

/// The limits of a run: whichever comes first ends it.
#[derive(Debug)]
pub struct Budget {
    started: Instant,
    deadline: Instant,
    max_requests: u64,
    sent: AtomicU64,
    stopped: AtomicBool,
}

impl Budget {
    /// A budget of `duration` and at most `max_requests` requests, starting now.
    pub fn new(duration: Duration, max_requests: u64) -> Self {
        let started = Instant::now();
        Self {
            started,
            deadline: started + duration,
            max_requests,
            sent: AtomicU64::new(0),
            stopped: AtomicBool::new(false),
        }
    }

    /// Takes one request from the budget; `false` once the run is over.
    pub fn take(&self) -> bool {
        if self.stopped.load(Ordering::Relaxed) || Instant::now() >= self.deadline {
            return false;
        }
        self.sent.fetch_add(1, Ordering::Relaxed) < self.max_requests
    }

    /// Whether the run is over (without taking anything).
    pub fn over(&self) -> bool {
        self.stopped.load(Ordering::Relaxed)
            || Instant::now() >= self.deadline
            || self.sent.load(Ordering::Relaxed) >= self.max_requests
    }

    /// Ends the run early (Ctrl-C).
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
    }

    /// When the measured phase started.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// When it ends at the latest.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// The fraction done, by time or by requests, whichever is further.
    pub fn progress(&self) -> f64 {
        let total = self.deadline.duration_since(self.started).as_secs_f64();
        let by_time = self.started.elapsed().as_secs_f64() / total.max(f64::EPSILON);
        let by_count = self.sent.load(Ordering::Relaxed) as f64 / self.max_requests.max(1) as f64;
        by_time.max(by_count).min(1.0)
    }

    /// Requests taken so far (capped at the maximum).
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed).min(self.max_requests)
    }
}

/// Shows the budget's progress on stderr (hidden when stderr is not a terminal)
/// until `budget` is over; returns the bar to finish.
pub fn progress(budget: Arc<Budget>, label: &str) -> (ProgressBar, tokio::task::JoinHandle<()>) {
    let bar = ProgressBar::new(1000).with_style(
        ProgressStyle::with_template("{prefix} [{elapsed_precise}] {wide_bar} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_prefix(label.to_owned());
    let ticking = bar.clone();
    let task = tokio::spawn(async move {
        // Bounded: ends with the budget (which has a deadline).
        while !budget.over() {
            let sent = budget.sent();
            let secs = budget.started().elapsed().as_secs_f64().max(f64::EPSILON);
            ticking.set_position((budget.progress() * 1000.0) as u64);
            ticking.set_message(format!("{sent} req  {:.0} req/s", sent as f64 / secs));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        ticking.set_position(1000);
    });
    (bar, task)
}

/// A small, fast PRNG (xorshift64*) for picking ids and operations: no crate needed, and
/// reproducible from a seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value; zero is remapped).
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (`0` when `n == 0`).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        (self.next_u64() % n as u64) as usize
    }

    /// `true` with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }
}

/// How a call ended, for the counters.
pub fn classify<T>(result: &ApiResult<T>) -> (Option<u16>, Option<&'static str>) {
    match result {
        Ok(rv) => (Some(rv.status().as_u16()), None),
        Err(Error::ErrorResponse(rv)) => (Some(rv.status().as_u16()), None),
        // A status the spec does not list for this operation: drift, or a layer (rate
        // limiter, load shedder) the spec does not describe.
        Err(Error::UnexpectedResponse(r)) => {
            (Some(r.status().as_u16()), Some("undocumented_status"))
        }
        Err(Error::CommunicationError(e)) if e.is_timeout() => (None, Some("timeout")),
        Err(Error::CommunicationError(_)) => (None, Some("transport")),
        // A documented status whose body does not match the spec: server/spec drift.
        Err(Error::InvalidResponsePayload(..)) => (None, Some("invalid_payload")),
        Err(Error::ResponseBodyError(_)) => (None, Some("body_read")),
        Err(Error::InvalidRequest(_)) => (None, Some("invalid_request")),
        Err(_) => (None, Some("other")),
    }
}

/// The HTTP status of a call's outcome, if it got one.
pub fn status_of<T>(result: &ApiResult<T>) -> Option<u16> {
    classify(result).0
}

/// The headers of a call's response, if it got one.
pub fn headers_of<T>(result: &ApiResult<T>) -> Option<&HeaderMap> {
    match result {
        Ok(rv) => Some(rv.headers()),
        Err(Error::ErrorResponse(rv)) => Some(rv.headers()),
        Err(Error::UnexpectedResponse(r)) => Some(r.headers()),
        _ => None,
    }
}

/// The policies a refusal's problem body names (`violated-policies`).
pub fn violated_of<T>(result: &ApiResult<T>) -> &[String] {
    match result {
        Err(Error::ErrorResponse(rv)) => &rv.violated_policies,
        _ => &[],
    }
}

/// What a response's headers say about rate limits and refusals.
pub fn inspect(headers: &HeaderMap) -> ResponseMeta {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let retry_after = headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            let v = v.trim();
            // delay-seconds, or an HTTP date (IMF-fixdate ends in GMT).
            v.parse::<u64>().is_ok() || v.ends_with(" GMT")
        });
    let problem_json = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/problem+json"))
        });
    ResponseMeta {
        cost: text("x-ratelimit-cost").and_then(|v| v.trim().parse().ok()),
        retry_after,
        problem_json,
        ratelimit: text("ratelimit").is_some() && text("ratelimit-policy").is_some(),
    }
}

/// Runs one call of the generated client, recording its latency under `op`, its status,
/// what its headers say, and any failure kind in `rec`.
pub async fn timed<T, F>(rec: &mut Recorder, op: &str, call: F) -> ApiResult<T>
where
    F: Future<Output = ApiResult<T>>,
{
    let start = Instant::now();
    let result = call.await;
    let (status, kind) = classify(&result);
    rec.record(op, start.elapsed(), status);
    if let (Some(status), Some(headers)) = (status, headers_of(&result)) {
        rec.response(status, inspect(headers), violated_of(&result));
    }
    if let Some(kind) = kind {
        rec.error(kind);
    }
    result
}

/// The `Retry-After` of a failed response, in seconds, capped at `cap`.
pub fn retry_after<T>(result: &ApiResult<T>, cap: Duration) -> Duration {
    let headers = match result {
        Ok(_) => None,
        other => headers_of(other),
    };
    headers
        .and_then(|h| h.get(RETRY_AFTER))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(Duration::from_millis(50), Duration::from_secs)
        .min(cap)
}

/// Calls `call` until it is neither a 429 nor a 503 (refused before any work was done),
/// waiting each time for the `Retry-After` (at most 10 s), `attempts` times at most. For
/// the tool's own setup and teardown requests, which are not measured.
pub async fn retrying<T, F, Fut>(attempts: usize, mut call: F) -> ApiResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ApiResult<T>>,
{
    let mut result = call().await;
    for _ in 1..attempts.max(1) {
        if !matches!(status_of(&result), Some(429 | 503)) {
            break;
        }
        tokio::time::sleep(retry_after(&result, Duration::from_secs(10))).await;
        result = call().await;
    }
    result
}

/// A failed call in one line: the status and the problem's title and detail, or the
/// client's error (without the response headers progenitor's `Display` includes).
pub fn describe(error: &Error<Problem>) -> String {
    match error {
        Error::ErrorResponse(rv) => format!(
            "{} {}{}",
            rv.status().as_u16(),
            rv.title,
            rv.detail
                .as_deref()
                .map_or_else(String::new, |d| format!(": {d}"))
        ),
        Error::UnexpectedResponse(r) => format!("unexpected status {}", r.status().as_u16()),
        other => other.to_string(),
    }
}

/// Parses a duration: `15s`, `2m`, `500ms`, or plain seconds.
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    let raw = raw.trim();
    let (number, unit) = raw.split_at(raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len()));
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{raw}`: expected like 15s, 2m, 500ms"))?;
    match unit {
        "" | "s" => Ok(Duration::from_secs(n)),
        "ms" => Ok(Duration::from_millis(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        other => Err(format!("`{raw}`: unknown unit `{other}` (ms, s, m)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_stops_at_the_request_cap() {
        let budget = Budget::new(Duration::from_secs(60), 3);
        assert!(budget.take() && budget.take() && budget.take());
        assert!(!budget.take());
        assert!(budget.over());
        assert_eq!(budget.sent(), 3);
    }

    #[test]
    fn the_budget_stops_at_the_deadline_and_on_request() {
        let budget = Budget::new(Duration::ZERO, 100);
        assert!(!budget.take());
        let budget = Budget::new(Duration::from_secs(60), 100);
        budget.stop();
        assert!(!budget.take());
    }

    #[test]
    fn durations_take_a_unit() {
        assert_eq!(parse_duration("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("1h").is_err());
        assert!(parse_duration("s").is_err());
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, reqwest::header::HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn a_well_formed_429_is_recognised_from_its_headers() {
        let meta = inspect(&headers(&[
            ("content-type", "application/problem+json; charset=utf-8"),
            ("retry-after", "4"),
            ("ratelimit", r#""credential";r=0;t=4"#),
            ("ratelimit-policy", r#""credential";q=120;w=60"#),
            ("x-ratelimit-cost", "0"),
        ]));
        assert_eq!(
            meta,
            ResponseMeta {
                cost: Some(0),
                retry_after: true,
                problem_json: true,
                ratelimit: true
            }
        );
    }

    #[test]
    fn a_503_without_retry_after_or_problem_body_is_told_apart() {
        let meta = inspect(&headers(&[("content-type", "text/plain")]));
        assert_eq!(meta, ResponseMeta::default());
        let date = inspect(&headers(&[
            ("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT"),
            ("content-type", "application/problem+json"),
        ]));
        assert!(date.retry_after && date.problem_json && !date.ratelimit);
        assert!(!inspect(&headers(&[("retry-after", "soon")])).retry_after);
        // A plain JSON body is not a problem body.
        assert!(!inspect(&headers(&[("content-type", "application/json")])).problem_json);
    }

    #[test]
    fn the_rng_stays_in_range_and_spreads() {
        let mut rng = Rng::new(0);
        let mut hits = [0u32; 4];
        for _ in 0..4000 {
            hits[rng.below(4)] += 1;
        }
        assert!(hits.iter().all(|&h| h > 800), "{hits:?}");
        assert_eq!(rng.below(0), 0);
    }
}
