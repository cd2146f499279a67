//! Class A, clever: the SQL-carrying enum variant, reached through a crate name that is
//! not on the fence list, or through the entity crate.
extern crate sea_query;

use entities::person;
use tenancy::TenantHandle;

async fn everyone(db: &impl TenantHandle) {
    let raw = sea_query::Expr::Custom("TRUE) OR (TRUE".into());
    let _ = db.find::<person::Entity>().filter(raw).all().await;
    let _ = entities::sea_orm::sea_query::Expr::cust("TRUE");
}

fn main() {}
