//! The only way to write a chosen tenant id is sea-orm's own API, which needs a
//! connection. (Through the scoped API the same attempt is refused at run time with
//! `TenantColumnImmutable` / `TenantMismatch`, before any SQL: see tests/behaviour.rs.)
#[path = "../support/entities.rs"]
mod entities;
use entities::*;

use sea_orm::{ActiveModelTrait, EntityTrait, Set};

async fn leak(db: &tenancy::TenantDb, row: person::Model, other: uuid::Uuid) {
    let mut moved: person::ActiveModel = row.into();
    moved.tenant_id = Set(other);
    let _ = moved.clone().update(db).await;
    let _ = person::Entity::insert(moved).exec(db).await;
}

fn main() {}
