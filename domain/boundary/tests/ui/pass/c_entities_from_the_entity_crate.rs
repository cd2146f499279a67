//! Twin of class C: entities come from the entity crate; business code fills their
//! active models with `tenancy::Set` and writes through the handle.
use entities::account;
use tenancy::{Set, TenantHandle};

#[expect(dead_code, reason = "compiled, never called")]
async fn create(db: &impl TenantHandle, name: &str) -> tenancy::Result<account::Model> {
    let now = chrono::Utc::now();
    db.insert(account::ActiveModel {
        id: Set(uuid::Uuid::now_v7()),
        name: Set(name.to_owned()),
        custom_fields: Set(serde_json::json!({})),
        created_at: Set(now),
        updated_at: Set(now),
        version: Set(1),
        ..Default::default()
    })
    .exec()
    .await
}

fn main() {}
