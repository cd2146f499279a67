//! Shared by the tests: the schema, fresh databases with it, and tenants.
#![allow(dead_code)]

pub mod entities;

use entities::*;
use sea_orm::{ConnectionTrait, EntityTrait, Schema};
use tenancy::testing::{Backend, TestDb};
use tenancy::{Actor, TenantDb};
use uuid::Uuid;

/// A fresh database on `backend` with the test schema.
pub async fn schema_db(backend: &Backend) -> TestDb {
    let test = TestDb::new(backend).await.expect("fresh database");
    let conn = &test.raw;
    let builder = conn.get_database_backend();
    let schema = Schema::new(builder);
    async fn create<E: EntityTrait>(conn: &sea_orm::DatabaseConnection, schema: &Schema, e: E) {
        conn.execute(&schema.create_table_from_entity(e))
            .await
            .expect("create table");
    }
    create(conn, &schema, tenant::Entity).await;
    create(conn, &schema, currency::Entity).await;
    create(conn, &schema, account::Entity).await;
    create(conn, &schema, person::Entity).await;
    create(conn, &schema, tag::Entity).await;
    create(conn, &schema, person_tag::Entity).await;
    create(conn, &schema, note::Entity).await;
    test
}

/// A new tenant row (through the escape hatch, as an application creates one) and a
/// handle for it.
pub async fn new_tenant(test: &TestDb, name: &str) -> TenantDb {
    let (row, txn) = test
        .connected
        .unscoped
        .create_tenant(
            "create a test tenant",
            tenant::ActiveModel {
                id: sea_orm::Set(Uuid::now_v7()),
                name: sea_orm::Set(name.to_owned()),
            },
        )
        .await
        .expect("insert tenant");
    txn.commit().await.expect("commit the tenant");
    test.db().tenant(
        &test
            .connected
            .issuer
            .issue(tenancy::TenantId::from_uuid(row.id), Actor::System),
    )
}

/// Runs `f` once per configured backend on a fresh database.
pub async fn each_backend<F, Fut>(f: F)
where
    F: Fn(TestDb) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for backend in tenancy::testing::backends() {
        eprintln!("backend: {backend}");
        f(schema_db(&backend).await).await;
    }
}
