//! The handles: [`Db`] owns the pool; [`TenantDb`] and [`TenantTxn`] are the only
//! things that execute statements for a tenant, and every statement they execute passes
//! the statement guard first (see `conn`). [`Db::open`](crate::Db::open) and
//! [`Connected`](crate::Connected) are in `connect`.

use std::sync::Arc;

use sea_orm::{
    DatabaseConnection, DatabaseTransaction, DbBackend, SqliteTransactionMode, TransactionOptions,
    TransactionTrait,
};

use crate::conn::ConnRef;
use crate::guard::{Guard, Scope};
use crate::select::Scoped;
use crate::write::{DeleteMany, Insert, InsertMany, UpdateMany, UpdateOne};
use crate::{Actor, Result, TenantCtx, TenantId, TenantRoot, TenantScoped};

/// How many distinct statement texts the guard remembers its verdict for.
const GUARD_CACHE: usize = 4096;

/// Which SQL dialect a pool speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// SQLite (the embedded default).
    Sqlite,
    /// PostgreSQL (and Citus).
    Postgres,
}

/// The pool and the guard, shared by every handle.
#[derive(Debug)]
struct Pool {
    conn: DatabaseConnection,
    guard: Guard,
    /// SQLite only: the turn to write. SQLite lets one transaction write at a time; the
    /// others wait in its busy handler, which polls with sleeps of up to 100 ms, so under
    /// concurrent writes most of the time goes to sleeping. Waiting here instead hands the
    /// turn over at once, in arrival order.
    write_turn: Option<Arc<tokio::sync::Mutex<()>>>,
}

/// How long a transaction waits for SQLite's write turn before it fails as unavailable
/// (the same bound as SQLite's own busy timeout).
const WRITE_TURN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A begun transaction and, on SQLite, the write turn it holds until it ends.
pub(crate) struct Began {
    pub(crate) txn: DatabaseTransaction,
    pub(crate) turn: WriteTurn,
}

/// The write turn a SQLite transaction holds (see [`Pool`]); `None` on PostgreSQL.
pub(crate) type WriteTurn = Option<tokio::sync::OwnedMutexGuard<()>>;

/// The database pool. Cheap to clone; hands out tenant handles, never the connection.
///
/// It implements no sea-orm `ConnectionTrait`, so a query built with plain sea-orm
/// (`Entity::find()`) has nothing to run on.
#[derive(Clone, Debug)]
pub struct Db {
    pool: Arc<Pool>,
}

/// The capability to build a [`TenantCtx`]: made only by [`Db::open`], so code that was
/// not handed one cannot act for a tenant of its choosing.
#[derive(Clone, Debug)]
pub struct CtxIssuer {
    _private: (),
}

impl CtxIssuer {
    /// The context of `actor` in `tenant`. Call it only with a tenant taken from a
    /// verified credential (a checked JWT, a matched API key) or an operator's command.
    pub fn issue(&self, tenant: TenantId, actor: Actor) -> TenantCtx {
        TenantCtx::new(tenant, actor)
    }

    pub(crate) fn new() -> Self {
        Self { _private: () }
    }
}

impl Db {
    /// The pool over `conn`, with a fresh statement guard. Made only by
    /// [`Db::open`](crate::Db::open), which checks first that `conn` is connected.
    pub(crate) fn new(conn: DatabaseConnection) -> Self {
        let write_turn = (conn.get_database_backend() == DbBackend::Sqlite)
            .then(|| Arc::new(tokio::sync::Mutex::new(())));
        Db {
            pool: Arc::new(Pool {
                conn,
                guard: Guard::new(GUARD_CACHE),
                write_turn,
            }),
        }
    }

    /// The handle for one tenant context. Every statement it runs is scoped to
    /// `ctx.tenant()`.
    pub fn tenant(&self, ctx: &TenantCtx) -> TenantDb {
        TenantDb {
            db: self.clone(),
            ctx: ctx.clone(),
        }
    }

    /// Which SQL dialect the pool speaks.
    pub fn backend(&self) -> Backend {
        match self.pool.conn.get_database_backend() {
            DbBackend::Postgres => Backend::Postgres,
            _ => Backend::Sqlite,
        }
    }

