//! `api_keys`: an integration's credential, stored as a prefix and a hash.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "api_keys")]
pub(crate) struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub(crate) tenant_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub(crate) id: Uuid,
    pub(crate) name: String,
    pub(crate) prefix: String,
    pub(crate) secret_hash: String,
    #[sea_orm(column_type = "JsonBinary")]
    pub(crate) scopes: Json,
    pub(crate) created_by: Option<Uuid>,
    pub(crate) created_at: DateTimeUtc,
    pub(crate) last_used_at: Option<DateTimeUtc>,
    pub(crate) revoked_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub(crate) enum Relation {
    #[sea_orm(
        belongs_to = "super::user::Entity",
        from = "(Column::TenantId, Column::CreatedBy)",
        to = "(super::user::Column::TenantId, super::user::Column::Id)"
    )]
    CreatedBy,
}

tenancy::tenant_scoped!();
