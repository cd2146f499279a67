//! `tenantry backup` and `tenantry restore` on the real binary, as an operator runs them:
//! a backup taken while the server takes writes over HTTP restores to exactly a prefix of
//! those writes; one taken while it is quiet restores to the same API data (SHA-256 over
//! every list, page by page); a running server refuses a second server and a restore; a
//! backup never overwrites a file; on PostgreSQL both explain `pg_dump`/`pg_restore`.
//!
//! Each test has directories of its own (a `TENANTRY_DATA_DIR` per server), so they run in
//! parallel. Every child process gets a cleared environment plus what it needs: no
//! inherited `DATABASE_URL` or `REDIS_URL`.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

const TENANTRY: &str = env!("CARGO_BIN_EXE_tenantry");

/// A data directory of its own under the system temp dir, removed on drop.
struct Place(PathBuf);

impl Place {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("tenantry-cli-{}", Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir).expect("create a data directory");
        Self(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    fn database(&self) -> PathBuf {
        self.path("data/tenantry.db")
    }

    /// `tenantry <args>` on this place's database, with a clean environment.
    fn tenantry(&self, args: &[&str]) -> Command {
        self.tenantry_on(
            &format!("sqlite://{}?mode=rwc", self.database().display()),
            args,
        )
    }

    /// `tenantry <args>` with `DATABASE_URL=database_url`, with a clean environment.
    fn tenantry_on(&self, database_url: &str, args: &[&str]) -> Command {
        let mut command = Command::new(TENANTRY);
        command
            .args(args)
            .env_clear()
            .env("DATABASE_URL", database_url)
            .env("TENANTRY_DATA_DIR", self.path("data"))
            .env("TENANTRY_BIND", "127.0.0.1:0")
            // The same keys everywhere: a token stays valid on a restored copy.
            .env(
                "TENANTRY_JWT_SECRET",
                "backup-test-jwt-secret-backup-test-jwt-secret",
            )
            .env(
                "TENANTRY_SECRET_KEY",
                "backup-test-secret-key-backup-test-secret-key",
            )
            .env("TENANTRY_RATE_LIMIT_ENABLED", "false")
            .env("TENANTRY_LOG", "warn")
            .stdin(Stdio::null());
        command
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs a short command to its end (at most a minute), off the async runtime's threads.
async fn run(mut command: Command) -> Output {
    tokio::task::spawn_blocking(move || {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tenantry");
        let deadline = Instant::now() + Duration::from_secs(60);
        while child.try_wait().expect("poll tenantry").is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("tenantry did not exit within a minute");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        child.wait_with_output().expect("tenantry's output")
    })
    .await
    .expect("the command ran")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The one line a successful command prints, and nothing on stderr.
fn one_line(output: &Output) -> String {
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(output.status.success(), "failed: {stderr}");
    assert_eq!(stderr, "", "nothing on stderr");
    assert_eq!(stdout.lines().count(), 1, "one line: {stdout:?}");
    stdout.trim_end().to_owned()
}

/// A failed command's message (stderr), with nothing on stdout.
fn refusal(output: &Output) -> String {
    assert!(!output.status.success(), "expected a refusal");
    assert_eq!(text(&output.stdout), "", "nothing on stdout");
    text(&output.stderr)
}

/// `tenantry serve` running in the background; killed on drop.
struct Server {
    child: Child,
    base: String,
    token: String,
    client: reqwest::Client,
}

impl Server {
    /// Starts the server on `place` and waits for its banner (URL and demo token).
    async fn start(place: &Place) -> Self {
        let mut child = place
            .tenantry(&["serve"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the server");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        // Reads the banner, then keeps draining stdout so the server never blocks on it.
        std::thread::spawn(move || {
            let (mut base, mut token) = (None, None);
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("is running at ").nth(1) {
                    base = rest.split_whitespace().next().map(str::to_owned);
                }
                if let Some(rest) = line.trim().strip_prefix("export TOKEN=") {
                    token = Some(rest.to_owned());
                }
                if let (Some(b), Some(t)) = (&base, &token) {
                    let _ = tx.send((b.clone(), t.clone()));
                    base = None;
                }
            }
        });
        let banner = tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(60)))
            .await
            .expect("waited");
        let Ok((base, token)) = banner else {
            let _ = child.kill();
            panic!("the server printed no banner within a minute");
        };
        Self {
            child,
            base,
            token,
            client: reqwest::Client::new(),
        }
    }

    async fn create_person(&self, first_name: &str) -> reqwest::StatusCode {
        self.client
            .post(format!("{}/v1/people", self.base))
            .bearer_auth(&self.token)
            .json(&json!({ "first_name": first_name, "last_name": "Writer" }))
            .send()
            .await
            .expect("POST /v1/people")
            .status()
    }

    /// Every item of a list, following `next_cursor` page by page.
    async fn list_all(&self, resource: &str) -> Vec<Value> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut url = format!("{}/v1/{resource}?limit=200", self.base);
            if let Some(cursor) = &cursor {
                url.push_str(&format!("&cursor={cursor}"));
            }
            let page: Value = self
                .client
                .get(&url)
                .bearer_auth(&self.token)
                .send()
                .await
                .expect("GET a list")
                .error_for_status()
                .expect("the list answers")
                .json()
                .await
                .expect("a JSON page");
            items.extend(page["data"].as_array().expect("data").iter().cloned());
            if page["has_more"] != json!(true) {
                return items;
            }
            cursor = page["next_cursor"].as_str().map(str::to_owned);
        }
    }

    /// SHA-256 over what the API lists of accounts, people and activities (with counts).
    async fn digest(&self) -> (Vec<usize>, String) {
        let mut hash = Sha256::new();
        let mut counts = Vec::new();
        for resource in ["accounts", "people", "activities"] {
            let items = self.list_all(resource).await;
            counts.push(items.len());
            for item in items {
                hash.update(serde_json::to_vec(&item).expect("serialize"));
                hash.update(b"\n");
            }
        }
        let digest = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
        (counts, digest)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The writer's `W00000`, `W00001`, … names among `people`, as numbers, sorted.
fn written_numbers(people: &[Value]) -> Vec<usize> {
    let mut numbers: Vec<usize> = people
        .iter()
        .filter_map(|p| p["first_name"].as_str()?.strip_prefix('W')?.parse().ok())
        .collect();
    numbers.sort_unstable();
    numbers
}

fn backup_line(path: &Path) -> String {
    format!("backup written to {} (", path.display())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_taken_while_the_server_takes_writes_restores_to_a_prefix_of_them() {
    let live = Place::new();
    let server = Arc::new(Server::start(&live).await);

    // One writer, one request at a time: its log is the commit order.
    let stop = Arc::new(AtomicBool::new(false));
    let log = Arc::new(Mutex::new(0usize));
    let writer = {
        let (server, stop, log) = (server.clone(), stop.clone(), log.clone());
        tokio::spawn(async move {
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let status = server.create_person(&format!("W{i:05}")).await;
                assert_eq!(status, reqwest::StatusCode::CREATED, "write {i}");
                i += 1;
                *log.lock().expect("log") = i;
            }
        })
    };
    let written = || *log.lock().expect("log");
    while written() < 20 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let backup_path = live.path("backups/during-writes.db");
    let before = written();
    let output =
        run(live.tenantry(&["backup", "--to", backup_path.to_str().expect("utf-8")])).await;
    let after = written();

    // While the server runs: a restore over it and a second server are refused.
    let restore =
        run(live.tenantry(&["restore", "--from", backup_path.to_str().expect("utf-8")])).await;
    let second = run(live.tenantry(&["serve"])).await;
    stop.store(true, Ordering::Relaxed);
    writer.await.expect("every write was accepted");
    let total = written();

    let line = one_line(&output);
    assert!(
        line.starts_with(&backup_line(&backup_path)) && line.ends_with(" bytes)"),
        "{line}"
    );
    eprintln!(
        "{line}; {before} writes done when it started, {after} when it returned, {total} in all"
    );
    for message in [refusal(&restore), refusal(&second)] {
        assert!(
            message.contains("is in use") && message.contains("tenantry.db.lock"),
            "{message}"
        );
    }
    assert_eq!(
        written_numbers(&server.list_all("people").await),
        (0..total).collect::<Vec<_>>(),
        "the live server kept every write"
    );

    // Restored into a fresh place and served from there: exactly the writer's first k
    // writes, for some k it reached while the backup ran, and the demo data.
    let fresh = Place::new();
    let restored = one_line(
        &run(fresh.tenantry(&["restore", "--from", backup_path.to_str().expect("utf-8")])).await,
    );
    assert!(
        restored.starts_with(&format!(
            "restored {} into {} (",
            backup_path.display(),
            fresh.database().display()
        )),
        "{restored}"
    );
    let copy = Server::start(&fresh).await;
    let people = copy.list_all("people").await;
    let numbers = written_numbers(&people);
    let k = numbers.len();
    // The one write in flight when the backup returned may have committed before its
    // snapshot without being counted yet: hence `after + 1`.
    assert!(
        (before..=after + 1).contains(&k),
        "the backup holds {k} writes; {before} were done when it started, {after} when it returned"
    );
    assert_eq!(
        numbers,
        (0..k).collect::<Vec<_>>(),
        "a prefix of the writes"
    );
    assert_eq!(people.len() - k, 12, "the demo's people came along");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_of_a_quiet_server_restores_to_the_same_api_data() {
    let live = Place::new();
    let server = Server::start(&live).await;
    for i in 0..30 {
        assert_eq!(
            server.create_person(&format!("Q{i}")).await,
            reqwest::StatusCode::CREATED
        );
    }
    let backup_path = live.path("quiet.db");
    one_line(&run(live.tenantry(&["backup", "--to", backup_path.to_str().expect("utf-8")])).await);

    let fresh = Place::new();
    one_line(
        &run(fresh.tenantry(&["restore", "--from", backup_path.to_str().expect("utf-8")])).await,
    );
    let copy = Server::start(&fresh).await;
    let (counts, digest) = server.digest().await;
    assert_eq!(counts, [3, 42, 12], "accounts, people, activities");
    assert_eq!(
        copy.digest().await,
        (counts, digest),
        "the same data, item for item"
    );
}

#[tokio::test]
async fn a_backup_refuses_a_destination_that_exists() {
    let place = Place::new();
    let migrated = run(place.tenantry(&["migrate"])).await;
    assert!(migrated.status.success(), "{}", text(&migrated.stderr));
    let dest = place.path("backup.db");
    std::fs::write(&dest, "keep me").expect("write");

    let message =
        refusal(&run(place.tenantry(&["backup", "--to", dest.to_str().expect("utf-8")])).await);
    assert!(message.contains("already exists"), "{message}");
    assert_eq!(std::fs::read_to_string(&dest).expect("read"), "keep me");
}

#[tokio::test]
async fn backup_and_restore_explain_pg_dump_and_pg_restore_on_postgresql() {
    let place = Place::new();
    // Nothing answers there: the commands must not need to connect to explain.
    let url = "postgres://nobody@127.0.0.1:1/none";
    let backup = refusal(&run(place.tenantry_on(url, &["backup", "--to", "x.dump"])).await);
    assert!(backup.contains("pg_dump -Fc"), "{backup}");
    let restore = refusal(&run(place.tenantry_on(url, &["restore", "--from", "x.dump"])).await);
    assert!(
        restore.contains("pg_restore --clean --if-exists"),
        "{restore}"
    );
    assert!(
        !restore.contains("nobody@"),
        "the URL (and its password) is never printed"
    );
}
