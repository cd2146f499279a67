//! The slow-body attack, against a server started by the test: clients that send a
//! request head and then trickle its body (1 byte a second) must not take the slots a
//! well-behaved tenant needs — whether they are anonymous, spread over three client
//! addresses (127.0.0.2–4), or hold another tenant's valid token.
//!
//! Its own test binary (so its own serial step of `cargo test`): the victim's latency is
//! what it watches, and other tests' load would only blur the figures it prints. The one
//! bound it asserts is generous (5 s per request); the figures go to the output.

#[path = "api/support.rs"]
#[expect(
    dead_code,
    reason = "the shared test support; this binary uses part of it"
)]
mod support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinSet;

use support::{TestApp, TestTenant, spawn_app_with};

/// How the victim's requests went: each status and latency.
struct Victim {
    statuses: Vec<u16>,
    latencies: Vec<Duration>,
}

impl Victim {
    fn report(&self, attack: &str) {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        let ms = |d: &Duration| d.as_secs_f64() * 1000.0;
        println!(
            "{attack}: victim {} requests, statuses {:?}, latency min {:.1} ms, median {:.1} ms, max {:.1} ms",
            sorted.len(),
            self.statuses,
            sorted.first().map_or(0.0, ms),
            sorted.get(sorted.len() / 2).map_or(0.0, ms),
            sorted.last().map_or(0.0, ms),
        );
    }
}

/// `tenant` lists people `n` times in a row, each within a generous bound.
async fn victim(app: &TestApp, tenant: &TestTenant, n: usize) -> Victim {
    let mut out = Victim {
        statuses: Vec::new(),
        latencies: Vec::new(),
    };
    for _ in 0..n {
        let started = Instant::now();
        let resp = tokio::time::timeout(
            Duration::from_secs(5),
            app.get(tenant, "/v1/people?limit=1"),
        )
        .await
        .expect("the victim is answered within 5 s");
        out.latencies.push(started.elapsed());
        out.statuses.push(resp.status().as_u16());
    }
    out
}

/// One attacker connection from `source`: the head of a 200-byte `POST /v1/people`, then
/// one byte a second until dropped. Returns the stream once the head is written.
async fn slow_body(server: SocketAddr, source: Ipv4Addr, token: Option<&str>) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::new(IpAddr::V4(source), 0))
        .expect("a loopback source address");
    let mut stream = socket.connect(server).await.expect("connect");
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let head = format!(
        "POST /v1/people HTTP/1.1\r\nHost: {server}\r\n{auth}Content-Type: application/json\r\n\
         Content-Length: 200\r\n\r\n{{"
    );
    stream
        .write_all(head.as_bytes())
        .await
        .expect("write the head");
    stream
}

/// Keeps every stream trickling a byte a second; returns each stream's first response
/// status line once it comes (or `None` when the attack is stopped first).
fn trickle(streams: Vec<TcpStream>) -> JoinSet<Option<String>> {
    let mut set = JoinSet::new();
    for mut stream in streams {
        set.spawn(async move {
            let mut buf = [0_u8; 512];
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    read = stream.read(&mut buf) => {
                        return match read {
                            Ok(n) if n > 0 => Some(
                                String::from_utf8_lossy(&buf[..n]).lines().next().unwrap_or_default().to_owned(),
                            ),
                            _ => None,
                        };
                    }
                    _ = tick.tick() => {
                        if stream.write_all(b" ").await.is_err() {
                            return None;
                        }
                    }
                }
            }
        });
    }
    set
}

fn server_addr(app: &TestApp) -> SocketAddr {
    app.base
        .trim_start_matches("http://")
        .parse()
        .expect("the server's address")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serial_slow_bodies_never_starve_a_well_behaved_tenant() {
    let Some(backend) = support::backends().into_iter().next() else {
        return;
    };
    // Few slots, so that the attack would take them all if slots were held while bodies
    // are read; a short body grace, so that the attack's connections end within the test.
    let app = spawn_app_with(&backend, |s| {
        s.admission = api::settings::AdmissionSettings::slots(16, 64, Duration::from_secs(1));
        s.body.grace = Duration::from_secs(2);
        s.body.min_rate = 1024;
    })
    .await;
    let server = server_addr(&app);
    let victim_tenant = app.tenant("victim").await;
    let other_tenant = app.tenant("attacker").await;
    app.create_person(&victim_tenant, "Vera", None).await;

    let baseline = victim(&app, &victim_tenant, 5).await;
    baseline.report("no attack");

    // 1. 80 anonymous connections: each is answered 401 at once, its body never read.
    let mut streams = Vec::new();
    for _ in 0..80 {
        streams.push(slow_body(server, Ipv4Addr::LOCALHOST, None).await);
    }
    let mut attack = trickle(streams);
    let during = victim(&app, &victim_tenant, 10).await;
    during.report("80 anonymous slow bodies");
    assert!(
        during.statuses.iter().all(|s| *s == 200),
        "{:?}",
        during.statuses
    );
    let mut unauthenticated = 0;
    while let Some(status) = attack.join_next().await {
        let status = status.expect("attacker task");
        assert_eq!(status.as_deref(), Some("HTTP/1.1 401 Unauthorized"));
        unauthenticated += 1;
    }
    assert_eq!(unauthenticated, 80);

    // 2. 30 anonymous connections from each of three client addresses.
    let mut streams = Vec::new();
    for source in [[127, 0, 0, 2], [127, 0, 0, 3], [127, 0, 0, 4]] {
        for _ in 0..30 {
            streams.push(slow_body(server, Ipv4Addr::from(source), None).await);
        }
    }
    let mut attack = trickle(streams);
    let during = victim(&app, &victim_tenant, 10).await;
    during.report("3 addresses x 30 anonymous slow bodies");
    assert!(
        during.statuses.iter().all(|s| *s == 200),
        "{:?}",
        during.statuses
    );
    while let Some(status) = attack.join_next().await {
        assert_eq!(
            status.expect("attacker task").as_deref(),
            Some("HTTP/1.1 401 Unauthorized")
        );
    }

    // 3. 80 connections with another tenant's valid token: authenticated and charged,
    // their bodies are read without a slot, and given up on with a 408 once they fall
    // behind the minimum rate.
    let mut streams = Vec::new();
    for _ in 0..80 {
        streams.push(slow_body(server, Ipv4Addr::LOCALHOST, Some(&other_tenant.token)).await);
    }
    let started = Instant::now();
    let mut attack = trickle(streams);
    let during = victim(&app, &victim_tenant, 10).await;
    during.report("80 slow bodies with another tenant's token");
    assert!(
        during.statuses.iter().all(|s| *s == 200),
        "{:?}",
        during.statuses
    );
    let mut timed_out = 0;
    while let Some(status) = attack.join_next().await {
        assert_eq!(
            status.expect("attacker task").as_deref(),
            Some("HTTP/1.1 408 Request Timeout")
        );
        timed_out += 1;
    }
    println!(
        "all {timed_out} slow bodies with a token got 408 within {} ms",
        started.elapsed().as_millis()
    );
    assert_eq!(timed_out, 80);
    // The attacker's tenant created nothing.
    let listed = app.get(&other_tenant, "/v1/people").await;
    let body = support::ok_json(listed, 200).await;
    assert_eq!(body["data"].as_array().map(Vec::len), Some(0));
}
