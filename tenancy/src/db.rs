//! The handles: [`Db`] owns the pool; [`TenantDb`] and [`TenantTxn`] are the only
//! things that execute statements for a tenant, and every statement they execute passes
//! the statement guard first (see `Exec`).

use std::pin::Pin;
use std::sync::Arc;

use futures_util::{Stream, StreamExt};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, ExecResult,
    QueryResult, Statement, StreamTrait, TransactionTrait,
};

use crate::guard::{Dialect, Guard, Scope};
use crate::registry::Registry;
use crate::select::Scoped;
use crate::write::{DeleteMany, Insert, InsertMany, UpdateMany, UpdateOne};
use crate::{Actor, Error, Result, TenantCtx, TenantId, TenantRoot, TenantScoped, Unscoped};

/// How many distinct statement texts the guard remembers its verdict for.
const GUARD_CACHE: usize = 4096;

/// Marks guard refusals inside sea-orm's error type on their way out of an execution.
pub(crate) const REFUSED: &str = "tenancy refused the statement: ";

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
}

/// The database pool. Cheap to clone; hands out tenant handles, never the connection.
///
/// It implements no sea-orm `ConnectionTrait`, so a query built with plain sea-orm
/// (`Entity::find()`) has nothing to run on.
#[derive(Clone, Debug)]
pub struct Db {
    pool: Arc<Pool>,
}

/// What [`Db::open`] hands out, once, at start-up: the pool for request paths, the
/// capability to mint tenant contexts (for the authentication edge only), and the one
/// escape hatch for cross-tenant work.
#[derive(Debug)]
pub struct Connected {
    /// The pool; request paths turn it into a [`TenantDb`] per request.
    pub db: Db,
    /// Mints [`TenantCtx`]s from verified credentials: give it to the auth edge only.
    pub issuer: CtxIssuer,
    /// The cross-tenant capability (authentication lookups, tenant creation, tools).
    pub unscoped: Unscoped,
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
    /// Wraps an open driver connection (made by the `migrations` crate's `connect`, or
    /// any other crate allowed to depend on sea-orm) and hands out the capabilities.
    ///
    /// Code that cannot name sea-orm — the business crates — cannot make the argument,
    /// so it can neither open a database nor reach [`Unscoped`] or [`CtxIssuer`] this way.
    ///
    /// # Errors
    /// [`Error::Refused`] for a connection that is not connected (sea-orm's default).
    pub fn open(conn: DatabaseConnection) -> Result<Connected> {
        if matches!(conn.inner, sea_orm::DatabaseConnectionType::Disconnected) {
            return Err(Error::Refused("Db::open needs a connected pool".to_owned()));
        }
        let db = Db {
            pool: Arc::new(Pool {
                conn,
                guard: Guard::new(GUARD_CACHE),
            }),
        };
        Ok(Connected {
            unscoped: Unscoped::new(db.clone()),
            issuer: CtxIssuer::new(),
            db,
        })
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
        ConnRef {
            kind: ConnKind::Pool(&self.pool.conn),
            guard: &self.pool.guard,
            scope,
        }
    }

    pub(crate) async fn begin_raw(&self) -> Result<DatabaseTransaction> {
        Ok(self.pool.conn.begin().await?)
    }

    pub(crate) fn guard(&self) -> &Guard {
        &self.pool.guard
    }

    pub(crate) fn raw(&self) -> &DatabaseConnection {
        &self.pool.conn
    }
}

/// A borrowed, guarded executor; opaque outside this crate.
#[doc(hidden)]
#[derive(Clone, Copy, Debug)]
pub struct ConnRef<'a> {
    kind: ConnKind<'a>,
    guard: &'a Guard,
    scope: Scope,
}

