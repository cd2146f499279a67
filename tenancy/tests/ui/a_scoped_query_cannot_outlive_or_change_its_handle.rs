//! A scoped query borrows its handle: it cannot be kept past it, carried to another
//! tenant's handle, or turned back into a raw sea-orm `Select`.
#[path = "../support/entities.rs"]
mod entities;
use entities::*;

use tenancy::{Scoped, TenantDb, TenantHandle};

fn keep(db: TenantDb) -> Scoped<'static, person::Entity> {
    db.find::<person::Entity>()
}

async fn carry(a: &TenantDb, b: &TenantDb) {
    let query = a.find::<person::Entity>();
    let _ = b.all(query).await;
    let _raw: sea_orm::Select<person::Entity> = a.find::<person::Entity>().into();
}

fn main() {}
