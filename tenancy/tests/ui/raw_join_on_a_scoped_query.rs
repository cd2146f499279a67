//! A scoped query has no raw `QuerySelect::join` (which would skip the ON-clause predicate).
#[path = "../support/entities.rs"]
mod entities;
use entities::*;

use sea_orm::{JoinType, QuerySelect, RelationTrait};
use tenancy::TenantHandle;

async fn leak(db: &tenancy::TenantDb) {
    let _rows = db
        .find::<person::Entity>()
        .join(JoinType::InnerJoin, person::Relation::Account.def())
        .all()
        .await;
}

fn main() {}
