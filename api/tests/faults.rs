//! Faults under load: a PostgreSQL cluster of the test's own (never the shared one)
//! stopped and restarted — the server answers 503 + `Retry-After` quickly while the
//! database is gone, never a 500, and serves again without a restart; and the embedded
//! SQLite database on a small filesystem of the test's own filling up — writes are paused
//! with 507 before the disk is full, `/readyz` says so, and writes resume once space is
//! freed. In both, a client that retries with the same `Idempotency-Key` loses and
//! duplicates nothing, checked after a restart.
//!
//! Its own test binary: it stops and starts a database server, and prints its figures
//! (requests, failures by kind, how fast a 503 came, recovery time) for the CI log. The
//! bounds it asserts are generous; the figures are the measurement.

#[path = "faults/live.rs"]
mod live;
#[path = "faults/pg_cluster.rs"]
mod pg_cluster;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use api::Settings;
use serde_json::{Value, json};
use tokio::sync::watch;

use live::Server;
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
    /// Failed attempts since the last acknowledged write.
    failing: usize,
}

/// What the writers create.
#[derive(Clone, Copy)]
enum Load {
    /// People (small rows).
    People,
    /// Accounts with ~15 KB of custom fields each (to fill a disk).
    BigAccounts,
}

impl Load {
    /// The path and body of write `name`.
    fn request(self, name: &str) -> (&'static str, Value) {
        match self {
            Load::People => (
                "/v1/people",
                json!({ "first_name": name, "last_name": "Fault" }),
            ),
            Load::BigAccounts => {
                let blob: String = (0..15_000)
                    .map(|i| char::from(b'a' + ((i * 7 + name.len()) % 26) as u8))
                    .collect();
                (
                    "/v1/accounts",
                    json!({ "name": name, "custom_fields": { "blob": blob } }),
                )
            }
        }
    }
}

/// A server on `cluster`'s database `tenantry`.
async fn server(cluster: &PgCluster) -> Server {
    cluster.create_database("tenantry");
    live::start(Settings::for_tests(&cluster.url("tenantry"))).await
}

