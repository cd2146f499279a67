//! # entities — Tenantry's sea-orm entity declarations, and nothing else
//!
//! One module per table of the `migrations` schema. This is the only crate on the
//! domain side that depends on sea-orm, and it holds declarations only: no queries, no
//! connections, no functions that build SQL. The business code in `domain` depends on
//! it and on `tenancy`, never on sea-orm, sea-query or sqlx — so raw SQL, raw
//! statements and sea-orm's query traits are not even nameable there (CI checks the
//! dependency graph: `.ci/check-deps`).
//!
//! ## The rules
//! 1. Every entity is declared through tenancy's macros: tenant-owned tables with
//!    `tenancy::tenant_scoped!()` (`api_key_prefixes` too: its rows are tenants' keys,
//!    though Citus replicates it instead of distributing it), the `tenants` table with
//!    `tenancy::tenant_root!()`.
//!    tenancy re-checks each declaration before its first statement (names, the
//!    `tenant_id` column, the primary key, no `select_as`/`save_as`, no enums) and its
//!    statement guard checks every statement.
//! 2. Relations between tenant tables are composite (`(tenant_id, x_id)` →
//!    `(tenant_id, id)`), matching the foreign keys, so every join is tenant-local
//!    (Citus co-location), and target exactly the related entity's table.
//! 3. Model fields are `pub` for the domain crate to read and to fill active models
//!    with (`tenancy::Set`); nothing here is re-exported from sea-orm.

#![expect(
    missing_docs,
    reason = "sea-orm entity models: each module and table is documented; fields and derive-generated items mirror the migrations schema"
)]

use chrono::{DateTime, Utc};
use uuid::Uuid;

pub mod account;
pub mod activity;
pub mod api_key;
pub mod api_key_prefix;
pub mod idempotency_key;
pub mod person;
pub mod tenant;
pub mod user;

/// The bookkeeping columns of a mutable row, read generically.
#[derive(Debug, Clone, Copy)]
pub struct Meta {
    /// `id`.
    pub id: Uuid,
    /// `updated_at`.
    pub updated_at: DateTime<Utc>,
    /// `version`.
    pub version: i64,
}

/// A tenant-owned entity with `id`, `updated_at`, `version` and `deleted_at`: what the
/// domain's generic get / list / update / soft delete need to know about it.
pub trait Tracked: tenancy::TenantScoped<ActiveModel: Default + Send> {
    /// `id`.
    const ID: Self::Column;
    /// `updated_at`.
    const UPDATED_AT: Self::Column;
    /// `version`.
    const VERSION: Self::Column;
    /// `deleted_at`.
    const DELETED_AT: Self::Column;

    /// The bookkeeping values of a row.
    fn meta(model: &Self::Model) -> Meta;
}

/// Implements [`Tracked`] for the entity of the current module.
macro_rules! tracked {
    () => {
        impl $crate::Tracked for Entity {
            const ID: Column = Column::Id;
            const UPDATED_AT: Column = Column::UpdatedAt;
            const VERSION: Column = Column::Version;
            const DELETED_AT: Column = Column::DeletedAt;

            fn meta(model: &Model) -> $crate::Meta {
                $crate::Meta {
                    id: model.id,
                    updated_at: model.updated_at,
                    version: model.version,
                }
            }
        }
    };
}
pub(crate) use tracked;
