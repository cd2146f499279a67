//! Faults under load: a PostgreSQL cluster of the test's own (never the shared one)
//! stopped and restarted — the server answers 503 + `Retry-After` quickly while the
//! database is gone, never a 500, and serves again without a restart; the embedded
//! SQLite database on a small filesystem of the test's own filling up — writes are paused
//! with 507 before the disk is full, `/readyz` says so, and writes resume once space is
//! freed; the server process killed (SIGKILL) mid-write; the rate limiter's Redis killed
//! and restarted ([`redis_outage`]); two instances stopped (SIGTERM) and restarted in turn
//! behind a client that fails over ([`rolling`]); and 3× and 10× more concurrent clients
//! than the server has slots ([`overload`]). In each, a client that retries with the same
//! `Idempotency-Key` loses and duplicates nothing, and no answer is a 5xx other than 503
//! with `Retry-After`.
//!
//! Its own test binary: it stops and starts database servers, Redis and server processes,
//! and prints its figures (requests, failures by kind, how fast a 503 came, recovery time,
//! latencies) for the CI log. The bounds it asserts are generous; the figures are the
//! measurement. Tests named `serial_*` run one at a time in CI's serial stage.

#[path = "faults/live.rs"]
mod live;
#[path = "faults/overload.rs"]
mod overload;
#[path = "faults/pg_cluster.rs"]
mod pg_cluster;
#[path = "faults/process.rs"]
mod process;
#[path = "faults/redis.rs"]
mod redis;
#[path = "faults/redis_outage.rs"]
mod redis_outage;
#[path = "faults/rolling.rs"]
mod rolling;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use api::Settings;
use serde_json::{Value, json};
use tokio::sync::watch;

use live::Server;
use pg_cluster::PgCluster;
use process::Process;

/// What a group of clients saw.
#[derive(Default)]
struct Tally {
    /// Statuses of every attempt (0: the connection failed).
    statuses: BTreeMap<u16, usize>,
    /// Statuses of every attempt by target: the index of the instance in the clients'
    /// list of bases.
    by_target: BTreeMap<(usize, u16), usize>,
    /// Failed connections (status 0) by kind: `connect` (refused), `timeout`, `other`
    /// (closed or reset before the answer).
    errors: BTreeMap<&'static str, usize>,
    /// 429s, 503s and 507s without `Retry-After`.
    missing_retry_after: usize,
    /// Acknowledged writes: first name → id.
    acked: HashMap<String, String>,
    /// Acknowledged by a replay.
    replays: usize,
    /// Failed attempts since the last acknowledged write.
    failing: usize,
    /// Writes given up after [`MAX_ATTEMPTS`] attempts.
    abandoned: usize,
    /// How long each admitted attempt took (answered with anything but a 503), its body
    /// read.
    latencies: Vec<Duration>,
}

impl Tally {
    /// Attempts answered (or failed) on target `target` with `status`.
    fn on(&self, target: usize, status: u16) -> usize {
        self.by_target.get(&(target, status)).copied().unwrap_or(0)
    }
}

/// Attempts at one write before a client gives up on it (and the test fails): with the
/// pause between retries, a minute and more.
const MAX_ATTEMPTS: usize = 600;
/// Operations of one client at most, whatever happens: loops stay bounded.
const MAX_OPERATIONS: usize = 100_000;

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

/// What a client does.
#[derive(Clone, Copy)]
enum Op {
    /// Creates `Load`s one after another, each retried with its own `Idempotency-Key`
    /// until acknowledged.
    Write(Load),
    /// Lists a page of people (`limit=10`), again and again; a failed read is not retried
    /// (the next read is as good).
    Read,
}

impl Op {
    /// The status of a success.
    fn success(self) -> u16 {
        match self {
            Op::Write(_) => 201,
            Op::Read => 200,
        }
    }
}

/// A server on `cluster`'s database `tenantry`.
async fn server(cluster: &PgCluster) -> Server {
    cluster.create_database("tenantry");
    live::start(Settings::for_tests(&cluster.url("tenantry"))).await
}

