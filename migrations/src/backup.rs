//! Backups of the embedded (SQLite) database, and the lock that says a server runs on it.
//!
//! - [`backup_to`]: `VACUUM INTO` a new file, through a pool opened like the server's
//!   ([`crate::connect`]). It runs in one read transaction, so the copy is the database as
//!   of one instant, while the server keeps writing (in WAL mode readers and the writer
//!   never wait for each other). The copy is written under a temporary name, synced, and
//!   only then given its name, which must not exist yet.
//! - [`restore_from`]: checks that a file is a Tenantry database (`integrity_check`, the
//!   migrations table, no migration this binary does not know) and puts it in place of
//!   the configured one: copied next to it, synced, the old file's log checkpointed into
//!   it and its `-wal`/`-shm`/`-journal` removed (replayed onto the new file they would
//!   corrupt it), renamed over it. It holds the [`ServerLock`] throughout, so it refuses
//!   while a server runs on the file.
//! - [`ServerLock`]: an exclusive advisory lock on `<database file>.lock`, held by a
//!   server for as long as it runs (and by a restore while it works); the OS drops it when
//!   the process ends, however it ends.
//!
//! PostgreSQL has its own tools (`pg_dump -Fc`, `pg_restore --clean --if-exists`): both
//! functions answer [`BackupError::Postgres`], whose text says how.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sea_orm_migration::MigratorTrait as _;
use sea_orm_migration::sea_orm::sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode,
};
use sea_orm_migration::sea_orm::sqlx::{self, Connection as _};
use sea_orm_migration::sea_orm::{ConnectionTrait as _, DbBackend, Statement};

use crate::{Migrator, PoolSettings, connect, sqlite_path};

/// What the PostgreSQL backend uses instead (shown by [`BackupError::Postgres`]).
pub const POSTGRES_INSTRUCTIONS: &str = "DATABASE_URL is PostgreSQL: use its own tools. \
Back up (a consistent snapshot, while the server runs): \
`pg_dump -Fc -f tenantry.dump \"$DATABASE_URL\"`. \
Restore (stop the servers first; all or nothing): \
`pg_restore --clean --if-exists --single-transaction -d \"$DATABASE_URL\" tenantry.dump`";

/// Why a backup, a restore or taking the server lock failed. Its text is for the operator.
#[derive(Debug)]
pub enum BackupError {
    /// The database is PostgreSQL; the text says which tools to use.
    Postgres,
    /// `DATABASE_URL` names no file (an in-memory SQLite database).
    NoFile,
    /// There is no database at the configured path.
    SourceMissing(PathBuf),
    /// The backup's destination exists; a backup never overwrites a file.
    DestinationExists(PathBuf),
    /// Another process holds the database's lock: a server runs on it, or a restore.
    Locked {
        /// The database file.
        database: PathBuf,
        /// Its lock file.
        lock: PathBuf,
        /// The holder's process id, as it wrote it into the lock file.
        pid: Option<u32>,
    },
    /// The file to restore from is not a Tenantry database.
    NotTenantry {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The file to restore from has a write-ahead log next to it: it is a live database
    /// (or a copy of one without its log), not a backup.
    LiveDatabase(PathBuf),
    /// A file operation failed.
    Io {
        /// What was being done.
        doing: String,
        /// The failure.
        source: std::io::Error,
    },
    /// The database failed.
    Database {
        /// What was being done.
        doing: String,
        /// The failure.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl std::fmt::Display for BackupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Postgres => f.write_str(POSTGRES_INSTRUCTIONS),
            Self::NoFile => f.write_str(
                "DATABASE_URL names no database file (an in-memory SQLite database): nothing \
                 to back up or restore",
            ),
            Self::SourceMissing(path) => write!(f, "there is no database at {}", path.display()),
            Self::DestinationExists(path) => write!(
                f,
                "{} already exists: a backup never overwrites a file; choose a new path",
                path.display()
            ),
            Self::Locked {
                database,
                lock,
                pid,
            } => {
                write!(
                    f,
                    "{} is in use: a Tenantry server (or a restore) is running on it",
                    database.display()
                )?;
                if let Some(pid) = pid {
                    write!(f, " as process {pid}")?;
                }
                write!(f, " and holds {}; stop it first", lock.display())
            }
            Self::NotTenantry { path, reason } => {
                write!(f, "{} is not a Tenantry database: {reason}", path.display())
            }
            Self::LiveDatabase(path) => write!(
                f,
                "{} has a write-ahead log next to it ({}-wal): it is a live database, not a \
                 backup; make one from it with `tenantry backup` (DATABASE_URL pointing at it) \
                 and restore that",
                path.display(),
                path.display()
            ),
            Self::Io { doing, .. } | Self::Database { doing, .. } => f.write_str(doing),
        }
    }
}

