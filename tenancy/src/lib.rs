//! # tenancy — a query not scoped to exactly one tenant does not compile
//!
//! Every statement this crate runs against a tenant-owned table carries
//! `tenant_id = <the caller's tenant>`: in the `WHERE` of each `SELECT`, `UPDATE` and
//! `DELETE`, in the `ON` clause of every joined table, and stamped into every `INSERT`.
//! The dependency graph and the compiler enforce it; a statement guard checks every
//! statement again before it runs.
//!
//! ## Layout
//! - [`TenantId`], [`Actor`], [`TenantCtx`] (`ctx`): who asks; a context is made only by
//!   a [`CtxIssuer`].
//! - [`TenantScoped`], [`TenantRoot`], [`GlobalEntity`], [`Joinable`] and the macros
//!   [`tenant_scoped!`], [`tenant_root!`], [`global_entity!`] (`entity`): how an
//!   entity opts in; `registry` re-checks every declaration before its first statement.
//! - [`ColumnExt`], [`Cond`], [`Value`], [`Order`], [`Set`] (`expr`): the typed
//!   expression API — the only way to say which rows and what value.
//! - [`Db`], [`CtxIssuer`], [`TenantDb`], [`TenantTxn`], [`TenantHandle`] (`db`): the
//!   pool and the only executors. [`Db::open`] and [`Connected`] (`connect`): the
//!   capabilities, handed out once.
//! - [`Scoped`], [`ScopedTwo`], [`ScopedWith`], [`Keyset`], [`Page`], [`Subquery`]
//!   (`select`): scoped reads. [`Insert`], [`InsertMany`], [`UpdateOne`], [`UpdateMany`],
//!   [`DeleteMany`] (`write`): scoped writes.
//! - [`Unscoped`] (`unscoped`): the one escape hatch, typed and logged.
//! - `conn` (private): the guarded executor the handles lend their builders — the only
//!   place statements reach the driver, each through the guard (but for its own catalog
//!   check of global tables); [`unscoped_tables`], the escape hatch's audit.
//! - `guard` (private): the statement guard every execution passes.
//! - [`Error`]: the crate's one error type (no driver type in it).
//!
//! ## The rules, and why they hold
//! 1. **Business code cannot name SQL.** Entities are declared in an entity crate (the
//!    only crate of a service, besides the binary, that depends on sea-orm); business
//!    code depends on this crate and the entity crate only (`.ci/check-deps`). This crate
//!    re-exports nothing that builds or runs SQL: conditions are [`Cond`]s made by
//!    [`ColumnExt`] from an entity's own columns and [`Value`]s (plain data, always
//!    bound), updates set columns to values, subqueries are this crate's own scoped
//!    [`Subquery`]. The one sea-orm item re-exported is [`ActiveValue`] (`Set`/`NotSet`),
//!    a cell holding a value of the field's own Rust type.
//! 2. **The handle is the only executor.** Every sea-orm execution needs a
//!    `ConnectionTrait`; the only implementation this crate lets run is a private
//!    executor inside [`TenantDb`] / [`TenantTxn`] / [`Unscoped`], reachable through a
//!    trait method whose argument type cannot be named outside the crate.
//! 3. **Reads start scoped.** [`TenantHandle::find`] returns a [`Scoped`] whose first
//!    condition is the tenant predicate; every later `filter` is ANDed onto it (an `OR`
//!    is nested, never merged).
//! 4. **Joins are scoped in the `ON` clause.** `join::<R>()` requires `R: Joinable` and
//!    `E: Related<R>`; the relation must join exactly `E`'s table to `R`'s on columns
//!    alone (no custom `on_condition`), and `r.tenant_id = $tenant` is ANDed to it.
//!    Junctions are two explicit hops, each scoped.
//! 5. **Writes are scoped.** `insert` stamps the tenant column and refuses a row naming
//!    another tenant; updates and deletes carry `tenant_id = $tenant`; the tenant column
//!    is never set by an update; an upsert's conflict target includes it.
//! 6. **Declarations are checked.** Before an entity's first statement: plain table and
//!    column names *as rendered*, every column of the entity's own table, no
//!    `select_as`/`save_as`, no database enums, `tenant_id` a UUID leading the primary key
//!    (tenant-owned), `id` the whole key (root), no `tenant_id` at all (global — and the
//!    database catalog confirms a base table without one). A violation refuses the
//!    entity for good, with [`Error::Refused`].
//! 7. **Capabilities, not constructors.** [`Db::open`] takes a driver connection (which
//!    only a crate depending on sea-orm can make) and hands out the pool, the
//!    [`CtxIssuer`] (for the authentication edge) and [`Unscoped`], once. `TenantCtx` has
//!    no public constructor.
//! 8. **The statement guard is the net under all of it.** Every statement (reads,
//!    writes, streams; the escape hatch's too) is parsed (sqlparser) and checked against
//!    an allow-list of what the builders emit: registered tables and columns only, every
//!    value bound, a fixed set of operators and functions, and — for a tenant handle —
//!    `"t"."tenant_id" = $k` at the top level of the `WHERE` (or the joined table's `ON`)
//!    for every tenant-owned table in the statement and in each subquery, with `$k`
//!    bound to the handle's tenant; inserts bind the tenant in every row. The verdict is
//!    cached per statement text; per execution only the bound tenant values are
//!    compared. A refusal is logged (`tenancy::guard`) and returned, never executed.
//!
//! ## Threat model: who closes each class of attempt from business code
//! | class | examples | closed by |
//! |---|---|---|
//! | A. raw SQL | `Expr::cust`, `Expr::Custom`, keyword/cast/operator variants, an `Iden` whose quoted form is raw, `select_as` | **compiler** (dependency graph: not nameable; `Cond`/`Value` have private constructors); in an entity crate: **registry** (names as rendered, no `select_as`/`save_as`/enums) and the **guard** (allow-list) |
//! | B. raw subqueries | `as_query`, `QuerySelect::query`, `SelectStatement::new`, `in_subquery`, `exists`, `eq(select)` | **compiler** (not nameable; a [`Subquery`] is not a value); the **guard** refuses any subquery without its own tenant predicate, `EXISTS` and scalar subqueries |
//! | C. declarations | `global_entity!` over a view, `tenant_id` mapped to another column, a `Related` impl whose target is another table, implementing `__private::Sealed` by hand | **compiler** in business code (`::sea_orm` unresolved, `EntityTrait` supertrait); in an entity crate: **registry** (kind, names, key, relation endpoints, catalog check of globals) and the **guard** |
//! | D. connections and contexts | `Db::connect(..).unscoped`, `TenantCtx::new(victim)`, `sqlx`, `DbConn`, `ConnectionTrait`, `cfg(not(clippy))` | **compiler** (no `connect`, private constructors, drivers not nameable); `Db::open(Default::default())` is refused at run time; **CI** rejects `cfg(clippy)` outside this crate |
//! | crate-level | an entity crate that writes queries, a new dependency on sea-orm in business code, a re-export | **CI** (`.ci/check-deps`), **clippy** fences in the entity crate (`clippy.toml`), **review** |
//!
//! What the [`Unscoped`] hatch still allows, to whoever is handed it: typed reads of any
//! declared table across tenants ([`Unscoped::find`]) and creating a tenant with its
//! first rows ([`Unscoped::create_tenant`]). Its statements pass the guard's structural
//! allow-list (no raw SQL) without the tenant predicate, and are logged with their
//! reason and tables. It cannot run raw SQL or hand out a connection: migrations run on
//! the driver connection before it is given to [`Db::open`].
//!
//! ## The SQL each builder generates (PostgreSQL; SQLite is the same with `?`)
//! | builder | SQL |
//! |---|---|
//! | `db.find::<P>().filter(c)` | `SELECT … FROM "p" WHERE "p"."tenant_id" = $1 AND c` |
//! | `.join::<A>()` | `… INNER JOIN "a" ON "p"."account_id" = "a"."id" AND "a"."tenant_id" = $1 …` |
//! | `.also::<A>()` | `SELECT p.*, a.* … LEFT JOIN "a" ON (…) AND "a"."tenant_id" = $1` |
//! | `.page(Keyset::asc([U, Id]).after(k))` | `… AND ("p"."updated_at", "p"."id") > ($2, $3) ORDER BY … LIMIT n+1` |
//! | `.filter_in(col, sub)` | `… AND "p"."col" IN (SELECT "a"."id" FROM "a" WHERE "a"."tenant_id" = $1 AND …)` |
//! | `db.insert(am)` | `INSERT INTO "p" ("tenant_id", …) VALUES ($1, …) RETURNING …` |
//! | `db.update(am)` | `UPDATE "p" SET … WHERE "p"."tenant_id" = $1 AND "p"."id" = $2 RETURNING …` |
//! | `db.update_many::<P>()` | `UPDATE "p" SET … WHERE "p"."tenant_id" = $1 AND …` |
//! | `db.delete_many::<P>()` | `DELETE FROM "p" WHERE "p"."tenant_id" = $1 AND …` |
//! | `db.find_own::<Tenants>()` | `SELECT … FROM "tenants" WHERE "tenants"."id" = $1` |
//!
//! `tests/tenancy/generated_sql.rs` asserts these texts on both backends.
//!
//! ## Example
//! See `examples/microservice.rs`: an entity module, a business module that never names
//! sea-orm, and a `main` that opens the pool and holds the capabilities.

