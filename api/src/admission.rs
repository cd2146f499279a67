//! Fair admission and the request body's intake: the innermost layer before the routes
//! (see [`crate::server::app`] for the order).
//!
//! By the time a request gets here, [`crate::front`] has verified its credential and
//! charged its rate limits, and has said who it is counted against ([`Who`]). This layer
//! then:
//!
//! 1. **Reads the body, without holding a slot**, under a deadline: the whole body within
//!    [`BodyLimits::timeout`], and never falling behind [`BodyLimits::min_rate`] by more than
//!    [`BodyLimits::grace`] (a client may pause, but not trickle). Too slow: 408; too
//!    large (declared or actual, after decompression): 413. A slow client costs a
//!    connection and a task, never a slot that a well-behaved request needs.
//! 2. **Admits the request to one of [`AdmissionLimits::max_in_flight`] slots**, held only
//!    while the request is served. Requests beyond the slots wait in one FIFO queue (at
//!    most `max_queued`, each at most `queue_timeout`), and beyond that are shed with 503 +
//!    `Retry-After`.
//! 3. **Keeps shares fair with per-key caps** (chosen over weighted fair queuing: the same
//!    guarantee — nobody is starved by one heavy key — with one lock and four counters, and
//!    it is easy to state): a tenant, a credential, anonymous traffic as a whole, and one
//!    anonymous client address may each have at most their cap of requests running *or
//!    queued*. A request over its key's cap is shed at once (503 + `Retry-After`, naming the
//!    share), so one tenant or client can never fill the slots or the queue that the others
//!    need. Defaults (from `max_in_flight` = 64): 32 per tenant, 16 per credential, 8 for all
//!    anonymous traffic, 4 per anonymous address.
//!
//! `/healthz`, `/readyz` and `/metrics` are never shed: a liveness probe failing under
//! load would get a busy instance restarted, which only adds to the overload.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::StreamExt as _;
use poem::http::{StatusCode, header};
use poem::{Body, Endpoint, IntoResponse, Middleware, Request, Response, Result};
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::Instant;
use uuid::Uuid;

use crate::metrics::Metrics;
use crate::middleware::problem_context;
use crate::problem::{self, Problem, kind};
use crate::settings::{AdmissionSettings, BodyLimits};

/// Who a request is counted against, set by [`crate::front`] in the request's extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Who {
    /// A verified credential of a tenant.
    Credential {
        /// The tenant.
        tenant: Uuid,
        /// A digest of the credential's id (see [`Who::credential`]).
        credential: u64,
    },
    /// A request without a valid credential, by client address.
    Anonymous(IpAddr),
}

impl Who {
    /// The key of a verified credential: `credential_id` is the credential's stable id.
    pub fn credential(tenant: Uuid, credential_id: &str) -> Self {
        use std::hash::{BuildHasher as _, Hasher as _};
        // A process-wide keyed hash: collisions only merge two credentials' caps, they
        // never cross tenants (the tenant is part of the key).
        static SEED: std::sync::OnceLock<std::hash::RandomState> = std::sync::OnceLock::new();
        let mut hasher = SEED.get_or_init(std::hash::RandomState::new).build_hasher();
        hasher.write(credential_id.as_bytes());
        Self::Credential {
            tenant,
            credential: hasher.finish(),
        }
    }
}

/// One counter of [`Admission`]: a share with a cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Share {
    Tenant(Uuid),
    Credential(Uuid, u64),
    Anonymous,
    Address(IpAddr),
}

impl Share {
    /// Who holds the share, as the problem's detail says it.
    fn holder(self) -> &'static str {
        match self {
            Share::Tenant(_) => "this tenant",
            Share::Credential(..) => "this credential",
            Share::Anonymous => "requests without a credential",
            Share::Address(_) => "this client address",
        }
    }
}

