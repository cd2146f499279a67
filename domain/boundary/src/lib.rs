//! # boundary — the tenancy boundary, tried as business code would try it
//!
//! No code lives here. `tests/ui` holds attempts to reach another tenant's rows from a
//! crate with exactly the `domain` crate's dependencies (tenancy, the entity
//! declarations, plain data crates — no sea-orm, sea-query or sqlx), each next to a
//! legitimate twin that compiles:
//!
//! | class | what is tried | what refuses it |
//! |---|---|---|
//! | A, raw SQL | `Expr::cust`, `Expr::Custom`, a hand-made `Cond`/`Value`, an `Iden` with raw text, sea-orm's column methods (`like`, `into_expr`) | the dependency graph: nothing that carries SQL text has a name here; tenancy's `Cond`/`Value` have private constructors |
//! | B, raw subqueries | `Query::select`, `in_subquery`, a scoped `Subquery` used as a value or compared with `eq`, sea-orm's own `Select` reached through a generic bound (`E::find()`) and handed over as a subquery or filter | the dependency graph, and types: a `Subquery` goes only into `filter_in`/`filter_not_in`, a `Select` nowhere |
//! | C, entity declarations | `DeriveEntityModel`, `global_entity!`, hand impls of the sealed traits, a `Related` impl | the dependency graph (`::sea_orm` does not resolve), the `EntityTrait` supertrait |
//! | D, connections and contexts | `Db::connect`, `TenantCtx::new`, building `CtxIssuer`/`Unscoped`, the pool inside a handle, a transaction of our own, `sqlx`, a raw `Select` run on a handle | private constructors and fields; no handle implements `ConnectionTrait`; `Db::open` needs a driver connection only sea-orm can make (a default one is refused at run time) |
//!
//! `cargo test -p boundary` runs them (trybuild).