mod conn;
mod connect;
mod ctx;
mod db;
mod entity;
mod error;
mod expr;
mod guard;
mod registry;
mod select;
#[cfg(feature = "testing")]
pub mod testing;
mod unscoped;
mod write;

pub use conn::unscoped_tables;
pub use connect::Connected;
pub use ctx::{Actor, TenantCtx, TenantId};
pub use db::{Backend, CtxIssuer, Db, TenantDb, TenantHandle, TenantTxn};
pub use entity::{GlobalEntity, Joinable, TenantRoot, TenantScoped};
pub use error::{Error, Result, StorageError};
pub use expr::{ColumnExt, Cond, Order, Value};
pub use select::{Keyset, Page, RowStream, Scoped, ScopedTwo, ScopedWith, Subquery};
pub use unscoped::Unscoped;
pub use write::{DeleteMany, Insert, InsertMany, UpdateMany, UpdateOne};

/// The one sea-orm item business code may name: the typed cell of an entity's active
/// model (`Set(value)` / `NotSet`). It is data — a value of the field's own Rust type,
/// always bound as a parameter — with nothing that builds or runs SQL.
pub use sea_orm::ActiveValue::{self, NotSet, Set};

/// `Set(value)` when a patch names a new value, `NotSet` otherwise.
pub fn set_if<T>(value: Option<T>) -> ActiveValue<T>
where
    T: Into<sea_orm::Value>,
{
    value.map_or(ActiveValue::NotSet, ActiveValue::Set)
}

/// Items the macros expand to. Not API: do not use them directly.
///
/// Inert by design (reachable by any crate that depends on this one, so it holds
/// nothing that builds or runs SQL): the sealing trait and the entity-kind tag. The
/// macros name sea-orm's own items through `::sea_orm`, which only a crate that
/// depends on sea-orm (an entity crate) can resolve.
#[doc(hidden)]
pub mod __private {
    pub use crate::entity::{Kind, Sealed};
}
