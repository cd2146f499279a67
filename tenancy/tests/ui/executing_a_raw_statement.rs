//! Raw SQL has nothing to run on either.
#[path = "../support/entities.rs"]
mod entities;
use entities::*;

use sea_orm::ConnectionTrait;

async fn leak(db: &tenancy::TenantDb) {
    let _ = db.execute_unprepared("DELETE FROM people").await;
}

fn main() {}
