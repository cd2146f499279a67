//! The schema on real databases: SQLite (in memory, always) and PostgreSQL
//! (a fresh database per test, when `DATABASE_URL` points at a server).
//!
//! Every check is one async function taking a fresh, empty database; the
//! `on_both!` macro turns it into a `…_on_sqlite` and a `…_on_postgres` test.
//! Without `DATABASE_URL` the PostgreSQL tests return early with a note,
//! except when `CI=true`, where they fail: CI must not silently skip them.
//!
//! With `CITUS_URL` (a database on a Citus coordinator, see CITUS.md) one more
//! test distributes the schema there, in a schema of its own, and checks that
//! the Citus step converges from a fresh schema, a second run and the broken
//! states reported against it, and that a legacy API key is routed on one node;
//! it passes with the multi-shard net (`citus.multi_task_query_log_level =
//! 'error'`) set for the database. Without `CITUS_URL` it says so and passes.

use std::future::Future;

use migrations::{GLOBAL_TABLES, Migrator, REPLICATED_TENANT_TABLES, TENANT_TABLES, citus_present};
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, QueryResult,
    Statement, TransactionTrait,
};
use uuid::Uuid;

// ---------------------------------------------------------------------------
// Databases

async fn on_sqlite<F, Fut>(check: F)
where
    F: FnOnce(DatabaseConnection) -> Fut,
    Fut: Future<Output = ()>,
{
    // sea-orm gives an in-memory SQLite database a one-connection pool, so
    // every statement of the test sees the same database.
    let db = Database::connect("sqlite::memory:")
        .await
        .expect("connect to in-memory SQLite");
    check(db).await;
}

/// A database created for one test on the server named by `DATABASE_URL`.
struct FreshPostgres {
    admin: DatabaseConnection,
    name: String,
    db: DatabaseConnection,
}

impl FreshPostgres {
    async fn create() -> Option<Self> {
        let url = match std::env::var("DATABASE_URL") {
            Ok(url) if !url.is_empty() => url,
            _ => {
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "CI=true but DATABASE_URL is not set: the PostgreSQL tests must run in CI"
                );
                eprintln!("DATABASE_URL not set: skipping this PostgreSQL test");
                return None;
            }
        };
        assert!(
            url.starts_with("postgres://") || url.starts_with("postgresql://"),
            "DATABASE_URL must be a PostgreSQL URL, got {url}"
        );
        let admin = Database::connect(&url)
            .await
            .expect("connect to DATABASE_URL");
        let name = format!("mig_{}", Uuid::now_v7().simple());
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create a fresh database");
        let db = Database::connect(&url_with_database(&url, &name))
            .await
            .expect("connect to the fresh database");
        Some(Self { admin, name, db })
    }

    async fn drop_database(self) {
        self.db.close().await.expect("close the test database pool");
        self.admin
            .execute_unprepared(&format!("DROP DATABASE {} WITH (FORCE)", self.name))
            .await
            .expect("drop the test database");
    }
}

/// `postgres://u@h:5432/test?x=y` → `postgres://u@h:5432/<name>?x=y`.
fn url_with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{base}/{name}?{query}"),
        None => format!("{base}/{name}"),
    }
}

async fn on_postgres<F, Fut>(check: F)
where
    F: FnOnce(DatabaseConnection) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(pg) = FreshPostgres::create().await else {
        return;
    };
    // Run the check on its own task so that a failed assertion still lets us
    // drop the database, then re-raise it.
    let outcome = tokio::spawn(check(pg.db.clone())).await;
    pg.drop_database().await;
    if let Err(error) = outcome {
        match error.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(error) => panic!("check task failed: {error}"),
        }
    }
}

macro_rules! on_both {
    ($check:ident => $sqlite:ident, $postgres:ident) => {
        #[tokio::test]
        async fn $sqlite() {
            on_sqlite($check).await;
        }

        #[tokio::test]
        async fn $postgres() {
            on_postgres($check).await;
        }
    };
}

// ---------------------------------------------------------------------------
// Helpers

fn all_tables() -> impl Iterator<Item = &'static str> {
    GLOBAL_TABLES
        .into_iter()
        .chain(REPLICATED_TENANT_TABLES)
        .chain(TENANT_TABLES)
}

/// Every tenant-owned table: distributed under Citus, or replicated.
fn tenant_owned_tables() -> impl Iterator<Item = &'static str> {
    TENANT_TABLES.into_iter().chain(REPLICATED_TENANT_TABLES)
}

/// The number of migrations; the last one, `m20261122_000005_api_key_prefixes`,
/// comes after the Citus step.
const MIGRATIONS: usize = 5;

/// How many migrations come before `m20261122_000005_api_key_prefixes`.
const BEFORE_THE_DIRECTORY: u32 = 4;

/// Reverts the Citus step: it and the migration after it (whose table is derived
/// data, rebuilt by the next `up`).
async fn down_through_the_citus_step(db: &DatabaseConnection) {
    Migrator::down(db, Some(2))
        .await
        .expect("revert the api_key_prefixes and citus steps");
}

async fn up(db: &DatabaseConnection) {
    Migrator::up(db, None).await.expect("apply all migrations");
}

