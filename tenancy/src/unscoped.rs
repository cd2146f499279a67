//! The escape hatch: cross-tenant work, named, narrow, typed and logged.

use sea_orm::{ActiveModelTrait, EntityName, EntityTrait, IntoActiveModel};

use crate::conn::ConnRef;
use crate::guard::Scope;
use crate::select::Scoped;
use crate::{Actor, Db, Joinable, Result, TenantCtx, TenantId, TenantRoot, TenantTxn};

/// The capability to run statements that are not scoped to one tenant.
///
/// Needed by: authentication (finding an API key by its prefix before the tenant is
/// known), creating tenants, operator tooling. Request handlers never hold one.
///
/// Only [`Db::open`](crate::Db::open) creates it (its field is private and it is
/// neither `Clone` nor `Default`), so every holder received it, explicitly, from the
/// place that opened the database: grep for `Unscoped` to audit them all. Every use
/// takes a reason, logged at `info` on the `tenancy::unscoped` target, and its
/// statements still pass the statement guard (built only by this crate's typed
/// builders: registered tables and columns, bound values), which records the tables
/// they touch. It has no raw connection, statement or SQL text to offer.
#[derive(Debug)]
pub struct Unscoped {
    db: Db,
}

impl Unscoped {
    pub(crate) fn new(db: Db) -> Self {
        Self { db }
    }

    fn log(reason: &str, table: &str) {
        tracing::info!(target: "tenancy::unscoped", reason, table, "unscoped database access");
    }

    /// `SELECT … FROM e WHERE …` across every tenant: the read of an authentication
    /// lookup or an operator tool. Filters, order and limit as on a scoped read.
    pub fn find<E: Joinable>(&self, reason: &str) -> Scoped<'_, E> {
        Self::log(reason, E::default().table_name());
        Scoped::unscoped(self.db.conn(Scope::Unscoped))
    }

    /// Creates a tenant: inserts its row into the tenant root `E` and returns it with a
    /// transaction scoped to the new tenant (actor [`Actor::System`]), so its first rows
    /// (an admin user) are written atomically with it. Nothing is stored unless the
    /// returned transaction is committed.
    pub async fn create_tenant<A>(
        &self,
        reason: &str,
        root: A,
    ) -> Result<(<A::Entity as EntityTrait>::Model, TenantTxn)>
    where
        A: ActiveModelTrait + Send,
        A::Entity: TenantRoot,
        <A::Entity as EntityTrait>::Model: IntoActiveModel<A>,
    {
        Self::log(reason, <A::Entity as Default>::default().table_name());
        crate::registry::ensure::<A::Entity>()?;
        let began = self.db.begin_raw().await?;
        let row = {
            let conn = ConnRef::txn(&began.txn, self.db.guard(), Scope::Unscoped);
            <A::Entity as EntityTrait>::insert(root)
                .exec_with_returning(&conn.exec())
                .await?
        };
        let id_column = crate::registry::column::<A::Entity>("id")?;
        let id = sea_orm::ModelTrait::get(&row, id_column);
        let sea_orm::Value::Uuid(Some(id)) = id else {
            return Err(crate::Error::Refused(
                "the new tenant's id is not a UUID".to_owned(),
            ));
        };
        let ctx = TenantCtx::new(TenantId::from_uuid(id), Actor::System);
        Ok((row, TenantTxn::new(began, self.db.clone(), ctx)))
    }
}
