//! The statement guard on real databases: raw statements smuggled to a tenant handle's
//! executor (through the test-only `testing::execute_raw`) are refused before they run
//! and change nothing; each has a legitimate twin that runs. Then the checked entity
//! declarations: entities declared wrongly (by attribute or by hand) are refused before
//! their first statement.

use sea_orm::{ConnectionTrait, Set, Value};
use tenancy::testing::{TestDb, execute_raw};
use tenancy::{Error, TenantDb, TenantHandle};
use uuid::Uuid;

use crate::support::entities::*;
use crate::support::{each_backend, new_tenant};

/// `$1, $2, …` as the backend writes placeholders (SQLite: `?`, in order).
fn dialect(test: &TestDb, sql: &str) -> String {
    match test.backend {
        tenancy::testing::Backend::Sqlite => {
            let mut out = String::new();
            let mut chars = sql.chars().peekable();
            while let Some(c) = chars.next() {
                if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
                    while chars.peek().is_some_and(char::is_ascii_digit) {
                        chars.next();
                    }
                    out.push('?');
                } else {
                    out.push(c);
                }
            }
            out
        }
        tenancy::testing::Backend::Postgres(_) => sql.to_owned(),
    }
}

async fn seed(test: &TestDb) -> (TenantDb, TenantDb, account::Model, person::Model) {
    let (a, b) = (new_tenant(test, "a").await, new_tenant(test, "b").await);
    let account = b
        .insert(account::ActiveModel {
            id: Set(Uuid::now_v7()),
            name: Set("b-account".into()),
            currency: Set(None),
            ..Default::default()
        })
        .exec()
        .await
        .expect("b's account");
    let person = b
        .insert(person::ActiveModel {
            id: Set(Uuid::now_v7()),
            account_id: Set(Some(account.id)),
            name: Set("b-person".into()),
            score: Set(1),
            ..Default::default()
        })
        .exec()
        .await
        .expect("b's person");
    (a, b, account, person)
}

/// Every row of every tenant, through the escape hatch (the oracle).
async fn snapshot(test: &TestDb) -> (Vec<person::Model>, Vec<account::Model>) {
    let people = test
        .connected
        .unscoped
        .find::<person::Entity>("guard test oracle")
        .all()
        .await
        .expect("people");
    let accounts = test
        .connected
        .unscoped
        .find::<account::Entity>("guard test oracle")
        .all()
        .await
        .expect("accounts");
    (people, accounts)
}

