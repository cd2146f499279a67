//! Class A, careless: raw SQL text in a filter, as sea-orm's docs show it.
use entities::person;
use sea_orm::sea_query::Expr;
use tenancy::TenantHandle;

async fn everyone(db: &impl TenantHandle) {
    let _ = db
        .find::<person::Entity>()
        .filter(Expr::cust("TRUE) OR (TRUE"))
        .all()
        .await;
}

fn main() {}