/// One client, number `id`: does `op` against the instances at `bases` until `stop`,
/// recording everything in `tally`. Its writes are named `w<id>-<n>`, and spread over the
/// instances in turn; a write whose connection fails, or that is refused for now (429, 503,
/// 507), is retried on the next instance with the same `Idempotency-Key`, after a pause
/// once every instance was tried. After `stop`, a write under way is still retried until
/// acknowledged.
async fn client(
    id: usize,
    op: Op,
    bases: Arc<[String]>,
    token: String,
    tally: Arc<Mutex<Tally>>,
    mut stop: watch::Receiver<bool>,
) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client");
    for n in 0..MAX_OPERATIONS {
        if *stop.borrow() {
            return;
        }
        let name = format!("w{id}-{n}");
        let key = uuid::Uuid::now_v7().to_string();
        let mut target = (id + n) % bases.len();
        for attempt in 1..=MAX_ATTEMPTS {
            let base = &bases[target];
            let request = match op {
                Op::Write(load) => {
                    let (path, body) = load.request(&name);
                    client
                        .post(format!("{base}{path}"))
                        .header("Idempotency-Key", &key)
                        .json(&body)
                }
                Op::Read => client.get(format!("{base}/v1/people?limit=10")),
            };
            let started = Instant::now();
            let retry = match request.bearer_auth(&token).send().await {
                // The connection failed (the server is gone, or restarting): retry the
                // same key. Counted as status 0.
                Err(e) => {
                    let kind = if e.is_connect() {
                        "connect"
                    } else if e.is_timeout() {
                        "timeout"
                    } else {
                        "other"
                    };
                    let mut t = tally.lock().expect("tally");
                    *t.statuses.entry(0).or_insert(0) += 1;
                    *t.by_target.entry((target, 0)).or_insert(0) += 1;
                    *t.errors.entry(kind).or_insert(0) += 1;
                    t.failing += 1;
                    true
                }
                Ok(resp) => answered(resp, op, &name, target, started, &tally).await,
            };
            if !retry {
                break;
            }
            if attempt == MAX_ATTEMPTS {
                tally.lock().expect("tally").abandoned += 1;
                return;
            }
            let stopping = *stop.borrow();
            if matches!(op, Op::Read) && stopping {
                return;
            }
            target = (target + 1) % bases.len();
            // Straight on to another instance; a pause once each was tried. A client backs
            // off between retries (Retry-After says 1 s; a shorter pause keeps the test
            // short). Not a synchronisation: the result does not depend on it.
            if attempt % bases.len() == 0 {
                if stopping {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                } else {
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_millis(100)) => {}
                        _ = stop.changed() => {}
                    }
                }
            }
            if matches!(op, Op::Read) {
                break;
            }
        }
    }
}

/// Records the answer to one attempt of `op` (write `name`) on target `target`, sent at
/// `started`; whether to retry it.
async fn answered(
    resp: reqwest::Response,
    op: Op,
    name: &str,
    target: usize,
    started: Instant,
    tally: &Mutex<Tally>,
) -> bool {
    let status = resp.status().as_u16();
    let retry_after = resp.headers().contains_key("retry-after");
    let replayed = resp.headers().contains_key("idempotent-replayed");
    let json: Value = resp.json().await.unwrap_or(Value::Null);
    let took = started.elapsed();
    let mut t = tally.lock().expect("tally");
    *t.statuses.entry(status).or_insert(0) += 1;
    *t.by_target.entry((target, status)).or_insert(0) += 1;
    if status != 503 {
        t.latencies.push(took);
    }
    match status {
        _ if status == op.success() => {
            t.failing = 0;
            if let Op::Write(_) = op {
                t.replays += usize::from(replayed);
                let id = json["id"].as_str().unwrap_or_default().to_owned();
                t.acked.insert(name.to_owned(), id);
            }
            false
        }
        429 | 503 | 507 => {
            t.failing += 1;
            t.missing_retry_after += usize::from(!retry_after);
            true
        }
        // Anything else is a failure the test reports; do not spin on it.
        _ => false,
    }
}

/// Clients running against one or more servers, and what they saw.
struct Clients {
    op: Op,
    tally: Arc<Mutex<Tally>>,
    stop: watch::Sender<bool>,
    handles: Vec<tokio::task::JoinHandle<()>>,
}