#[tokio::test]
async fn raw_statements_smuggled_to_a_tenant_handle_are_refused_and_change_nothing() {
    each_backend(|test| async move {
        let (a, b, b_account, b_person) = seed(&test).await;
        let me = Value::from(a.tenant().as_uuid());
        let victim = Value::from(b.tenant().as_uuid());
        let before = snapshot(&test).await;
        // (what an attacker writes, values) — each refused by the guard.
        let attempts: Vec<(&str, Vec<Value>)> = vec![
            // A: the precedence trick and its friends.
            (
                r#"SELECT "people"."id" FROM "people" WHERE "people"."tenant_id" = $1 AND (TRUE) OR (TRUE)"#,
                vec![me.clone()],
            ),
            (
                r#"SELECT "people"."id" FROM "people" WHERE "people"."tenant_id" = $1 OR "people"."score" > $2"#,
                vec![me.clone(), 0.into()],
            ),
            (
                r#"SELECT "people"."id" FROM "people" WHERE NOT ("people"."tenant_id" <> $1)"#,
                vec![me.clone()],
            ),
            (
                r#"SELECT "people"."id" FROM "people" WHERE "people"."tenant_id" <> $1"#,
                vec![me.clone()],
            ),
            (
                r#"SELECT "people"."id" FROM "people" WHERE "people"."tenant_id" = "people"."tenant_id""#,
                vec![],
            ),
            (r#"SELECT "people"."id" FROM "people""#, vec![]),
            (
                r#"SELECT "people"."id" FROM "people" WHERE "people"."tenant_id" = $1 AND "people"."name" = 'b-person'"#,
                vec![me.clone()],
            ),
            (
                r#"SELECT "people"."id" FROM "people" WHERE "people"."tenant_id" = $1 -- AND FALSE"#,
                vec![me.clone()],
            ),
            // The right SQL with another tenant's id bound.
            (
                r#"SELECT "people"."id" FROM "people" WHERE "people"."tenant_id" = $1"#,
                vec![victim.clone()],
            ),
            // Joins without the joined table's own predicate.
            (
                r#"SELECT "people"."id" FROM "people" LEFT JOIN "accounts" ON "people"."account_id" = "accounts"."id" WHERE "people"."tenant_id" = $1"#,
                vec![me.clone()],
            ),
            (
                r#"SELECT "accounts"."name" FROM "people" INNER JOIN "accounts" ON "people"."account_id" = "accounts"."id" WHERE "people"."tenant_id" = $1 AND "accounts"."tenant_id" = $2"#,
                vec![me.clone(), victim.clone()],
            ),
            // B: raw subqueries, oracles and copies.
            (
                r#"SELECT "people"."id" FROM "people" WHERE "people"."tenant_id" = $1 AND EXISTS (SELECT "accounts"."id" FROM "accounts" WHERE "accounts"."name" = $2)"#,
                vec![me.clone(), "b-account".into()],
            ),
            (
                r#"SELECT "people"."id" FROM "people" WHERE "people"."tenant_id" = $1 AND "people"."account_id" IN (SELECT "accounts"."id" FROM "accounts")"#,
                vec![me.clone()],
            ),
            (
                r#"UPDATE "accounts" SET "name" = (SELECT "people"."name" FROM "people" WHERE "people"."tenant_id" <> $1) WHERE "accounts"."tenant_id" = $2"#,
                vec![me.clone(), me.clone()],
            ),
            (
                r#"WITH "x" AS (SELECT "people"."id" FROM "people") SELECT "x"."id" FROM "x""#,
                vec![],
            ),
            (
                r#"SELECT "people"."id" FROM "people" WHERE "people"."tenant_id" = $1 UNION SELECT "people"."id" FROM "people""#,
                vec![me.clone()],
            ),
            // Writes reaching another tenant.
            (
                r#"UPDATE "people" SET "name" = $1 WHERE "people"."tenant_id" = $2 OR TRUE"#,
                vec!["pwned".into(), me.clone()],
            ),
            (
                r#"UPDATE "people" SET "tenant_id" = $1 WHERE "people"."tenant_id" = $2"#,
                vec![victim.clone(), me.clone()],
            ),
            (
                r#"DELETE FROM "people" WHERE "people"."tenant_id" = $1 OR "people"."id" = $2"#,
                vec![me.clone(), b_person.id.into()],
            ),
            (r#"DELETE FROM "people""#, vec![]),
            (
                r#"INSERT INTO "accounts" ("tenant_id", "id", "name") VALUES ($1, $2, $3)"#,
                vec![victim.clone(), Uuid::now_v7().into(), "planted".into()],
            ),
            (
                r#"INSERT INTO "accounts" ("id", "name") VALUES ($1, $2)"#,
                vec![Uuid::now_v7().into(), "no tenant".into()],
            ),
            (
                r#"UPDATE "tenants" SET "name" = $1 WHERE "tenants"."id" = $2"#,
                vec!["renamed".into(), me.clone()],
            ),
            // D: catalogs, DDL, several statements.
            (r#"SELECT "name" FROM "sqlite_master""#, vec![]),
            (r#"SELECT "relname" FROM "pg_class""#, vec![]),
            (r#"DROP TABLE "people""#, vec![]),
            (
                r#"SELECT "people"."id" FROM "people" WHERE "people"."tenant_id" = $1; DELETE FROM "people""#,
                vec![me.clone()],
            ),
        ];
        for (sql, values) in attempts {
            let sql = dialect(&test, sql);
            let outcome = execute_raw(&a, &sql, values).await;
            assert!(
                matches!(outcome, Err(Error::Refused(_))),
                "{}: the guard let through\n{sql}\n→ {outcome:?}",
                test.backend
            );
        }
        assert_eq!(snapshot(&test).await, before, "a refused statement changed data");
        // The account the attacks aimed at is still b's.
        assert!(
            b.find::<account::Entity>()
                .one()
                .await
                .unwrap()
                .is_some_and(|acc| acc.id == b_account.id && acc.name == "b-account")
        );
    })
    .await;
}

#[tokio::test]
async fn the_legitimate_twins_of_the_smuggled_statements_run() {
    each_backend(|test| async move {
        let (a, _b, _, _) = seed(&test).await;
        let me = Value::from(a.tenant().as_uuid());
        let twins: Vec<(&str, Vec<Value>)> = vec![
            (
                r#"SELECT "people"."id" FROM "people" WHERE "people"."tenant_id" = $1 AND ("people"."score" > $2 OR "people"."score" < $3)"#,
                vec![me.clone(), 0.into(), 5.into()],
            ),
            (
                r#"SELECT "people"."id" FROM "people" LEFT JOIN "accounts" ON "people"."account_id" = "accounts"."id" AND "accounts"."tenant_id" = $1 WHERE "people"."tenant_id" = $2"#,
                vec![me.clone(), me.clone()],
            ),
            (
                r#"SELECT "people"."id" FROM "people" WHERE "people"."tenant_id" = $1 AND "people"."account_id" IN (SELECT "accounts"."id" FROM "accounts" WHERE "accounts"."tenant_id" = $2)"#,
                vec![me.clone(), me.clone()],
            ),
            (
                r#"UPDATE "people" SET "name" = $1 WHERE "people"."tenant_id" = $2"#,
                vec!["mine".into(), me.clone()],
            ),
            (
                r#"INSERT INTO "accounts" ("tenant_id", "id", "name") VALUES ($1, $2, $3)"#,
                vec![me.clone(), Uuid::now_v7().into(), "mine".into()],
            ),
            (
                r#"DELETE FROM "people" WHERE "people"."tenant_id" = $1 AND "people"."score" < $2"#,
                vec![me.clone(), 0.into()],
            ),
        ];
        for (sql, values) in twins {
            let sql = dialect(&test, sql);
            let outcome = execute_raw(&a, &sql, values).await;
            assert!(outcome.is_ok(), "{}: refused\n{sql}\n→ {outcome:?}", test.backend);
        }
    })
    .await;
}

/// Entities declared wrongly, in ways an entity crate could write them.
mod bad {
    /// `tenant_id` is the Rust field, but the SQL column is another one.
    pub mod renamed_tenant_column {
        use sea_orm::entity::prelude::*;

        #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
        #[sea_orm(table_name = "accounts")]
        pub struct Model {
            #[sea_orm(primary_key, auto_increment = false, column_name = "id")]
            pub tenant_id: Uuid,
            #[sea_orm(primary_key, auto_increment = false, column_name = "tenant_id")]
            pub id: Uuid,
            pub name: String,
        }

        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}

        tenancy::tenant_scoped!();
    }

    /// A column that rewrites what it selects.
    pub mod select_as {
        use sea_orm::entity::prelude::*;

        #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
        #[sea_orm(table_name = "people")]
        pub struct Model {
            #[sea_orm(primary_key, auto_increment = false)]
            pub tenant_id: Uuid,
            #[sea_orm(primary_key, auto_increment = false)]
            pub id: Uuid,
            #[sea_orm(select_as = "text")]
            pub name: String,
        }

        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}

        tenancy::tenant_scoped!();
    }

    /// A table name that carries SQL.
    pub mod raw_table_name {
        use sea_orm::entity::prelude::*;

        #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
        #[sea_orm(table_name = "people\" WHERE TRUE --")]
        pub struct Model {
            #[sea_orm(primary_key, auto_increment = false)]
            pub tenant_id: Uuid,
            #[sea_orm(primary_key, auto_increment = false)]
            pub id: Uuid,
        }

        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}

        tenancy::tenant_scoped!();
    }

    /// A tenant table (it has `tenant_id` in the database) declared global with a
    /// subset of its columns.
    pub mod tenant_table_as_global {
        use sea_orm::entity::prelude::*;

        #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
        #[sea_orm(table_name = "notes")]
        pub struct Model {
            #[sea_orm(primary_key, auto_increment = false)]
            pub id: Uuid,
            pub body: String,
        }

        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}

        tenancy::global_entity!();
    }

    /// A view over a tenant table, declared global.
    pub mod view_as_global {
        use sea_orm::entity::prelude::*;

        #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
        #[sea_orm(table_name = "people_names")]
        pub struct Model {
            #[sea_orm(primary_key, auto_increment = false)]
            pub id: Uuid,
            pub name: String,
        }

        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}

        tenancy::global_entity!();
    }

    /// Opted in by hand, as global, though its table is tenant-owned.
    pub mod hand_sealed {
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

        impl tenancy::__private::Sealed for Entity {}
        impl tenancy::GlobalEntity for Entity {}
        impl tenancy::Joinable for Entity {
            const KIND: tenancy::__private::Kind = tenancy::__private::Kind::Global;
        }
        impl ActiveModelBehavior for ActiveModel {}
    }

    /// A person whose relation to accounts points at another table (`notes`), so the
    /// join's tenant predicate would land on the wrong table.
    pub mod misrelated_person {
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
            #[sea_orm(
                belongs_to = "crate::support::entities::note::Entity",
                from = "Column::AccountId",
                to = "crate::support::entities::note::Column::Id"
            )]
            Note,
        }

        impl Related<crate::support::entities::account::Entity> for Entity {
            fn to() -> RelationDef {
                Relation::Note.def()
            }
        }

        tenancy::tenant_scoped!();
    }
}

