//! The server's database, as handlers may reach it: only through
//! [`crate::context::Operation::begin`], for the verified principal's tenant.

use tenancy::{Db, TenantDb};

use crate::auth::Principal;

/// The pool, kept so that a [`TenantDb`] can be opened only by the operation prologue
/// (the one function of `crate::context` that sees [`Tenants::open`]) and only for a
/// verified principal's tenant.
#[derive(Debug, Clone)]
pub struct Tenants(Db);

impl Tenants {
    /// The server's pool.
    pub fn new(db: Db) -> Self {
        Self(db)
    }

    /// The handle of `principal`'s tenant.
    pub(in crate::context) fn open(&self, principal: &Principal) -> TenantDb {
        self.0.tenant(principal.ctx())
    }

    /// Checks that the database answers (readiness).
    ///
    /// # Errors
    /// When it does not.
    pub async fn ping(&self) -> tenancy::Result<()> {
        self.0.ping().await
    }
}
