//! Class B, clever: sea-orm's `find` is reachable on a type parameter bounded by
//! tenancy's traits (their supertrait is `EntityTrait`); hand its raw `Select` to a
//! scoped query as a subquery or a filter.
use entities::person;
use tenancy::{TenantHandle, TenantScoped};

async fn oracle<E: TenantScoped>(db: &impl TenantHandle) {
    let everyone = E::find();
    let _ = db
        .find::<person::Entity>()
        .filter_in(person::Column::AccountId, everyone)
        .all()
        .await;
}

async fn widened<E: TenantScoped>(db: &impl TenantHandle) {
    let _ = db.find::<person::Entity>().filter(E::find()).all().await;
}

fn main() {}