impl std::error::Error for BackupError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            Self::Database { source, .. } => Some(source.as_ref()),
            _ => None,
        }
    }
}

fn io(doing: impl Into<String>) -> impl FnOnce(std::io::Error) -> BackupError {
    let doing = doing.into();
    move |source| BackupError::Io { doing, source }
}

fn db<E: std::error::Error + Send + Sync + 'static>(
    doing: impl Into<String>,
) -> impl FnOnce(E) -> BackupError {
    let doing = doing.into();
    move |source| BackupError::Database {
        doing,
        source: Box::new(source),
    }
}

/// The database file a `DATABASE_URL` names, or why there is none.
fn database_file(database_url: &str) -> Result<PathBuf, BackupError> {
    if !database_url.starts_with("sqlite:") {
        return Err(BackupError::Postgres);
    }
    sqlite_path(database_url).ok_or(BackupError::NoFile)
}

/// `<path><suffix>`: `tenantry.db` → `tenantry.db.lock`, `tenantry.db-wal`.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(suffix);
    PathBuf::from(name)
}

/// The directory a file is in (`.` for a bare file name).
fn directory_of(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// A hidden, unique name next to `path`, for a file that gets `path`'s name once complete.
fn temporary_next_to(path: &Path, what: &str) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    directory_of(path).join(format!(".{name}.{what}-{}-{nanos}", std::process::id()))
}

/// Removes a temporary file on drop, unless it was kept.
struct Temporary(Option<PathBuf>);

impl Temporary {
    fn path(&self) -> &Path {
        self.0.as_deref().unwrap_or_else(|| Path::new(""))
    }

    fn keep(mut self) {
        self.0 = None;
    }
}

impl Drop for Temporary {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = fs::remove_file(&path);
            for suffix in ["-wal", "-shm", "-journal"] {
                let _ = fs::remove_file(with_suffix(&path, suffix));
            }
        }
    }
}

/// Flushes a file's contents to disk.
fn sync_file(path: &Path) -> Result<(), BackupError> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(io(format!("syncing {}", path.display())))
}

/// Flushes a directory's entries to disk, so a rename in it survives a power loss
/// (Unix; elsewhere the rename's own guarantees are all there is).
fn sync_directory(dir: &Path) -> Result<(), BackupError> {
    #[cfg(unix)]
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(format!("syncing the directory {}", dir.display())))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// An exclusive advisory lock on `<database file>.lock`, released when dropped (or when
/// the process ends, however it ends). A server holds it for as long as it runs, so a
/// second server on the same file and a restore over it are refused.
#[derive(Debug)]
pub struct ServerLock {
    /// The open, locked file: the lock lives as long as this handle.
    _file: File,
    /// Where the lock file is, for messages.
    path: PathBuf,
}

