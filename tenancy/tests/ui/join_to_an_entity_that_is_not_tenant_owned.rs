//! A scoped join only reaches tenant-owned, tenant-root or global entities.
#[path = "../support/entities.rs"]
mod entities;
use entities::*;

use sea_orm::{EntityTrait, Related, RelationDef, RelationTrait};
use tenancy::TenantHandle;

impl Related<plain::Entity> for person::Entity {
    fn to() -> RelationDef {
        person::Entity::belongs_to(plain::Entity)
            .from(person::Column::AccountId)
            .to(plain::Column::Id)
            .into()
    }
}

async fn leak(db: &tenancy::TenantDb) {
    let _rows = db.find::<person::Entity>().join::<plain::Entity>().all().await;
}

fn main() {
    let _ = person::Relation::Account.def();
}