#[derive(Clone, Copy, Debug)]
enum ConnKind<'a> {
    Pool(&'a DatabaseConnection),
    Txn(&'a DatabaseTransaction),
}

impl<'a> ConnRef<'a> {
    pub(crate) fn txn(txn: &'a DatabaseTransaction, guard: &'a Guard, scope: Scope) -> Self {
        Self {
            kind: ConnKind::Txn(txn),
            guard,
            scope,
        }
    }

    /// The executor every statement goes through.
    pub(crate) fn exec(self) -> Exec<'a> {
        Exec(self)
    }

    pub(crate) fn backend(self) -> DbBackend {
        match self.kind {
            ConnKind::Pool(conn) => conn.get_database_backend(),
            ConnKind::Txn(txn) => ConnectionTrait::get_database_backend(txn),
        }
    }

    /// Checks `statement` and streams its rows; the stream borrows the pool or the
    /// transaction, not this reference.
    pub(crate) async fn stream(
        self,
        statement: Statement,
    ) -> std::result::Result<RawStream<'a>, DbErr> {
        Exec(self).check(&statement)?;
        Ok(match self.kind {
            ConnKind::Pool(conn) => StreamTrait::stream_raw(conn, statement).await?.boxed(),
            ConnKind::Txn(txn) => StreamTrait::stream_raw(txn, statement).await?.boxed(),
        })
    }

    /// Confirms, once per table and against the database's own catalog, that a global
    /// entity's table is a base table without a `tenant_id` column.
    pub(crate) async fn confirm_globals(self, tables: &[&'static str]) -> Result<()> {
        for &table in tables {
            if !crate::registry::unconfirmed_global(table) {
                continue;
            }
            let backend = self.backend();
            let statement = match backend {
                DbBackend::Postgres => Statement::from_sql_and_values(
                    backend,
                    "SELECT c.relkind::text AS kind, EXISTS (SELECT 1 FROM pg_attribute a \
                     WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped) \
                     AS tenant FROM pg_class c WHERE c.oid = to_regclass($1)",
                    [table.into()],
                ),
                _ => Statement::from_sql_and_values(
                    backend,
                    "SELECT m.type AS kind, EXISTS (SELECT 1 FROM pragma_table_info(?) p \
                     WHERE p.name = 'tenant_id') AS tenant FROM sqlite_master m WHERE m.name = ?",
                    [table.into(), table.into()],
                ),
            };
            // The catalog read is tenancy's own statement: it bypasses the guard.
            let row = match self.kind {
                ConnKind::Pool(conn) => conn.query_one_raw(statement).await?,
                ConnKind::Txn(txn) => txn.query_one_raw(statement).await?,
            };
            let verdict = match row {
                None => Err(format!("global `{table}` does not exist in the database")),
                Some(row) => {
                    let kind: String = row.try_get("", "kind")?;
                    let tenant: bool = row.try_get("", "tenant")?;
                    if !matches!(kind.as_str(), "r" | "p" | "table") {
                        Err(format!(
                            "global `{table}` is not a base table (kind {kind:?}): views are refused"
                        ))
                    } else if tenant {
                        Err(format!(
                            "global `{table}` has a `tenant_id` column in the database"
                        ))
                    } else {
                        Ok(())
                    }
                }
            };
            crate::registry::confirm_global(table, verdict.clone());
            verdict.map_err(Error::Refused)?;
        }
        Ok(())
    }
}

/// How many statements the escape hatch ran, per set of tables touched (process-wide).
static UNSCOPED_TABLES: std::sync::LazyLock<
    std::sync::Mutex<std::collections::BTreeMap<Vec<String>, u64>>,
> = std::sync::LazyLock::new(Default::default);

fn record_unscoped(tables: &[String]) {
    let mut seen = UNSCOPED_TABLES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    *seen.entry(tables.to_vec()).or_default() += 1;
}

/// Every set of tables the escape hatch's statements touched in this process, with how
/// many statements touched it: what an audit (or the scale-out check that request paths
/// only use the hatch on reference tables or by `tenant_id`) reads.
pub fn unscoped_tables() -> Vec<(Vec<String>, u64)> {
    UNSCOPED_TABLES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
        .map(|(tables, count)| (tables.clone(), *count))
        .collect()
}

/// The guarded executor: sea-orm runs every statement through `ConnectionTrait` /
/// `StreamTrait`, so checking here sees each one before the database does.
pub(crate) struct Exec<'a>(ConnRef<'a>);