async fn rows(db: &DatabaseConnection, sql: &str) -> Vec<QueryResult> {
    db.query_all_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn text(row: &QueryResult, col: &str) -> String {
    row.try_get::<String>("", col)
        .unwrap_or_else(|e| panic!("column {col}: {e}"))
}

fn int(row: &QueryResult, col: &str) -> i64 {
    row.try_get::<i64>("", col)
        .unwrap_or_else(|e| panic!("column {col}: {e}"))
}

async fn insert(
    db: &DatabaseConnection,
    table: &'static str,
    cols: &[&'static str],
    values: Vec<Expr>,
) -> Result<(), DbErr> {
    let stmt = Query::insert()
        .into_table(table)
        .columns(cols.iter().copied())
        .values_panic(values)
        .to_owned();
    db.execute(&stmt).await.map(|_| ())
}

fn now() -> Expr {
    Expr::current_timestamp()
}

fn empty_json() -> Expr {
    Expr::cust("'{}'")
}

async fn tenant(db: &DatabaseConnection) -> Uuid {
    let id = Uuid::now_v7();
    insert(
        db,
        "tenants",
        &["id", "slug", "name", "created_at"],
        vec![
            id.into(),
            format!("t-{}", id.simple()).into(),
            "Acme".into(),
            now(),
        ],
    )
    .await
    .expect("insert a tenant");
    id
}

async fn account(db: &DatabaseConnection, tenant_id: Uuid) -> Uuid {
    let id = Uuid::now_v7();
    insert(
        db,
        "accounts",
        &[
            "tenant_id",
            "id",
            "name",
            "custom_fields",
            "created_at",
            "updated_at",
            "version",
        ],
        vec![
            tenant_id.into(),
            id.into(),
            "Initech".into(),
            empty_json(),
            now(),
            now(),
            1i64.into(),
        ],
    )
    .await
    .expect("insert an account");
    id
}

async fn person(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    account_id: Option<Uuid>,
) -> Result<Uuid, DbErr> {
    let id = Uuid::now_v7();
    insert(
        db,
        "people",
        &[
            "tenant_id",
            "id",
            "account_id",
            "first_name",
            "last_name",
            "stage",
            "created_at",
            "updated_at",
            "version",
        ],
        vec![
            tenant_id.into(),
            id.into(),
            account_id.into(),
            "Ada".into(),
            "Lovelace".into(),
            "lead".into(),
            now(),
            now(),
            1i64.into(),
        ],
    )
    .await?;
    Ok(id)
}

async fn user(db: &DatabaseConnection, tenant_id: Uuid, email: &str) -> Result<Uuid, DbErr> {
    let id = Uuid::now_v7();
    insert(
        db,
        "users",
        &[
            "tenant_id",
            "id",
            "email",
            "name",
            "role",
            "created_at",
            "updated_at",
            "version",
        ],
        vec![
            tenant_id.into(),
            id.into(),
            email.into(),
            "Grace".into(),
            "admin".into(),
            now(),
            now(),
            1i64.into(),
        ],
    )
    .await?;
    Ok(id)
}

async fn api_key(db: &DatabaseConnection, tenant_id: Uuid, prefix: &str) -> Result<Uuid, DbErr> {
    let id = Uuid::now_v7();
    insert(
        db,
        "api_keys",
        &[
            "tenant_id",
            "id",
            "name",
            "prefix",
            "secret_hash",
            "scopes",
            "created_at",
        ],
        vec![
            tenant_id.into(),
            id.into(),
            "ci".into(),
            prefix.into(),
            "hmac".into(),
            Expr::cust("'[]'"),
            now(),
        ],
    )
    .await?;
    Ok(id)
}

// ---------------------------------------------------------------------------
// The documented schema

#[derive(Clone, Copy, Debug)]
enum Ty {
    Uuid,
    Str,
    Text,
    Int,
    BigInt,
    Tstz,
    Json,
}

impl Ty {
    /// The declared type as the backend's catalog reports it.
    fn on(self, backend: DbBackend) -> &'static str {
        match (backend, self) {
            (DbBackend::Sqlite, Ty::Uuid) => "uuid_text",
            (DbBackend::Sqlite, Ty::Str) => "varchar",
            (DbBackend::Sqlite, Ty::Text) => "text",
            (DbBackend::Sqlite, Ty::Int | Ty::BigInt) => "integer",
            (DbBackend::Sqlite, Ty::Tstz) => "timestamp_with_timezone_text",
            (DbBackend::Sqlite, Ty::Json) => "jsonb_text",
            (_, Ty::Uuid) => "uuid",
            (_, Ty::Str) => "character varying",
            (_, Ty::Text) => "text",
            (_, Ty::Int) => "integer",
            (_, Ty::BigInt) => "bigint",
            (_, Ty::Tstz) => "timestamp with time zone",
            (_, Ty::Json) => "jsonb",
        }
    }
}

const NULL: bool = true;
const NOT_NULL: bool = false;

type Columns = &'static [(&'static str, Ty, bool)];

