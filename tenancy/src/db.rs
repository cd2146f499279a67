//! The handles: [`Db`] owns the pool; [`TenantDb`] and [`TenantTxn`] are the only
//! things that execute statements, and every statement they execute is scoped.

use sea_orm::{
    ActiveModelTrait, ConnectOptions, DatabaseConnection, DatabaseExecutor, DatabaseTransaction,
    DbBackend, EntityTrait, IntoActiveModel, TransactionTrait,
};

use crate::select::Scoped;
use crate::write::{DeleteMany, Insert, InsertMany, UpdateMany, UpdateOne};
use crate::{Result, TenantCtx, TenantId, TenantRoot, TenantScoped, Unscoped};

/// The database pool. Cheap to clone; hands out tenant handles, never the connection.
///
/// It implements no sea-orm `ConnectionTrait`, so a query built with plain sea-orm
/// (`Entity::find()`) has nothing to run on.
#[derive(Clone, Debug)]
pub struct Db {
    conn: DatabaseConnection,
}

/// What [`Db::connect`] opens: the pool for request paths, and the one escape hatch
/// for cross-tenant work, which the caller hands only to the few places that need it.
#[derive(Debug)]
pub struct Connected {
    /// The pool; request paths turn it into a [`TenantDb`] per request.
    pub db: Db,
    /// The cross-tenant capability (migrations, authentication lookups, admin tools).
    pub unscoped: Unscoped,
}

impl Db {
    /// Opens a pool (`sqlite://…` or `postgres://…`).
    pub async fn connect(options: impl Into<ConnectOptions>) -> Result<Connected> {
        let conn = sea_orm::Database::connect(options).await?;
        Ok(Connected {
            db: Db { conn: conn.clone() },
            unscoped: Unscoped::new(conn),
        })
    }

    /// The handle for one tenant context. Every statement it runs is scoped to
    /// `ctx.tenant()`.
    pub fn tenant(&self, ctx: &TenantCtx) -> TenantDb {
        TenantDb {
            conn: self.conn.clone(),
            ctx: ctx.clone(),
        }
    }

    /// Which SQL dialect the pool speaks.
    pub fn backend(&self) -> DbBackend {
        self.conn.get_database_backend()
    }

    /// Checks that the database answers (for readiness probes).
    pub async fn ping(&self) -> Result<()> {
        Ok(self.conn.ping().await?)
    }

    /// Closes the pool, waiting for connections to be returned.
    pub async fn close(self) -> Result<()> {
        Ok(self.conn.close().await?)
    }
}

/// A borrowed executor; opaque outside this crate.
#[doc(hidden)]
#[derive(Clone, Copy, Debug)]
pub struct ConnRef<'a>(pub(crate) ConnKind<'a>);

#[derive(Clone, Copy, Debug)]
pub(crate) enum ConnKind<'a> {
    Pool(&'a DatabaseConnection),
    Txn(&'a DatabaseTransaction),
}

impl<'a> ConnRef<'a> {
    pub(crate) fn executor(self) -> DatabaseExecutor<'a> {
        match self.0 {
            ConnKind::Pool(conn) => conn.into(),
            ConnKind::Txn(txn) => txn.into(),
        }
    }

    pub(crate) fn backend(self) -> DbBackend {
        match self.0 {
            ConnKind::Pool(conn) => conn.get_database_backend(),
            ConnKind::Txn(txn) => sea_orm::ConnectionTrait::get_database_backend(txn),
        }
    }
}

/// What [`TenantDb`] and [`TenantTxn`] have in common: every way to read and write
/// tenant data. Domain functions take `&impl TenantHandle` so they run the same inside
/// and outside a transaction.
///
/// Sealed: only this crate's handles implement it.
pub trait TenantHandle: crate::__private::Sealed + Sync {
    #[doc(hidden)]
    fn conn(&self) -> ConnRef<'_>;

    /// The context this handle was opened for.
    fn ctx(&self) -> &TenantCtx;

    /// The tenant every statement of this handle is scoped to.
    fn tenant(&self) -> TenantId {
        self.ctx().tenant()
    }

