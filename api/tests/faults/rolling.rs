//! A rolling restart: two `tenantry` processes (production mode, secrets from the
//! environment) on one PostgreSQL database of the test's own, behind writers that spread
//! their writes over both and retry a write whose connection fails (or that is answered
//! 503) on the other instance with the same `Idempotency-Key`. Instance A is stopped with
//! SIGTERM — it drains the requests in flight and exits cleanly — and started again; then
//! B. No acknowledged write is lost, none is stored twice, and no answer is a 5xx other
//! than 503 with `Retry-After`; refused connections (an instance down) are counted.
//!
//! First, without load, the drain itself: a write whose body is still arriving when its
//! instance gets SIGTERM is finished after the instance has stopped accepting
//! connections, and is answered 201 — and stored.

use std::time::Duration;

use api::Settings;
use secrecy::ExposeSecret as _;
use serde_json::{Value, json};

use crate::live::{self, Server};
use crate::pg_cluster::PgCluster;
use crate::process::{Process, spare_port};
use crate::{Clients, Load, Op, Tally, acked_past, assert_stored_once, metric, scrape, until};

/// `/metrics`: requests being served.
const IN_FLIGHT: &str = "tenantry_http_requests_in_flight";

/// A write in flight when `process` (listening at `port`) gets SIGTERM — half its body
/// sent — is finished once the instance refuses new connections (it is shutting down): it
/// must be answered 201, drained rather than cut, and the instance then exit cleanly.
/// Returns the write's name and id, and how long the instance took to exit.
async fn a_write_in_flight_is_drained(
    process: Process,
    port: u16,
    token: &str,
) -> (String, String, Duration) {
    let base = format!("http://127.0.0.1:{port}");
    let name = "w9999-0".to_owned();
    let body =
        serde_json::to_vec(&json!({ "first_name": name, "last_name": "Fault" })).expect("a body");
    let (head, tail) = body.split_at(body.len() / 2);
    let (more, chunks) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(2);
    more.send(Ok(head.to_vec())).await.expect("the first half");
    let stream = futures_util::stream::unfold(chunks, |mut chunks| async move {
        chunks.recv().await.map(|chunk| (chunk, chunks))
    });
    let answer = tokio::spawn(
        reqwest::Client::new()
            .post(format!("{base}/v1/people"))
            .bearer_auth(token)
            .header("Idempotency-Key", uuid::Uuid::now_v7().to_string())
            .header("Content-Type", "application/json")
            .body(reqwest::Body::wrap_stream(stream))
            .send(),
    );
    // In flight: the server counts it (besides the scrape asking).
    until(
        "the slow write in flight",
        Duration::from_secs(30),
        async || metric(&scrape(&base).await, IN_FLIGHT).is_some_and(|n| n >= 2.0),
    )
    .await;
    let signalled = process.sigterm();
    until(
        "the instance refuses new connections after SIGTERM",
        Duration::from_secs(30),
        async || {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_err()
        },
    )
    .await;
    more.send(Ok(tail.to_vec())).await.expect("the second half");
    drop(more);
    let resp = answer
        .await
        .expect("the request task")
        .expect("the write in flight at SIGTERM is answered");
    let status = resp.status().as_u16();
    let json: Value = resp.json().await.unwrap_or(Value::Null);
    assert_eq!(status, 201, "the write in flight at SIGTERM: {json}");
    let stopped = process.exited(signalled).await;
    let id = json["id"].as_str().expect("an id").to_owned();
    (name, id, stopped)
}

/// Instances' names, by target index.
const NAMES: [&str; 2] = ["A", "B"];

