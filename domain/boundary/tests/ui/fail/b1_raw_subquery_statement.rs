//! Class B, careless: a hand-built subquery of another table in a filter.
use entities::{api_key, person};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use tenancy::TenantHandle;

async fn oracle(db: &impl TenantHandle) {
    let other_tenants = Query::select()
        .column(api_key::Column::Id)
        .from(api_key::Entity)
        .to_owned();
    let _ = db
        .find::<person::Entity>()
        .filter(Expr::col(person::Column::Id).in_subquery(other_tenants))
        .all()
        .await;
}

fn main() {}