impl ServerLock {
    /// Takes the lock of the database file `database` (creating its directory and the
    /// lock file when missing) and writes this process's id into it.
    ///
    /// # Errors
    /// [`BackupError::Locked`] when another process holds it; [`BackupError::Io`] when the
    /// lock file cannot be opened or locked.
    pub fn acquire(database: &Path) -> Result<Self, BackupError> {
        let path = with_suffix(database, ".lock");
        let dir = directory_of(database);
        fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
        // Not truncated on open: the holder's pid must survive a failed attempt.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io(format!("opening the lock file {}", path.display())))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                return Err(BackupError::Locked {
                    database: database.to_path_buf(),
                    lock: path,
                    pid: text.trim().parse().ok(),
                });
            }
            Err(TryLockError::Error(e)) => {
                return Err(io(format!("locking {}", path.display()))(e));
            }
        }
        // The pid is only for the message another process shows; failing to write it
        // does not weaken the lock.
        let _ = file
            .set_len(0)
            .and_then(|()| writeln!(file, "{}", std::process::id()));
        Ok(Self { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A backup that was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backup {
    /// Where it is.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
}

/// Writes a consistent copy of the SQLite database `database_url` names to `to`, which
/// must not exist, while a server may keep writing to it.
///
/// The copy is `VACUUM INTO` through a one-connection pool opened like the server's: the
/// database as of the start of one read transaction, compacted, as one self-contained
/// file (rollback-journal mode, no `-wal` beside it). It is written under a temporary
/// name in `to`'s directory (created if missing), synced to disk, then linked to `to`
/// only if `to` still does not exist.
///
/// # Errors
/// [`BackupError::Postgres`] for PostgreSQL, [`BackupError::DestinationExists`],
/// [`BackupError::SourceMissing`]; database and file failures.
pub async fn backup_to(database_url: &str, to: &Path) -> Result<Backup, BackupError> {
    let source = database_file(database_url)?;
    if fs::symlink_metadata(to).is_ok() {
        return Err(BackupError::DestinationExists(to.to_path_buf()));
    }
    if !source.is_file() {
        return Err(BackupError::SourceMissing(source));
    }
    let dir = directory_of(to);
    fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    let partial = Temporary(Some(temporary_next_to(to, "partial")));
    let partial_name = partial.path().to_str().ok_or_else(|| BackupError::Io {
        doing: format!("writing to {}", to.display()),
        source: std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "SQLite needs a UTF-8 path",
        ),
    })?;

    let conn = connect(&PoolSettings {
        url: database_url.to_owned(),
        max_connections: 1,
        acquire_timeout: Duration::from_secs(10),
    })
    .await
    .map_err(db(format!("opening {}", source.display())))?;
    let vacuum = conn
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::Sqlite,
            "VACUUM INTO ?",
            [partial_name.into()],
        ))
        .await
        .map_err(db(format!(
            "copying {} (VACUUM INTO {partial_name})",
            source.display()
        )));
    let _ = conn.close().await;
    vacuum?;

    // SQLite does not sync what VACUUM INTO wrote.
    sync_file(partial.path())?;
    persist_new(partial.path(), to)?;
    // Linked: the temporary name is a second name of `to`'s file; renamed: it is gone.
    drop(partial);
    sync_directory(dir)?;
    let bytes = fs::metadata(to)
        .map_err(io(format!("reading {}", to.display())))?
        .len();
    Ok(Backup {
        path: to.to_path_buf(),
        bytes,
    })
}

/// Gives the complete file `from` the name `to`, never replacing an existing `to`: a hard
/// link (atomic, and fails when `to` exists); a rename on file systems without links.
fn persist_new(from: &Path, to: &Path) -> Result<(), BackupError> {
    match fs::hard_link(from, to) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Err(BackupError::DestinationExists(to.to_path_buf()))
        }
        Err(_) if fs::symlink_metadata(to).is_err() => {
            fs::rename(from, to).map_err(io(format!("renaming into {}", to.display())))
        }
        Err(_) => Err(BackupError::DestinationExists(to.to_path_buf())),
    }
}

/// A database put in place by [`restore_from`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    /// The database file that now holds the backup.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// The last migration the backup had applied (`serve` and `migrate` apply the rest).
    pub migration: String,
}

/// Replaces the SQLite database `database_url` names with the backup `from`, refusing
/// while a server runs on it.
///
/// Holds the [`ServerLock`] throughout. Copies `from` next to the database, checks the
/// copy (`PRAGMA integrity_check` is `ok`, `seaql_migrations` exists, every migration it
/// lists is one this binary knows), syncs it, checkpoints the old file's write-ahead log
/// into it, removes its `-wal`, `-shm` and `-journal`, and renames the copy over it: a
/// crash at any point leaves either the whole old database or the new one, never a mix.
///
/// # Errors
/// [`BackupError::Postgres`], [`BackupError::Locked`] while a server runs,
/// [`BackupError::NotTenantry`], [`BackupError::LiveDatabase`], [`BackupError::SourceMissing`];
/// file failures.
pub async fn restore_from(from: &Path, database_url: &str) -> Result<Restored, BackupError> {
    let target = database_file(database_url)?;
    let _lock = ServerLock::acquire(&target)?;
    if !from.is_file() {
        return Err(BackupError::SourceMissing(from.to_path_buf()));
    }
    if fs::metadata(with_suffix(from, "-wal")).is_ok_and(|m| m.len() > 0) {
        return Err(BackupError::LiveDatabase(from.to_path_buf()));
    }
    let dir = directory_of(&target);
    let incoming = Temporary(Some(temporary_next_to(&target, "restore")));
    fs::copy(from, incoming.path()).map_err(io(format!(
        "copying {} into {}",
        from.display(),
        dir.display()
    )))?;
    let migration = check_tenantry_database(incoming.path())
        .await
        .map_err(|e| match e {
            BackupError::NotTenantry { reason, .. } => BackupError::NotTenantry {
                path: from.to_path_buf(),
                reason,
            },
            other => other,
        })?;
    sync_file(incoming.path())?;

    // The old file's log and journal belong to it: replayed onto the new file, they would
    // corrupt it. No server runs (we hold the lock), so nothing is writing them; what a
    // server that died left in the log goes into the old file first, so that a crash
    // before the rename leaves the old database whole.
    checkpoint(&target).await;
    for suffix in ["-wal", "-shm", "-journal"] {
        let stale = with_suffix(&target, suffix);
        match fs::remove_file(&stale) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(format!("removing {}", stale.display()))(e)),
        }
    }
    fs::rename(incoming.path(), &target).map_err(io(format!(
        "renaming the restored copy into {}",
        target.display()
    )))?;
    incoming.keep();
    sync_directory(dir)?;
    let bytes = fs::metadata(&target)
        .map_err(io(format!("reading {}", target.display())))?
        .len();
    Ok(Restored {
        path: target,
        bytes,
        migration,
    })
}

