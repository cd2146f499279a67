//! Citus: distribute the schema by `tenant_id` when, and only when, the
//! database is PostgreSQL with the `citus` extension installed. Everywhere else
//! (SQLite, plain PostgreSQL) both directions are a logged no-op.
//!
//! The step converges on one target, whatever state it starts from (see
//! CITUS.md, verified on Citus 13.2.2 / PostgreSQL 15):
//!
//! - `tenants` and the tables of [`REPLICATED_TENANT_TABLES`] (`api_key_prefixes`)
//!   are reference tables;
//! - every table of [`TENANT_TABLES`] is hash-distributed by `tenant_id`
//!   (`pg_dist_partition.partmethod = 'h'`), all in `users`' co-location group.
//!
//! A table that does not exist (yet) is left out: a later migration that creates
//! one of these tables runs the same convergence ([`distribute`]) once it has.
//!
//! It works in rounds. Each round reads the real placement of every table from
//! `pg_dist_partition` ([`Placement`]); a table in a state the target cannot be
//! reached from directly (a Citus *local* table, `partmethod = 'n'` — what
//! `create_reference_table('tenants')` turns the tables referencing it into
//! while `citus.enable_local_reference_table_foreign_keys` is on —, a table
//! distributed by another column or in another co-location group, a
//! single-shard or append/range table) is returned to a plain table with
//! `undistribute_table(…, cascade_via_foreign_keys => true)`, which also
//! returns every table connected to it by foreign keys; otherwise the plain
//! tables are made reference / distributed, parents before children, and
//! tables already in place are left alone. The step ends when a round finds
//! the target, and fails with the placements if it cannot get there.
//!
//! Every table's change of placement runs in a transaction of its own, with
//! `SET LOCAL citus.enable_local_reference_table_foreign_keys = off`, so
//! that making `tenants` a reference table does not turn the tables that
//! reference it into coordinator-local tables (which can then not be
//! distributed), `SET LOCAL citus.multi_shard_modify_mode = 'sequential'` and
//! `SET LOCAL citus.multi_task_query_log_level = 'off'` (see
//! [`TRANSACTION_SETTINGS`]). Each such transaction is atomic, so an
//! interruption leaves every table either plain or in its target placement,
//! and running the step again finishes the work.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{DbBackend, QueryResult, Statement, TransactionTrait};

use crate::{GLOBAL_TABLES, REPLICATED_TENANT_TABLES, TENANT_TABLES};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

/// The column every tenant-owned table is distributed by.
const DISTRIBUTION_COLUMN: &str = "tenant_id";

/// Set at the start of every transaction of the step.
///
/// - `enable_local_reference_table_foreign_keys = off`: with it on (Citus'
///   default), creating the `tenants` reference table adds every table with a
///   foreign key to it to Citus' metadata as a coordinator-local table, and
///   `create_distributed_table('users', …)` then fails with "foreign keys from
///   reference tables and local tables to distributed tables are not supported".
/// - `multi_shard_modify_mode = 'sequential'`: inside a transaction block,
///   `create_distributed_table('people', …, colocate_with => 'users')` fails in
///   the default parallel mode with "cannot execute parallel DDL on table
///   "users" after DDL command on reference table "tenants"" (the co-located
///   group has foreign keys to the reference table). Citus runs tables with a
///   foreign key to a reference table sequentially anyway.
/// - `multi_task_query_log_level = 'off'`: the safety net that refuses statements
///   touching several shards (CITUS.md) may be set for the whole database, and
///   moving a table's rows is such a statement — `undistribute_table` fails under
///   it with "multi-task query about to be executed". A migration is deliberate
///   cross-tenant work, so it opts out for its own transactions only.
pub(crate) const TRANSACTION_SETTINGS: [&str; 3] = [
    "SET LOCAL citus.enable_local_reference_table_foreign_keys = off",
    "SET LOCAL citus.multi_shard_modify_mode = 'sequential'",
    "SET LOCAL citus.multi_task_query_log_level = 'off'",
];

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

