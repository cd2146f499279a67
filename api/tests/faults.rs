//! Faults under load, against a PostgreSQL cluster of the test's own (never the shared
//! one): the server answers 503 + `Retry-After` quickly while the database is gone, never
//! a 500, and serves again without a restart; a client that retries with the same
//! `Idempotency-Key` loses and duplicates nothing.
//!
//! Its own test binary: it stops and starts a database server, and prints its figures
//! (requests, failures by kind, how fast a 503 came, recovery time) for the CI log. The
//! bounds it asserts are generous; the figures are the measurement.

#[path = "faults/pg_cluster.rs"]
mod pg_cluster;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use api::auth::Scope;
use api::auth::jwt::{JwtIssuer, TokenType};
use api::{AppState, Settings};
use chrono::TimeDelta;
use domain::identity::{self, TenantCreate};
use serde_json::{Value, json};
use tenancy::TenantId;
use tokio::sync::{oneshot, watch};

use pg_cluster::PgCluster;

/// What the writers saw.
#[derive(Default)]
struct Tally {
    /// Statuses of every attempt.
    statuses: BTreeMap<u16, usize>,
    /// 503s without `Retry-After`.
    missing_retry_after: usize,
    /// Acknowledged writes: first name → id.
    acked: HashMap<String, String>,
    /// Acknowledged by a replay.
    replays: usize,
}

/// A running server on `cluster`'s database `tenantry`, with one tenant's token.
struct Server {
    base: String,
    token: String,
    _shutdown: oneshot::Sender<()>,
}

async fn server(cluster: &PgCluster) -> Server {
    cluster.create_database("tenantry");
    let settings = Settings::for_tests(&cluster.url("tenantry"));
    let connected = api::bootstrap::open(&settings).await.expect("migrated");
    let tenant = identity::create_tenant(
        &connected.unscoped,
        TenantCreate {
            slug: "faults".to_owned(),
            name: "Faults".to_owned(),
            plan: None,
            admin_email: "admin@faults.test".to_owned(),
            admin_name: "Admin".to_owned(),
        },
    )
    .await
    .expect("tenant");
    let issuer = JwtIssuer::new(
        settings.jwt_secret.expose().as_bytes(),
        &settings.jwt_issuer,
        &settings.jwt_audience,
    );
    let scopes: Vec<String> = Scope::ALL.iter().map(|s| s.as_str().to_owned()).collect();
    let token = issuer
        .issue(
            TenantId::from_uuid(tenant.tenant.id.as_uuid()),
            TokenType::User,
            &tenant.admin.id.to_string(),
            &scopes,
            TimeDelta::hours(1),
        )
        .expect("token");
    let state = Arc::new(
        AppState::new(
            connected.db,
            Arc::new((connected.unscoped, connected.issuer)),
            settings,
        )
        .expect("state"),
    );
    let bound = api::server::bind("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind");
    let base = format!("http://{}", bound.addr);
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = api::server::serve(bound, state, async {
            let _ = rx.await;
        })
        .await;
    });
    Server {
        base,
        token,
        _shutdown: tx,
    }
}

/// One writer: creates people one after another, each retried with its own
/// `Idempotency-Key` until acknowledged (or `stop`), recording everything in `tally`.
async fn writer(
    id: usize,
    base: String,
    token: String,
    tally: Arc<Mutex<Tally>>,
    mut stop: watch::Receiver<bool>,
) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client");
    for n in 0.. {
        if *stop.borrow() {
            return;
        }
        let name = format!("w{id}-{n}");
        let key = uuid::Uuid::now_v7().to_string();
        let body = json!({ "first_name": name, "last_name": "Fault" });
        loop {
            let resp = client
                .post(format!("{base}/v1/people"))
                .bearer_auth(&token)
                .header("Idempotency-Key", &key)
                .json(&body)
                .send()
                .await;
            let Ok(resp) = resp else {
                // The connection failed (never while the server runs): retry the same key.
                tally
                    .lock()
                    .expect("tally")
                    .statuses
                    .entry(0)
                    .and_modify(|n| *n += 1)
                    .or_insert(1);
                continue;
            };
            let status = resp.status().as_u16();
            let retry_after = resp.headers().contains_key("retry-after");
            let replayed = resp.headers().contains_key("idempotent-replayed");
            let json: Value = resp.json().await.unwrap_or(Value::Null);
            let retry = {
                let mut t = tally.lock().expect("tally");
                *t.statuses.entry(status).or_insert(0) += 1;
                match status {
                    201 => {
                        t.replays += usize::from(replayed);
                        let id = json["id"].as_str().unwrap_or_default().to_owned();
                        t.acked.insert(name.clone(), id);
                        false
                    }
                    503 => {
                        t.missing_retry_after += usize::from(!retry_after);
                        true
                    }
                    // Anything else is a failure the test reports; do not spin on it.
                    _ => false,
                }
            };
            if !retry {
                break;
            }
            // A client backs off between retries (Retry-After says 1 s; a shorter pause
            // keeps the test short). Not a synchronisation: the result does not depend on it.
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(100)) => {}
                _ = stop.changed() => {}
            }
        }
    }
}

