//! # tenancy — a query not scoped to exactly one tenant does not compile
//!
//! Every statement this crate runs against a tenant-owned table carries
//! `tenant_id = <the caller's tenant>`: in the `WHERE` of each `SELECT`, `UPDATE` and
//! `DELETE`, in the `ON` clause of every joined table, and stamped into every
//! `INSERT`. The compiler, not code review, enforces it.
//!
//! ## Layout
//! - [`TenantId`], [`Actor`], [`TenantCtx`] (`ctx`): who asks, built at the edge from a
//!   verified credential.
//! - [`TenantScoped`], [`TenantRoot`], [`GlobalEntity`], [`Joinable`] and the macros
//!   [`tenant_scoped!`], [`tenant_root!`], [`global_entity!`] (`entity`): how an
//!   entity opts in.
//! - [`Db`], [`TenantDb`], [`TenantTxn`], [`TenantHandle`] (`db`): the pool and the only
//!   executors.
//! - [`Scoped`], [`ScopedTwo`], [`ScopedWith`], [`Keyset`], [`Page`], [`Subquery`]
//!   (`select`): scoped reads.
//! - [`Insert`], [`InsertMany`], [`UpdateOne`], [`UpdateMany`], [`DeleteMany`]
//!   (`write`): scoped writes.
//! - [`Unscoped`] (`unscoped`): the one escape hatch.
//! - [`Error`]: the crate's one error type.
//!
//! ## The rules, and why they hold
//! 1. **The handle is the only executor.** Every sea-orm execution path
//!    (`all`, `one`, `stream`, `count`, `exec`, `ActiveModel::insert/save/delete`,
//!    transactions, raw statements) needs a `ConnectionTrait`. [`Db`] owns the
//!    `DatabaseConnection` privately, implements no sea-orm trait and has no getter,
//!    so a plain `Entity::find()` built anywhere else has nothing to run on.
//! 2. **Reads start scoped.** [`TenantHandle::find`] only accepts a [`TenantScoped`]
//!    entity and returns a [`Scoped`] whose first condition is the tenant predicate;
//!    every later `filter` is ANDed onto it (an `OR` condition is nested, never
//!    merged). [`Scoped`] exposes no `QuerySelect`/`QueryFilter`/`into_query`, so
//!    the predicate cannot be taken off or a raw join added.
//! 3. **Joins are scoped in the `ON` clause.** `join::<R>()` requires
//!    `R: Joinable` (tenant-owned, the tenant root, or global) and `E: Related<R>`; the
//!    `ON` clause is the relation's own condition (its AND/OR kept) ANDed with
//!    `r.tenant_id = $tenant`. A relation through a junction (`via`) is refused:
//!    many-to-many is two explicit hops (`join::<Junction>().join_from::<Junction, R>()`),
//!    each scoped.
//! 4. **Writes are scoped.** `insert` stamps the tenant column and refuses a row naming
//!    another tenant; `update`/`update_many`/`delete_many` always carry
//!    `tenant_id = $tenant`; the tenant column can never be set by an update; an upsert's
//!    conflict target always includes the tenant column.
//! 5. **Entities opt in by macro.** [`tenant_scoped!`] names `Column::TenantId` itself and
//!    does not compile unless `tenant_id` is a `Uuid` field and part of the primary key. It
//!    also supplies `ActiveModelBehavior` without hooks (a hook receives a raw
//!    connection).
//! 6. **The escape hatch is a value you must be handed.** [`Unscoped`] is created only by
//!    [`Db::connect`], next to the pool, and every use takes a logged reason.
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
//! The tests in `tests/tenancy.rs` assert these texts on both backends.
//!
//! ## What it does not cover (fenced elsewhere)
//! The types cannot see inside an expression. A raw SQL fragment (`Expr::cust*`) or a
//! raw subquery (`in_subquery`, `exists`, `Query::select`) passed to `filter` or
//! `col_expr` could read another tenant's rows. The workspace `clippy.toml` forbids
//! those functions outside this crate and CI runs clippy with `-D warnings`; use
//! [`Scoped::subquery`] with [`Scoped::filter_in`] instead. Likewise `clippy.toml`
//! forbids `Database::connect`, `DatabaseConnection`, `ConnectionTrait` and
//! `TransactionTrait` outside this crate and `migrations`. Implementing the sealed
//! traits by hand through `__private` is not API and is not supported.
//!
//! ## Example
//! See `examples/microservice.rs` for a small service built on this crate.

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

pub use ctx::{Actor, TenantCtx, TenantId};
pub use db::{Backend, Connected, CtxIssuer, Db, TenantDb, TenantHandle, TenantTxn};
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
    pub use crate::entity::Kind;

    /// Seals the crate's traits: implemented only by its macros and handles. A hand
    /// implementation gains nothing: every entity is re-checked by the registry
    /// before its first statement, and every statement by the guard.
    pub trait Sealed {}
}
