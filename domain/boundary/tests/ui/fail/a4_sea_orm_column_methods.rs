//! Class A, careless: sea-orm's own column and entity methods, used as in its docs.
use entities::person;
use tenancy::TenantHandle;

async fn everyone(db: &impl TenantHandle) {
    let _ = db
        .find::<person::Entity>()
        .filter(person::Column::FirstName.like("%"))
        .all()
        .await;
    let _raw_select = person::Entity::find();
    let _expr = person::Column::FirstName.into_expr();
}

fn main() {}
