//! The sea-orm entities, one per table of the `migrations` schema. Crate-private: the
//! outside world sees domain types, never models.
//!
//! Every tenant-owned entity opts in with `tenancy::tenant_scoped!()`, the `tenants`
//! table with `tenancy::tenant_root!()`. Relations between tenant tables are composite
//! (`(tenant_id, x_id)` → `(tenant_id, id)`), matching the foreign keys, so every join
//! is tenant-local (Citus co-location).

use chrono::{DateTime, Utc};
use sea_orm::EntityTrait;
use uuid::Uuid;

use crate::error::Resource;

pub(crate) mod account;
pub(crate) mod activity;
pub(crate) mod api_key;
pub(crate) mod idempotency_key;
pub(crate) mod person;
pub(crate) mod tenant;
pub(crate) mod user;

/// The bookkeeping columns of a mutable row, read generically.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Meta {
    pub(crate) id: Uuid,
    pub(crate) updated_at: DateTime<Utc>,
    pub(crate) version: i64,
}

/// A tenant-owned entity with `id`, `updated_at`, `version` and `deleted_at`: what the
/// generic get / list / update / soft-delete in `store` need to know about it.
pub(crate) trait Tracked: tenancy::TenantScoped {
    /// What errors about this entity name.
    const RESOURCE: Resource;
    /// `id`.
    const ID: Self::Column;
    /// `updated_at`.
    const UPDATED_AT: Self::Column;
    /// `version`.
    const VERSION: Self::Column;
    /// `deleted_at`.
    const DELETED_AT: Self::Column;

    /// The bookkeeping values of a row.
    fn meta(model: &<Self as EntityTrait>::Model) -> Meta;
}

/// Implements [`Tracked`] for the entity of the current module.
macro_rules! tracked {
    ($resource:expr) => {
        impl $crate::entity::Tracked for Entity {
            const RESOURCE: $crate::error::Resource = $resource;
            const ID: Column = Column::Id;
            const UPDATED_AT: Column = Column::UpdatedAt;
            const VERSION: Column = Column::Version;
            const DELETED_AT: Column = Column::DeletedAt;

            fn meta(model: &Model) -> $crate::entity::Meta {
                $crate::entity::Meta {
                    id: model.id,
                    updated_at: model.updated_at,
                    version: model.version,
                }
            }
        }
    };
}
pub(crate) use tracked;
