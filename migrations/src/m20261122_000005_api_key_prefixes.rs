//! `api_key_prefixes`: which tenant each API key's prefix belongs to.
//!
//! Authentication must find a key that does not name its tenant (a legacy
//! `tnt_<prefix>_…` key) before it knows the tenant. On SQLite and plain
//! PostgreSQL `WHERE prefix = $1` on `api_keys` is one index lookup; under Citus,
//! where `api_keys` is distributed by `tenant_id`, it runs on every shard (and the
//! `citus.multi_task_query_log_level = 'error'` net refuses it). This table is the
//! directory that makes it one read on one node: `prefix → tenant_id`, a Citus
//! *reference table* (a copy on every node), after which the key itself is read
//! with the tenant's own handle, on one shard.
//!
//! - Tenant-owned: `PRIMARY KEY (tenant_id, prefix)`, `tenant_id → tenants (id)`;
//!   the domain writes a row with every key it creates, in the same transaction.
//!   A unique index on `(prefix)` alone keeps prefixes unique across tenants (a
//!   reference table can enforce it; `api_keys` on Citus cannot).
//! - No foreign key to `api_keys`: Citus refuses one from a reference table to a
//!   distributed table. Keys are revoked, never deleted, so rows do not dangle.
//! - Filled here from every existing key, so the directory is complete from the
//!   start; the rows are derived data (`SELECT tenant_id, prefix FROM api_keys`), so
//!   reverting this migration and applying it again rebuilds them.
//!
//! Runs outside sea-orm's migration transaction: the table, its index and the
//! backfill commit in one transaction of their own; then, under Citus, the citus
//! step's convergence makes the table a reference table (in a transaction of its
//! own, as every placement change). Each part can run again after an interruption
//! (`IF NOT EXISTS`, `ON CONFLICT DO NOTHING`, the convergence skips what is in
//! place), so `up` finishes the work whatever stopped it.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, TransactionTrait};

use crate::m20261122_000004_citus::{TRANSACTION_SETTINGS, citus_present, distribute};
use crate::{foreign_key, index};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum ApiKeyPrefixes {
    Table,
    TenantId,
    Prefix,
}

#[derive(DeriveIden, Clone, Copy)]
enum ApiKeys {
    Table,
    TenantId,
    Prefix,
}

#[derive(DeriveIden, Clone, Copy)]
enum Tenants {
    Table,
    Id,
}

/// `INSERT INTO api_key_prefixes (tenant_id, prefix) SELECT tenant_id, prefix FROM
/// api_keys WHERE prefix IS NOT NULL ON CONFLICT DO NOTHING`.
///
/// The `WHERE` (true of every row: the column is `NOT NULL`) is for SQLite, which
/// otherwise reads `ON CONFLICT` as the join constraint of the `SELECT`. It binds no
/// parameter on purpose: Citus cannot plan an `INSERT … SELECT` with parameters under
/// `plan_cache_mode = force_generic_plan` ("could not create distributed plan"), as
/// `WHERE $1 = $2` would be.
fn backfill() -> Result<InsertStatement, DbErr> {
    let existing = Query::select()
        .columns([ApiKeys::TenantId, ApiKeys::Prefix])
        .from(ApiKeys::Table)
        .and_where(Expr::col(ApiKeys::Prefix).is_not_null())
        .to_owned();
    Ok(Query::insert()
        .into_table(ApiKeyPrefixes::Table)
        .columns([ApiKeyPrefixes::TenantId, ApiKeyPrefixes::Prefix])
        .select_from(existing)
        .map_err(|e| DbErr::Migration(format!("api_key_prefixes backfill: {e}")))?
        .on_conflict(OnConflict::new().do_nothing().to_owned())
        .to_owned())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let citus = citus_present(manager).await?;
        let txn = manager.get_connection().begin().await?;
        if citus {
            // The new plain table references the `tenants` reference table: with
            // the first setting on, Citus would make it a coordinator-local table;
            // the backfill reads every shard of `api_keys`, which the multi-shard
            // net (if set for the database) would refuse. See the citus step.
            for setting in TRANSACTION_SETTINGS {
                txn.execute_unprepared(setting).await?;
            }
        }
        let schema = SchemaManager::new(&txn);
        schema
            .create_table(
                Table::create()
                    .table(ApiKeyPrefixes::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(ApiKeyPrefixes::TenantId).uuid().not_null())
                    .col(ColumnDef::new(ApiKeyPrefixes::Prefix).string().not_null())
                    .primary_key(
                        Index::create()
                            .col(ApiKeyPrefixes::TenantId)
                            .col(ApiKeyPrefixes::Prefix),
                    )
                    .foreign_key(&mut foreign_key(
                        ApiKeyPrefixes::Table,
                        ApiKeyPrefixes::TenantId,
                        Tenants::Table,
                        Tenants::Id,
                    ))
                    .to_owned(),
            )
            .await?;
        // The lookup by prefix, and prefixes unique across tenants.
        schema
            .create_index(
                index(ApiKeyPrefixes::Table, [ApiKeyPrefixes::Prefix])
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        txn.execute(&backfill()?).await?;
        txn.commit().await?;

        if citus {
            distribute(manager).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Dropping a reference table drops its copies on every node too.
        manager
            .drop_table(
                Table::drop()
                    .table(ApiKeyPrefixes::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await
    }

    fn use_transaction(&self) -> Option<bool> {
        // Its own transaction, then the Citus placement in another (module docs).
        Some(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backfill_has_a_where_before_its_on_conflict_and_binds_nothing() {
        let (sql, values) = backfill()
            .expect("a valid statement")
            .build(PostgresQueryBuilder);
        assert!(
            sql.starts_with(
                r#"INSERT INTO "api_key_prefixes" ("tenant_id", "prefix") SELECT "tenant_id", "prefix" FROM "api_keys" WHERE "prefix" IS NOT NULL ON CONFLICT"#
            ),
            "{sql}"
        );
        assert!(sql.ends_with("DO NOTHING"), "{sql}");
        assert!(values.0.is_empty(), "{values:?}");
    }
}