fn refused<T: std::fmt::Debug>(outcome: tenancy::Result<T>, what: &str) {
    assert!(
        matches!(outcome, Err(Error::Refused(_))),
        "{what}: expected a refusal, got {outcome:?}"
    );
}

#[tokio::test]
async fn wrongly_declared_entities_are_refused_before_their_first_statement() {
    each_backend(|test| async move {
        let (a, _b, _, _) = seed(&test).await;
        test.raw
            .execute_unprepared(
                r#"CREATE VIEW "people_names" AS SELECT "id", "name" FROM "people""#,
            )
            .await
            .expect("create the view");

        refused(
            a.find::<bad::renamed_tenant_column::Entity>().all().await,
            "tenant_id mapped to another column",
        );
        refused(
            a.insert(bad::renamed_tenant_column::ActiveModel {
                id: Set(Uuid::now_v7()),
                name: Set("planted".into()),
                ..Default::default()
            })
            .exec()
            .await,
            "insert through tenant_id mapped to another column",
        );
        refused(a.find::<bad::select_as::Entity>().all().await, "select_as");
        refused(
            a.find::<bad::raw_table_name::Entity>().all().await,
            "raw table name",
        );
        // Global entities are read through a join or the escape hatch; either way the
        // declaration (and the database catalog) is checked first.
        let hatch = &test.connected.unscoped;
        refused(
            hatch
                .find::<bad::tenant_table_as_global::Entity>("test")
                .all()
                .await,
            "a tenant table declared global",
        );
        refused(
            hatch
                .find::<bad::view_as_global::Entity>("test")
                .all()
                .await,
            "a view declared global",
        );
        refused(
            hatch.find::<bad::hand_sealed::Entity>("test").all().await,
            "a tenant table opted in by hand as global",
        );
        refused(
            a.find::<bad::misrelated_person::Entity>()
                .join::<account::Entity>()
                .all()
                .await,
            "a relation whose target is another table",
        );
        // The properly declared entities over the same tables still work.
        assert!(a.find::<account::Entity>().all().await.is_ok());
        assert!(a.find::<person::Entity>().all().await.is_ok());
    })
    .await;
}

#[tokio::test]
async fn the_escape_hatchs_statements_are_recorded_with_the_tables_they_touch() {
    each_backend(|test| async move {
        let count = |tables: &[&str]| {
            tenancy::unscoped_tables()
                .into_iter()
                .find(|(seen, _)| seen.iter().map(String::as_str).eq(tables.iter().copied()))
                .map_or(0, |(_, count)| count)
        };
        let before = count(&["notes"]);
        test.connected
            .unscoped
            .find::<note::Entity>("audit test")
            .all()
            .await
            .expect("read");
        assert!(count(&["notes"]) > before);
    })
    .await;
}

#[tokio::test]
async fn a_default_driver_connection_opens_nothing() {
    let outcome = tenancy::Db::open(sea_orm::DatabaseConnection::default());
    assert!(matches!(outcome, Err(Error::Refused(_))), "{outcome:?}");
}
