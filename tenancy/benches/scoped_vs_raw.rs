//! Scoped query vs the same hand-written sea-orm query: building (SQL text) and
//! executing (SQLite). Run: `cargo bench -p tenancy --bench scoped_vs_raw`.
//!
//! The two sides produce the same SQL text (asserted before measuring), so any
//! difference is the wrapper's own cost.
#![allow(missing_docs)]

#[path = "../tests/support/mod.rs"]
mod support;

use criterion::{Criterion, criterion_group, criterion_main};
use sea_orm::sea_query::{Condition, Expr, ExprTrait, JoinType};
use sea_orm::{
    ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, QueryTrait, RelationTrait, Set,
};
use std::hint::black_box;
use support::entities::*;
use tenancy::testing::Backend;
use tenancy::{ColumnExt as _, TenantHandle};
use uuid::Uuid;

fn raw_select(tenant: Uuid) -> sea_orm::Select<person::Entity> {
    let mut select = person::Entity::find()
        .filter(Expr::col((person::Entity, person::Column::TenantId)).eq(tenant))
        .filter(ColumnTrait::gt(&person::Column::Score, 2));
    let on = Condition::all()
        .add(Condition::from(person::Relation::Account.def()))
        .add(Expr::col((account::Entity, account::Column::TenantId)).eq(tenant));
    QueryTrait::query(&mut select).join(JoinType::InnerJoin, account::Entity, on);
    select
        .order_by(person::Column::Id, sea_orm::Order::Asc)
        .limit(50)
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let test = runtime.block_on(support::schema_db(&Backend::Sqlite));
    let db = runtime.block_on(support::new_tenant(&test, "bench"));
    let tenant = db.tenant().as_uuid();
    let conn = &test.raw;
    let backend = sea_orm::ConnectionTrait::get_database_backend(conn);
    runtime.block_on(async {
        let acc = db
            .insert(account::ActiveModel {
                id: Set(Uuid::now_v7()),
                name: Set("a".into()),
                currency: Set(None),
                ..Default::default()
            })
            .exec()
            .await
            .expect("account");
        for i in 0..200 {
            db.insert(person::ActiveModel {
                id: Set(Uuid::now_v7()),
                account_id: Set(Some(acc.id)),
                name: Set(format!("p{i}")),
                score: Set(i % 5),
                ..Default::default()
            })
            .exec()
            .await
            .expect("person");
        }
    });

    let scoped = || {
        db.find::<person::Entity>()
            .filter(person::Column::Score.gt(2))
            .join::<account::Entity>()
            .order_by_asc(person::Column::Id)
            .limit(50)
    };
    assert_eq!(
        scoped().to_sql(),
        raw_select(tenant).build(backend).to_string(),
        "same SQL text"
    );

    let mut group = c.benchmark_group("build");
    group.bench_function("raw sea-orm", |b| {
        b.iter(|| black_box(raw_select(black_box(tenant)).build(backend).to_string()))
    });
    group.bench_function("scoped", |b| {
        b.iter(|| black_box(scoped().into_sql().expect("sql")))
    });
    group.finish();

    // The statement guard alone, on the statement the scoped read executes: what every
    // execution pays on top of building (its verdict is cached per statement text).
    let statement = raw_select(tenant).build(backend);
    let values = statement.values.clone().map(|v| v.0).unwrap_or_default();
    tenancy::testing::check_raw(&db, &statement.sql, values.clone()).expect("accepted");
    let mut group = c.benchmark_group("guard");
    group.bench_function("check (cached verdict)", |b| {
        b.iter(|| {
            black_box(tenancy::testing::check_raw(
                &db,
                &statement.sql,
                values.clone(),
            ))
            .expect("accepted")
        })
    });
    group.finish();

    let mut group = c.benchmark_group("execute (SQLite, 50 rows)");
    group.bench_function("raw sea-orm", |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(raw_select(tenant).all(conn).await.expect("rows")) })
    });
    group.bench_function("scoped", |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(scoped().all().await.expect("rows")) })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
