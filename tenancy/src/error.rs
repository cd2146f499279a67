//! The crate's one error type.

use sea_orm::DbErr;

use crate::TenantId;

/// Everything a scoped database operation can fail with.
///
/// HTTP-agnostic: the API maps it to problem responses once, at its edge.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The database refused or failed the statement.
    #[error("database error: {0}")]
    Db(#[from] DbErr),
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

impl Error {
    /// A copy of a refusal made before any SQL ran (database errors are not cloneable
    /// and are rendered as text).
    pub(crate) fn clone_refusal(&self) -> Self {
        match self {
            Self::Db(e) => Self::Db(DbErr::Custom(e.to_string())),
            Self::TenantMismatch { expected, found } => Self::TenantMismatch {
                expected: *expected,
                found: found.clone(),
            },
            Self::TenantColumnImmutable { table } => Self::TenantColumnImmutable { table },
            Self::NotFound { table } => Self::NotFound { table },
            Self::MissingPrimaryKey { table } => Self::MissingPrimaryKey { table },
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
