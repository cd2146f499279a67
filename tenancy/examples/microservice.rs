//! A new internal microservice on the `tenancy` crate, end to end:
//! one tenant-owned entity, the schema, and a service layer whose every query is scoped.
//!
//! Run it: `cargo run -p tenancy --example microservice`
//!
//! What to copy into your service:
//! 1. Entities opt in with `tenancy::tenant_scoped!()` (tenant_id leads the primary key).
//! 2. Open the database once with `Db::connect`; keep `Unscoped` in `main` for migrations.
//! 3. Build a `TenantCtx` from the verified credential (here: a hard-coded service token),
//!    then `db.tenant(&ctx)` per request, and pass that handle to your service functions.

use sea_orm::{ColumnTrait, ConnectionTrait, Schema, Set};
use tenancy::{Actor, Db, Keyset, TenantCtx, TenantHandle, TenantId};
use uuid::Uuid;

/// The entity: reminders, owned by a tenant.
mod reminder {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "reminders")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub text: String,
        pub done: bool,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    // Replaces `impl ActiveModelBehavior for ActiveModel {}`.
    tenancy::tenant_scoped!();
}

/// The service layer: every function takes the tenant handle first and cannot do
/// anything unscoped with it.
mod reminders {
    use super::*;

    pub async fn add(db: &impl TenantHandle, text: &str) -> tenancy::Result<reminder::Model> {
        db.insert(reminder::ActiveModel {
            id: Set(Uuid::now_v7()),
            text: Set(text.to_owned()),
            done: Set(false),
            ..Default::default()
        })
        .exec()
        .await
    }

    pub async fn open(db: &impl TenantHandle) -> tenancy::Result<Vec<reminder::Model>> {
        let page = db
            .find::<reminder::Entity>()
            .filter(reminder::Column::Done.eq(false))
            .page(Keyset::asc([reminder::Column::Id]).limit(50))
            .await?;
        Ok(page.rows)
    }

    pub async fn finish_all(db: &impl TenantHandle) -> tenancy::Result<u64> {
        db.update_many::<reminder::Entity>()
            .col_expr(reminder::Column::Done, true)
            .exec()
            .await
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::temp_dir().join(format!("tenancy-example-{}.db", Uuid::now_v7()));
    let tenancy::Connected { db, unscoped } =
        Db::connect(format!("sqlite://{}?mode=rwc", path.display())).await?;

    // Schema: the one cross-tenant step, through the escape hatch, with its reason logged.
    let conn = unscoped.connection("create the example schema");
    let schema = Schema::new(conn.get_database_backend());
    conn.execute(&schema.create_table_from_entity(reminder::Entity))
        .await?;

    // Two tenants, as two verified service tokens would name them.
    let acme = TenantCtx::new(
        TenantId::from_uuid(Uuid::now_v7()),
        Actor::Service("reminders".into()),
    );
    let globex = TenantCtx::new(
        TenantId::from_uuid(Uuid::now_v7()),
        Actor::Service("reminders".into()),
    );

    let acme_db = db.tenant(&acme);
    reminders::add(&acme_db, "call Wile E.").await?;
    reminders::add(&acme_db, "ship anvils").await?;
    reminders::add(&db.tenant(&globex), "globex only").await?;

    // A transaction has the same API and the same scope.
    let txn = acme_db.begin().await?;
    let finished = reminders::finish_all(&txn).await?;
    txn.rollback().await?;

    println!(
        "acme open reminders: {:?}",
        reminders::open(&acme_db)
            .await?
            .iter()
            .map(|r| &r.text)
            .collect::<Vec<_>>()
    );
    println!(
        "globex open reminders: {:?}",
        reminders::open(&db.tenant(&globex))
            .await?
            .iter()
            .map(|r| &r.text)
            .collect::<Vec<_>>()
    );
    println!("finish_all inside a rolled-back transaction touched {finished} acme rows");
    println!(
        "the SQL of `open`: {}",
        acme_db
            .find::<reminder::Entity>()
            .filter(reminder::Column::Done.eq(false))
            .to_sql()
    );

    db.close().await?;
    let _ = std::fs::remove_file(path);
    Ok(())
}
