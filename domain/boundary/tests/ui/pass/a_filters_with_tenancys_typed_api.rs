//! Twin of class A: the filters business code means, through tenancy's typed API.
use entities::{account, person};
use tenancy::{ColumnExt, Order, TenantHandle};

#[expect(dead_code, reason = "compiled, never called")]
async fn filtered(db: &impl TenantHandle) -> tenancy::Result<usize> {
    let rows = db
        .find::<person::Entity>()
        .filter(
            person::Column::Stage
                .eq("lead")
                .or(!person::Column::Email.is_null()),
        )
        .filter(person::Column::LastName.starts_with_ci("o'"))
        .filter(person::Column::AccountId.is_in([uuid::Uuid::nil()]))
        .order_by(person::Column::Id, Order::Asc)
        .all()
        .await?;
    let accounts = db
        .find::<account::Entity>()
        .filter(account::Column::Name.contains("50%"))
        .count()
        .await?;
    Ok(rows.len() + usize::try_from(accounts).unwrap_or(0))
}

fn main() {}
