//! Opening the database the way the server runs it, and applying the schema: the one
//! place outside `tenancy` that touches sea-orm's connection, so the application
//! crates never name it.

use std::path::PathBuf;
use std::time::Duration;

use sea_orm_migration::MigratorTrait as _;
use sea_orm_migration::sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm_migration::sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr};

use crate::Migrator;

/// Why the database could not be opened or migrated. Opaque: its text is for logs.
#[derive(Debug)]
pub struct Error(ErrorKind);

#[derive(Debug)]
enum ErrorKind {
    Db(DbErr),
    Io(std::io::Error),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            ErrorKind::Db(e) => write!(f, "database: {e}"),
            ErrorKind::Io(e) => write!(f, "database directory: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.0 {
            ErrorKind::Db(e) => Some(e),
            ErrorKind::Io(e) => Some(e),
        }
    }
}

impl From<DbErr> for Error {
    fn from(error: DbErr) -> Self {
        Self(ErrorKind::Db(error))
    }
}

/// How to open the pool.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// `sqlite://path?mode=rwc` (the embedded default) or `postgres://…`.
    pub url: String,
    /// Pool size.
    pub max_connections: u32,
    /// How long a request waits for a free connection before failing as unavailable.
    pub acquire_timeout: Duration,
}

/// Opens the pool: a fixed size; SQLite in WAL mode (readers never wait for the writer)
/// with `synchronous=FULL` (a commit that returned is on disk, even after a power loss)
/// and a busy timeout; the SQLite file's directory created. Tests open their databases
/// through this too, so they run on exactly what production runs.
///
/// # Errors
/// When the directory cannot be created or the database cannot be reached.
pub async fn connect(settings: &PoolSettings) -> Result<DatabaseConnection, Error> {
    if let Some(path) = sqlite_path(&settings.url)
        && let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir).map_err(|e| Error(ErrorKind::Io(e)))?;
    }
    let mut options = ConnectOptions::new(settings.url.clone());
    options
        .max_connections(settings.max_connections)
        .min_connections(1)
        .acquire_timeout(settings.acquire_timeout)
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(|o| {
            o.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .busy_timeout(Duration::from_secs(10))
        });
    Ok(Database::connect(options).await?)
}

/// Applies every pending migration.
///
/// # Errors
/// When a migration fails.
pub async fn up(conn: &DatabaseConnection) -> Result<(), Error> {
    Ok(Migrator::up(conn, None).await?)
}

/// The file of a `sqlite://path?…` URL (none for in-memory databases).
pub fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && !path.starts_with(":memory:")).then(|| PathBuf::from(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_name_their_file() {
        assert_eq!(
            sqlite_path("sqlite://./data/tenantry.db?mode=rwc"),
            Some(PathBuf::from("./data/tenantry.db"))
        );
        assert_eq!(
            sqlite_path("sqlite:/tmp/x.db"),
            Some(PathBuf::from("/tmp/x.db"))
        );
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert_eq!(sqlite_path("postgres://localhost/db"), None);
    }
}
