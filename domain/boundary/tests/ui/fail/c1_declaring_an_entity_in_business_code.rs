//! Class C: a view of a tenant table declared global, from business code.
mod tenant_view {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "people_view")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: Uuid,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    tenancy::global_entity!();
}

fn main() {}