/// Every table, its columns in order, their types and nullability.
const SCHEMA: &[(&str, Columns)] = &[
    (
        "tenants",
        &[
            ("id", Ty::Uuid, NOT_NULL),
            ("slug", Ty::Str, NOT_NULL),
            ("name", Ty::Str, NOT_NULL),
            ("plan", Ty::Str, NOT_NULL),
            ("created_at", Ty::Tstz, NOT_NULL),
        ],
    ),
    (
        "users",
        &[
            ("tenant_id", Ty::Uuid, NOT_NULL),
            ("id", Ty::Uuid, NOT_NULL),
            ("email", Ty::Str, NOT_NULL),
            ("name", Ty::Str, NOT_NULL),
            ("role", Ty::Str, NOT_NULL),
            ("created_at", Ty::Tstz, NOT_NULL),
            ("updated_at", Ty::Tstz, NOT_NULL),
            ("version", Ty::BigInt, NOT_NULL),
            ("deleted_at", Ty::Tstz, NULL),
        ],
    ),
    (
        "api_keys",
        &[
            ("tenant_id", Ty::Uuid, NOT_NULL),
            ("id", Ty::Uuid, NOT_NULL),
            ("name", Ty::Str, NOT_NULL),
            ("prefix", Ty::Str, NOT_NULL),
            ("secret_hash", Ty::Str, NOT_NULL),
            ("scopes", Ty::Json, NOT_NULL),
            ("created_by", Ty::Uuid, NULL),
            ("created_at", Ty::Tstz, NOT_NULL),
            ("last_used_at", Ty::Tstz, NULL),
            ("revoked_at", Ty::Tstz, NULL),
        ],
    ),
    (
        "accounts",
        &[
            ("tenant_id", Ty::Uuid, NOT_NULL),
            ("id", Ty::Uuid, NOT_NULL),
            ("name", Ty::Str, NOT_NULL),
            ("domain", Ty::Str, NULL),
            ("owner_id", Ty::Uuid, NULL),
            ("custom_fields", Ty::Json, NOT_NULL),
            ("created_at", Ty::Tstz, NOT_NULL),
            ("updated_at", Ty::Tstz, NOT_NULL),
            ("version", Ty::BigInt, NOT_NULL),
            ("deleted_at", Ty::Tstz, NULL),
        ],
    ),
    (
        "people",
        &[
            ("tenant_id", Ty::Uuid, NOT_NULL),
            ("id", Ty::Uuid, NOT_NULL),
            ("account_id", Ty::Uuid, NULL),
            ("first_name", Ty::Str, NOT_NULL),
            ("last_name", Ty::Str, NOT_NULL),
            ("email", Ty::Str, NULL),
            ("title", Ty::Str, NULL),
            ("phone", Ty::Str, NULL),
            ("stage", Ty::Str, NOT_NULL),
            ("created_at", Ty::Tstz, NOT_NULL),
            ("updated_at", Ty::Tstz, NOT_NULL),
            ("version", Ty::BigInt, NOT_NULL),
            ("deleted_at", Ty::Tstz, NULL),
        ],
    ),
    (
        "activities",
        &[
            ("tenant_id", Ty::Uuid, NOT_NULL),
            ("id", Ty::Uuid, NOT_NULL),
            ("person_id", Ty::Uuid, NOT_NULL),
            ("user_id", Ty::Uuid, NULL),
            ("kind", Ty::Str, NOT_NULL),
            ("subject", Ty::Str, NOT_NULL),
            ("body", Ty::Text, NULL),
            ("occurred_at", Ty::Tstz, NOT_NULL),
            ("created_at", Ty::Tstz, NOT_NULL),
            ("updated_at", Ty::Tstz, NOT_NULL),
            ("version", Ty::BigInt, NOT_NULL),
            ("deleted_at", Ty::Tstz, NULL),
        ],
    ),
    (
        "api_key_prefixes",
        &[
            ("tenant_id", Ty::Uuid, NOT_NULL),
            ("prefix", Ty::Str, NOT_NULL),
        ],
    ),
    (
        "idempotency_keys",
        &[
            ("tenant_id", Ty::Uuid, NOT_NULL),
            ("key", Ty::Str, NOT_NULL),
            ("credential_id", Ty::Str, NOT_NULL),
            ("request_hash", Ty::Str, NOT_NULL),
            ("response_status", Ty::Int, NULL),
            ("response_body", Ty::Text, NULL),
            ("created_at", Ty::Tstz, NOT_NULL),
            ("expires_at", Ty::Tstz, NOT_NULL),
        ],
    ),
];

/// Primary keys, in column order.
const PRIMARY_KEYS: &[(&str, &[&str])] = &[
    ("tenants", &["id"]),
    ("users", &["tenant_id", "id"]),
    ("api_keys", &["tenant_id", "id"]),
    ("accounts", &["tenant_id", "id"]),
    ("people", &["tenant_id", "id"]),
    ("activities", &["tenant_id", "id"]),
    ("idempotency_keys", &["tenant_id", "credential_id", "key"]),
    ("api_key_prefixes", &["tenant_id", "prefix"]),
];

/// Foreign keys: (table, columns, parent table, parent columns).
const FOREIGN_KEYS: &[(&str, &[&str], &str, &[&str])] = &[
    ("users", &["tenant_id"], "tenants", &["id"]),
    ("api_keys", &["tenant_id"], "tenants", &["id"]),
    (
        "api_keys",
        &["tenant_id", "created_by"],
        "users",
        &["tenant_id", "id"],
    ),
    ("accounts", &["tenant_id"], "tenants", &["id"]),
    (
        "accounts",
        &["tenant_id", "owner_id"],
        "users",
        &["tenant_id", "id"],
    ),
    (
        "people",
        &["tenant_id", "account_id"],
        "accounts",
        &["tenant_id", "id"],
    ),
    (
        "activities",
        &["tenant_id", "person_id"],
        "people",
        &["tenant_id", "id"],
    ),
    (
        "activities",
        &["tenant_id", "user_id"],
        "users",
        &["tenant_id", "id"],
    ),
    ("api_key_prefixes", &["tenant_id"], "tenants", &["id"]),
];

/// Secondary indexes: (table, name, unique).
const INDEXES: &[(&str, &str, bool)] = &[
    ("tenants", "idx_tenants_slug", true),
    ("users", "idx_users_tenant_id_email", true),
    ("users", "idx_users_tenant_id_updated_at_id", false),
    ("api_keys", "idx_api_keys_prefix", true),
    ("accounts", "idx_accounts_tenant_id_updated_at_id", false),
    ("accounts", "idx_accounts_tenant_id_domain", false),
    ("accounts", "idx_accounts_tenant_id_name", false),
    ("people", "idx_people_tenant_id_updated_at_id", false),
    ("people", "idx_people_tenant_id_account_id", false),
    ("people", "idx_people_tenant_id_email", false),
    ("people", "idx_people_tenant_id_stage", false),
    (
        "activities",
        "idx_activities_tenant_id_updated_at_id",
        false,
    ),
    (
        "activities",
        "idx_activities_tenant_id_person_id_occurred_at",
        false,
    ),
    ("activities", "idx_activities_tenant_id_kind", false),
    ("activities", "idx_activities_tenant_id_occurred_at", false),
    (
        "idempotency_keys",
        "idx_idempotency_keys_tenant_id_expires_at",
        false,
    ),
    ("api_key_prefixes", "idx_api_key_prefixes_prefix", true),
];

// ---------------------------------------------------------------------------
// Catalog introspection, per backend

/// (column, declared type, nullable) in column order.
async fn columns_of(db: &DatabaseConnection, table: &str) -> Vec<(String, String, bool)> {
    match db.get_database_backend() {
        DbBackend::Sqlite => rows(db, &format!("PRAGMA table_info({table})"))
            .await
            .iter()
            // SQLite reports the types it knows (INTEGER, TEXT) in upper case.
            .map(|r| {
                let ty = text(r, "type").to_lowercase();
                (text(r, "name"), ty, int(r, "notnull") == 0)
            })
            .collect(),
        _ => rows(
            db,
            &format!(
                "SELECT column_name::text AS name, data_type::text AS type, \
                 is_nullable::text AS nullable FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = '{table}' \
                 ORDER BY ordinal_position"
            ),
        )
        .await
        .iter()
        .map(|r| {
            (
                text(r, "name"),
                text(r, "type"),
                text(r, "nullable") == "YES",
            )
        })
        .collect(),
    }
}