impl Clients {
    /// Starts `count` writers of `load` against `server`.
    fn writers(count: usize, load: Load, server: &Server) -> Self {
        Self::start(
            0,
            count,
            Op::Write(load),
            std::slice::from_ref(&server.base),
            &server.token,
        )
    }

    /// Starts `count` clients doing `op`, numbered from `first_id`, against the instances
    /// at `bases`, with `token`.
    fn start(first_id: usize, count: usize, op: Op, bases: &[String], token: &str) -> Self {
        let tally = Arc::new(Mutex::new(Tally::default()));
        let (stop, stopped) = watch::channel(false);
        let bases: Arc<[String]> = bases.into();
        let handles = (first_id..first_id + count)
            .map(|id| {
                tokio::spawn(client(
                    id,
                    op,
                    bases.clone(),
                    token.to_owned(),
                    tally.clone(),
                    stopped.clone(),
                ))
            })
            .collect();
        Self {
            op,
            tally,
            stop,
            handles,
        }
    }

    /// Stops the clients (writers once their current write is acknowledged); prints what
    /// they saw and checks that every failure was one of `failures`, each 429, 503 and 507
    /// with `Retry-After`, and that no write was given up.
    async fn finish(self, failures: &[u16], context: &str) -> Tally {
        self.stop.send_replace(true);
        for handle in self.handles {
            handle.await.expect("client");
        }
        let tally = Arc::try_unwrap(self.tally)
            .ok()
            .expect("clients done")
            .into_inner()
            .expect("tally");
        match self.op {
            Op::Write(_) => println!(
                "writes acknowledged {}, of them replays {}; attempts by status {:?}",
                tally.acked.len(),
                tally.replays,
                tally.statuses
            ),
            Op::Read => println!("reads: attempts by status {:?}", tally.statuses),
        }
        if !tally.errors.is_empty() {
            println!("failed connections by kind {:?}", tally.errors);
        }
        let unexpected: Vec<_> = tally
            .statuses
            .iter()
            .filter(|(status, _)| **status != self.op.success() && !failures.contains(status))
            .collect();
        assert!(
            unexpected.is_empty(),
            "unexpected statuses {unexpected:?}\n{context}"
        );
        assert_eq!(tally.missing_retry_after, 0, "refusals without Retry-After");
        assert_eq!(
            tally.abandoned, 0,
            "writes given up after {MAX_ATTEMPTS} attempts"
        );
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

/// Polls `check` every 20 ms until it holds; returns how long that took. Bounded: panics
/// saying `what` did not happen after `limit`.
async fn until(what: &str, limit: Duration, mut check: impl AsyncFnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < limit, "{what}: not after {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started.elapsed()
}

/// The `/metrics` text of the server at `base` (served on the API's listener: the
/// servers here have no `TENANTRY_METRICS_BIND`).
async fn scrape(base: &str) -> String {
    reqwest::get(format!("{base}/metrics"))
        .await
        .expect("/metrics answers")
        .text()
        .await
        .expect("/metrics body")
}

/// The value of the sample `name` (one without labels) in the metrics text `metrics`.
fn metric(metrics: &str, name: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        line.strip_prefix(name)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// The `q` quantile (0 to 1, nearest rank) of `samples`, which it sorts.
fn quantile(samples: &mut [Duration], q: f64) -> Duration {
    samples.sort_unstable();
    let rank = ((samples.len() as f64) * q).ceil() as usize;
    samples
        .get(rank.saturating_sub(1).min(samples.len().saturating_sub(1)))
        .copied()
        .unwrap_or_default()
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
    let writers = Clients::writers(4, Load::People, &server);
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

    let writers = Clients::writers(3, Load::BigAccounts, &server);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serial_sigkill_mid_write_loses_no_acknowledged_write() {
    let dir = std::env::temp_dir().join(format!("tenantry-kill-{}", uuid::Uuid::now_v7().simple()));
    let port = process::spare_port();
    let (process, token) = Process::start(&dir, port, &[]);
    let server = Server::at(format!("http://127.0.0.1:{port}"), token);
    let writers = Clients::writers(3, Load::People, &server);
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
        let (restarted, _) = Process::start(&dir, port, &[]);
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
