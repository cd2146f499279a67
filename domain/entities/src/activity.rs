//! `activities`: calls, emails, notes and meetings with a person.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "activities")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub person_id: Uuid,
    pub user_id: Option<Uuid>,
    pub kind: String,
    pub subject: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub body: Option<String>,
    pub occurred_at: DateTimeUtc,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub version: i64,
    pub deleted_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
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
crate::tracked!();