async fn primary_key_of(db: &DatabaseConnection, table: &str) -> Vec<String> {
    match db.get_database_backend() {
        DbBackend::Sqlite => {
            let mut pk: Vec<(i64, String)> = rows(db, &format!("PRAGMA table_info({table})"))
                .await
                .iter()
                .filter(|r| int(r, "pk") > 0)
                .map(|r| (int(r, "pk"), text(r, "name")))
                .collect();
            pk.sort();
            pk.into_iter().map(|(_, name)| name).collect()
        }
        _ => rows(
            db,
            &format!(
                "SELECT a.attname::text AS name FROM pg_constraint c \
                 CROSS JOIN LATERAL unnest(c.conkey) WITH ORDINALITY AS k(attnum, pos) \
                 JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum \
                 WHERE c.conrelid = '{table}'::regclass AND c.contype = 'p' ORDER BY k.pos"
            ),
        )
        .await
        .iter()
        .map(|r| text(r, "name"))
        .collect(),
    }
}

/// (columns, parent table, parent columns), sorted.
async fn foreign_keys_of(
    db: &DatabaseConnection,
    table: &str,
) -> Vec<(Vec<String>, String, Vec<String>)> {
    let mut fks: Vec<(Vec<String>, String, Vec<String>)> = Vec::new();
    match db.get_database_backend() {
        DbBackend::Sqlite => {
            // One row per column; `id` groups a key, `seq` orders its columns.
            let mut by_id: Vec<(i64, i64, String, String, String)> =
                rows(db, &format!("PRAGMA foreign_key_list({table})"))
                    .await
                    .iter()
                    .map(|r| {
                        (
                            int(r, "id"),
                            int(r, "seq"),
                            text(r, "table"),
                            text(r, "from"),
                            text(r, "to"),
                        )
                    })
                    .collect();
            by_id.sort();
            let mut current = None;
            for (id, _, parent, from, to) in by_id {
                if current != Some(id) {
                    current = Some(id);
                    fks.push((Vec::new(), parent, Vec::new()));
                }
                if let Some(fk) = fks.last_mut() {
                    fk.0.push(from);
                    fk.2.push(to);
                }
            }
        }
        _ => {
            let found = rows(
                db,
                &format!(
                    "SELECT c.conname::text AS name, c.confrelid::regclass::text AS parent, \
                     a.attname::text AS col, pa.attname::text AS parent_col \
                     FROM pg_constraint c \
                     CROSS JOIN LATERAL unnest(c.conkey, c.confkey) \
                         WITH ORDINALITY AS k(attnum, parent_attnum, pos) \
                     JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum \
                     JOIN pg_attribute pa \
                         ON pa.attrelid = c.confrelid AND pa.attnum = k.parent_attnum \
                     WHERE c.conrelid = '{table}'::regclass AND c.contype = 'f' \
                     ORDER BY c.conname, k.pos"
                ),
            )
            .await;
            let mut current = None;
            for r in &found {
                let name = text(r, "name");
                if current.as_ref() != Some(&name) {
                    current = Some(name);
                    fks.push((Vec::new(), text(r, "parent"), Vec::new()));
                }
                if let Some(fk) = fks.last_mut() {
                    fk.0.push(text(r, "col"));
                    fk.2.push(text(r, "parent_col"));
                }
            }
        }
    }
    fks.sort();
    fks
}

/// (index name, unique) for the secondary indexes Tenantry created.
async fn indexes_of(db: &DatabaseConnection, table: &str) -> Vec<(String, bool)> {
    let mut found: Vec<(String, bool)> = match db.get_database_backend() {
        DbBackend::Sqlite => rows(db, &format!("PRAGMA index_list({table})"))
            .await
            .iter()
            .map(|r| (text(r, "name"), int(r, "unique") == 1))
            .collect(),
        _ => rows(
            db,
            &format!(
                "SELECT i.relname::text AS name, x.indisunique AS is_unique \
                 FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid \
                 WHERE x.indrelid = '{table}'::regclass"
            ),
        )
        .await
        .iter()
        .map(|r| {
            let unique = r
                .try_get::<bool>("", "is_unique")
                .unwrap_or_else(|e| panic!("is_unique: {e}"));
            (text(r, "name"), unique)
        })
        .collect(),
    };
    found.retain(|(name, _)| name.starts_with("idx_"));
    found.sort();
    found
}

// ---------------------------------------------------------------------------
// Checks

async fn migrations_create_every_table(db: DatabaseConnection) {
    up(&db).await;
    let manager = SchemaManager::new(&db);
    for table in all_tables() {
        assert!(
            manager.has_table(table).await.expect("has_table"),
            "{table} missing"
        );
    }
    let pending = Migrator::get_pending_migrations(&db)
        .await
        .expect("pending migrations");
    assert!(pending.is_empty(), "migrations left pending");
    assert_eq!(
        Migrator::get_applied_migrations(&db)
            .await
            .expect("applied migrations")
            .len(),
        MIGRATIONS
    );
}
on_both!(migrations_create_every_table =>
    migrations_create_every_table_on_sqlite,
    migrations_create_every_table_on_postgres);

async fn migrations_revert_every_table_and_apply_again(db: DatabaseConnection) {
    up(&db).await;
    // A second `up` finds nothing pending and changes nothing.
    up(&db).await;

    Migrator::down(&db, None)
        .await
        .expect("revert all migrations");
    let manager = SchemaManager::new(&db);
    for table in all_tables() {
        assert!(
            !manager.has_table(table).await.expect("has_table"),
            "{table} left behind by down"
        );
    }
    assert!(
        Migrator::get_applied_migrations(&db)
            .await
            .expect("applied migrations")
            .is_empty()
    );

    up(&db).await;
    for table in all_tables() {
        assert!(
            manager.has_table(table).await.expect("has_table"),
            "{table} missing after the second up"
        );
    }
    // And the schema works after the round trip.
    let t = tenant(&db).await;
    let a = account(&db, t).await;
    person(&db, t, Some(a))
        .await
        .expect("insert after round trip");
}
on_both!(migrations_revert_every_table_and_apply_again =>
    migrations_revert_every_table_and_apply_again_on_sqlite,
    migrations_revert_every_table_and_apply_again_on_postgres);

