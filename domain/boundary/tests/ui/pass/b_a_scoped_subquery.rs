//! Twin of class B: a subquery is tenancy's own, scoped, and goes into `filter_in`.
use entities::{account, person};
use tenancy::{ColumnExt, TenantHandle};

#[expect(dead_code, reason = "compiled, never called")]
async fn people_at_gold_accounts(db: &impl TenantHandle) -> tenancy::Result<Vec<person::Model>> {
    let gold = db
        .find::<account::Entity>()
        .filter(account::Column::Name.eq("gold"))
        .subquery(account::Column::Id);
    db.find::<person::Entity>()
        .filter_in(person::Column::AccountId, gold)
        .all()
        .await
}

fn main() {}
