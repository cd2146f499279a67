//! Twin of class D: a job acts for a tenant with the handle (or transaction) its caller
//! hands it, and commits what it wrote.
use entities::person;
use tenancy::{ColumnExt, TenantDb, TenantHandle};

#[expect(dead_code, reason = "compiled, never called")]
async fn archive_leads(db: &TenantDb) -> tenancy::Result<u64> {
    let txn = db.begin().await?;
    let changed = txn
        .update_many::<person::Entity>()
        .set(person::Column::Stage, "lost")
        .filter(person::Column::Stage.eq("lead"))
        .exec()
        .await?;
    txn.commit().await?;
    Ok(changed)
}

fn main() {}