async fn every_table_has_exactly_the_documented_columns(db: DatabaseConnection) {
    up(&db).await;
    let backend = db.get_database_backend();
    for (table, columns) in SCHEMA {
        let expected: Vec<(String, String, bool)> = columns
            .iter()
            .map(|(name, ty, nullable)| ((*name).to_owned(), ty.on(backend).to_owned(), *nullable))
            .collect();
        assert_eq!(columns_of(&db, table).await, expected, "columns of {table}");
    }
}
on_both!(every_table_has_exactly_the_documented_columns =>
    every_table_has_exactly_the_documented_columns_on_sqlite,
    every_table_has_exactly_the_documented_columns_on_postgres);

async fn tenant_id_leads_every_primary_and_foreign_key(db: DatabaseConnection) {
    up(&db).await;
    for (table, expected) in PRIMARY_KEYS {
        assert_eq!(
            primary_key_of(&db, table).await,
            *expected,
            "primary key of {table}"
        );
    }
    for table in all_tables() {
        let mut expected: Vec<(Vec<String>, String, Vec<String>)> = FOREIGN_KEYS
            .iter()
            .filter(|(t, ..)| t == &table)
            .map(|(_, cols, parent, parent_cols)| {
                (
                    cols.iter().map(|c| (*c).to_owned()).collect(),
                    (*parent).to_owned(),
                    parent_cols.iter().map(|c| (*c).to_owned()).collect(),
                )
            })
            .collect();
        expected.sort();
        assert_eq!(
            foreign_keys_of(&db, table).await,
            expected,
            "foreign keys of {table}"
        );
    }
    // The rule itself, independent of the tables above.
    for table in tenant_owned_tables() {
        assert_eq!(primary_key_of(&db, table).await[0], "tenant_id", "{table}");
        for (cols, _, parent_cols) in foreign_keys_of(&db, table).await {
            assert_eq!(cols[0], "tenant_id", "a foreign key of {table}");
            if parent_cols.len() > 1 {
                assert_eq!(parent_cols[0], "tenant_id", "a foreign key of {table}");
            }
        }
    }
}
on_both!(tenant_id_leads_every_primary_and_foreign_key =>
    tenant_id_leads_every_primary_and_foreign_key_on_sqlite,
    tenant_id_leads_every_primary_and_foreign_key_on_postgres);

async fn every_documented_index_exists(db: DatabaseConnection) {
    up(&db).await;
    for table in all_tables() {
        let mut expected: Vec<(String, bool)> = INDEXES
            .iter()
            .filter(|(t, ..)| *t == table)
            .map(|(_, name, unique)| ((*name).to_owned(), *unique))
            .collect();
        expected.sort();
        assert_eq!(indexes_of(&db, table).await, expected, "indexes of {table}");
    }
}
on_both!(every_documented_index_exists =>
    every_documented_index_exists_on_sqlite,
    every_documented_index_exists_on_postgres);

async fn a_person_cannot_reference_another_tenants_account(db: DatabaseConnection) {
    up(&db).await;
    let ours = tenant(&db).await;
    let theirs = tenant(&db).await;
    let their_account = account(&db, theirs).await;
    let our_account = account(&db, ours).await;

    let error = person(&db, ours, Some(their_account))
        .await
        .expect_err("a person pointing at another tenant's account must be rejected");
    let message = error.to_string().to_lowercase();
    assert!(
        message.contains("foreign key"),
        "unexpected error: {message}"
    );

    person(&db, ours, Some(our_account))
        .await
        .expect("a person may reference an account of its own tenant");
    person(&db, ours, None)
        .await
        .expect("a person needs no account");
}
on_both!(a_person_cannot_reference_another_tenants_account =>
    a_person_cannot_reference_another_tenants_account_on_sqlite,
    a_person_cannot_reference_another_tenants_account_on_postgres);

async fn a_user_email_is_unique_per_tenant_but_not_across_tenants(db: DatabaseConnection) {
    up(&db).await;
    let ours = tenant(&db).await;
    let theirs = tenant(&db).await;
    user(&db, ours, "grace@example.com")
        .await
        .expect("first user");
    user(&db, theirs, "grace@example.com")
        .await
        .expect("the same email in another tenant");
    user(&db, ours, "grace@example.com")
        .await
        .expect_err("the same email twice in one tenant must be rejected");
}
on_both!(a_user_email_is_unique_per_tenant_but_not_across_tenants =>
    a_user_email_is_unique_per_tenant_but_not_across_tenants_on_sqlite,
    a_user_email_is_unique_per_tenant_but_not_across_tenants_on_postgres);

async fn an_api_key_prefix_is_unique_across_tenants(db: DatabaseConnection) {
    up(&db).await;
    let ours = tenant(&db).await;
    let theirs = tenant(&db).await;
    api_key(&db, ours, "tnt_abc123").await.expect("first key");
    api_key(&db, theirs, "tnt_abc123")
        .await
        .expect_err("a prefix already used by another tenant must be rejected");
}
on_both!(an_api_key_prefix_is_unique_across_tenants =>
    an_api_key_prefix_is_unique_across_tenants_on_sqlite,
    an_api_key_prefix_is_unique_across_tenants_on_postgres);

/// `(tenant_id, prefix)` of every row of `api_key_prefixes`, by prefix.
async fn directory(db: &DatabaseConnection) -> Vec<(Uuid, String)> {
    rows(
        db,
        "SELECT tenant_id, prefix FROM api_key_prefixes ORDER BY prefix",
    )
    .await
    .iter()
    .map(|r| {
        (
            r.try_get::<Uuid>("", "tenant_id").expect("tenant_id"),
            text(r, "prefix"),
        )
    })
    .collect()
}