/// The slot limits (see the module docs; configured by
/// [`AdmissionSettings`](crate::settings::AdmissionSettings)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdmissionLimits {
    /// Requests served at once (at least 1).
    pub max_in_flight: usize,
    /// Requests that may wait for a slot; more are shed at once.
    pub max_queued: usize,
    /// How long a request may wait for a slot.
    pub queue_timeout: Duration,
    /// Running + queued requests of one tenant.
    pub per_tenant: usize,
    /// Running + queued requests of one credential.
    pub per_credential: usize,
    /// Running + queued requests without a credential, all together.
    pub anonymous: usize,
    /// Running + queued requests of one anonymous client address.
    pub per_address: usize,
}

impl AdmissionLimits {
    /// The limits for `max_in_flight` slots with the default shares (each at least 1):
    /// a tenant half the slots, a credential a quarter, anonymous traffic an eighth, one
    /// anonymous address a sixteenth.
    pub fn with_default_shares(
        max_in_flight: usize,
        max_queued: usize,
        queue_timeout: Duration,
    ) -> Self {
        let max_in_flight = max_in_flight.max(1);
        let share = |divisor: usize| (max_in_flight / divisor).max(1);
        Self {
            max_in_flight,
            max_queued,
            queue_timeout,
            per_tenant: share(2),
            per_credential: share(4),
            anonymous: share(8),
            per_address: share(16),
        }
    }

    fn cap(&self, share: Share) -> usize {
        match share {
            Share::Tenant(_) => self.per_tenant,
            Share::Credential(..) => self.per_credential,
            Share::Anonymous => self.anonymous,
            Share::Address(_) => self.per_address,
        }
    }
}

impl From<&AdmissionSettings> for AdmissionLimits {
    /// The configured limits: the default shares where a share is not set, each at least 1.
    fn from(s: &AdmissionSettings) -> Self {
        let defaults = Self::with_default_shares(s.max_in_flight, s.max_queued, s.queue_timeout);
        let or = |set: Option<usize>, default: usize| set.unwrap_or(default).max(1);
        Self {
            per_tenant: or(s.per_tenant, defaults.per_tenant),
            per_credential: or(s.per_credential, defaults.per_credential),
            anonymous: or(s.anonymous, defaults.anonymous),
            per_address: or(s.per_address, defaults.per_address),
            ..defaults
        }
    }
}

/// Fair admission with the body's intake; see the module docs.
#[derive(Clone, Debug)]
pub struct Admission(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    limits: AdmissionLimits,
    body: BodyLimits,
    running: Semaphore,
    waiting: AtomicUsize,
    shares: Mutex<HashMap<Share, usize>>,
    metrics: Metrics,
}

/// Why a request was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shed {
    /// All slots busy and the queue full, or the wait timed out.
    Overloaded,
    /// The request's key has its whole share running or queued; who holds it.
    Share(&'static str),
}

/// A request's places in its shares, given back when dropped.
struct Places<'a> {
    admission: &'a Inner,
    shares: [Option<Share>; 2],
}

impl Drop for Places<'_> {
    fn drop(&mut self) {
        let mut counts = self
            .admission
            .shares
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for share in self.shares.iter().flatten() {
            if let Some(count) = counts.get_mut(share) {
                *count -= 1;
                if *count == 0 {
                    counts.remove(share);
                }
            }
        }
    }
}

/// A request's slot and share places; the slot is given back when dropped.
pub struct Slot<'a> {
    _permit: SemaphorePermit<'a>,
    _places: Places<'a>,
}

impl Admission {
    /// Admission with `limits`, reading bodies within `body`; sheds are counted in
    /// `metrics`.
    pub fn new(limits: AdmissionLimits, body: BodyLimits, metrics: Metrics) -> Self {
        Self(Arc::new(Inner {
            running: Semaphore::new(limits.max_in_flight.clamp(1, Semaphore::MAX_PERMITS)),
            waiting: AtomicUsize::new(0),
            shares: Mutex::new(HashMap::new()),
            limits,
            body,
            metrics,
        }))
    }

