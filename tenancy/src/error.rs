//! The crate's one error type.

use sea_orm::{DbErr, RuntimeErr, SqlErr};

use crate::TenantId;

/// Marks guard refusals inside sea-orm's error type on their way out of an execution.
pub(crate) const REFUSED: &str = "tenancy refused the statement: ";

/// A database failure, kept opaque: its text is for logs, its kind is the [`Error`]
/// variant it came in (the driver's error types never leave this crate).
#[derive(Debug)]
pub struct StorageError(DbErr);

impl std::fmt::Display for StorageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for StorageError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// Everything a scoped database operation can fail with.
///
/// HTTP-agnostic: the API maps it to problem responses once, at its edge.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The database could not be reached or did not answer in time (pool timeout,
    /// connection lost, server down or full): worth retrying later.
    #[error("database unavailable: {0}")]
    Unavailable(StorageError),
    /// The database refused or failed the statement for another reason.
    #[error("database error: {0}")]
    Storage(StorageError),
    /// A write would have duplicated a unique key; nothing was written.
    #[error("unique constraint violated: {0}")]
    UniqueViolation(StorageError),
    /// A write referenced a row that does not exist; nothing was written.
    #[error("foreign key constraint violated: {0}")]
    ForeignKeyViolation(StorageError),
    /// The statement guard or an entity-declaration check refused the statement before
    /// it ran (see the crate docs). A bug in the caller's code, never a user error.
    #[error("refused by tenancy: {0}")]
    Refused(String),
    /// A row to write names a tenant other than the handle's; nothing was written.
    #[error("the row names tenant {found}, but this handle is scoped to tenant {expected}")]
    TenantMismatch {
        /// The handle's tenant.
        expected: TenantId,
        /// What the row carried (rendered, since it may not even be a UUID).
        found: String,
    },
    /// An update tried to assign the tenant column; nothing was written.
    #[error("the tenant column of `{table}` cannot be changed")]
    TenantColumnImmutable {
        /// The table the update targeted.
        table: &'static str,
    },
    /// An update by primary key found no row of this tenant with that key.
    #[error("no row of this tenant in `{table}` has that key")]
    NotFound {
        /// The table that was searched.
        table: &'static str,
    },
    /// An update or delete by primary key was given a model whose key is not set.
    #[error("the primary key of the `{table}` row is not set")]
    MissingPrimaryKey {
        /// The table of the row.
        table: &'static str,
    },
    /// A value does not fit the column it was set on; nothing was written.
    #[error("a value does not fit column `{column}` of `{table}`")]
    InvalidValue {
        /// The table.
        table: &'static str,
        /// The column.
        column: String,
    },
    /// An update had no column to set.
    #[error("an update of `{table}` sets no column")]
    NothingToUpdate {
        /// The table.
        table: &'static str,
    },
    /// A keyset page was asked to continue after a key of the wrong length.
    #[error("the keyset has {expected} columns, but the cursor carries {found} values")]
    InvalidKeyset {
        /// Number of key columns.
        expected: usize,
        /// Number of values given.
        found: usize,
    },
    /// `join::<R>()` on a relation that goes through a junction table.
    #[error(
        "`{from}` reaches `{to}` through a junction table: join the junction, then the target (two explicit hops)"
    )]
    JoinThroughJunction {
        /// The entity joined from.
        from: &'static str,
        /// The entity that was to be joined.
        to: &'static str,
    },
}

/// Whether a driver error means the database is out of reach rather than that the
/// statement was wrong.
fn unavailable(error: &DbErr) -> bool {
    let runtime = match error {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => return true,
        DbErr::Exec(runtime) | DbErr::Query(runtime) => runtime,
        _ => return false,
    };
    let RuntimeErr::SqlxError(sqlx) = runtime else {
        return false;
    };
    use sea_orm::sqlx::Error as Sqlx;
    match sqlx.as_ref() {
        Sqlx::Io(_) | Sqlx::PoolTimedOut | Sqlx::PoolClosed | Sqlx::WorkerCrashed => true,
        Sqlx::Database(db) => {
            // PostgreSQL: class 08 (connection), 53 (insufficient resources), 57P0x
            // (shutdown); SQLite: 13 (full), 5/6 (busy/locked), 10 (I/O).
            let code = db.code().unwrap_or_default();
            code.starts_with("08")
                || code.starts_with("53")
                || code.starts_with("57P0")
                || matches!(
                    code.as_ref(),
                    "13" | "5" | "6" | "10" | "517" | "261" | "266"
                )
        }
        _ => false,
    }
}

impl From<DbErr> for Error {
    fn from(error: DbErr) -> Self {
        if let DbErr::Custom(message) = &error
            && let Some(reason) = message.strip_prefix(REFUSED)
        {
            return Self::Refused(reason.to_owned());
        }
        if unavailable(&error) {
            return Self::Unavailable(StorageError(error));
        }
        match error.sql_err() {
            Some(SqlErr::UniqueConstraintViolation(_)) => {
                Self::UniqueViolation(StorageError(error))
            }
            Some(SqlErr::ForeignKeyConstraintViolation(_)) => {
                Self::ForeignKeyViolation(StorageError(error))
            }
            _ => Self::Storage(StorageError(error)),
        }
    }
}

impl Error {
    /// Whether retrying later may succeed (the database was out of reach).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }

    /// A copy of a refusal made before any SQL ran (database errors are not cloneable
    /// and are rendered as text).
    pub(crate) fn clone_refusal(&self) -> Self {
        match self {
            Self::Unavailable(e)
            | Self::Storage(e)
            | Self::UniqueViolation(e)
            | Self::ForeignKeyViolation(e) => Self::Refused(e.to_string()),
            Self::Refused(reason) => Self::Refused(reason.clone()),
            Self::TenantMismatch { expected, found } => Self::TenantMismatch {
                expected: *expected,
                found: found.clone(),
            },
            Self::TenantColumnImmutable { table } => Self::TenantColumnImmutable { table },
            Self::NotFound { table } => Self::NotFound { table },
            Self::MissingPrimaryKey { table } => Self::MissingPrimaryKey { table },
            Self::InvalidValue { table, column } => Self::InvalidValue {
                table,
                column: column.clone(),
            },
            Self::NothingToUpdate { table } => Self::NothingToUpdate { table },
            Self::InvalidKeyset { expected, found } => Self::InvalidKeyset {
                expected: *expected,
                found: *found,
            },
            Self::JoinThroughJunction { from, to } => Self::JoinThroughJunction { from, to },
        }
    }
}

/// Result of every fallible operation in this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
