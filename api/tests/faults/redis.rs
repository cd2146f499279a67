//! A `redis-server` of the test's own, a child process on a spare loopback port, without
//! persistence — never the machine's shared Redis. Killed when dropped.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `redis-server`.
pub struct Redis {
    child: Child,
    /// The port it listens on (127.0.0.1).
    pub port: u16,
}

impl Redis {
    /// Starts one on `port` (0: a spare one) and waits until it answers `PING`. `None`
    /// (said loudly) when `redis-server` cannot be started — a failure under `CI=true`.
    pub async fn start(port: u16) -> Option<Self> {
        let port = if port == 0 {
            std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|listener| listener.local_addr())
                .expect("a spare port")
                .port()
        } else {
            port
        };
        let spawned = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(e) => {
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "CI=true: redis-server must be installed ({e})"
                );
                eprintln!("*** redis-server cannot start ({e}): this fault test did not run ***");
                return None;
            }
        };
        let mut redis = Self { child, port };
        let started = Instant::now();
        while !redis.answers().await {
            if let Ok(Some(status)) = redis.child.try_wait() {
                panic!("redis-server on port {port} exited: {status}");
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "redis-server on port {port} did not come up"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Some(redis)
    }

    /// Whether it answers `PING` (an inline command) with `+PONG`.
    async fn answers(&self) -> bool {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let Ok(mut conn) = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await else {
            return false;
        };
        let mut reply = [0u8; 7];
        conn.write_all(b"PING\r\n").await.is_ok()
            && conn.read_exact(&mut reply).await.is_ok()
            && &reply == b"+PONG\r\n"
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The keys matching `pattern` (`redis-cli --scan`).
    pub fn keys(&self, pattern: &str) -> Vec<String> {
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["--scan", "--pattern", pattern])
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli runs");
        assert!(
            out.status.success(),
            "redis-cli --scan: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// `kill -9`, as a crash or a lost host would: no goodbye to its clients, and (without
    /// persistence) every key gone.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
