//! The clippy fences hold: each escape from the tenancy crate below must be reported by
//! clippy under the workspace `clippy.toml`. Every item carries `#[expect(..)]`, so if a
//! fence is ever removed the expectation goes unfulfilled and `cargo clippy -- -D
//! warnings` (CI) fails. Nothing here runs; it only has to be linted.

#![expect(dead_code, reason = "compiled for clippy only, never called")]

use sea_orm::sea_query::{Expr, ExprTrait, Func, Query};
use sea_orm::{EntityTrait, QueryTrait};

#[expect(
    clippy::disallowed_types,
    reason = "proves the DatabaseConnection fence fires"
)]
fn holding_a_connection(_: &sea_orm::DatabaseConnection) {}

#[expect(
    clippy::disallowed_types,
    reason = "proves the DatabaseTransaction fence fires"
)]
fn holding_a_transaction(_: &sea_orm::DatabaseTransaction) {}

#[expect(
    clippy::disallowed_types,
    reason = "proves the ConnectionTrait fence fires"
)]
fn generic_over_a_connection<C: sea_orm::ConnectionTrait>(_: &C) {}

#[expect(
    clippy::disallowed_types,
    reason = "proves the TransactionTrait fence fires"
)]
fn generic_over_transactions<C: sea_orm::TransactionTrait>(_: &C) {}

#[expect(
    clippy::disallowed_types,
    reason = "proves the escape-hatch fence fires"
)]
fn holding_the_escape_hatch(_: &tenancy::Unscoped) {}

#[expect(
    clippy::disallowed_methods,
    reason = "proves the Database::connect fence fires"
)]
async fn opening_a_connection() {
    let _ = sea_orm::Database::connect("sqlite::memory:").await;
}

#[expect(clippy::disallowed_methods, reason = "proves this fence fires")]
fn raw_sql() -> Expr {
    Expr::cust("tenant_id <> tenant_id")
}

#[expect(clippy::disallowed_methods, reason = "proves this fence fires")]
fn raw_sql_with_values() -> Expr {
    Expr::cust_with_values("tenant_id = ?", [1])
}

#[expect(clippy::disallowed_methods, reason = "proves this fence fires")]
fn raw_sql_with_expr() -> Expr {
    Expr::cust_with_expr("f($1)", Expr::val(1))
}

#[expect(clippy::disallowed_methods, reason = "proves this fence fires")]
fn raw_sql_with_exprs() -> Expr {
    Expr::cust_with_exprs("f($1)", [Expr::val(1)])
}

#[expect(clippy::disallowed_methods, reason = "proves this fence fires")]
fn raw_function() -> Expr {
    Func::cust("f").into()
}

#[expect(clippy::disallowed_methods, reason = "proves this fence fires")]
fn raw_statement() -> Expr {
    Query::select().to_owned().into()
}

#[expect(clippy::disallowed_methods, reason = "proves this fence fires")]
fn raw_in_subquery() -> Expr {
    Expr::col("id").in_subquery(sea_orm::sea_query::SelectStatement::new())
}

#[expect(clippy::disallowed_methods, reason = "proves this fence fires")]
fn raw_not_in_subquery() -> Expr {
    Expr::col("id").not_in_subquery(sea_orm::sea_query::SelectStatement::new())
}

#[expect(clippy::disallowed_methods, reason = "proves this fence fires")]
fn raw_exists() -> Expr {
    Expr::exists(sea_orm::sea_query::SelectStatement::new())
}

#[expect(clippy::disallowed_methods, reason = "proves this fence fires")]
fn raw_any() -> Expr {
    Expr::any(sea_orm::sea_query::SelectStatement::new())
}

#[expect(clippy::disallowed_methods, reason = "proves this fence fires")]
fn raw_some() -> Expr {
    Expr::some(sea_orm::sea_query::SelectStatement::new())
}

#[expect(clippy::disallowed_methods, reason = "proves this fence fires")]
fn raw_query_of_a_select<E: EntityTrait>() {
    let _ = E::find().into_query();
}

#[expect(clippy::disallowed_methods, reason = "proves this fence fires")]
fn raw_mutable_query_of_a_select<E: EntityTrait>() {
    let mut select = E::find();
    let _ = QueryTrait::query(&mut select);
}