/// Where Citus keeps a table, from its row in `pg_dist_partition`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Placement {
    /// The table does not exist (yet): one that a later migration creates, and
    /// places itself when it has (see [`distribute`]).
    Absent,
    /// No row: a plain PostgreSQL table on the coordinator.
    Plain,
    /// A reference table (`partmethod = 'n'`, `repmodel = 't'`): a copy on every node.
    Reference,
    /// Hash-distributed (`partmethod = 'h'`) by `column`, in co-location group `colocation`.
    Hash { column: String, colocation: i64 },
    /// Anything else: a Citus local table (`'n'`, `repmodel = 's'`, no
    /// co-location group), a single-shard table, an append/range table.
    Other {
        partmethod: String,
        repmodel: String,
        colocation: i64,
    },
}

impl Placement {
    fn from_catalog(
        partmethod: &str,
        repmodel: &str,
        colocation: i64,
        column: Option<String>,
    ) -> Self {
        match (partmethod, repmodel, column) {
            ("n", "t", _) => Self::Reference,
            ("h", _, Some(column)) => Self::Hash { column, colocation },
            _ => Self::Other {
                partmethod: partmethod.to_owned(),
                repmodel: repmodel.to_owned(),
                colocation,
            },
        }
    }
}

/// The placement of every Tenantry table: the reference tables
/// ([`reference_tables`]), then [`TENANT_TABLES`].
type State = Vec<(&'static str, Placement)>;

/// The tables that become reference tables: [`GLOBAL_TABLES`] (first: the others
/// hold foreign keys to `tenants`), then [`REPLICATED_TENANT_TABLES`].
fn reference_tables() -> impl Iterator<Item = &'static str> {
    GLOBAL_TABLES.into_iter().chain(REPLICATED_TENANT_TABLES)
}

fn is_reference(table: &str) -> bool {
    reference_tables().any(|t| t == table)
}

fn all_tables() -> impl Iterator<Item = &'static str> {
    reference_tables().chain(TENANT_TABLES)
}

async fn placement_of(manager: &SchemaManager<'_>, table: &str) -> Result<Placement, DbErr> {
    let row = manager
        .get_connection()
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT to_regclass($1) IS NOT NULL AS present, \
                    partmethod::text AS partmethod, repmodel::text AS repmodel, \
                    colocationid::bigint AS colocation, \
                    CASE WHEN partmethod = 'h' \
                         THEN column_to_column_name(logicalrelid, partkey) END AS column_name \
             FROM (SELECT 1) AS one \
             LEFT JOIN pg_dist_partition ON logicalrelid = to_regclass($1)",
            [table.into()],
        ))
        .await?;
    let Some(row) = row else {
        return Err(DbErr::Migration(format!(
            "citus: no catalog row for {table}"
        )));
    };
    if !get::<bool>(&row, "present")? {
        return Ok(Placement::Absent);
    }
    let Some(partmethod) = get::<Option<String>>(&row, "partmethod")? else {
        return Ok(Placement::Plain);
    };
    Ok(Placement::from_catalog(
        &partmethod,
        &get::<String>(&row, "repmodel")?,
        get::<i64>(&row, "colocation")?,
        get::<Option<String>>(&row, "column_name")?,
    ))
}

fn get<T: sea_orm_migration::sea_orm::TryGetable>(
    row: &QueryResult,
    col: &str,
) -> Result<T, DbErr> {
    row.try_get("", col)
}

async fn read_state(manager: &SchemaManager<'_>) -> Result<State, DbErr> {
    let mut state = Vec::new();
    for table in all_tables() {
        state.push((table, placement_of(manager, table).await?));
    }
    Ok(state)
}

/// The co-location group of the head of the tenant tables (`users`), when it
/// is distributed as it should be.
fn head_group(state: &State) -> Option<i64> {
    let [head, ..] = TENANT_TABLES;
    state.iter().find_map(|(table, placement)| match placement {
        Placement::Hash { column, colocation }
            if *table == head && column == DISTRIBUTION_COLUMN =>
        {
            Some(*colocation)
        }
        _ => None,
    })
}

/// The first table whose placement cannot be turned into its target directly,
/// and must therefore first be undistributed (see the module docs).
fn misplaced(state: &State) -> Option<&'static str> {
    let group = head_group(state);
    state.iter().find_map(|(table, placement)| {
        let fine = if is_reference(table) {
            matches!(
                placement,
                Placement::Absent | Placement::Plain | Placement::Reference
            )
        } else {
            match placement {
                Placement::Absent | Placement::Plain => true,
                Placement::Hash { column, colocation } => {
                    column == DISTRIBUTION_COLUMN && group.is_none_or(|g| g == *colocation)
                }
                Placement::Reference | Placement::Other { .. } => false,
            }
        };
        (!fine).then_some(*table)
    })
}