    /// `SELECT … FROM e WHERE e.tenant_id = $tenant`, refined by the builder.
    fn find<E: TenantScoped>(&self) -> Scoped<'_, E> {
        Scoped::new(self.conn(), self.tenant(), E::tenant_column())
    }

    /// `SELECT … FROM tenants WHERE tenants.id = $tenant`: this tenant's own row.
    fn find_own<E: TenantRoot>(&self) -> Scoped<'_, E> {
        Scoped::new(self.conn(), self.tenant(), E::tenant_id_column())
    }

    /// `INSERT INTO e (tenant_id, …) VALUES ($tenant, …) RETURNING *`; the tenant column
    /// is stamped, and a row naming another tenant is refused before any SQL runs.
    fn insert<A>(&self, model: A) -> Insert<'_, A>
    where
        A: ActiveModelTrait + Send,
        A::Entity: TenantScoped,
        <A::Entity as EntityTrait>::Model: IntoActiveModel<A>,
    {
        Insert::new(self.conn(), self.tenant(), model)
    }

    /// A multi-row insert, each row stamped like [`insert`](Self::insert).
    fn insert_many<A, I>(&self, models: I) -> InsertMany<'_, A>
    where
        A: ActiveModelTrait + Send,
        A::Entity: TenantScoped,
        I: IntoIterator<Item = A>,
    {
        InsertMany::new(self.conn(), self.tenant(), models)
    }

    /// `UPDATE e SET … WHERE e.tenant_id = $tenant AND <primary key> RETURNING *`: the
    /// `Set` columns of one row, found by its primary key within this tenant.
    fn update<A>(&self, model: A) -> UpdateOne<'_, A>
    where
        A: ActiveModelTrait + Send,
        A::Entity: TenantScoped,
    {
        UpdateOne::new(self.conn(), self.tenant(), model)
    }

    /// `UPDATE e SET … WHERE e.tenant_id = $tenant AND …`.
    fn update_many<E: TenantScoped>(&self) -> UpdateMany<'_, E> {
        UpdateMany::new(self.conn(), self.tenant())
    }

    /// `DELETE FROM e WHERE e.tenant_id = $tenant AND …`.
    fn delete_many<E: TenantScoped>(&self) -> DeleteMany<'_, E> {
        DeleteMany::new(self.conn(), self.tenant())
    }
}

/// The handle of one tenant context on the pool. Obtained from [`Db::tenant`].
#[derive(Debug, Clone)]
pub struct TenantDb {
    conn: DatabaseConnection,
    ctx: TenantCtx,
}

impl TenantDb {
    /// Starts a transaction whose handle has the same API and the same scoping.
    /// Dropping it without [`TenantTxn::commit`] rolls back.
    pub async fn begin(&self) -> Result<TenantTxn> {
        Ok(TenantTxn {
            txn: self.conn.begin().await?,
            ctx: self.ctx.clone(),
        })
    }
}

impl crate::__private::Sealed for TenantDb {}
impl TenantHandle for TenantDb {
    fn conn(&self) -> ConnRef<'_> {
        ConnRef(ConnKind::Pool(&self.conn))
    }
    fn ctx(&self) -> &TenantCtx {
        &self.ctx
    }
}

/// A transaction of one tenant context. Same API as [`TenantDb`] (through
/// [`TenantHandle`]); rolled back when dropped uncommitted.
#[derive(Debug)]
pub struct TenantTxn {
    txn: DatabaseTransaction,
    ctx: TenantCtx,
}

impl TenantTxn {
    /// Commits the transaction.
    pub async fn commit(self) -> Result<()> {
        Ok(self.txn.commit().await?)
    }

    /// Rolls the transaction back.
    pub async fn rollback(self) -> Result<()> {
        Ok(self.txn.rollback().await?)
    }
}

impl crate::__private::Sealed for TenantTxn {}
impl TenantHandle for TenantTxn {
    fn conn(&self) -> ConnRef<'_> {
        ConnRef(ConnKind::Txn(&self.txn))
    }
    fn ctx(&self) -> &TenantCtx {
        &self.ctx
    }
}