/// One writer: creates people one after another, each retried with its own
/// `Idempotency-Key` until acknowledged (or `stop`), recording everything in `tally`.
async fn writer(
    id: usize,
    load: Load,
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
        let (path, body) = load.request(&name);
        loop {
            let resp = client
                .post(format!("{base}{path}"))
                .bearer_auth(&token)
                .header("Idempotency-Key", &key)
                .json(&body)
                .send()
                .await;
            let retry = match resp {
                // The connection failed (the server is gone, or restarting): retry the
                // same key after the pause below. Counted as status 0.
                Err(_) => {
                    *tally.lock().expect("tally").statuses.entry(0).or_insert(0) += 1;
                    true
                }
                Ok(resp) => answered(resp, &name, &tally).await,
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

/// Records the answer to one attempt of write `name`; whether to retry it.
async fn answered(resp: reqwest::Response, name: &str, tally: &Mutex<Tally>) -> bool {
    let status = resp.status().as_u16();
    let retry_after = resp.headers().contains_key("retry-after");
    let replayed = resp.headers().contains_key("idempotent-replayed");
    let json: Value = resp.json().await.unwrap_or(Value::Null);
    {
        let mut t = tally.lock().expect("tally");
        *t.statuses.entry(status).or_insert(0) += 1;
        match status {
            201 => {
                t.failing = 0;
                t.replays += usize::from(replayed);
                let id = json["id"].as_str().unwrap_or_default().to_owned();
                t.acked.insert(name.to_owned(), id);
                false
            }
            503 | 507 => {
                t.failing += 1;
                t.missing_retry_after += usize::from(!retry_after);
                true
            }
            // Anything else is a failure the test reports; do not spin on it.
            _ => false,
        }
    }
}

/// Retrying writers running against a server, and what they saw.
struct Writers {
    tally: Arc<Mutex<Tally>>,
    stop: watch::Sender<bool>,
    handles: Vec<tokio::task::JoinHandle<()>>,
}

impl Writers {
    /// Starts `count` writers of `load` against `server`.
    fn start(count: usize, load: Load, server: &Server) -> Self {
        let tally = Arc::new(Mutex::new(Tally::default()));
        let (stop, stopped) = watch::channel(false);
        let handles = (0..count)
            .map(|id| {
                tokio::spawn(writer(
                    id,
                    load,
                    server.base.clone(),
                    server.token.clone(),
                    tally.clone(),
                    stopped.clone(),
                ))
            })
            .collect();
        Self {
            tally,
            stop,
            handles,
        }
    }

    /// Stops the writers once their current write is answered; prints what they saw and
    /// checks that every failure was one of `failures`, each with `Retry-After`.
    async fn finish(self, failures: &[u16], context: &str) -> Tally {
        self.stop.send_replace(true);
        for handle in self.handles {
            handle.await.expect("writer");
        }
        let tally = Arc::try_unwrap(self.tally)
            .ok()
            .expect("writers done")
            .into_inner()
            .expect("tally");
        println!(
            "writes acknowledged {}, of them replays {}; attempts by status {:?}",
            tally.acked.len(),
            tally.replays,
            tally.statuses
        );
        let unexpected: Vec<_> = tally
            .statuses
            .iter()
            .filter(|(status, _)| **status != 201 && !failures.contains(status))
            .collect();
        assert!(
            unexpected.is_empty(),
            "unexpected statuses {unexpected:?}\n{context}"
        );
        assert_eq!(tally.missing_retry_after, 0);
        tally
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
    let writers = Writers::start(4, Load::People, &server);
    let tally = writers.tally.clone();
    acked_past(&tally, 0, 20).await;

    // A fast and an immediate restart, then the database down for 20 s: probed the whole
    // time, every answer a quick 503.
    for (mode, down_for) in [
        ("fast", Duration::ZERO),
        ("immediate", Duration::ZERO),
        ("fast", Duration::from_secs(20)),
    ] {
        cluster.stop(mode);
        let down_since = Instant::now();
        let mut slowest = probe_while_down(&server).await;
        while down_since.elapsed() < down_for {
            slowest = slowest.max(probe_while_down(&server).await);
        }
        let before = tally.lock().expect("tally").acked.len();
        let down = down_since.elapsed();
        cluster.start();
        let first = acked_past(&tally, before, 1).await;
        let twenty = first + acked_past(&tally, before, 20).await;
        println!(
            "PostgreSQL stop -m {mode}, down {} s: slowest 503 while down {} ms; after the \
             restart, the first write acknowledged in {} ms, 20 in {} ms",
            down.as_secs(),
            slowest.as_millis(),
            first.as_millis(),
            twenty.as_millis()
        );
    }

    drop(tally);
    // No 5xx but 503, each with Retry-After; no other failure.
    let tally = writers.finish(&[503], &cluster.log()).await;
    assert_stored_once(&server, Load::People, &tally).await;
}

/// Every acknowledged write of `tally` is stored exactly once (listed through the API).
async fn assert_stored_once(server: &Server, load: Load, tally: &Tally) {
    let (path, field) = match load {
        Load::People => ("/v1/people", "first_name"),
        Load::BigAccounts => ("/v1/accounts", "name"),
    };
    let client = reqwest::Client::new();
    let mut stored: HashMap<String, usize> = HashMap::new();
    let mut url = format!("{}{path}?limit=200", server.base);
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
        for item in page["data"].as_array().expect("data") {
            let name = item[field].as_str().unwrap_or_default().to_owned();
            // Only the writers' rows (`w<writer>-<n>`): a demo tenant has people of its own.
            let ours = name
                .strip_prefix('w')
                .and_then(|rest| rest.split_once('-'))
                .is_some_and(|(writer, n)| {
                    !writer.is_empty()
                        && writer.bytes().all(|b| b.is_ascii_digit())
                        && !n.is_empty()
                        && n.bytes().all(|b| b.is_ascii_digit())
                });
            if ours {
                *stored.entry(name).or_insert(0) += 1;
            }
        }
        match page["next_cursor"].as_str() {
            Some(cursor) if page["has_more"] == true => {
                url = format!("{}{path}?limit=200&cursor={cursor}", server.base);
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

/// A small filesystem of the test's own (tmpfs), unmounted when dropped.
struct SmallDisk {
    dir: std::path::PathBuf,
}

impl SmallDisk {
    /// Mounts a tmpfs of `megabytes`; `None` (said loudly) where mounting is not allowed —
    /// a failure under `CI=true`, where CI runs as root.
    fn mount(megabytes: u32) -> Option<Self> {
        let dir =
            std::env::temp_dir().join(format!("tenantry-disk-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir).expect("mount point");
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            let _ = std::fs::remove_dir(&dir);
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true: the disk-full test needs to mount a tmpfs (run as root)"
            );
            eprintln!("*** cannot mount a tmpfs: the disk-full test did not run ***");
            return None;
        }
        Some(Self { dir })
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        // Lazily: a server of a failed test may still hold files open there.
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.dir)
            .status();
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// Polls until `tally` shows `n` failed attempts in a row (the disk is full); bounded.
async fn failing_for(tally: &Mutex<Tally>, n: usize) {
    let started = Instant::now();
    while tally.lock().expect("tally").failing < n {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the disk never filled: {:?}",
            tally.lock().expect("tally").statuses
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serial_a_full_disk_pauses_writes_with_507_and_loses_nothing() {
    let Some(disk) = SmallDisk::mount(24) else {
        return;
    };
    // Ballast, removed later to free space.
    let ballast = disk.dir.join("ballast");
    // Twice the reserve and more: once it is gone, writes have room again however far the
    // write-ahead log had grown.
    std::fs::write(&ballast, vec![0_u8; 8 * 1024 * 1024]).expect("ballast");
    let url = format!("sqlite://{}/tenantry.db?mode=rwc", disk.dir.display());
    let settings = || {
        let mut settings = Settings::for_tests(&url);
        settings.sqlite_min_free_bytes = 2 * 1024 * 1024;
        settings
    };
    let server = live::start(settings()).await;

    let writers = Writers::start(3, Load::BigAccounts, &server);
    let tally = writers.tally.clone();

    failing_for(&tally, 30).await;
    let full_at = tally.lock().expect("tally").acked.len();
    let ready = reqwest::get(format!("{}/readyz", server.base))
        .await
        .expect("readyz");
    let ready_status = ready.status().as_u16();
    let ready_body = ready.text().await.unwrap_or_default();
    let statuses = tally.lock().expect("tally").statuses.clone();
    println!(
        "storage reserve reached after {full_at} acknowledged writes (attempts {statuses:?}); \
         /readyz {ready_status} {ready_body}"
    );
    assert!(statuses.get(&507).is_some_and(|n| *n > 0), "{statuses:?}");
    assert_eq!(
        ready_status, 503,
        "/readyz while the disk is full: {ready_body}"
    );

    std::fs::remove_file(&ballast).expect("free the ballast");
    let resumed = acked_past(&tally, full_at, 10).await;
    println!(
        "after space was freed, 10 more writes acknowledged in {} ms",
        resumed.as_millis()
    );

    drop(tally);
    let tally = writers.finish(&[503, 507], "").await;
    server.stop().await;

    // A restarted server on the same file has every acknowledged write, once.
    let restarted = live::start(settings()).await;
    assert_stored_once(&restarted, Load::BigAccounts, &tally).await;
    restarted.stop().await;
    drop(disk);
}

/// The `tenantry` binary that `cargo test` built, serving the embedded default on `dir`
/// at `port`; killed when dropped.
struct Process(std::process::Child);

impl Process {
    /// Starts `tenantry` as a fresh clone's first run would (development, demo tenant),
    /// and returns it with the demo token its banner prints.
    fn start(dir: &std::path::Path, port: u16) -> (Self, String) {
        use std::io::BufRead as _;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tenantry"))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("TENANTRY_DATA_DIR", dir)
            .env("TENANTRY_BIND", format!("127.0.0.1:{port}"))
            .env("TENANTRY_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("tenantry starts");
        // Its output is read to the end on a thread of its own: a closed pipe would make
        // the server's next print fail.
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if let Some(token) = line.trim().strip_prefix("export TOKEN=") {
                    let _ = tx.send(token.to_owned());
                }
            }
        });
        let token = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the banner prints a token");
        (Self(child), token)
    }

    /// `kill -9`: no shutdown, no drain, no flush beyond what SQLite already synced.
    fn kill(mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serial_sigkill_mid_write_loses_no_acknowledged_write() {
    let dir = std::env::temp_dir().join(format!("tenantry-kill-{}", uuid::Uuid::now_v7().simple()));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a spare port");
    let (process, token) = Process::start(&dir, port);
    let server = Server::at(format!("http://127.0.0.1:{port}"), token);
    let writers = Writers::start(3, Load::People, &server);
    let tally = writers.tally.clone();

    let mut kills = 0;
    let mut process = Some(process);
    for _ in 0..2 {
        let before = tally.lock().expect("tally").acked.len();
        acked_past(&tally, before, 20).await;
        // Killed while the writers are mid-request: some writes are in flight.
        if let Some(process) = process.take() {
            process.kill();
        }
        kills += 1;
        let down = tally.lock().expect("tally").acked.len();
        let (restarted, _) = Process::start(&dir, port);
        process = Some(restarted);
        let back = acked_past(&tally, down, 1).await;
        println!(
            "SIGKILL {kills}: first write acknowledged {} ms after the restart",
            back.as_millis()
        );
    }
    let now = tally.lock().expect("tally").acked.len();
    acked_past(&tally, now, 10).await;
    drop(tally);
    // Connection failures (status 0) while the process was down, and 503s: nothing else.
    let tally = writers.finish(&[0, 503], "").await;
    assert_stored_once(&server, Load::People, &tally).await;
    drop(process);
    let _ = std::fs::remove_dir_all(&dir);
}