    /// Takes a place in each share of `who`, or names the share that is full.
    fn places(&self, who: Who) -> Result<Places<'_>, Shed> {
        let inner = &*self.0;
        let shares = match who {
            Who::Credential { tenant, credential } => [
                Some(Share::Tenant(tenant)),
                Some(Share::Credential(tenant, credential)),
            ],
            Who::Anonymous(ip) => [Some(Share::Anonymous), Some(Share::Address(ip))],
        };
        let mut counts = inner.shares.lock().unwrap_or_else(PoisonError::into_inner);
        for share in shares.iter().flatten() {
            if counts.get(share).copied().unwrap_or(0) >= inner.limits.cap(*share) {
                return Err(Shed::Share(share.holder()));
            }
        }
        for share in shares.iter().flatten() {
            *counts.entry(*share).or_insert(0) += 1;
        }
        Ok(Places {
            admission: inner,
            shares,
        })
    }

    /// Waits for a slot for `who`; `Err` when the request must be shed.
    async fn admit(&self, who: Who) -> Result<Slot<'_>, Shed> {
        let places = self.places(who)?;
        let inner = &*self.0;
        if let Ok(permit) = inner.running.try_acquire() {
            return Ok(Slot {
                _permit: permit,
                _places: places,
            });
        }
        // Take a place in the queue, if one is left; the guard gives it back however the
        // wait ends (admitted, timed out, or the client went away and the future dropped).
        let queued = inner
            .waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < inner.limits.max_queued).then_some(n + 1)
            })
            .is_ok();
        if !queued {
            return Err(Shed::Overloaded);
        }
        struct Waiting<'a>(&'a AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::AcqRel);
            }
        }
        let _waiting = Waiting(&inner.waiting);
        match tokio::time::timeout(inner.limits.queue_timeout, inner.running.acquire()).await {
            Ok(Ok(permit)) => Ok(Slot {
                _permit: permit,
                _places: places,
            }),
            // Timed out (or the semaphore closed, which never happens): shed.
            Ok(Err(_)) | Err(_) => Err(Shed::Overloaded),
        }
    }

    /// Reads `req`'s body under [`BodyLimits`] and puts it back, buffered.
    async fn read_body(&self, req: &mut Request) -> Result<(), Problem> {
        let limits = &self.0.body;
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > limits.max_bytes as u64) {
            return Err(problem::too_large());
        }
        let body = req.take_body();
        if body.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        let give_up = started + limits.timeout;
        let mut stream = body.into_bytes_stream();
        let mut buffer: Vec<u8> = Vec::with_capacity(declared.map_or(0, |len| len as usize));
        loop {
            // The next bytes must come before the body falls `grace` behind `min_rate`.
            let earned =
                Duration::from_secs_f64(buffer.len() as f64 / limits.min_rate.max(1) as f64);
            let deadline = give_up.min(started + limits.grace + earned);
            let next = match tokio::time::timeout_at(deadline, stream.next()).await {
                Ok(next) => next,
                Err(_) => return Err(body_timeout(buffer.len(), started.elapsed())),
            };
            match next {
                None => break,
                Some(Ok(chunk)) => {
                    if buffer.len() + chunk.len() > limits.max_bytes {
                        return Err(problem::too_large());
                    }
                    buffer.extend_from_slice(&chunk);
                }
                Some(Err(e)) => {
                    return Err(Problem::new(
                        StatusCode::BAD_REQUEST,
                        kind::MALFORMED_JSON,
                        format!("could not read the body: {e}"),
                    ));
                }
            }
        }
        req.set_body(Body::from_vec(buffer));
        Ok(())
    }
}

/// The 408 for a body that came too slowly.
fn body_timeout(received: usize, after: Duration) -> Problem {
    Problem::new(
        StatusCode::REQUEST_TIMEOUT,
        kind::BODY_TIMEOUT,
        format!(
            "the request body came too slowly ({received} bytes in {} ms); send it at once",
            after.as_millis()
        ),
    )
}

/// Paths that are never shed (see the module docs).
fn never_shed(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/metrics")
}

impl<E: Endpoint> Middleware<E> for Admission {
    type Output = AdmissionEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        AdmissionEndpoint {
            inner,
            admission: self.clone(),
        }
    }
}

/// The [`Admission`] endpoint.
pub struct AdmissionEndpoint<E> {
    inner: E,
    admission: Admission,
}

