//! A small schema exercising every kind of entity and relation the crate supports.
#![allow(dead_code, missing_docs)]

pub mod tenant {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "tenants")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub name: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    tenancy::tenant_root!();
}

pub mod currency {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "currencies")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub code: String,
        pub name: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    tenancy::global_entity!();
}

pub mod account {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "accounts")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub name: String,
        pub currency: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {
        #[sea_orm(has_many = "super::person::Entity")]
        Person,
        #[sea_orm(
            belongs_to = "super::tenant::Entity",
            from = "Column::TenantId",
            to = "super::tenant::Column::Id"
        )]
        Tenant,
        #[sea_orm(
            belongs_to = "super::currency::Entity",
            from = "Column::Currency",
            to = "super::currency::Column::Code"
        )]
        Currency,
    }

    impl Related<super::person::Entity> for Entity {
        fn to() -> RelationDef {
            Relation::Person.def()
        }
    }
    impl Related<super::tenant::Entity> for Entity {
        fn to() -> RelationDef {
            Relation::Tenant.def()
        }
    }
    impl Related<super::currency::Entity> for Entity {
        fn to() -> RelationDef {
            Relation::Currency.def()
        }
    }

    tenancy::tenant_scoped!();
}

pub mod person {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "people")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub account_id: Option<Uuid>,
        pub name: String,
        pub score: i32,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {
        // Composite, as in the real schema: every join is tenant-local (Citus co-location).
        #[sea_orm(
            belongs_to = "super::account::Entity",
            from = "(Column::TenantId, Column::AccountId)",
            to = "(super::account::Column::TenantId, super::account::Column::Id)"
        )]
        Account,
        #[sea_orm(has_many = "super::person_tag::Entity")]
        PersonTag,
    }

    impl Related<super::account::Entity> for Entity {
        fn to() -> RelationDef {
            Relation::Account.def()
        }
    }
    impl Related<super::person_tag::Entity> for Entity {
        fn to() -> RelationDef {
            Relation::PersonTag.def()
        }
    }
    // Many-to-many through the junction: `join::<tag::Entity>()` is refused at run time
    // (two explicit hops instead), but the impl must exist for that test.
    impl Related<super::tag::Entity> for Entity {
        fn to() -> RelationDef {
            super::person_tag::Relation::Tag.def()
        }
        fn via() -> Option<RelationDef> {
            Some(super::person_tag::Relation::Person.def().rev())
        }
    }

    tenancy::tenant_scoped!();
}

pub mod tag {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "tags")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub label: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    tenancy::tenant_scoped!();
}

pub mod person_tag {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "person_tags")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub person_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub tag_id: Uuid,
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
            belongs_to = "super::tag::Entity",
            from = "(Column::TenantId, Column::TagId)",
            to = "(super::tag::Column::TenantId, super::tag::Column::Id)"
        )]
        Tag,
    }

    impl Related<super::tag::Entity> for Entity {
        fn to() -> RelationDef {
            Relation::Tag.def()
        }
    }
    impl Related<super::person::Entity> for Entity {
        fn to() -> RelationDef {
            Relation::Person.def()
        }
    }

    tenancy::tenant_scoped!();
}

/// A tenant-owned table whose relation to accounts deliberately joins on `account_id`
/// alone (a naive schema): only the scoped `ON` clause keeps another tenant's account out.
pub mod note {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "notes")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub account_id: Uuid,
        pub text: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {
        #[sea_orm(
            belongs_to = "super::account::Entity",
            from = "Column::AccountId",
            to = "super::account::Column::Id",
            skip_fk
        )]
        Account,
    }

    impl Related<super::account::Entity> for Entity {
        fn to() -> RelationDef {
            Relation::Account.def()
        }
    }

    tenancy::tenant_scoped!();
}

/// An entity that did not opt in: nothing in `tenancy` accepts it.
pub mod plain {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "plain")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub tenant_id: Uuid,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