async fn the_prefix_directory_is_filled_from_the_existing_keys(db: DatabaseConnection) {
    // A database from before the directory, with keys of two tenants.
    Migrator::up(&db, Some(BEFORE_THE_DIRECTORY))
        .await
        .expect("apply the migrations before the directory");
    let ours = tenant(&db).await;
    let theirs = tenant(&db).await;
    api_key(&db, ours, "tnt_Lgcy0001").await.expect("a key");
    api_key(&db, theirs, "tnt_Lgcy0002").await.expect("a key");
    let expected = vec![
        (ours, "tnt_Lgcy0001".to_owned()),
        (theirs, "tnt_Lgcy0002".to_owned()),
    ];

    up(&db).await;
    assert_eq!(directory(&db).await, expected);

    // Reverted and applied again: rebuilt from the keys.
    Migrator::down(&db, Some(1))
        .await
        .expect("revert the directory");
    let manager = SchemaManager::new(&db);
    assert!(
        !manager
            .has_table("api_key_prefixes")
            .await
            .expect("has_table")
    );
    up(&db).await;
    assert_eq!(directory(&db).await, expected);

    // A prefix routes to one tenant only.
    insert(
        &db,
        "api_key_prefixes",
        &["tenant_id", "prefix"],
        vec![theirs.into(), "tnt_Lgcy0001".into()],
    )
    .await
    .expect_err("a prefix already routed to another tenant must be rejected");
}
on_both!(the_prefix_directory_is_filled_from_the_existing_keys =>
    the_prefix_directory_is_filled_from_the_existing_keys_on_sqlite,
    the_prefix_directory_is_filled_from_the_existing_keys_on_postgres);

async fn the_citus_step_is_skipped_without_citus(db: DatabaseConnection) {
    up(&db).await;
    let manager = SchemaManager::new(&db);
    assert!(
        !citus_present(&manager).await.expect("citus_present"),
        "no Citus on this machine"
    );
    let applied = Migrator::get_applied_migrations(&db)
        .await
        .expect("applied migrations");
    assert!(
        applied.iter().any(|m| m.name() == "m20261122_000004_citus"),
        "the citus step is recorded as applied"
    );
    // And reverting it is a no-op too.
    down_through_the_citus_step(&db).await;
    assert!(manager.has_table("users").await.expect("has_table"));
}
on_both!(the_citus_step_is_skipped_without_citus =>
    the_citus_step_is_skipped_without_citus_on_sqlite,
    the_citus_step_is_skipped_without_citus_on_postgres);

async fn uuid_timestamp_and_json_values_round_trip(db: DatabaseConnection) {
    up(&db).await;
    let tenant_id = tenant(&db).await;
    let id = Uuid::now_v7();
    // Microseconds: PostgreSQL keeps no finer precision.
    let at =
        chrono::DateTime::from_timestamp_micros(1_795_000_000_123_456).expect("a valid timestamp");
    let scopes = serde_json::json!(["people:read", {"accounts": ["write"]}]);
    insert(
        &db,
        "api_keys",
        &[
            "tenant_id",
            "id",
            "name",
            "prefix",
            "secret_hash",
            "scopes",
            "created_at",
        ],
        vec![
            tenant_id.into(),
            id.into(),
            "ci".into(),
            "tnt_roundtrip".into(),
            "hmac".into(),
            scopes.clone().into(),
            at.into(),
        ],
    )
    .await
    .expect("insert typed values");

    let select = Query::select()
        .columns(["tenant_id", "id", "scopes", "created_at", "last_used_at"])
        .from("api_keys")
        .and_where(Expr::col("tenant_id").eq(tenant_id))
        .and_where(Expr::col("id").eq(id))
        .to_owned();
    let row = db
        .query_one(&select)
        .await
        .expect("select by uuid")
        .expect("the row, found by its uuids");
    assert_eq!(row.try_get::<Uuid>("", "id").expect("id"), id);
    assert_eq!(
        row.try_get::<Uuid>("", "tenant_id").expect("tenant_id"),
        tenant_id
    );
    assert_eq!(
        row.try_get::<serde_json::Value>("", "scopes")
            .expect("scopes"),
        scopes
    );
    assert_eq!(
        row.try_get::<chrono::DateTime<chrono::Utc>>("", "created_at")
            .expect("created_at"),
        at
    );
    assert_eq!(
        row.try_get::<Option<chrono::DateTime<chrono::Utc>>>("", "last_used_at")
            .expect("last_used_at"),
        None
    );

    if db.get_database_backend() == DbBackend::Sqlite {
        // What the bytes look like on SQLite, for anyone writing raw SQL:
        // uuids are 16-byte blobs, timestamps and json are text.
        let storage = rows(
            &db,
            "SELECT typeof(id) AS id, typeof(created_at) AS created_at, \
             typeof(scopes) AS scopes FROM api_keys",
        )
        .await;
        assert_eq!(text(&storage[0], "id"), "blob");
        assert_eq!(text(&storage[0], "created_at"), "text");
        assert_eq!(text(&storage[0], "scopes"), "text");
    }
}
on_both!(uuid_timestamp_and_json_values_round_trip =>
    uuid_timestamp_and_json_values_round_trip_on_sqlite,
    uuid_timestamp_and_json_values_round_trip_on_postgres);

#[tokio::test]
async fn sqlite_connections_enforce_foreign_keys() {
    let db = Database::connect("sqlite::memory:")
        .await
        .expect("connect to in-memory SQLite");
    let pragma = rows(&db, "PRAGMA foreign_keys").await;
    assert_eq!(int(&pragma[0], "foreign_keys"), 1);
}

#[test]
fn the_database_name_replaces_the_one_in_the_url() {
    assert_eq!(
        url_with_database("postgres://postgres@127.0.0.1:5432/test", "mig_x"),
        "postgres://postgres@127.0.0.1:5432/mig_x"
    );
    assert_eq!(
        url_with_database("postgres://u:p@h/db?sslmode=disable", "mig_x"),
        "postgres://u:p@h/mig_x?sslmode=disable"
    );
    assert_eq!(
        url_with_database("postgres://h", "mig_x"),
        "postgres://h/mig_x"
    );
}