/// Best effort: moves what the write-ahead log of the database at `path` holds into the
/// file itself (nothing to do when it has no log; a database that cannot be opened is
/// being replaced anyway).
async fn checkpoint(path: &Path) {
    if !fs::metadata(with_suffix(path, "-wal")).is_ok_and(|m| m.len() > 0) {
        return;
    }
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(false);
    if let Ok(mut conn) = SqliteConnection::connect_with(&options).await {
        let _ = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&mut conn)
            .await;
        let _ = conn.close().await;
    }
}

/// Checks that `path` is a sound Tenantry database and leaves it as one file in rollback
/// journal mode (the server switches it to WAL when it opens it). Returns its last
/// applied migration.
async fn check_tenantry_database(path: &Path) -> Result<String, BackupError> {
    let not_tenantry = |reason: String| BackupError::NotTenantry {
        path: path.to_path_buf(),
        reason,
    };
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(false)
        .journal_mode(SqliteJournalMode::Delete);
    let mut conn = SqliteConnection::connect_with(&options)
        .await
        .map_err(|e| not_tenantry(format!("SQLite cannot open it ({e})")))?;
    let checked = check_open_database(&mut conn, &not_tenantry).await;
    let _ = conn.close().await;
    checked
}

async fn check_open_database(
    conn: &mut SqliteConnection,
    not_tenantry: &impl Fn(String) -> BackupError,
) -> Result<String, BackupError> {
    let problems: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| not_tenantry(format!("SQLite cannot read it ({e})")))?;
    if problems != ["ok"] {
        let first: Vec<&str> = problems.iter().take(3).map(String::as_str).collect();
        return Err(not_tenantry(format!(
            "integrity_check failed: {}",
            first.join("; ")
        )));
    }
    let has_migrations: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'seaql_migrations'",
    )
    .fetch_one(&mut *conn)
    .await
    .map_err(db("reading the schema"))?;
    if has_migrations == 0 {
        return Err(not_tenantry("it has no seaql_migrations table".to_owned()));
    }
    let applied: Vec<String> =
        sqlx::query_scalar("SELECT version FROM seaql_migrations ORDER BY version")
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| not_tenantry(format!("its seaql_migrations table is unreadable ({e})")))?;
    let known: Vec<String> = Migrator::migrations()
        .iter()
        .map(|m| m.name().to_owned())
        .collect();
    let unknown: Vec<&str> = applied
        .iter()
        .filter(|v| !known.contains(v))
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        return Err(not_tenantry(format!(
            "it has migrations this binary does not know (made by a newer Tenantry?): {}",
            unknown.join(", ")
        )));
    }
    applied
        .last()
        .cloned()
        .ok_or_else(|| not_tenantry("no migration was ever applied to it".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn side_files_are_named_after_the_database() {
        assert_eq!(
            with_suffix(Path::new("./data/tenantry.db"), ".lock"),
            PathBuf::from("./data/tenantry.db.lock")
        );
        assert_eq!(directory_of(Path::new("tenantry.db")), Path::new("."));
        let temporary = temporary_next_to(Path::new("/b/x.db"), "partial");
        assert_eq!(temporary.parent(), Some(Path::new("/b")));
        assert!(
            temporary
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(".x.db.partial-"))
        );
    }

    #[test]
    fn postgres_and_in_memory_urls_have_no_file_to_copy() {
        assert!(matches!(
            database_file("postgres://u@h/db"),
            Err(BackupError::Postgres)
        ));
        assert!(matches!(
            database_file("sqlite::memory:"),
            Err(BackupError::NoFile)
        ));
        let text = BackupError::Postgres.to_string();
        assert!(text.contains("pg_dump -Fc") && text.contains("pg_restore --clean --if-exists"));
    }
}