/// Writes acknowledged by instance `target` in `tally`.
fn acked_by(tally: &std::sync::Mutex<Tally>, target: usize) -> usize {
    tally.lock().expect("tally").on(target, 201)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serial_a_rolling_sigterm_of_two_instances_loses_and_duplicates_nothing() {
    let Some(cluster) = PgCluster::start_new() else {
        return;
    };
    cluster.create_database("tenantry");
    let url = cluster.url("tenantry");
    // Migrations applied and the tenant made once, before the instances start; its token
    // is signed with the JWT secret both instances are given.
    let settings = Settings::for_tests(&url);
    let (db, token) = live::prepare(&settings).await;
    drop(db);
    let dir = std::env::temp_dir().join(format!("tenantry-roll-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).expect("a directory for the logs");
    let secrets = api::bootstrap::secrets(&settings).expect("the test settings name their secrets");
    let env: Vec<(&str, String)> = vec![
        ("TENANTRY_ENV", "production".to_owned()),
        ("DATABASE_URL", url.clone()),
        (
            "TENANTRY_JWT_SECRET",
            secrets.jwt_secret.expose_secret().to_owned(),
        ),
        (
            "TENANTRY_SECRET_KEY",
            secrets.secret_key.expose_secret().to_owned(),
        ),
        ("TENANTRY_DATA_DIR", dir.display().to_string()),
        ("TENANTRY_LOG", "warn".to_owned()),
        // Each instance limits in-process (no Redis here): budgets the writers never reach.
        ("TENANTRY_RATE_LIMIT_TENANT_QUOTA", "10000000".to_owned()),
        (
            "TENANTRY_RATE_LIMIT_CREDENTIAL_QUOTA",
            "10000000".to_owned(),
        ),
    ];
    let a = spare_port();
    let ports = [
        a,
        std::iter::repeat_with(spare_port)
            .find(|p| *p != a)
            .expect("a port"),
    ];
    let logs = NAMES.map(|name| dir.join(format!("{name}.log")));
    let bases = ports.map(|port| format!("http://127.0.0.1:{port}"));
    let mut instances = Vec::new();
    for (port, log) in ports.iter().zip(&logs) {
        instances.push(Some(Process::serve(&env, *port, log).await.0));
    }
    let context = || {
        logs.iter()
            .map(|log| std::fs::read_to_string(log).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    };

    // The drain, without load: A gets SIGTERM with a write in flight, and is started again.
    let instance = instances[0].take().expect("running");
    let (drained_name, drained_id, stopped_in) =
        a_write_in_flight_is_drained(instance, ports[0], &token).await;
    instances[0] = Some(Process::serve(&env, ports[0], &logs[0]).await.0);
    println!(
        "SIGTERM A with a write in flight (half its body sent): the write answered 201 after \
         A stopped accepting connections; A exited cleanly {} ms after the signal",
        stopped_in.as_millis()
    );

    let writers = Clients::start(0, 4, Op::Write(Load::People), &bases, &token);
    let tally = writers.tally.clone();
    acked_past(&tally, 0, 20).await;

    for (i, name) in NAMES.iter().enumerate() {
        // Both serve writes before the roll reaches this one.
        for (target, serving) in NAMES.iter().enumerate() {
            let from = acked_by(&tally, target);
            until(
                &format!("writes acknowledged by {serving}"),
                Duration::from_secs(60),
                async || acked_by(&tally, target) >= from + 5,
            )
            .await;
        }
        let acked_before = acked_by(&tally, i);
        let refused_before = tally.lock().expect("tally").on(i, 0);
        let stopped_in = instances[i].take().expect("running").terminate().await;
        // Answers that came from it between SIGTERM and its exit: requests it drained.
        let drained = acked_by(&tally, i) - acked_before;
        // While it is down, the other takes every write.
        let acked = tally.lock().expect("tally").acked.len();
        acked_past(&tally, acked, 20).await;
        let (restarted, ready_in) = Process::serve(&env, ports[i], &logs[i]).await;
        instances[i] = Some(restarted);
        let from = acked_by(&tally, i);
        let back = until(
            &format!("writes acknowledged by {name} after its restart"),
            Duration::from_secs(60),
            async || acked_by(&tally, i) > from,
        )
        .await;
        let refused = tally.lock().expect("tally").on(i, 0) - refused_before;
        println!(
            "SIGTERM {name}: exited cleanly {} ms after the signal, {drained} writes acknowledged \
             by it meanwhile; restarted and ready in {} ms, its first write acknowledged {} ms \
             later; {refused} failed connections to it in between",
            stopped_in.as_millis(),
            ready_in.as_millis(),
            back.as_millis(),
        );
    }
    let acked = tally.lock().expect("tally").acked.len();
    acked_past(&tally, acked, 20).await;

    drop(tally);
    // Failed connections (status 0) to an instance that is down, and 503s: nothing else.
    let mut tally = writers.finish(&[0, 503], &context()).await;
    for (target, name) in NAMES.iter().enumerate() {
        let statuses: Vec<(u16, usize)> = tally
            .by_target
            .iter()
            .filter(|((t, _), _)| *t == target)
            .map(|((_, status), n)| (*status, *n))
            .collect();
        println!(
            "instance {name}: {} attempts, by status {statuses:?}",
            statuses.iter().map(|(_, n)| n).sum::<usize>()
        );
    }
    // Both instances list the same writes, each once: the writers' and the one drained.
    tally.acked.insert(drained_name, drained_id);
    for base in &bases {
        assert_stored_once(
            &Server::at(base.clone(), token.clone()),
            Load::People,
            &tally,
        )
        .await;
    }
    drop(instances);
    drop(cluster);
    let _ = std::fs::remove_dir_all(&dir);
}
