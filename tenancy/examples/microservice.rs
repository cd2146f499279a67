//! A new internal microservice on the `tenancy` crate, end to end: one tenant-owned
//! entity, the schema, and a service layer whose every query is scoped.
//!
//! Run it: `cargo run -p tenancy --example microservice`
//!
//! What to copy into your service — three crates, as Tenantry itself is laid out:
//! 1. **An entity crate** (here `mod entities`; Tenantry's is `domain/entities`): the
//!    only crate of yours that depends on sea-orm. Declarations only: each entity opts in
//!    with `tenancy::tenant_scoped!()` (`tenant_id` leads the primary key).
//! 2. **A business crate** (here `mod service`; Tenantry's is `domain`): depends on
//!    `tenancy` and your entity crate, *never* on sea-orm, sea-query or sqlx. It builds
//!    queries only with tenancy's typed API (`ColumnExt`, `Cond`, `Set`), so raw SQL has
//!    no name there. Add the dependency check (`.ci/check-deps` in Tenantry) to your CI.
//! 3. **The binary** (here `main`): opens the pool once, applies the schema on the raw
//!    connection before handing it to `Db::open`, keeps the `CtxIssuer` at its
//!    authentication edge, and gives the business functions a handle per request.

/// The entity crate: sea-orm declarations, nothing else.
mod entities {
    /// Reminders, owned by a tenant.
    pub mod reminder {
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
}

/// The business crate: every function takes the tenant handle first and cannot do
/// anything unscoped with it. Note the imports: tenancy and the entities, no sea-orm.
mod service {
    use tenancy::{ColumnExt, Keyset, Set, TenantHandle};
    use uuid::Uuid;

    use crate::entities::reminder;

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
            .set(reminder::Column::Done, true)
            .exec()
            .await
    }

    pub fn open_sql(db: &impl TenantHandle) -> String {
        db.find::<reminder::Entity>()
            .filter(reminder::Column::Done.eq(false))
            .to_sql()
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    use sea_orm::{ConnectionTrait, Database, Schema};
    use tenancy::{Actor, Db, TenantId};
    use uuid::Uuid;

    let path = std::env::temp_dir().join(format!("tenancy-example-{}.db", Uuid::now_v7()));
    // The binary opens the driver connection and applies the schema on it, before any
    // tenant code runs; then `Db::open` takes it and hands out the capabilities.
    let conn = Database::connect(format!("sqlite://{}?mode=rwc", path.display())).await?;
    let schema = Schema::new(conn.get_database_backend());
    conn.execute(&schema.create_table_from_entity(entities::reminder::Entity))
        .await?;
    let tenancy::Connected { db, issuer, .. } = Db::open(conn)?;

    // Two tenants, as two verified service tokens would name them: only the holder of
    // the issuer (your authentication edge) can make a context.
    let acme = issuer.issue(
        TenantId::from_uuid(Uuid::now_v7()),
        Actor::Service("reminders".into()),
    );
    let globex = issuer.issue(
        TenantId::from_uuid(Uuid::now_v7()),
        Actor::Service("reminders".into()),
    );

    let acme_db = db.tenant(&acme);
    service::add(&acme_db, "call Wile E.").await?;
    service::add(&acme_db, "ship anvils").await?;
    service::add(&db.tenant(&globex), "globex only").await?;

    // A transaction has the same API and the same scope.
    let txn = acme_db.begin().await?;
    let finished = service::finish_all(&txn).await?;
    txn.rollback().await?;

    let texts =
        |rows: Vec<entities::reminder::Model>| rows.into_iter().map(|r| r.text).collect::<Vec<_>>();
    println!(
        "acme open reminders: {:?}",
        texts(service::open(&acme_db).await?)
    );
    println!(
        "globex open reminders: {:?}",
        texts(service::open(&db.tenant(&globex)).await?)
    );
    println!("finish_all inside a rolled-back transaction touched {finished} acme rows");
    println!("the SQL of `open`: {}", service::open_sql(&acme_db));

    db.close().await?;
    let _ = std::fs::remove_file(path);
    Ok(())
}