// ---------------------------------------------------------------------------
// Citus (only with `CITUS_URL`)
//
// `CITUS_URL` names a database on a Citus coordinator that has the `citus`
// extension and its workers added (see CITUS.md). Each run works in a schema
// of its own there (Citus keeps its node list per database, so a fresh
// database would need the extension and the nodes again on every node; a
// schema is propagated to the workers by Citus itself). Unset, the suite
// says so on stderr — past the test harness' capture — and passes.

/// A fresh schema on the Citus coordinator named by `CITUS_URL`, or `None`
/// (after saying so) when it is unset.
async fn citus_schema() -> Option<(DatabaseConnection, String, DatabaseConnection)> {
    let url = match std::env::var("CITUS_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => {
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "\n*** CITUS_URL is unset: the Citus suite did not run ***\n"
            );
            return None;
        }
    };
    let admin = Database::connect(&url).await.expect("connect to CITUS_URL");
    let schema = format!("citus_{}", Uuid::now_v7().simple());
    admin
        .execute_unprepared(&format!("CREATE SCHEMA {schema}"))
        .await
        .expect("create a fresh schema");
    let mut options = ConnectOptions::new(url);
    options
        .max_connections(4)
        .sqlx_logging(false)
        .set_schema_search_path(schema.clone());
    let db = Database::connect(options)
        .await
        .expect("connect to the fresh schema");
    Some((admin, schema, db))
}

/// One table's row in `pg_dist_partition` (`None`: a plain table) and its shard count.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DistRow {
    partmethod: String,
    repmodel: String,
    colocation: i64,
    column: Option<String>,
    shards: i64,
}

async fn dist_row(db: &DatabaseConnection, table: &str) -> Option<DistRow> {
    let found = rows(
        db,
        &format!(
            "SELECT partmethod::text AS partmethod, repmodel::text AS repmodel, \
                    colocationid::bigint AS colocation, \
                    CASE WHEN partmethod = 'h' \
                         THEN column_to_column_name(logicalrelid, partkey) END AS column_name, \
                    (SELECT count(*) FROM pg_dist_shard s \
                     WHERE s.logicalrelid = p.logicalrelid) AS shards \
             FROM pg_dist_partition p WHERE logicalrelid = to_regclass('{table}')"
        ),
    )
    .await;
    found.first().map(|r| DistRow {
        partmethod: text(r, "partmethod"),
        repmodel: text(r, "repmodel"),
        colocation: int(r, "colocation"),
        column: r
            .try_get::<Option<String>>("", "column_name")
            .expect("column_name"),
        shards: int(r, "shards"),
    })
}

/// Asserts the target: `tenants` a reference table, every tenant table
/// hash-distributed by `tenant_id` into `citus.shard_count` shards, all in
/// one co-location group. Returns every table's row.
async fn assert_distributed(db: &DatabaseConnection, when: &str) -> Vec<(&'static str, DistRow)> {
    let shard_count = int(
        &rows(
            db,
            "SELECT current_setting('citus.shard_count')::bigint AS n",
        )
        .await[0],
        "n",
    );
    let mut found = Vec::new();
    for table in all_tables() {
        let row = dist_row(db, table)
            .await
            .unwrap_or_else(|| panic!("{when}: {table} is not managed by Citus"));
        found.push((table, row));
    }
    for (table, row) in &found {
        if GLOBAL_TABLES.contains(table) || REPLICATED_TENANT_TABLES.contains(table) {
            assert_eq!(
                (row.partmethod.as_str(), row.repmodel.as_str(), row.shards),
                ("n", "t", 1),
                "{when}: {table} must be a reference table: {row:?}"
            );
        } else {
            assert_eq!(
                (row.partmethod.as_str(), row.column.as_deref(), row.shards),
                ("h", Some("tenant_id"), shard_count),
                "{when}: {table} must be hash-distributed by tenant_id: {row:?}"
            );
        }
    }
    let groups: std::collections::BTreeSet<i64> = found
        .iter()
        .filter(|(t, _)| TENANT_TABLES.contains(t))
        .map(|(_, r)| r.colocation)
        .collect();
    assert_eq!(
        groups.len(),
        1,
        "{when}: more than one co-location group: {found:#?}"
    );
    found
}

/// Runs `sql` in a transaction that opts out of the multi-shard net
/// (`citus.multi_task_query_log_level`, which CITUS.md suggests setting for the
/// whole database: the suite must pass under it), as the migrations do for
/// their own cross-tenant statements.
async fn rows_across_shards(db: &DatabaseConnection, sql: &str) -> Vec<QueryResult> {
    let txn = db.begin().await.expect("begin");
    txn.execute_unprepared("SET LOCAL citus.multi_task_query_log_level = 'off'")
        .await
        .expect("lift the net");
    let found = txn
        .query_all_raw(Statement::from_string(DbBackend::Postgres, sql))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    txn.commit().await.expect("commit");
    found
}

async fn row_counts(db: &DatabaseConnection) -> Vec<(&'static str, i64)> {
    let mut counts = Vec::new();
    for table in all_tables() {
        let found = rows_across_shards(db, &format!("SELECT count(*) AS n FROM {table}")).await;
        counts.push((table, int(&found[0], "n")));
    }
    counts
}

/// Makes the next `up` run the Citus step again, whatever it left behind.
async fn forget_the_citus_step(db: &DatabaseConnection) {
    rows(
        db,
        "DELETE FROM seaql_migrations WHERE version = 'm20261122_000004_citus' RETURNING version",
    )
    .await;
}

