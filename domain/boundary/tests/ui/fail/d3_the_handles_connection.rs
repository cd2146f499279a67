//! Class D, clever: the pool inside a handle, and a transaction of our own.
use tenancy::TenantDb;

fn pool(db: &TenantDb) -> &tenancy::Db {
    &db.db
}

async fn raw_transaction(db: &TenantDb) {
    let _txn = sea_orm::TransactionTrait::begin(db).await;
}

fn main() {}