/// Whether every table is in its target placement (a table that does not exist is
/// left out).
fn in_target(state: &State) -> bool {
    let group = head_group(state);
    group.is_some()
        && state.iter().all(|(table, placement)| {
            if *placement == Placement::Absent {
                true
            } else if is_reference(table) {
                *placement == Placement::Reference
            } else {
                matches!(placement, Placement::Hash { column, colocation }
                    if column == DISTRIBUTION_COLUMN && Some(*colocation) == group)
            }
        })
}

/// The statements that return `table`, and everything connected to it by
/// foreign keys, to plain tables.
fn reset(table: &str) -> Vec<String> {
    vec![format!(
        "SELECT undistribute_table('{table}', cascade_via_foreign_keys => true)"
    )]
}

/// What turns the plain tables of `state` into their target placements: one
/// list of statements per transaction, in order. Tables already in place are
/// skipped. Meant for a state with nothing [`misplaced`].
fn distribution_plan(state: &State) -> Vec<Vec<String>> {
    let plain = |table: &str| {
        state
            .iter()
            .any(|(t, p)| *t == table && *p == Placement::Plain)
    };
    let mut plan = Vec::new();
    // Reference tables first: distributed tables hold foreign keys to them,
    // and Citus only accepts a foreign key to a table it already manages.
    // (`tenants` before `api_key_prefixes`, which references it.)
    for table in reference_tables() {
        if plain(table) {
            plan.push(vec![format!("SELECT create_reference_table('{table}')")]);
        }
    }
    // Then parents before children, all in `users`' co-location group.
    let [colocation_parent, ..] = TENANT_TABLES;
    for table in TENANT_TABLES {
        if !plain(table) {
            continue;
        }
        let mut step = Vec::new();
        if table == "api_keys" {
            step.extend(PER_TENANT_API_KEY_PREFIX.iter().map(|s| (*s).to_owned()));
        }
        step.push(if table == colocation_parent {
            format!("SELECT create_distributed_table('{table}', '{DISTRIBUTION_COLUMN}')")
        } else {
            format!(
                "SELECT create_distributed_table('{table}', '{DISTRIBUTION_COLUMN}', \
                 colocate_with => '{colocation_parent}')"
            )
        });
        plan.push(step);
    }
    plan
}

/// Citus only enforces uniqueness that includes the distribution column, so
/// the global unique index on `api_keys (prefix)` would make
/// `create_distributed_table('api_keys', ..)` fail. Replace it with a unique
/// index on `(tenant_id, prefix)` and a plain index on `prefix` for the
/// authentication lookup (which then fans out to every shard; see CITUS.md).
/// Runs in the same transaction as `create_distributed_table('api_keys', …)`,
/// and can be run again after an interruption.
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

/// Runs `statements` in one transaction of their own, with
/// [`TRANSACTION_SETTINGS`] set for it.
async fn exec_in_transaction(
    manager: &SchemaManager<'_>,
    statements: &[String],
) -> Result<(), DbErr> {
    let txn = manager.get_connection().begin().await?;
    for setting in TRANSACTION_SETTINGS {
        txn.execute_unprepared(setting).await?;
    }
    for sql in statements {
        tracing::info!(sql = sql.as_str(), "citus");
        txn.execute_unprepared(sql).await?;
    }
    txn.commit().await
}

