//! `accounts`: the companies a tenant sells to.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "accounts")]
pub(crate) struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub(crate) tenant_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub(crate) id: Uuid,
    pub(crate) name: String,
    pub(crate) domain: Option<String>,
    pub(crate) owner_id: Option<Uuid>,
    #[sea_orm(column_type = "JsonBinary")]
    pub(crate) custom_fields: Json,
    pub(crate) created_at: DateTimeUtc,
    pub(crate) updated_at: DateTimeUtc,
    pub(crate) version: i64,
    pub(crate) deleted_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub(crate) enum Relation {
    #[sea_orm(
        belongs_to = "super::user::Entity",
        from = "(Column::TenantId, Column::OwnerId)",
        to = "(super::user::Column::TenantId, super::user::Column::Id)"
    )]
    Owner,
}

tenancy::tenant_scoped!();
crate::entity::tracked!(crate::error::Resource::Account);
