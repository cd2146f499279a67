//! Overload: the `tenantry` binary (embedded SQLite) with few slots
//! (`TENANTRY_MAX_IN_FLIGHT`) and a short queue, driven by retrying clients — half writers
//! with `Idempotency-Key`, half readers — first as many as it has slots (saturation: every
//! slot busy), then 3× and 10× as many. Beyond its slots and queue the server sheds with
//! 503 + `Retry-After` instead of queueing without bound; what it admits is served with
//! a bounded latency; no acknowledged write is lost or stored twice; and right after the
//! burst a normal request is answered at once, without a restart.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::live::Server;
use crate::process::{Process, spare_port};
use crate::{Clients, Load, Op, Tally, acked_past, assert_stored_once, metric, quantile, scrape};

/// The server's slots: saturation is this many concurrent requests.
const SLOTS: usize = 4;

/// `/metrics`: requests shed by admission control.
const SHED: &str = "tenantry_http_requests_shed_total";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serial_overload_at_3x_and_10x_saturation_is_shed_with_503_and_loses_nothing() {
    let dir = std::env::temp_dir().join(format!("tenantry-load-{}", uuid::Uuid::now_v7().simple()));
    let port = spare_port();
    let slots = SLOTS.to_string();
    let (process, token) = Process::start(
        &dir,
        port,
        &[
            ("TENANTRY_MAX_IN_FLIGHT", &slots),
            // As many waiting as running, each at most half a second: past that, shed.
            ("TENANTRY_MAX_QUEUED", &slots),
            ("TENANTRY_QUEUE_TIMEOUT_MS", "500"),
            // All clients are one credential of one tenant: its shares are set so that it
            // can fill every slot and the queue, so the limit reached is the server's.
            ("TENANTRY_MAX_IN_FLIGHT_PER_TENANT", "8"),
            ("TENANTRY_MAX_IN_FLIGHT_PER_CREDENTIAL", "8"),
            // Rate limits on, never reached: overload is not a quota.
            ("TENANTRY_RATE_LIMIT_TENANT_QUOTA", "100000000"),
            ("TENANTRY_RATE_LIMIT_CREDENTIAL_QUOTA", "100000000"),
        ],
    );
    let server = Server::at(format!("http://127.0.0.1:{port}"), token);
    let base = std::slice::from_ref(&server.base);
    let probe = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client");

    let mut written = Tally::default();
    for (phase, (label, clients, length)) in [
        ("saturation (1x)", SLOTS, Duration::from_secs(3)),
        ("3x saturation", 3 * SLOTS, Duration::from_secs(8)),
        ("10x saturation", 10 * SLOTS, Duration::from_secs(8)),
    ]
    .into_iter()
    .enumerate()
    {
        let shed_before = metric(&scrape(&server.base).await, SHED).expect("shed counter");
        let first = 1000 * phase;
        let writers = Clients::start(
            first,
            clients / 2,
            Op::Write(Load::People),
            base,
            &server.token,
        );
        let readers = Clients::start(
            first + 500,
            clients - clients / 2,
            Op::Read,
            base,
            &server.token,
        );
        // For `length`, checking all along that writes are still acknowledged.
        let started = Instant::now();
        let tally = writers.tally.clone();
        while started.elapsed() < length {
            let acked = tally.lock().expect("tally").acked.len();
            acked_past(&tally, acked, 1).await;
        }
        drop(tally);
        let writes = writers.finish(&[503], label).await;
        let reads = readers.finish(&[503], label).await;
        let took = started.elapsed();

        // Right after the burst, without a restart: a normal request, answered at once.
        let asked = Instant::now();
        let resp = probe
            .get(format!("{}/v1/people?limit=1", server.base))
            .bearer_auth(&server.token)
            .send()
            .await
            .expect("the server answers");
        let answered_in = asked.elapsed();
        assert_eq!(
            resp.status().as_u16(),
            200,
            "{label}: a request after the burst"
        );
        assert!(
            answered_in < Duration::from_secs(5),
            "{label}: a request after the burst took {answered_in:?}"
        );
        let shed = metric(&scrape(&server.base).await, SHED).expect("shed counter") - shed_before;

        let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
        for (status, n) in writes.statuses.iter().chain(&reads.statuses) {
            *statuses.entry(*status).or_insert(0) += n;
        }
        let attempts: usize = statuses.values().sum();
        let refused = statuses.get(&503).copied().unwrap_or(0);
        let mut write_latencies = writes.latencies.clone();
        let mut read_latencies = reads.latencies.clone();
        let mut admitted: Vec<Duration> = write_latencies
            .iter()
            .chain(&read_latencies)
            .copied()
            .collect();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "{label}: {clients} clients ({} writers, {} readers) for {:.1} s: {attempts} \
             requests, by status {statuses:?}; admitted {} ({:.0}/s; writes acknowledged {}, \
             of them replays {}), p50 {:.1} ms, p99 {:.1} ms (writes p50 {:.1} / p99 {:.1}, \
             reads p50 {:.1} / p99 {:.1}); shed {:.1}% ({refused} answers 503, the server \
             counts {shed} shed); after the burst a request answered in {:.1} ms",
            clients / 2,
            clients - clients / 2,
            took.as_secs_f64(),
            admitted.len(),
            admitted.len() as f64 / took.as_secs_f64(),
            writes.acked.len(),
            writes.replays,
            ms(quantile(&mut admitted, 0.5)),
            ms(quantile(&mut admitted, 0.99)),
            ms(quantile(&mut write_latencies, 0.5)),
            ms(quantile(&mut write_latencies, 0.99)),
            ms(quantile(&mut read_latencies, 0.5)),
            ms(quantile(&mut read_latencies, 0.99)),
            100.0 * refused as f64 / attempts.max(1) as f64,
            ms(answered_in),
        );
        written.acked.extend(writes.acked);
    }

    let ready = probe
        .get(format!("{}/readyz", server.base))
        .send()
        .await
        .expect("readyz");
    assert_eq!(ready.status().as_u16(), 200, "/readyz after the bursts");
    assert_stored_once(&server, Load::People, &written).await;
    drop(process);
    let _ = std::fs::remove_dir_all(&dir);
}