impl Exec<'_> {
    pub(crate) fn check(&self, statement: &Statement) -> std::result::Result<(), DbErr> {
        let conn = self.0;
        let dialect = match statement.db_backend {
            DbBackend::Postgres => Dialect::Postgres,
            _ => Dialect::Sqlite,
        };
        let values = statement.values.as_ref().map_or(&[][..], |v| &v.0[..]);
        match conn
            .guard
            .check(dialect, &statement.sql, values, conn.scope, &Registry)
        {
            Ok(checked) => {
                if let Scope::Unscoped = conn.scope {
                    tracing::debug!(target: "tenancy::unscoped", tables = ?checked.tables, "unscoped statement");
                    record_unscoped(&checked.tables);
                }
                Ok(())
            }
            Err(refusal) => {
                tracing::error!(
                    target: "tenancy::guard",
                    sql = %statement.sql,
                    reason = %refusal,
                    "statement refused"
                );
                Err(DbErr::Custom(format!("{REFUSED}{refusal}")))
            }
        }
    }
}

#[async_trait::async_trait]
impl ConnectionTrait for Exec<'_> {
    fn get_database_backend(&self) -> DbBackend {
        self.0.backend()
    }

    async fn execute_raw(&self, stmt: Statement) -> std::result::Result<ExecResult, DbErr> {
        self.check(&stmt)?;
        match self.0.kind {
            ConnKind::Pool(conn) => conn.execute_raw(stmt).await,
            ConnKind::Txn(txn) => txn.execute_raw(stmt).await,
        }
    }

    async fn execute_unprepared(&self, _sql: &str) -> std::result::Result<ExecResult, DbErr> {
        Err(DbErr::Custom(format!(
            "{REFUSED}unprepared SQL is never executed"
        )))
    }

    async fn query_one_raw(
        &self,
        stmt: Statement,
    ) -> std::result::Result<Option<QueryResult>, DbErr> {
        self.check(&stmt)?;
        match self.0.kind {
            ConnKind::Pool(conn) => conn.query_one_raw(stmt).await,
            ConnKind::Txn(txn) => txn.query_one_raw(stmt).await,
        }
    }

    async fn query_all_raw(&self, stmt: Statement) -> std::result::Result<Vec<QueryResult>, DbErr> {
        self.check(&stmt)?;
        match self.0.kind {
            ConnKind::Pool(conn) => conn.query_all_raw(stmt).await,
            ConnKind::Txn(txn) => txn.query_all_raw(stmt).await,
        }
    }

    fn support_returning(&self) -> bool {
        match self.0.kind {
            ConnKind::Pool(conn) => conn.support_returning(),
            ConnKind::Txn(txn) => txn.support_returning(),
        }
    }
}

/// A boxed stream of raw rows.
pub(crate) type RawStream<'a> =
    Pin<Box<dyn Stream<Item = std::result::Result<QueryResult, DbErr>> + Send + 'a>>;

impl StreamTrait for Exec<'_> {
    type Stream<'b>
        = RawStream<'b>
    where
        Self: 'b;

    fn get_database_backend(&self) -> DbBackend {
        self.0.backend()
    }

    fn stream_raw<'b>(
        &'b self,
        stmt: Statement,
    ) -> Pin<Box<dyn Future<Output = std::result::Result<Self::Stream<'b>, DbErr>> + 'b + Send>>
    {
        Box::pin(async move {
            self.check(&stmt)?;
            Ok(match self.0.kind {
                ConnKind::Pool(conn) => StreamTrait::stream_raw(conn, stmt).await?.boxed(),
                ConnKind::Txn(txn) => StreamTrait::stream_raw(txn, stmt).await?.boxed(),
            })
        })
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
pub trait TenantHandle: crate::__private::Sealed + Sync {
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
        Ok(TenantTxn {
            txn: self.db.begin_raw().await?,
            db: self.db.clone(),
            ctx: self.ctx.clone(),
        })
    }
}

impl crate::__private::Sealed for TenantDb {}
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
    txn: DatabaseTransaction,
    db: Db,
    ctx: TenantCtx,
}

impl TenantTxn {
    pub(crate) fn new(txn: DatabaseTransaction, db: Db, ctx: TenantCtx) -> Self {
        Self { txn, db, ctx }
    }

    /// Commits the transaction. Only an `Ok` here means the writes are durable.
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
