//! `people`: contacts, optionally at an account.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "people")]
pub(crate) struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub(crate) tenant_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub(crate) id: Uuid,
    pub(crate) account_id: Option<Uuid>,
    pub(crate) first_name: String,
    pub(crate) last_name: String,
    pub(crate) email: Option<String>,
    pub(crate) title: Option<String>,
    pub(crate) phone: Option<String>,
    pub(crate) stage: String,
    pub(crate) created_at: DateTimeUtc,
    pub(crate) updated_at: DateTimeUtc,
    pub(crate) version: i64,
    pub(crate) deleted_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub(crate) enum Relation {
    #[sea_orm(
        belongs_to = "super::account::Entity",
        from = "(Column::TenantId, Column::AccountId)",
        to = "(super::account::Column::TenantId, super::account::Column::Id)"
    )]
    Account,
}

impl Related<super::account::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Account.def()
    }
}

tenancy::tenant_scoped!();
crate::entity::tracked!(crate::error::Resource::Person);