    /// Checks that the database answers (for readiness probes).
    pub async fn ping(&self) -> Result<()> {
        Ok(self.pool.conn.ping().await?)
    }

    /// Closes the pool, waiting for connections to be returned.
    pub async fn close(self) -> Result<()> {
        Ok(self.pool.conn.close_by_ref().await?)
    }

    pub(crate) fn conn(&self, scope: Scope) -> ConnRef<'_> {
        ConnRef::pool(&self.pool.conn, &self.pool.guard, scope)
    }

    /// `BEGIN` on PostgreSQL; `BEGIN IMMEDIATE` on SQLite.
    ///
    /// SQLite's default (`DEFERRED`) starts a transaction as a reader and upgrades it at
    /// its first write. A transaction that reads before it writes (a domain write checks
    /// its references first) then fails at once with `SQLITE_BUSY` (`SQLITE_BUSY_SNAPSHOT`
    /// in WAL mode) when another connection wrote in between: the busy timeout cannot
    /// help, because the snapshot it read is already stale. `IMMEDIATE` takes the write
    /// lock at `BEGIN`, where waiting under the busy timeout is safe, so transactions are
    /// serialized instead of failing. (SQLite has one writer anyway; readers outside a
    /// transaction are not affected.)
    ///
    /// On SQLite the transaction first takes the pool's write turn (see [`Pool`]), and
    /// holds it until it ends.
    pub(crate) async fn begin_raw(&self) -> Result<Began> {
        let turn = match &self.pool.write_turn {
            Some(turn) => {
                let taken = tokio::time::timeout(WRITE_TURN_TIMEOUT, turn.clone().lock_owned());
                match taken.await {
                    Ok(guard) => Some(guard),
                    Err(_elapsed) => {
                        return Err(sea_orm::DbErr::ConnectionAcquire(
                            sea_orm::ConnAcquireErr::Timeout,
                        )
                        .into());
                    }
                }
            }
            None => None,
        };
        let options = TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..TransactionOptions::default()
        };
        let txn = self.pool.conn.begin_with_options(options).await?;
        Ok(Began { txn, turn })
    }

    pub(crate) fn guard(&self) -> &Guard {
        &self.pool.guard
    }
}

/// Hides [`TenantHandle::conn`] from callers outside this crate: they cannot name the
/// token, so a call can only pass a diverging expression (`todo!()`), which never runs.
mod seal {
    #[derive(Debug)]
    pub struct Token;
}

/// The token, for this crate's test support.
#[cfg(feature = "testing")]
pub(crate) fn token() -> seal::Token {
    seal::Token
}

/// What [`TenantDb`] and [`TenantTxn`] have in common: every way to read and write
/// tenant data. Domain functions take `&impl TenantHandle` so they run the same inside
/// and outside a transaction.
///
/// Sealed: only this crate's handles implement it.
pub trait TenantHandle: crate::entity::Sealed + Sync {
    #[doc(hidden)]
    fn conn(&self, token: seal::Token) -> ConnRef<'_>;

    /// The context this handle was opened for.
    fn ctx(&self) -> &TenantCtx;

    /// The tenant every statement of this handle is scoped to.
    fn tenant(&self) -> TenantId {
        self.ctx().tenant()
    }

