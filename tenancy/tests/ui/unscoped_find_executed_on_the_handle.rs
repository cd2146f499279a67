//! A plain sea-orm `Entity::find()` has nothing to run on: the handle is no connection.
#[path = "../support/entities.rs"]
mod entities;
use entities::*;

use sea_orm::EntityTrait;

async fn leak(db: &tenancy::TenantDb) {
    let _everyone = person::Entity::find().all(db).await;
}

fn main() {}