/// Polls until `tally` holds `n` more acknowledged writes than `from`; returns how long
/// it took. Bounded: panics after 90 s.
async fn acked_past(tally: &Mutex<Tally>, from: usize, n: usize) -> Duration {
    let started = Instant::now();
    loop {
        if tally.lock().expect("tally").acked.len() >= from + n {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "no progress for 90 s: {:?}",
            tally.lock().expect("tally").statuses
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// While the database is down: `/readyz` and an API read each answer 503 with
/// `Retry-After`; returns the slowest answer.
async fn probe_while_down(server: &Server) -> Duration {
    let client = reqwest::Client::new();
    let mut slowest = Duration::ZERO;
    for _ in 0..3 {
        for (path, auth) in [("/readyz", false), ("/v1/people?limit=1", true)] {
            let mut req = client.get(format!("{}{path}", server.base));
            if auth {
                req = req.bearer_auth(&server.token);
            }
            let started = Instant::now();
            let resp = req.send().await.expect("the server answers");
            let took = started.elapsed();
            slowest = slowest.max(took);
            assert_eq!(
                resp.status().as_u16(),
                503,
                "{path} while the database is down"
            );
            assert!(
                resp.headers().contains_key("retry-after"),
                "{path}: Retry-After"
            );
            assert!(took < Duration::from_secs(5), "{path} took {took:?}");
        }
    }
    slowest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serial_postgres_restarts_under_writes_are_short_503s_and_lose_nothing() {
    let Some(cluster) = PgCluster::start_new() else {
        return;
    };
    let server = server(&cluster).await;
    let tally = Arc::new(Mutex::new(Tally::default()));
    let (stop, stopped) = watch::channel(false);
    let writers: Vec<_> = (0..4)
        .map(|id| {
            tokio::spawn(writer(
                id,
                server.base.clone(),
                server.token.clone(),
                tally.clone(),
                stopped.clone(),
            ))
        })
        .collect();
    acked_past(&tally, 0, 20).await;

    for mode in ["fast", "immediate"] {
        cluster.stop(mode);
        let slowest = probe_while_down(&server).await;
        let before = tally.lock().expect("tally").acked.len();
        cluster.start();
        let first = acked_past(&tally, before, 1).await;
        let twenty = first + acked_past(&tally, before, 20).await;
        println!(
            "PostgreSQL stop -m {mode}: slowest 503 while down {} ms; after the restart, \
             the first write acknowledged in {} ms, 20 in {} ms",
            slowest.as_millis(),
            first.as_millis(),
            twenty.as_millis()
        );
    }

    stop.send_replace(true);
    for writer in writers {
        writer.await.expect("writer");
    }
    let tally = Arc::try_unwrap(tally)
        .ok()
        .expect("writers done")
        .into_inner()
        .unwrap();
    println!(
        "writes acknowledged {}, of them replays {}; attempts by status {:?}",
        tally.acked.len(),
        tally.replays,
        tally.statuses
    );

    // No 5xx but 503, each with Retry-After; no other failure.
    let unexpected: Vec<_> = tally
        .statuses
        .iter()
        .filter(|(status, _)| !matches!(**status, 201 | 503))
        .collect();
    assert!(
        unexpected.is_empty(),
        "unexpected statuses {unexpected:?}\n{}",
        cluster.log()
    );
    assert_eq!(tally.missing_retry_after, 0);

    // Every acknowledged write is stored exactly once.
    let client = reqwest::Client::new();
    let mut stored: HashMap<String, usize> = HashMap::new();
    let mut url = format!("{}/v1/people?limit=200", server.base);
    loop {
        let page: Value = client
            .get(&url)
            .bearer_auth(&server.token)
            .send()
            .await
            .expect("list")
            .json()
            .await
            .expect("a page");
        for person in page["data"].as_array().expect("data") {
            let name = person["first_name"].as_str().unwrap_or_default().to_owned();
            *stored.entry(name).or_insert(0) += 1;
        }
        match page["next_cursor"].as_str() {
            Some(cursor) if page["has_more"] == true => {
                url = format!("{}/v1/people?limit=200&cursor={cursor}", server.base);
            }
            _ => break,
        }
    }
    let lost: Vec<_> = tally
        .acked
        .keys()
        .filter(|n| !stored.contains_key(*n))
        .collect();
    let duplicated: Vec<_> = stored.iter().filter(|(_, n)| **n > 1).collect();
    println!(
        "stored {}, lost {}, duplicated {}",
        stored.len(),
        lost.len(),
        duplicated.len()
    );
    assert!(lost.is_empty(), "lost {lost:?}");
    assert!(duplicated.is_empty(), "duplicated {duplicated:?}");
}