    /// `SELECT … FROM e WHERE e.tenant_id = $tenant`, refined by the builder.
    fn find<E: TenantScoped>(&self) -> Scoped<'_, E> {
        Scoped::new(self.conn(seal::Token), self.tenant(), "tenant_id")
    }

    /// `SELECT … FROM tenants WHERE tenants.id = $tenant`: this tenant's own row.
    fn find_own<E: TenantRoot>(&self) -> Scoped<'_, E> {
        Scoped::new(self.conn(seal::Token), self.tenant(), "id")
    }

    /// `INSERT INTO e (tenant_id, …) VALUES ($tenant, …) RETURNING *`; the tenant column
    /// is stamped, and a row naming another tenant is refused before any SQL runs.
    fn insert<A>(&self, model: A) -> Insert<'_, A>
    where
        A: sea_orm::ActiveModelTrait + Send,
        A::Entity: TenantScoped,
        <A::Entity as sea_orm::EntityTrait>::Model: sea_orm::IntoActiveModel<A>,
    {
        Insert::new(self.conn(seal::Token), self.tenant(), model)
    }

    /// A multi-row insert, each row stamped like [`insert`](Self::insert).
    fn insert_many<A, I>(&self, models: I) -> InsertMany<'_, A>
    where
        A: sea_orm::ActiveModelTrait + Send,
        A::Entity: TenantScoped,
        I: IntoIterator<Item = A>,
    {
        InsertMany::new(self.conn(seal::Token), self.tenant(), models)
    }

    /// `UPDATE e SET … WHERE e.tenant_id = $tenant AND <primary key> RETURNING *`: the
    /// `Set` columns of one row, found by its primary key within this tenant.
    fn update<A>(&self, model: A) -> UpdateOne<'_, A>
    where
        A: sea_orm::ActiveModelTrait + Send,
        A::Entity: TenantScoped,
    {
        UpdateOne::new(self.conn(seal::Token), self.tenant(), model)
    }

    /// `UPDATE e SET … WHERE e.tenant_id = $tenant AND …`.
    fn update_many<E: TenantScoped>(&self) -> UpdateMany<'_, E> {
        UpdateMany::new(self.conn(seal::Token), self.tenant())
    }

    /// `DELETE FROM e WHERE e.tenant_id = $tenant AND …`.
    fn delete_many<E: TenantScoped>(&self) -> DeleteMany<'_, E> {
        DeleteMany::new(self.conn(seal::Token), self.tenant())
    }
}

/// The handle of one tenant context on the pool. Obtained from [`Db::tenant`].
#[derive(Debug, Clone)]
pub struct TenantDb {
    db: Db,
    ctx: TenantCtx,
}

impl TenantDb {
    /// Starts a transaction whose handle has the same API and the same scoping.
    /// Dropping it without [`TenantTxn::commit`] rolls back.
    pub async fn begin(&self) -> Result<TenantTxn> {
        Ok(TenantTxn::new(
            self.db.begin_raw().await?,
            self.db.clone(),
            self.ctx.clone(),
        ))
    }
}

impl crate::entity::Sealed for TenantDb {}
impl TenantHandle for TenantDb {
    fn conn(&self, _: seal::Token) -> ConnRef<'_> {
        self.db.conn(Scope::Tenant(self.ctx.tenant().as_uuid()))
    }
    fn ctx(&self) -> &TenantCtx {
        &self.ctx
    }
}

/// A transaction of one tenant context. Same API as [`TenantDb`] (through
/// [`TenantHandle`]); rolled back when dropped uncommitted.
#[derive(Debug)]
pub struct TenantTxn {
    // Declared before `turn`: dropped (rolled back) first, then the turn is handed on.
    txn: DatabaseTransaction,
    turn: WriteTurn,
    db: Db,
    ctx: TenantCtx,
}

impl TenantTxn {
    pub(crate) fn new(began: Began, db: Db, ctx: TenantCtx) -> Self {
        Self {
            txn: began.txn,
            turn: began.turn,
            db,
            ctx,
        }
    }

    /// Commits the transaction. Only an `Ok` here means the writes are durable.
    pub async fn commit(self) -> Result<()> {
        let Self { txn, turn, .. } = self;
        let committed = txn.commit().await;
        drop(turn);
        Ok(committed?)
    }

    /// Rolls the transaction back.
    pub async fn rollback(self) -> Result<()> {
        let Self { txn, turn, .. } = self;
        let rolled_back = txn.rollback().await;
        drop(turn);
        Ok(rolled_back?)
    }
}

impl crate::entity::Sealed for TenantTxn {}
impl TenantHandle for TenantTxn {
    fn conn(&self, _: seal::Token) -> ConnRef<'_> {
        ConnRef::txn(
            &self.txn,
            self.db.guard(),
            Scope::Tenant(self.ctx.tenant().as_uuid()),
        )
    }
    fn ctx(&self) -> &TenantCtx {
        &self.ctx
    }
}
