//! The embedded database's disk: writes stop, cleanly, before it is full.
//!
//! SQLite on a full disk fails a transaction with `SQLITE_FULL` — a 503, never a 2xx,
//! since every write commits explicitly and checks the commit (`domain::Writer`). But a
//! full disk also stalls the database for everyone: SQLite may roll a failed transaction
//! back by itself, and the pooled connection it ran on can be left believing it is still
//! in one. So the server keeps a reserve: while the filesystem holding the SQLite file has
//! less than `TENANTRY_SQLITE_MIN_FREE_BYTES` free (default 64 MiB), every write is refused
//! up front with 507 `insufficient-storage` + `Retry-After` (before its body is read), and
//! `/readyz` reports 503, so a load balancer stops sending traffic. Reads go on. Once space
//! is freed, writes resume by themselves.
//!
//! PostgreSQL manages its own disk: a full disk there is its error (class 53), a 503.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use poem::http::StatusCode;

use crate::problem::{Problem, kind};

/// How long a reading of the free space is reused: one `statvfs` per this interval at most.
const FRESH_FOR: Duration = Duration::from_millis(250);

/// The reserve of the SQLite file's filesystem (see the module docs).
#[derive(Debug)]
pub struct StorageGuard {
    /// The SQLite file; `None` on PostgreSQL (and in memory): never refuses.
    path: Option<PathBuf>,
    /// The free bytes below which writes are refused.
    reserve: u64,
    /// The last reading: when, and the free bytes (`None`: unreadable).
    last: Mutex<Option<(Instant, Option<u64>)>>,
}

impl StorageGuard {
    /// The guard of the database at `database_url`, keeping `reserve` bytes free.
    pub fn new(database_url: &str, reserve: u64) -> Self {
        Self {
            path: migrations::sqlite_path(database_url),
            reserve,
            last: Mutex::new(None),
        }
    }

    /// The free bytes of the filesystem holding the database file (its directory, before
    /// the file exists); `None` when there is no file or it cannot be read.
    pub fn free_bytes(&self) -> Option<u64> {
        let path = self.path.as_ref()?;
        let now = Instant::now();
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((at, free)) = *last
            && now.duration_since(at) < FRESH_FOR
        {
            return free;
        }
        let target = if path.exists() {
            path.clone()
        } else {
            path.parent().map(PathBuf::from).unwrap_or_default()
        };
        let free = rustix::fs::statvfs(&target)
            .ok()
            .map(|s| s.f_bavail.saturating_mul(s.f_frsize));
        *last = Some((now, free));
        free
    }

    /// The 507 for a write while the reserve is not free; `None` when writes may go on
    /// (or the free space cannot be read: then SQLite's own error is the last word).
    pub fn refuse_write(&self) -> Option<Problem> {
        let free = self.free_bytes()?;
        (free < self.reserve).then(|| {
            Problem::new(
                StatusCode::INSUFFICIENT_STORAGE,
                kind::INSUFFICIENT_STORAGE,
                "the server's storage is nearly full; writes are paused until space is freed",
            )
        })
    }
}
