//! # domain — Tenantry's bounded contexts over the `tenancy` crate
//!
//! The sales-engagement model (identity, accounts, people, activities) as plain async
//! functions over a tenant handle. The API calls exactly one of them per request and
//! converts the result into its views and problem responses.
//!
//! ## Layout
//! - Facades, one per context, each a set of functions:
//!   [`identity`] (tenants, users, API keys), [`accounts`], [`people`], [`activities`],
//!   and [`idempotency`] (a retried POST acts once: [`idempotency::once`] claims the
//!   key, writes and stores the response in one transaction).
//! - [`Writer`] (`store`): the handle every write takes, so that none runs in autocommit.
//! - [`pagination`]: keyset pages ([`pagination::PageRequest`] →
//!   [`pagination::Page`], continued from a [`pagination::Position`] the API signs into
//!   an opaque cursor) and offset pages for compatibility.
//! - [`types`]: validated values ([`types::Email`], [`types::Name`], [`types::Phone`],
//!   [`types::DomainName`], [`types::Slug`], [`types::CustomFields`]).
//! - [`Error`] / [`FieldError`] (`error`): the one error type, HTTP-agnostic.
//! - Private: `entity` (the entities of the `entities` crate and the resource each
//!   names), `store` (generic get, list, versioned update and soft delete, and the
//!   transaction of a write), `time` (the clock).
//!
//! ## The rules
//! 0. **No sea-orm here.** This crate depends on `tenancy` and `entities` only (plus
//!    plain data crates; `.ci/check-deps` enforces the list): queries are built with
//!    tenancy's typed API (`ColumnExt`, `Cond`, `Set`), so raw SQL, raw statements,
//!    connections and sea-orm's query traits cannot be named here.
//! 1. **Every function takes the tenant handle first**: `db: &impl TenantHandle` (a
//!    [`tenancy::TenantDb`] or a [`tenancy::TenantTxn`]) for reads, `db: &impl Writer`
//!    (the same two handles) for writes, so every statement is scoped to the caller's
//!    tenant by the `tenancy` crate, joins included. A write never runs in autocommit:
//!    on a `TenantDb` it opens its own transaction and returns `Ok` only when the commit
//!    did; on a `TenantTxn` it joins the caller's, which the caller commits ([`Writer`]).
//!    Only [`identity::create_tenant`], [`identity::find_api_key_tenant`],
//!    [`identity::find_api_key_by_prefix`] and [`identity::find_tenant_by_slug`] take the
//!    [`tenancy::Unscoped`] escape hatch: they run before a tenant is known. Jobs and seeding receive a handle from their caller;
//!    nothing here can make a `TenantCtx`.
//! 2. **Models never leave the crate.** Entities are `pub(crate)`; callers see domain
//!    types (`Account`, `Person`, …) and inputs (`AccountCreate`, `AccountPatch`, …).
//! 3. **Validate everything before writing anything.** Each operation parses its whole
//!    input first and reports every failing field at once
//!    ([`Error::Validation`] with field paths); then it checks that referenced rows
//!    (`account_id`, `person_id`, `user_id`, `owner_id`) are live rows *of the same
//!    tenant* — another tenant's row is [`Error::NotFound`], never a foreign-key error.
//! 4. **Mutable rows are versioned.** Create sets `version = 1` and
//!    `created_at = updated_at = now`; every change bumps `version` and moves `updated_at`
//!    strictly forwards (`max(now, previous + 1µs)`, guarded by the version read), so a
//!    sync cursor on `(updated_at, id)` never misses a change. Updates and deletes take
//!    an optional expected version; a stale one changes nothing and returns
//!    [`Error::VersionMismatch`] with the current version.
//! 5. **Deletes are soft.** A delete sets `deleted_at` (a tombstone, with a new version
//!    and `updated_at`); gets and normal lists skip tombstones, sync lists
//!    (`include_deleted`) return them.
//! 6. **Time is microseconds.** Timestamps are truncated to what PostgreSQL stores, so
//!    values and cursors compare equal on both backends.

pub mod accounts;
pub mod activities;
mod entity;
mod error;
pub mod idempotency;
pub mod identity;
pub mod pagination;
pub mod people;
mod store;
mod time;
pub mod types;

pub use error::{Error, FieldError, Resource, Result};
pub use store::Writer;
