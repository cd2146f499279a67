//! Citus: distribute the schema by `tenant_id` when, and only when, the
//! database is PostgreSQL with the `citus` extension installed. Everywhere else
//! (SQLite, plain PostgreSQL) both directions are a logged no-op.
//!
//! Order matters (see CITUS.md): `tenants` becomes a reference table first,
//! because tenant-owned tables reference it; then `users`; then the other
//! tenant-owned tables in foreign-key order, each co-located with `users` so a
//! tenant's rows of every table live on the same node.
//!
//! Every step skips tables Citus already manages (`pg_dist_partition`), so a
//! run that failed half-way can simply be run again. The steps run outside a
//! transaction: Citus restricts what may follow `create_distributed_table` in
//! one transaction, and each call is atomic on its own.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{DbBackend, Statement};

use crate::{GLOBAL_TABLES, TENANT_TABLES};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

/// The column every tenant-owned table is distributed by.
const DISTRIBUTION_COLUMN: &str = "tenant_id";

/// Whether the database behind `manager` is PostgreSQL with the `citus`
/// extension installed (`CREATE EXTENSION citus` has been run in it).
///
/// Always `false` on SQLite. Errors only if the catalog query itself fails.
pub async fn citus_present(manager: &SchemaManager<'_>) -> Result<bool, DbErr> {
    if manager.get_database_backend() != DbBackend::Postgres {
        return Ok(false);
    }
    let row = manager
        .get_connection()
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT 1 FROM pg_extension WHERE extname = 'citus'",
        ))
        .await?;
    Ok(row.is_some())
}

/// Whether Citus already manages `table` (reference or distributed).
async fn is_citus_table(manager: &SchemaManager<'_>, table: &str) -> Result<bool, DbErr> {
    let row = manager
        .get_connection()
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT 1 FROM pg_dist_partition WHERE logicalrelid = to_regclass($1)",
            [table.into()],
        ))
        .await?;
    Ok(row.is_some())
}

/// Whether an index named `name` exists in the current schema search path.
async fn has_index(manager: &SchemaManager<'_>, name: &str) -> Result<bool, DbErr> {
    let row = manager
        .get_connection()
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT 1 FROM pg_class WHERE relkind = 'i' AND oid = to_regclass($1)",
            [name.into()],
        ))
        .await?;
    Ok(row.is_some())
}

async fn exec(manager: &SchemaManager<'_>, sql: &str) -> Result<(), DbErr> {
    tracing::info!(sql, "citus");
    manager.get_connection().execute_unprepared(sql).await?;
    Ok(())
}

/// The statements that distribute the schema, skipping the tables in
/// `already_managed` (those Citus manages from an earlier, interrupted run).
fn distribution_plan(already_managed: &[&str]) -> Vec<String> {
    let mut plan = Vec::new();
    // Reference tables first: distributed tables hold foreign keys to them,
    // and Citus only accepts a foreign key to a table it already manages.
    for table in GLOBAL_TABLES {
        if !already_managed.contains(&table) {
            plan.push(format!("SELECT create_reference_table('{table}')"));
        }
    }
    // Then parents before children, all in `users`' co-location group.
    let [colocation_parent, ..] = TENANT_TABLES;
    for table in TENANT_TABLES {
        if already_managed.contains(&table) {
            continue;
        }
        if table == "api_keys" {
            plan.extend(PER_TENANT_API_KEY_PREFIX.iter().map(|s| (*s).to_owned()));
        }
        plan.push(if table == colocation_parent {
            format!("SELECT create_distributed_table('{table}', '{DISTRIBUTION_COLUMN}')")
        } else {
            format!(
                "SELECT create_distributed_table('{table}', '{DISTRIBUTION_COLUMN}', \
                 colocate_with => '{colocation_parent}')"
            )
        });
    }
    plan
}

/// Citus only enforces uniqueness that includes the distribution column, so
/// the global unique index on `api_keys (prefix)` would make
/// `create_distributed_table('api_keys', ..)` fail. Replace it with a unique
/// index on `(tenant_id, prefix)` and a plain index on `prefix` for the
/// authentication lookup (which then fans out to every shard; see CITUS.md).
/// Each statement can be re-run after an interruption.
const PER_TENANT_API_KEY_PREFIX: [&str; 3] = [
    "CREATE UNIQUE INDEX IF NOT EXISTS idx_api_keys_tenant_id_prefix \
     ON api_keys (tenant_id, prefix)",
    "DROP INDEX IF EXISTS idx_api_keys_prefix",
    "CREATE INDEX idx_api_keys_prefix ON api_keys (prefix)",
];

