//! `find` takes only tenant-owned entities.
#[path = "../support/entities.rs"]
mod entities;
use entities::*;

use tenancy::TenantHandle;

async fn leak(db: &tenancy::TenantDb) {
    let _rows = db.find::<plain::Entity>().all().await;
}

fn main() {}
