//! `api_key_prefixes`: which tenant an API key's prefix belongs to — the directory the
//! authentication lookup of a key that does not name its tenant (a legacy
//! `tnt_<prefix>_…` key) reads before it knows the tenant.
//!
//! Tenant-owned (each row is one tenant's key, written through that tenant's handle
//! together with the key itself) but small and read across tenants, so under Citus it
//! is a *reference table* — a copy on every node, read by prefix on one node — rather
//! than distributed by `tenant_id` like `api_keys` (where a read by prefix alone would
//! run on every shard). Its unique index on `prefix` keeps prefixes unique across
//! tenants there too. See `migrations/CITUS.md`.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "api_key_prefixes")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: Uuid,
    /// `api_keys.prefix` of one of the tenant's keys.
    #[sea_orm(primary_key, auto_increment = false)]
    pub prefix: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

tenancy::tenant_scoped!();
