//! Test support (feature `testing`): a fresh, empty database per test, on every
//! backend the environment asks for, so tests run in parallel.
//!
//! - SQLite always: a new database file under the system temp dir, removed on drop,
//!   opened as production opens it (see [`TestDb::new`]).
//! - PostgreSQL when `DATABASE_URL` is set: a new schema in that database (the pool's
//!   `search_path` points at it), dropped on drop.
//! - With `CI=true`, a missing `DATABASE_URL` is a failure, never a silent skip.

use std::path::PathBuf;
use std::time::Duration;

use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection};

use crate::{Connected, Db, Result};

/// A context issuer for unit tests that verify credentials without a database (tests
/// only: production code gets its issuer from `Db::open`).
pub fn issuer() -> crate::CtxIssuer {
    crate::CtxIssuer::new()
}

/// Runs a hand-written statement through `handle`'s guarded executor, as if a builder had
/// made it: the way tests smuggle raw SQL to the statement guard (tests only — nothing
/// outside this module can hand the executor a statement). Returns the rows read (for a
/// query) or affected (otherwise).
///
/// # Errors
/// [`crate::Error::Refused`] when the guard refuses it; database errors otherwise.
pub async fn execute_raw(
    handle: &impl crate::TenantHandle,
    sql: &str,
    values: Vec<sea_orm::Value>,
) -> Result<u64> {
    let conn = handle.conn(crate::db::token());
    let statement = sea_orm::Statement::from_sql_and_values(conn.backend(), sql, values);
    let exec = conn.exec();
    let is_query = sql.trim_start().to_ascii_uppercase().starts_with("SELECT")
        || sql.to_ascii_uppercase().contains("RETURNING");
    if is_query {
        let rows = exec.query_all_raw(statement).await?;
        Ok(rows.len() as u64)
    } else {
        Ok(exec.execute_raw(statement).await?.rows_affected())
    }
}

/// Only the guard's check of a statement against `handle`'s tenant, without executing
/// it (for the guard-cost benchmark).
///
/// # Errors
/// [`crate::Error::Refused`] when the guard refuses it.
pub fn check_raw(
    handle: &impl crate::TenantHandle,
    sql: &str,
    values: Vec<sea_orm::Value>,
) -> Result<()> {
    let conn = handle.conn(crate::db::token());
    let statement = sea_orm::Statement::from_sql_and_values(conn.backend(), sql, values);
    Ok(conn.exec().check(&statement)?)
}

/// A database backend tests should run against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// A temporary SQLite file.
    Sqlite,
    /// A fresh schema in the PostgreSQL database at this URL.
    Postgres(String),
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Sqlite => "sqlite",
            Self::Postgres(_) => "postgres",
        })
    }
}

/// The backends to test: SQLite, plus PostgreSQL when `DATABASE_URL` is set.
///
/// # Panics
/// When `CI=true` and `DATABASE_URL` is unset or not a PostgreSQL URL: CI must not skip
/// the PostgreSQL tests silently.
pub fn backends() -> Vec<Backend> {
    let mut backends = vec![Backend::Sqlite];
    match std::env::var("DATABASE_URL") {
        Ok(url) if url.starts_with("postgres") => backends.push(Backend::Postgres(url)),
        _ if std::env::var("CI").is_ok_and(|ci| ci == "true") => {
            panic!("CI=true requires DATABASE_URL=postgres://… so the PostgreSQL tests run")
        }
        _ => {}
    }
    backends
}

/// How long a SQLite connection waits for another's lock before failing: production's
/// value (`migrations::pool::connect`).
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// A fresh database; dropped (file removed, schema dropped) with this value.
#[derive(Debug)]
pub struct TestDb {
    /// The pool, the context issuer and the escape hatch, as the application gets them.
    pub connected: Connected,
    /// The driver connection underneath, for applying migrations (tests only).
    pub raw: DatabaseConnection,
    /// Which backend this is.
    pub backend: Backend,
    cleanup: Cleanup,
}

#[derive(Debug)]
enum Cleanup {
    File(PathBuf),
    Schema { url: String, schema: String },
}

impl TestDb {
    /// Opens a fresh, empty database on `backend`.
    ///
    /// SQLite is opened with production's options (`migrations::pool::connect`, which
    /// this crate cannot depend on): WAL journal, `synchronous=FULL` and a 10 s busy
    /// timeout, so tests lock, wait and commit as the server does
    /// (`tests/tenancy/test_db.rs` reads them back from every pooled connection).
    pub async fn new(backend: &Backend) -> Result<Self> {
        let id = uuid::Uuid::now_v7().simple().to_string();
        let (options, cleanup) = match backend {
            Backend::Sqlite => {
                let dir = std::env::temp_dir().join("tenantry-tests");
                std::fs::create_dir_all(&dir)
                    .map_err(|e| crate::Error::Refused(format!("temp dir: {e}")))?;
                let path = dir.join(format!("{id}.db"));
                let mut options =
                    ConnectOptions::new(format!("sqlite://{}?mode=rwc", path.display()));
                options
                    .max_connections(4)
                    .sqlx_logging(false)
                    .map_sqlx_sqlite_opts(|o| {
                        o.journal_mode(SqliteJournalMode::Wal)
                            .synchronous(SqliteSynchronous::Full)
                            .busy_timeout(SQLITE_BUSY_TIMEOUT)
                    });
                (options, Cleanup::File(path))
            }
            Backend::Postgres(url) => {
                let schema = format!("test_{id}");
                let admin = Database::connect(url.as_str()).await?;
                admin
                    .execute_unprepared(&format!("CREATE SCHEMA \"{schema}\""))
                    .await?;
                admin.close().await?;
                let mut options = ConnectOptions::new(url.clone());
                options
                    .max_connections(4)
                    .sqlx_logging(false)
                    .set_schema_search_path(schema.clone());
                (
                    options,
                    Cleanup::Schema {
                        url: url.clone(),
                        schema,
                    },
                )
            }
        };
        let raw = Database::connect(options).await?;
        Ok(Self {
            connected: Db::open(raw.clone())?,
            raw,
            backend: backend.clone(),
            cleanup,
        })
    }

    /// The pool.
    pub fn db(&self) -> &Db {
        &self.connected.db
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::File(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let mut name = path.clone().into_os_string();
                    name.push(suffix);
                    let _ = std::fs::remove_file(name);
                }
            }
            Cleanup::Schema { url, schema } => {
                // Drop runs inside the test's runtime: use a thread with its own.
                let (url, schema) = (url.clone(), schema.clone());
                let _ = std::thread::spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build();
                    if let Ok(runtime) = runtime {
                        runtime.block_on(async {
                            if let Ok(admin) = Database::connect(url.as_str()).await {
                                let sql = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
                                let _ = admin.execute_unprepared(&sql).await;
                                let _ = admin.close().await;
                            }
                        });
                    }
                })
                .join();
            }
        }
    }
}
