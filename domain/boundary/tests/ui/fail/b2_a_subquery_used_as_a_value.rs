//! Class B, clever: a (scoped) subquery written into a column, or compared with `eq`,
//! instead of filtering with `filter_in`.
use entities::{account, api_key};
use tenancy::{ColumnExt, TenantHandle};

async fn copy_key_hash(db: &impl TenantHandle) {
    let hashes = db
        .find::<api_key::Entity>()
        .subquery(api_key::Column::SecretHash);
    let _ = db
        .update_many::<account::Entity>()
        .set(account::Column::Name, hashes)
        .exec()
        .await;
    let ids = db.find::<api_key::Entity>().subquery(api_key::Column::Id);
    let _ = db
        .find::<account::Entity>()
        .filter(account::Column::Id.eq(ids))
        .all()
        .await;
}

fn main() {}
