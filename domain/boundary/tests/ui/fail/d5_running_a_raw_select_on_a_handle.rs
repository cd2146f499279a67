//! Class D, clever: build sea-orm's own unscoped `Select` through a generic bound and run
//! it on the tenant handle (or its transaction) as if it were a connection.
use tenancy::{TenantDb, TenantScoped};

async fn everyone<E: TenantScoped>(db: &TenantDb) {
    let _ = E::find().all(db).await;
    let txn = db.begin().await.expect("begin");
    let _ = E::find().one(&txn).await;
}

fn main() {}
