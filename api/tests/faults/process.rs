//! The `tenantry` binary that `cargo test` built, run as a process of its own on a
//! loopback port: started as a fresh clone's first run would (development, demo tenant,
//! the token its banner prints), or configured from the environment as in production;
//! stopped with SIGKILL (no drain) or SIGTERM (drain, then exit). Killed when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `tenantry` process.
pub struct Process {
    child: Child,
    /// Where its output goes (production mode), for a failing test's message.
    log: Option<PathBuf>,
}

/// A spare loopback port.
pub fn spare_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a spare port")
}

impl Process {
    /// Starts `tenantry` as a fresh clone's first run would (development, demo tenant, the
    /// embedded SQLite database in `dir`) at `port`, with the variables `extra` on top, and
    /// returns it with the demo token its banner prints.
    pub fn start(dir: &Path, port: u16, extra: &[(&str, &str)]) -> (Self, String) {
        use std::io::BufRead as _;
        let mut child = Command::new(env!("CARGO_BIN_EXE_tenantry"))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("TENANTRY_DATA_DIR", dir)
            .env("TENANTRY_BIND", format!("127.0.0.1:{port}"))
            .env("TENANTRY_LOG", "warn")
            .envs(extra.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
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
        (Self { child, log: None }, token)
    }

    /// Starts `tenantry serve` configured by `env` alone (and `PATH`), listening at `port`,
    /// its output appended to `log`; returns once `/readyz` answers 200, with how long that
    /// took. Bounded: panics (with the log) after 60 s or when the process exits.
    pub async fn serve(env: &[(&str, String)], port: u16, log: &Path) -> (Self, Duration) {
        let started = Instant::now();
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("the log file");
        let err = out.try_clone().expect("the log file");
        let child = Command::new(env!("CARGO_BIN_EXE_tenantry"))
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("TENANTRY_BIND", format!("127.0.0.1:{port}"))
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("tenantry starts");
        let mut process = Self {
            child,
            log: Some(log.to_owned()),
        };
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("client");
        let readyz = format!("http://127.0.0.1:{port}/readyz");
        loop {
            if let Ok(resp) = client.get(&readyz).send().await
                && resp.status().as_u16() == 200
            {
                return (process, started.elapsed());
            }
            if let Ok(Some(status)) = process.child.try_wait() {
                panic!(
                    "tenantry exited ({status}) before it was ready:\n{}",
                    process.log()
                );
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "tenantry not ready after 60 s:\n{}",
                process.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `kill -9`: no shutdown, no drain, no flush beyond what the database already synced.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, as an orchestrator stops an instance: the server stops accepting, drains
    /// the requests in flight and exits. Waits for the exit ([`Process::exited`]) and
    /// returns how long it took.
    pub async fn terminate(self) -> Duration {
        let signalled = self.sigterm();
        self.exited(signalled).await
    }

    /// Sends SIGTERM; returns when.
    pub fn sigterm(&self) -> Instant {
        let signalled = Instant::now();
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(sent, "kill -TERM {}", self.child.id());
        signalled
    }

    /// Waits for the process to exit, which must be a clean exit, and returns how long
    /// after `since` it did. Bounded: 60 s (twice the server's drain limit).
    pub async fn exited(mut self, since: Instant) -> Duration {
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                assert!(
                    status.success(),
                    "tenantry exited with {status} after SIGTERM:\n{}",
                    self.log()
                );
                return since.elapsed();
            }
            assert!(
                since.elapsed() < Duration::from_secs(60),
                "tenantry still running 60 s after SIGTERM:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Its output so far (production mode), for a failing test's message.
    pub fn log(&self) -> String {
        self.log
            .as_ref()
            .and_then(|log| std::fs::read_to_string(log).ok())
            .unwrap_or_default()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
