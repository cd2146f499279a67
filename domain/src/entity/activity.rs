//! `activities`: calls, emails, notes and meetings with a person.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "activities")]
pub(crate) struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub(crate) tenant_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub(crate) id: Uuid,
    pub(crate) person_id: Uuid,
    pub(crate) user_id: Option<Uuid>,
    pub(crate) kind: String,
    pub(crate) subject: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub(crate) body: Option<String>,
    pub(crate) occurred_at: DateTimeUtc,
    pub(crate) created_at: DateTimeUtc,
    pub(crate) updated_at: DateTimeUtc,
    pub(crate) version: i64,
    pub(crate) deleted_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub(crate) enum Relation {
    #[sea_orm(
        belongs_to = "super::person::Entity",
        from = "(Column::TenantId, Column::PersonId)",
        to = "(super::person::Column::TenantId, super::person::Column::Id)"
    )]
    Person,
    #[sea_orm(
        belongs_to = "super::user::Entity",
        from = "(Column::TenantId, Column::UserId)",
        to = "(super::user::Column::TenantId, super::user::Column::Id)"
    )]
    User,
}

impl Related<super::person::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Person.def()
    }
}

tenancy::tenant_scoped!();
crate::entity::tracked!(crate::error::Resource::Activity);
