//! The SQL each builder generates, printed and checked on every backend.

use sea_orm::Set;
use tenancy::{ColumnExt, Keyset, TenantHandle};
use uuid::Uuid;

use crate::support::entities::*;
use crate::support::{each_backend, new_tenant};

/// Replaces the rendered tenant UUID with `$T` so texts compare across runs, and
/// normalizes the PostgreSQL/SQLite quoting differences away.
fn normalize(sql: &str, tenant: Uuid) -> String {
    sql.replace(&format!("'{tenant}'"), "$T")
        .replace(&format!("'{}'", tenant.simple()), "$T")
}

#[tokio::test]
async fn every_builder_puts_the_tenant_predicate_where_it_belongs() {
    each_backend(|test| async move {
        let db = new_tenant(&test, "acme").await;
        let t = db.tenant().as_uuid();
        let check = |label: &str, sql: String, expected: &[&str]| {
            let sql = normalize(&sql, t).replace('`', "\"");
            println!("[{}] {label}: {sql}", test.backend);
            for fragment in expected {
                assert!(sql.contains(fragment), "{label}: expected `{fragment}` in\n{sql}");
            }
        };

        check(
            "find",
            db.find::<person::Entity>().filter(person::Column::Score.gt(3)).to_sql(),
            &[r#"FROM "people" WHERE "people"."tenant_id" = $T AND "people"."score" > 3"#],
        );
        check(
            "find with an OR filter",
            db.find::<person::Entity>()
                .filter(person::Column::Score.eq(1).or(person::Column::Score.eq(2)))
                .to_sql(),
            &[r#"WHERE "people"."tenant_id" = $T AND ("people"."score" = 1 OR "people"."score" = 2)"#],
        );
        check(
            "join",
            db.find::<person::Entity>().join::<account::Entity>().to_sql(),
            &[
                r#"INNER JOIN "accounts" ON "people"."tenant_id" = "accounts"."tenant_id" AND "people"."account_id" = "accounts"."id" AND "accounts"."tenant_id" = $T"#,
                r#"WHERE "people"."tenant_id" = $T"#,
            ],
        );
        check(
            "join to the tenant root",
            db.find::<account::Entity>().join::<tenant::Entity>().to_sql(),
            &[r#"INNER JOIN "tenants" ON "accounts"."tenant_id" = "tenants"."id" AND "tenants"."id" = $T"#],
        );
        check(
            "join to global data",
            db.find::<account::Entity>().left_join::<currency::Entity>().to_sql(),
            &[r#"LEFT JOIN "currencies" ON "accounts"."currency" = "currencies"."code" WHERE"#],
        );
        check(
            "also (find_also_related)",
            db.find::<note::Entity>().also::<account::Entity>().to_sql(),
            &[
                r#"LEFT JOIN "accounts" ON "notes"."account_id" = "accounts"."id" AND "accounts"."tenant_id" = $T"#,
                r#"WHERE "notes"."tenant_id" = $T"#,
            ],
        );
        check(
            "with (find_with_related)",
            db.find::<account::Entity>().with::<person::Entity>().to_sql(),
            &[r#"LEFT JOIN "people" ON "accounts"."tenant_id" = "people"."tenant_id" AND "accounts"."id" = "people"."account_id" AND "people"."tenant_id" = $T"#],
        );
        check(
            "two explicit hops through a junction",
            db.find::<person::Entity>()
                .join::<person_tag::Entity>()
                .join_from::<person_tag::Entity, tag::Entity>()
                .to_sql(),
            &[
                r#"AND "person_tags"."tenant_id" = $T"#,
                r#"AND "tags"."tenant_id" = $T"#,
            ],
        );
        let sub = db.find::<account::Entity>().filter(account::Column::Name.eq("x")).subquery(account::Column::Id);
        check(
            "filter_in a scoped subquery",
            db.find::<person::Entity>().filter_in(person::Column::AccountId, sub).to_sql(),
            &[r#""people"."account_id" IN (SELECT "accounts"."id" FROM "accounts" WHERE "accounts"."tenant_id" = $T AND "accounts"."name" = 'x')"#],
        );
        check(
            "own tenant row",
            db.find_own::<tenant::Entity>().to_sql(),
            &[r#"FROM "tenants" WHERE "tenants"."id" = $T"#],
        );
        check(
            "insert",
            db.insert(person::ActiveModel {
                id: Set(Uuid::nil()),
                account_id: Set(None),
                name: Set("n".into()),
                score: Set(1),
                ..Default::default()
            })
            .to_sql()
            .expect("insert is accepted"),
            &[r#"INSERT INTO "people" ("tenant_id", "id", "account_id", "name", "score") VALUES ($T"#],
        );
        check(
            "upsert",
            db.insert(tag::ActiveModel { id: Set(Uuid::nil()), label: Set("l".into()), ..Default::default() })
                .on_conflict_update([tag::Column::Id], [tag::Column::Label])
                .to_sql()
                .expect("upsert is accepted"),
            &[r#"ON CONFLICT ("tenant_id", "id") DO UPDATE SET "label" = "excluded"."label""#],
        );
        check(
            "update one",
            db.update(person::ActiveModel {
                id: Set(Uuid::nil()),
                score: Set(2),
                ..Default::default()
            })
            .to_sql()
            .expect("update is accepted"),
            &[r#"UPDATE "people" SET "score" = 2 WHERE "people"."tenant_id" = $T AND "people"."id" = "#],
        );
        check(
            "update many",
            db.update_many::<person::Entity>()
                .set(person::Column::Score, 2)
                .filter(person::Column::Name.eq("n"))
                .to_sql()
                .expect("update is accepted"),
            &[r#"UPDATE "people" SET "score" = 2 WHERE "people"."tenant_id" = $T AND "people"."name" = 'n'"#],
        );
        check(
            "update many with an increment",
            db.update_many::<person::Entity>()
                .increment(person::Column::Score, 1)
                .filter(person::Column::Name.eq("n"))
                .to_sql()
                .expect("update is accepted"),
            &[r#"UPDATE "people" SET "score" = "score" + 1 WHERE "people"."tenant_id" = $T AND "people"."name" = 'n'"#],
        );
        check(
            "delete many",
            db.delete_many::<person::Entity>().filter(person::Column::Score.lt(0)).to_sql(),
            &[r#"DELETE FROM "people" WHERE "people"."tenant_id" = $T AND "people"."score" < 0"#],
        );
        check(
            "count",
            db.find::<person::Entity>().to_sql(),
            &[r#"WHERE "people"."tenant_id" = $T"#],
        );
    })
    .await;
}

#[tokio::test]
async fn a_keyset_page_is_a_row_value_comparison_in_key_order() {
    each_backend(|test| async move {
        let db = new_tenant(&test, "acme").await;
        let t = db.tenant().as_uuid();
        let keyset = Keyset::<person::Entity>::asc([person::Column::Score, person::Column::Id])
            .after(Some(vec![7.into(), Uuid::nil().into()]))
            .limit(10);
        let sql =
            normalize(&db.find::<person::Entity>().seek(&keyset).to_sql(), t).replace('`', "\"");
        println!("[{}] keyset: {sql}", test.backend);
        assert!(
            sql.contains(
                r#"WHERE "people"."tenant_id" = $T AND ("people"."score", "people"."id") > (7, "#
            ),
            "{sql}"
        );
        assert!(
            sql.contains(r#"ORDER BY "people"."score" ASC, "people"."id" ASC LIMIT 11"#),
            "{sql}"
        );
    })
    .await;
}