impl<E: Endpoint> Endpoint for AdmissionEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> Result<Self::Output> {
        if let Err(problem) = self.admission.read_body(&mut req).await {
            return Ok(problem.into_response_for(&problem_context(&req)));
        }
        if never_shed(req.uri().path()) {
            return self.inner.call(req).await.map(IntoResponse::into_response);
        }
        let who = req
            .extensions()
            .get::<Who>()
            .copied()
            .unwrap_or(Who::Anonymous(IpAddr::V4(Ipv4Addr::UNSPECIFIED)));
        let _slot = match self.admission.admit(who).await {
            Ok(slot) => slot,
            Err(shed) => {
                self.admission.0.metrics.shed();
                let detail = match shed {
                    Shed::Overloaded => {
                        tracing::warn!("overloaded: request shed");
                        "the server is overloaded; retry after Retry-After seconds".to_owned()
                    }
                    Shed::Share(holder) => {
                        tracing::warn!(holder, "share full: request shed");
                        format!(
                            "{holder} already has its share of the server's slots in use; retry \
                             after Retry-After seconds"
                        )
                    }
                };
                return Ok(Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    kind::UNAVAILABLE,
                    detail,
                )
                .into_response_for(&problem_context(&req)));
            }
        };
        self.inner.call(req).await.map(IntoResponse::into_response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use poem::EndpointExt as _;
    use tokio::sync::{mpsc, oneshot};

    /// An endpoint that reports each request it starts and answers only when released.
    #[derive(Clone)]
    struct Gate {
        entered: mpsc::UnboundedSender<()>,
        releases: Arc<Mutex<Vec<oneshot::Receiver<()>>>>,
    }

    impl Endpoint for Gate {
        type Output = Response;

        async fn call(&self, _req: Request) -> Result<Response> {
            let release = self.releases.lock().unwrap().pop();
            let _ = self.entered.send(());
            if let Some(release) = release {
                let _ = release.await;
            }
            Ok(Response::builder().status(StatusCode::OK).finish())
        }
    }

    fn body_limits() -> BodyLimits {
        BodyLimits {
            max_bytes: 1024,
            timeout: Duration::from_secs(20),
            min_rate: 1024,
            grace: Duration::from_secs(5),
        }
    }

    /// An [`Admission`]-wrapped [`Gate`]: `gates` requests block until their sender fires.
    fn gated(
        limits: AdmissionLimits,
        gates: usize,
    ) -> (
        Arc<impl Endpoint<Output = Response>>,
        Admission,
        mpsc::UnboundedReceiver<()>,
        Vec<oneshot::Sender<()>>,
    ) {
        let (tx, rx) = mpsc::unbounded_channel();
        let (senders, receivers): (Vec<_>, Vec<_>) = (0..gates).map(|_| oneshot::channel()).unzip();
        let gate = Gate {
            entered: tx,
            releases: Arc::new(Mutex::new(receivers)),
        };
        let admission = Admission::new(limits, body_limits(), Metrics::new().unwrap());
        let ep = Arc::new(gate.with(admission.clone()));
        (ep, admission, rx, senders)
    }

    fn get(path: &str) -> Request {
        Request::builder().uri(path.parse().unwrap()).finish()
    }

    fn as_tenant(path: &str, tenant: u128, credential: &str) -> Request {
        let mut req = get(path);
        req.extensions_mut()
            .insert(Who::credential(Uuid::from_u128(tenant), credential));
        req
    }

    async fn queued_until(admission: &Admission, n: usize) {
        while admission.0.waiting.load(Ordering::Acquire) != n {
            tokio::task::yield_now().await;
        }
    }

    fn limits(max_in_flight: usize, max_queued: usize, queue_timeout: Duration) -> AdmissionLimits {
        AdmissionLimits {
            max_in_flight,
            max_queued,
            queue_timeout,
            // Shares that never bind: these tests are about the slots and the queue.
            per_tenant: max_in_flight + max_queued + 1,
            per_credential: max_in_flight + max_queued + 1,
            anonymous: max_in_flight + max_queued + 1,
            per_address: max_in_flight + max_queued + 1,
        }
    }

    #[tokio::test]
    async fn sheds_past_the_queue_and_serves_the_queued_once_a_slot_frees() {
        let (ep, admission, mut entered, mut release) =
            gated(limits(1, 1, Duration::from_secs(3600)), 1);
        let first = tokio::spawn({
            let ep = ep.clone();
            async move { ep.call(get("/v1/people")).await }
        });
        entered.recv().await.unwrap();
        let second = tokio::spawn({
            let ep = ep.clone();
            async move { ep.call(get("/v1/people")).await }
        });
        queued_until(&admission, 1).await;

        // Slot taken, queue full: shed at once, as a problem with Retry-After.
        let shed = ep.call(get("/v1/people")).await.unwrap();
        assert_eq!(shed.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(shed.headers()["retry-after"], "1");
        assert_eq!(shed.headers()["content-type"], problem::PROBLEM_JSON);
        let body = shed.into_body().into_string().await.unwrap();
        assert!(body.contains("overloaded"), "{body}");
        // The probes are never shed.
        let probe = ep.call(get("/healthz")).await.unwrap();
        assert_eq!(probe.status(), StatusCode::OK);
        entered.recv().await.unwrap(); // the probe ran

        // The first finishes; the queued one gets its slot and is served.
        release.pop().unwrap().send(()).unwrap();
        assert_eq!(first.await.unwrap().unwrap().status(), StatusCode::OK);
        assert_eq!(second.await.unwrap().unwrap().status(), StatusCode::OK);
        assert_eq!(admission.0.waiting.load(Ordering::Acquire), 0);
        assert_eq!(admission.0.running.available_permits(), 1);
        assert!(admission.0.shares.lock().unwrap().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_queued_request_is_shed_after_the_queue_timeout() {
        let (ep, admission, mut entered, _release) =
            gated(limits(1, 4, Duration::from_millis(250)), 1);
        let _first = tokio::spawn({
            let ep = ep.clone();
            async move { ep.call(get("/v1/people")).await }
        });
        entered.recv().await.unwrap();
        // Paused time jumps ahead to the timeout once every task is idle.
        let waited = tokio::time::Instant::now();
        let resp = ep.call(get("/v1/people")).await.unwrap();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(waited.elapsed() >= Duration::from_millis(250));
        assert_eq!(admission.0.waiting.load(Ordering::Acquire), 0);
    }

    #[tokio::test]
    async fn a_client_that_gives_up_while_queued_frees_its_place() {
        let (ep, admission, mut entered, _release) =
            gated(limits(1, 1, Duration::from_secs(3600)), 1);
        let _first = tokio::spawn({
            let ep = ep.clone();
            async move { ep.call(get("/v1/people")).await }
        });
        entered.recv().await.unwrap();
        let queued = tokio::spawn({
            let ep = ep.clone();
            async move { ep.call(get("/v1/people")).await }
        });
        queued_until(&admission, 1).await;
        queued.abort();
        let _ = queued.await;
        assert_eq!(admission.0.waiting.load(Ordering::Acquire), 0);
        // Its share place went with it: only the running request's is left.
        let shares = admission.0.shares.lock().unwrap().clone();
        assert_eq!(shares.values().copied().collect::<Vec<_>>(), [1, 1]);
    }

    #[tokio::test]
    async fn one_tenant_cannot_take_another_tenants_slots() {
        let limits = AdmissionLimits {
            per_tenant: 2,
            per_credential: 2,
            ..limits(4, 8, Duration::from_secs(3600))
        };
        let (ep, admission, mut entered, mut release) = gated(limits, 3);
        // Tenant 1 takes its whole share.
        let mut running = Vec::new();
        for _ in 0..2 {
            running.push(tokio::spawn({
                let ep = ep.clone();
                async move { ep.call(as_tenant("/v1/people", 1, "key-a")).await }
            }));
            entered.recv().await.unwrap();
        }
        // Its next request — even with another credential — is shed at once, naming the
        // share, though slots are free.
        let shed = ep.call(as_tenant("/v1/people", 1, "key-b")).await.unwrap();
        assert_eq!(shed.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(shed.headers()["retry-after"], "1");
        let body = shed.into_body().into_string().await.unwrap();
        assert!(body.contains("this tenant"), "{body}");
        // Tenant 2 is served meanwhile.
        let other = tokio::spawn({
            let ep = ep.clone();
            async move { ep.call(as_tenant("/v1/people", 2, "key-c")).await }
        });
        entered.recv().await.unwrap();
        release.pop().unwrap().send(()).unwrap();
        let results: Vec<_> = [other].into_iter().chain(running).collect();
        for _ in 0..2 {
            if let Some(gate) = release.pop() {
                gate.send(()).unwrap();
            }
        }
        for task in results {
            assert_eq!(task.await.unwrap().unwrap().status(), StatusCode::OK);
        }
        assert!(admission.0.shares.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn one_credential_cannot_take_its_whole_tenants_share() {
        let limits = AdmissionLimits {
            per_tenant: 4,
            per_credential: 1,
            ..limits(8, 8, Duration::from_secs(3600))
        };
        let (ep, _admission, mut entered, mut release) = gated(limits, 2);
        let first = tokio::spawn({
            let ep = ep.clone();
            async move { ep.call(as_tenant("/v1/people", 1, "key-a")).await }
        });
        entered.recv().await.unwrap();
        let shed = ep.call(as_tenant("/v1/people", 1, "key-a")).await.unwrap();
        assert_eq!(shed.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = shed.into_body().into_string().await.unwrap();
        assert!(body.contains("this credential"), "{body}");
        // The tenant's other credential still gets in.
        let second = tokio::spawn({
            let ep = ep.clone();
            async move { ep.call(as_tenant("/v1/people", 1, "key-b")).await }
        });
        entered.recv().await.unwrap();
        for gate in release.drain(..) {
            gate.send(()).unwrap();
        }
        assert_eq!(first.await.unwrap().unwrap().status(), StatusCode::OK);
        assert_eq!(second.await.unwrap().unwrap().status(), StatusCode::OK);
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickling_body_is_a_408_and_never_holds_a_slot() {
        let (ep, admission, _entered, _release) = gated(limits(1, 0, Duration::from_secs(1)), 0);
        let (tx, rx) = mpsc::channel::<std::io::Result<Vec<u8>>>(1);
        let body = Body::from_bytes_stream(tokio_stream_of(rx));
        let req = Request::builder()
            .uri("/v1/people".parse().unwrap())
            .header(header::CONTENT_LENGTH, "200")
            .body(body);
        let call = tokio::spawn({
            let ep = ep.clone();
            async move { ep.call(req).await }
        });
        // One byte a second: the body falls behind the minimum rate.
        let writer = tokio::spawn(async move {
            loop {
                if tx.send(Ok(b"x".to_vec())).await.is_err() {
                    break;
                }
                // Paused time: advances only when every task is idle.
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        // While it trickles, the one slot is free for others.
        assert_eq!(admission.0.running.available_permits(), 1);
        let resp = call.await.unwrap().unwrap();
        assert_eq!(resp.status(), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(resp.headers()["content-type"], problem::PROBLEM_JSON);
        writer.abort();
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_a_413_declared_or_not() {
        let (ep, _admission, _entered, _release) = gated(limits(1, 0, Duration::from_secs(1)), 0);
        let declared = Request::builder()
            .uri("/v1/people".parse().unwrap())
            .header(header::CONTENT_LENGTH, "4096")
            .body(Body::from_vec(vec![b'x'; 4096]));
        assert_eq!(
            ep.call(declared).await.unwrap().status(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
        let (tx, rx) = mpsc::channel::<std::io::Result<Vec<u8>>>(8);
        for _ in 0..4 {
            tx.send(Ok(vec![b'x'; 512])).await.unwrap();
        }
        drop(tx);
        let chunked = Request::builder()
            .uri("/v1/people".parse().unwrap())
            .body(Body::from_bytes_stream(tokio_stream_of(rx)));
        assert_eq!(
            ep.call(chunked).await.unwrap().status(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
    }

    fn tokio_stream_of(
        mut rx: mpsc::Receiver<std::io::Result<Vec<u8>>>,
    ) -> impl futures_util::Stream<Item = std::io::Result<Vec<u8>>> + Send + 'static {
        futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
    }
}
