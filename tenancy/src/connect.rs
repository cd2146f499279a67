//! Start-up: [`Db::open`] wraps the driver connection and hands out the capabilities,
//! once, as a [`Connected`].
//!
//! Kept out of `db` because it builds the escape hatch, which is itself built on the
//! pool: this module depends on `db` and `unscoped`, and neither depends on it.

use sea_orm::DatabaseConnection;

use crate::db::{CtxIssuer, Db};
use crate::error::{Error, Result};
use crate::unscoped::Unscoped;

/// What [`Db::open`] hands out, once, at start-up: the pool for request paths, the
/// capability to mint tenant contexts (for the authentication edge only), and the one
/// escape hatch for cross-tenant work.
#[derive(Debug)]
pub struct Connected {
    /// The pool; request paths turn it into a [`TenantDb`](crate::TenantDb) per request.
    pub db: Db,
    /// Mints [`TenantCtx`](crate::TenantCtx)s from verified credentials: give it to the
    /// auth edge only.
    pub issuer: CtxIssuer,
    /// The cross-tenant capability (authentication lookups, tenant creation, tools).
    pub unscoped: Unscoped,
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
        let db = Db::new(conn);
        Ok(Connected {
            unscoped: Unscoped::new(db.clone()),
            issuer: CtxIssuer::new(),
            db,
        })
    }
}
