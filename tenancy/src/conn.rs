//! The guarded executor: the only place the builders' statements reach the driver,
//! every one through the statement guard.
//!
//! A [`ConnRef`] is what a handle lends its builders: the pool or a transaction, the
//! guard, and the handle's scope. Its [`Exec`] is the only `ConnectionTrait` /
//! `StreamTrait` they run on, and it checks each statement before the driver sees it;
//! a refusal is logged and returned, never executed. Besides transaction control and
//! `ping` (in `db`), the one statement that skips the guard is this crate's own fixed
//! catalog read ([`ConnRef::confirm_globals`]), whose only input is a declared table
//! name, bound as a value.

use std::pin::Pin;

use futures_util::{Stream, StreamExt};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, ExecResult,
    QueryResult, Statement, StreamTrait,
};

use crate::error::{Error, REFUSED, Result};
use crate::guard::{Dialect, Guard, Scope};
use crate::registry::Registry;

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
    pub(crate) fn pool(conn: &'a DatabaseConnection, guard: &'a Guard, scope: Scope) -> Self {
        Self {
            kind: ConnKind::Pool(conn),
            guard,
            scope,
        }
    }

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
