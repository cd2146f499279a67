//! The escape hatch: cross-tenant work, named, narrow and logged.

use sea_orm::{DatabaseConnection, EntityTrait, Select};

use crate::Result;

/// The capability to run statements that are not scoped to one tenant.
///
/// Needed by: migrations, authentication (finding an API key by its prefix before the
/// tenant is known), creating tenants, operator tooling. Request paths never hold one.
///
/// Only [`Db::connect`](crate::Db::connect) creates it (its field is private and it is
/// neither `Clone` nor `Default`), so every holder received it, explicitly, from the
/// place that opened the database: grep for `Unscoped` to audit them all. Every use
/// takes a reason, logged at `info` on the `tenancy::unscoped` target.
#[derive(Debug)]
pub struct Unscoped {
    conn: DatabaseConnection,
}

impl Unscoped {
    pub(crate) fn new(conn: DatabaseConnection) -> Self {
        Self { conn }
    }

    fn log(reason: &str, what: &str) {
        tracing::info!(target: "tenancy::unscoped", reason, what, "unscoped database access");
    }

    /// Runs an unscoped select and returns all rows.
    pub async fn all<E: EntityTrait>(
        &self,
        reason: &str,
        select: Select<E>,
    ) -> Result<Vec<E::Model>> {
        Self::log(reason, E::default().table_name());
        Ok(select.all(&self.conn).await?)
    }

    /// Runs an unscoped select and returns the first row.
    pub async fn one<E: EntityTrait>(
        &self,
        reason: &str,
        select: Select<E>,
    ) -> Result<Option<E::Model>> {
        Self::log(reason, E::default().table_name());
        Ok(select.one(&self.conn).await?)
    }

    /// The raw connection, for migrations and operator tools that need all of sea-orm.
    pub fn connection(&self, reason: &str) -> &DatabaseConnection {
        Self::log(reason, "connection");
        &self.conn
    }
}