async fn the_citus_step_converges_from_any_state(db: DatabaseConnection) {
    let manager = SchemaManager::new(&db);
    assert!(
        citus_present(&manager).await.expect("citus_present"),
        "CITUS_URL points at a database without the citus extension"
    );

    // 1. A fresh schema.
    up(&db).await;
    let first = assert_distributed(&db, "fresh").await;

    // Some rows of one tenant, which every later step must keep.
    let t = tenant(&db).await;
    let a = account(&db, t).await;
    person(&db, t, Some(a)).await.expect("insert a person");
    user(&db, t, "grace@example.com")
        .await
        .expect("insert a user");
    api_key(&db, t, "tnt_citus")
        .await
        .expect("insert an api key");
    // And its directory row, as the domain writes it with the key.
    insert(
        &db,
        "api_key_prefixes",
        &["tenant_id", "prefix"],
        vec![t.into(), "tnt_citus".into()],
    )
    .await
    .expect("insert a directory row");
    let counts = row_counts(&db).await;

    // The lookup of a key without a tenant part is two reads on one node each
    // (the directory, then the tenant's key), which the multi-shard net lets
    // through; the read by prefix alone is refused.
    {
        let txn = db.begin().await.expect("begin");
        txn.execute_unprepared("SET LOCAL citus.multi_task_query_log_level = 'error'")
            .await
            .expect("set the net");
        let routed = txn
            .query_one_raw(Statement::from_string(
                DbBackend::Postgres,
                "SELECT tenant_id FROM api_key_prefixes WHERE prefix = 'tnt_citus'",
            ))
            .await
            .expect("the directory read passes the net")
            .expect("the key's directory row");
        assert_eq!(
            routed.try_get::<Uuid>("", "tenant_id").expect("tenant_id"),
            t
        );
        let pinned =
            format!("SELECT id FROM api_keys WHERE tenant_id = '{t}' AND prefix = 'tnt_citus'");
        txn.query_one_raw(Statement::from_string(DbBackend::Postgres, pinned))
            .await
            .expect("the pinned read passes the net")
            .expect("the key");
        let error = txn
            .query_one_raw(Statement::from_string(
                DbBackend::Postgres,
                "SELECT id FROM api_keys WHERE prefix = 'tnt_citus'",
            ))
            .await
            .expect_err("a read by prefix alone runs on every shard");
        assert!(
            error.to_string().contains("multi-task query"),
            "unexpected error: {error}"
        );
        txn.rollback().await.expect("rollback");
    }

    // A query pinned to one tenant is routed to a single shard.
    let plan = rows(
        &db,
        &format!(
            "EXPLAIN SELECT p.id FROM people p JOIN accounts a \
             ON a.tenant_id = p.tenant_id AND a.id = p.account_id \
             WHERE p.tenant_id = '{t}'"
        ),
    )
    .await;
    let plan: Vec<String> = plan.iter().map(|r| text(r, "QUERY PLAN")).collect();
    assert!(
        plan.iter().any(|l| l.contains("Task Count: 1")),
        "not routed to one shard: {plan:#?}"
    );

    // 2. Run again on a distributed schema: nothing moves.
    forget_the_citus_step(&db).await;
    up(&db).await;
    assert_eq!(assert_distributed(&db, "second run").await, first);
    assert_eq!(row_counts(&db).await, counts);
    // The same for the directory's migration (killed after its last transaction).
    rows(
        &db,
        "DELETE FROM seaql_migrations \
         WHERE version = 'm20261122_000005_api_key_prefixes' RETURNING version",
    )
    .await;
    up(&db).await;
    assert_eq!(assert_distributed(&db, "directory rerun").await, first);
    assert_eq!(row_counts(&db).await, counts);

    // 3. The reported failure: `tenants` made a reference table while
    // `citus.enable_local_reference_table_foreign_keys` is on (the default)
    // turns the tables referencing it into Citus local tables.
    down_through_the_citus_step(&db).await;
    for table in all_tables() {
        assert_eq!(dist_row(&db, table).await, None, "{table} after down");
    }
    rows(&db, "SELECT create_reference_table('tenants')").await;
    let users = dist_row(&db, "users")
        .await
        .expect("users is a local table now");
    assert_eq!(
        (users.partmethod.as_str(), users.repmodel.as_str()),
        ("n", "s")
    );
    up(&db).await;
    assert_distributed(&db, "after Citus local tables").await;
    assert_eq!(row_counts(&db).await, counts);

    // 4. Interrupted half-way: only some tables distributed.
    down_through_the_citus_step(&db).await;
    {
        let txn = db.begin().await.expect("begin");
        for sql in [
            "SET LOCAL citus.enable_local_reference_table_foreign_keys = off",
            "SET LOCAL citus.multi_shard_modify_mode = 'sequential'",
            "SELECT create_reference_table('tenants')",
            "SELECT create_distributed_table('users', 'tenant_id')",
            "SELECT create_distributed_table('accounts', 'tenant_id', colocate_with => 'users')",
        ] {
            txn.execute_unprepared(sql)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
        txn.commit().await.expect("commit");
    }
    assert_eq!(dist_row(&db, "people").await, None);
    up(&db).await;
    assert_distributed(&db, "after a partial run").await;
    assert_eq!(row_counts(&db).await, counts);

    // 5. A table in a co-location group of its own.
    rows_across_shards(&db, "SELECT undistribute_table('idempotency_keys')").await;
    rows(
        &db,
        "SELECT create_distributed_table('idempotency_keys', 'tenant_id', colocate_with => 'none')",
    )
    .await;
    forget_the_citus_step(&db).await;
    up(&db).await;
    assert_distributed(&db, "after a foreign co-location group").await;
    assert_eq!(row_counts(&db).await, counts);

    // 6. Everything reverts, distributed tables included.
    Migrator::down(&db, None)
        .await
        .expect("revert all migrations");
    for table in all_tables() {
        assert!(
            !manager.has_table(table).await.expect("has_table"),
            "{table} left behind by down"
        );
    }
}

#[tokio::test]
async fn the_citus_step_converges_from_any_state_on_citus() {
    let Some((admin, schema, db)) = citus_schema().await else {
        return;
    };
    let outcome = tokio::spawn(the_citus_step_converges_from_any_state(db.clone())).await;
    db.close().await.expect("close the test pool");
    admin
        .execute_unprepared(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .expect("drop the test schema");
    if let Err(error) = outcome {
        match error.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(error) => panic!("check task failed: {error}"),
        }
    }
}
