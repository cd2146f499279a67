//! `accounts`: the companies a tenant sells to.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "accounts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub name: String,
    pub domain: Option<String>,
    pub owner_id: Option<Uuid>,
    #[sea_orm(column_type = "JsonBinary")]
    pub custom_fields: Json,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub version: i64,
    pub deleted_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::user::Entity",
        from = "(Column::TenantId, Column::OwnerId)",
        to = "(super::user::Column::TenantId, super::user::Column::Id)"
    )]
    Owner,
}

tenancy::tenant_scoped!();
crate::tracked!();