async fn exec(manager: &SchemaManager<'_>, sql: &str) -> Result<(), DbErr> {
    tracing::info!(sql, "citus");
    manager.get_connection().execute_unprepared(sql).await?;
    Ok(())
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

/// A round resets at most one table or runs one plan; a handful suffices
/// (reset, distribute, check), the rest is headroom.
const MAX_ROUNDS: usize =
    GLOBAL_TABLES.len() + REPLICATED_TENANT_TABLES.len() + TENANT_TABLES.len() + 2;

/// Converges every existing Tenantry table on its target placement (see the module
/// docs). Call it only when [`citus_present`]; each change runs in a transaction of
/// its own, so call it outside one. A migration that adds a table to
/// [`REPLICATED_TENANT_TABLES`] or [`TENANT_TABLES`] calls it after creating the table.
pub(crate) async fn distribute(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    let mut state = read_state(manager).await?;
    for _ in 0..MAX_ROUNDS {
        tracing::info!(?state, "citus placements");
        if in_target(&state) {
            tracing::info!("citus: every table is in place");
            return Ok(());
        }
        if let Some(table) = misplaced(&state) {
            tracing::warn!(
                table,
                "citus: undistributing a misplaced table and its foreign-key group"
            );
            exec_in_transaction(manager, &reset(table)).await?;
        } else {
            for step in distribution_plan(&state) {
                exec_in_transaction(manager, &step).await?;
            }
        }
        state = read_state(manager).await?;
    }
    Err(DbErr::Migration(format!(
        "citus: could not distribute the schema; placements now: {state:?}"
    )))
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if !citus_present(manager).await? {
            tracing::info!("citus extension not present; leaving tables undistributed");
            return Ok(());
        }
        distribute(manager).await
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
        let reference: Vec<&str> = reference_tables().collect();
        for table in TENANT_TABLES.iter().rev().chain(reference.iter().rev()) {
            if !matches!(
                placement_of(manager, table).await?,
                Placement::Plain | Placement::Absent
            ) {
                exec_in_transaction(manager, &reset(table)).await?;
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
        // Each placement change runs in a transaction of its own (see the
        // module docs), so that progress survives an interruption.
        Some(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(colocation: i64) -> Placement {
        Placement::Hash {
            column: DISTRIBUTION_COLUMN.to_owned(),
            colocation,
        }
    }

    fn citus_local() -> Placement {
        Placement::from_catalog("n", "s", 0, None)
    }

    /// Every table plain, then `placements` applied.
    fn state(placements: &[(&str, Placement)]) -> State {
        all_tables()
            .map(|table| {
                let placement = placements
                    .iter()
                    .find(|(t, _)| *t == table)
                    .map_or(Placement::Plain, |(_, p)| p.clone());
                (table, placement)
            })
            .collect()
    }

    fn done() -> State {
        let mut placements = vec![
            ("tenants", Placement::Reference),
            ("api_key_prefixes", Placement::Reference),
        ];
        placements.extend(TENANT_TABLES.map(|t| (t, hash(7))));
        state(&placements)
    }

    fn flat(plan: &[Vec<String>]) -> Vec<String> {
        plan.iter().flatten().cloned().collect()
    }

    fn position(plan: &[String], needle: &str) -> usize {
        plan.iter()
            .position(|s| s.contains(needle))
            .unwrap_or_else(|| panic!("{needle} not in plan: {plan:#?}"))
    }

    #[test]
    fn the_catalog_row_says_which_placement_a_table_has() {
        assert_eq!(
            Placement::from_catalog("n", "t", 1, None),
            Placement::Reference
        );
        assert_eq!(
            Placement::from_catalog("h", "s", 4, Some("tenant_id".into())),
            hash(4)
        );
        assert!(matches!(citus_local(), Placement::Other { .. }));
        // A single-shard distributed table is 'n' too, but with a group.
        assert!(matches!(
            Placement::from_catalog("n", "s", 9, None),
            Placement::Other { .. }
        ));
        assert!(matches!(
            Placement::from_catalog("a", "c", 0, None),
            Placement::Other { .. }
        ));
    }

    #[test]
    fn the_reference_tables_come_first_then_users_then_co_located_children() {
        let plan = distribution_plan(&state(&[]));
        assert_eq!(plan.len(), 8, "one transaction per table");
        assert_eq!(plan[0], vec!["SELECT create_reference_table('tenants')"]);
        assert_eq!(
            plan[1],
            vec!["SELECT create_reference_table('api_key_prefixes')"]
        );
        assert_eq!(
            plan[2],
            vec!["SELECT create_distributed_table('users', 'tenant_id')"]
        );
        let plan = flat(&plan);
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
        assert_eq!(plan.len(), 8 + PER_TENANT_API_KEY_PREFIX.len());
    }

    #[test]
    fn a_table_that_does_not_exist_yet_is_left_out() {
        // The citus step itself runs before the migration that creates
        // `api_key_prefixes`; that migration places the table afterwards.
        let before = state(&[("api_key_prefixes", Placement::Absent)]);
        assert_eq!(misplaced(&before), None);
        let plan = flat(&distribution_plan(&before));
        assert!(
            !plan.iter().any(|s| s.contains("api_key_prefixes")),
            "{plan:#?}"
        );
        assert_eq!(plan.len(), 7 + PER_TENANT_API_KEY_PREFIX.len());

        let mut placed = done();
        placed[1].1 = Placement::Absent;
        assert_eq!(placed[1].0, "api_key_prefixes");
        assert!(in_target(&placed));
        assert!(distribution_plan(&placed).is_empty());

        // Created later, plain: the next run makes it a reference table, alone.
        placed[1].1 = Placement::Plain;
        assert!(!in_target(&placed));
        assert_eq!(misplaced(&placed), None);
        assert_eq!(
            distribution_plan(&placed),
            vec![vec!["SELECT create_reference_table('api_key_prefixes')"]]
        );
    }

    #[test]
    fn the_api_key_prefix_index_is_made_per_tenant_in_the_transaction_that_distributes_api_keys() {
        let plan = distribution_plan(&state(&[]));
        let step = plan
            .iter()
            .find(|step| step.iter().any(|s| s.contains("('api_keys'")))
            .expect("a step for api_keys");
        let per_tenant = position(step, "idx_api_keys_tenant_id_prefix");
        let distribute = position(step, "create_distributed_table('api_keys'");
        assert!(per_tenant < distribute);
        assert!(!step[per_tenant + 2].contains("UNIQUE"));
    }

    #[test]
    fn a_rerun_skips_the_tables_already_in_place() {
        let partial = state(&[
            ("tenants", Placement::Reference),
            ("api_key_prefixes", Placement::Reference),
            ("users", hash(3)),
            ("api_keys", hash(3)),
        ]);
        assert_eq!(misplaced(&partial), None);
        assert!(!in_target(&partial));
        assert_eq!(
            flat(&distribution_plan(&partial)),
            vec![
                "SELECT create_distributed_table('accounts', 'tenant_id', colocate_with => 'users')",
                "SELECT create_distributed_table('people', 'tenant_id', colocate_with => 'users')",
                "SELECT create_distributed_table('activities', 'tenant_id', colocate_with => 'users')",
                "SELECT create_distributed_table('idempotency_keys', 'tenant_id', colocate_with => 'users')",
            ]
        );
        assert!(in_target(&done()));
        assert_eq!(misplaced(&done()), None);
        assert!(distribution_plan(&done()).is_empty());
    }

    #[test]
    fn a_rerun_after_only_the_reference_table_was_made_continues_with_users() {
        let partial = state(&[("tenants", Placement::Reference)]);
        assert_eq!(misplaced(&partial), None);
        let plan = distribution_plan(&partial);
        assert_eq!(
            plan[0],
            vec!["SELECT create_reference_table('api_key_prefixes')"]
        );
        assert_eq!(
            plan[1],
            vec!["SELECT create_distributed_table('users', 'tenant_id')"]
        );
        assert_eq!(plan.len(), 7);
    }

    #[test]
    fn citus_local_tables_are_undistributed_first() {
        // What `create_reference_table('tenants')` leaves behind with
        // `citus.enable_local_reference_table_foreign_keys` on.
        let stuck = state(&[
            ("tenants", Placement::Reference),
            ("users", citus_local()),
            ("api_keys", citus_local()),
            ("accounts", citus_local()),
            ("people", citus_local()),
            ("activities", citus_local()),
        ]);
        assert_eq!(misplaced(&stuck), Some("users"));
        assert_eq!(
            reset("users"),
            vec!["SELECT undistribute_table('users', cascade_via_foreign_keys => true)"]
        );
        assert!(!in_target(&stuck));
    }

    #[test]
    fn a_table_in_the_wrong_group_or_by_the_wrong_column_is_misplaced() {
        let mut other_group = done();
        other_group[7].1 = hash(8);
        assert_eq!(other_group[7].0, "idempotency_keys");
        assert_eq!(misplaced(&other_group), Some("idempotency_keys"));
        assert!(!in_target(&other_group));

        let wrong_column = state(&[(
            "accounts",
            Placement::Hash {
                column: "id".into(),
                colocation: 7,
            },
        )]);
        assert_eq!(misplaced(&wrong_column), Some("accounts"));

        let distributed_tenants = state(&[("tenants", hash(1))]);
        assert_eq!(misplaced(&distributed_tenants), Some("tenants"));

        let reference_users = state(&[("users", Placement::Reference)]);
        assert_eq!(misplaced(&reference_users), Some("users"));

        let distributed_directory = state(&[("api_key_prefixes", hash(7))]);
        assert_eq!(misplaced(&distributed_directory), Some("api_key_prefixes"));
    }
}
