//! Neither the pool nor a tenant handle hands out the connection.
#[path = "../support/entities.rs"]
mod entities;
use entities::*;


fn leak(db: &tenancy::Db, tenant: &tenancy::TenantDb) {
    let _pool: &sea_orm::DatabaseConnection = &db.conn;
    let _conn = tenant.connection();
}

fn main() {}