/// Undoes [`PER_TENANT_API_KEY_PREFIX`] once `api_keys` is a plain table again.
const GLOBAL_API_KEY_PREFIX: [&str; 3] = [
    "DROP INDEX IF EXISTS idx_api_keys_prefix",
    "CREATE UNIQUE INDEX idx_api_keys_prefix ON api_keys (prefix)",
    "DROP INDEX idx_api_keys_tenant_id_prefix",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if !citus_present(manager).await? {
            tracing::info!("citus extension not present; leaving tables undistributed");
            return Ok(());
        }
        let mut already_managed = Vec::new();
        for table in GLOBAL_TABLES.into_iter().chain(TENANT_TABLES) {
            if is_citus_table(manager, table).await? {
                already_managed.push(table);
            }
        }
        for sql in distribution_plan(&already_managed) {
            exec(manager, &sql).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if !citus_present(manager).await? {
            tracing::info!("citus extension not present; nothing to undistribute");
            return Ok(());
        }

        // Children first. `cascade_via_foreign_keys` undistributes the whole
        // foreign-key-connected group at once (Citus refuses to undistribute
        // one table of a connected group alone), so this checks the catalog
        // before each table instead of planning ahead: later tables are
        // usually already undistributed by then.
        for table in TENANT_TABLES.iter().rev().chain(GLOBAL_TABLES.iter()) {
            if is_citus_table(manager, table).await? {
                exec(
                    manager,
                    &format!(
                        "SELECT undistribute_table('{table}', cascade_via_foreign_keys => true)"
                    ),
                )
                .await?;
            }
        }

        if has_index(manager, "idx_api_keys_tenant_id_prefix").await? {
            for sql in GLOBAL_API_KEY_PREFIX {
                exec(manager, sql).await?;
            }
        }
        Ok(())
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn position(plan: &[String], needle: &str) -> usize {
        plan.iter()
            .position(|s| s.contains(needle))
            .unwrap_or_else(|| panic!("{needle} not in plan: {plan:#?}"))
    }

    #[test]
    fn the_reference_table_comes_first_then_users_then_co_located_children() {
        let plan = distribution_plan(&[]);
        assert_eq!(plan[0], "SELECT create_reference_table('tenants')");
        assert_eq!(
            plan[1],
            "SELECT create_distributed_table('users', 'tenant_id')"
        );
        let mut last = position(&plan, "create_distributed_table('users'");
        for table in [
            "api_keys",
            "accounts",
            "people",
            "activities",
            "idempotency_keys",
        ] {
            let at = position(&plan, &format!("create_distributed_table('{table}'"));
            assert!(at > last, "{table} distributed out of foreign-key order");
            assert!(
                plan[at].ends_with(&format!(
                    "'{table}', 'tenant_id', colocate_with => 'users')"
                )),
                "{}",
                plan[at]
            );
            last = at;
        }
        assert_eq!(plan.len(), 7 + PER_TENANT_API_KEY_PREFIX.len());
    }

    #[test]
    fn the_api_key_prefix_index_is_made_per_tenant_before_api_keys_is_distributed() {
        let plan = distribution_plan(&[]);
        let per_tenant = position(&plan, "idx_api_keys_tenant_id_prefix");
        let distribute = position(&plan, "create_distributed_table('api_keys'");
        assert!(per_tenant < distribute);
        assert!(!plan[per_tenant + 2].contains("UNIQUE"));
    }

    #[test]
    fn a_rerun_skips_the_tables_citus_already_manages() {
        let plan = distribution_plan(&["tenants", "users", "api_keys"]);
        assert_eq!(
            plan,
            vec![
                "SELECT create_distributed_table('accounts', 'tenant_id', colocate_with => 'users')",
                "SELECT create_distributed_table('people', 'tenant_id', colocate_with => 'users')",
                "SELECT create_distributed_table('activities', 'tenant_id', colocate_with => 'users')",
                "SELECT create_distributed_table('idempotency_keys', 'tenant_id', colocate_with => 'users')",
            ]
        );
        let everything: Vec<&str> = GLOBAL_TABLES.into_iter().chain(TENANT_TABLES).collect();
        assert!(distribution_plan(&everything).is_empty());
    }
}
