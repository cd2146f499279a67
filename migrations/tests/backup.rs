//! Backups of the embedded database on real files opened like production
//! (`migrations::connect`: WAL, `synchronous=FULL`): `backup_to` under write load is one
//! consistent snapshot, `restore_from` puts it back and refuses what it must, `ServerLock`
//! keeps a second server off a file. And the PostgreSQL tools the README documents
//! (`pg_dump -Fc`, `pg_restore --clean --if-exists`), run on a scratch database when
//! `pg_dump` is on PATH and `DATABASE_URL` names a server (both required when `CI=true`).
//!
//! Databases are compared by their dump: every table's rows, each as its columns' SQL
//! literals, sorted — equal dumps, equal data.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use migrations::{BackupError, PoolSettings, ServerLock, backup_to, connect, restore_from, up};
use sea_orm_migration::sea_orm::{
    ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement, TransactionTrait, Value,
};
use uuid::Uuid;

// ---------------------------------------------------------------------------
// Files and databases

/// A directory of its own under the system temp dir, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("tenantry-backup-{}", Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir).expect("create a scratch directory");
        Self(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// The names in the directory (to see that nothing temporary was left behind).
    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.0)
            .expect("list the scratch directory")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The `DATABASE_URL` of a SQLite file, as the server's default spells it.
fn url(path: &Path) -> String {
    format!("sqlite://{}?mode=rwc", path.display())
}

/// A pool on `path` exactly like the server's.
async fn open(path: &Path) -> DatabaseConnection {
    connect(&PoolSettings {
        url: url(path),
        max_connections: 4,
        acquire_timeout: Duration::from_secs(10),
    })
    .await
    .expect("open the database like the server")
}

/// A read-only look at a SQLite file that changes nothing in it (no journal mode set).
async fn look_at(path: &Path) -> DatabaseConnection {
    Database::connect(format!("sqlite://{}?mode=ro", path.display()))
        .await
        .expect("open the file read-only")
}

async fn migrated(path: &Path) -> DatabaseConnection {
    let db = open(path).await;
    up(&db).await.expect("apply the migrations");
    db
}

fn sql(sql: &str, values: impl IntoIterator<Item = Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Sqlite, sql, values)
}

async fn strings(db: &impl ConnectionTrait, statement: Statement) -> Vec<String> {
    let text = statement.sql.clone();
    db.query_all_raw(statement)
        .await
        .unwrap_or_else(|e| panic!("{text}: {e}"))
        .iter()
        .map(|row| {
            row.try_get_by_index::<String>(0)
                .unwrap_or_else(|e| panic!("{text}: {e}"))
        })
        .collect()
}

async fn count(db: &impl ConnectionTrait, query: &str) -> i64 {
    db.query_one_raw(sql(query, []))
        .await
        .unwrap_or_else(|e| panic!("{query}: {e}"))
        .expect("one row")
        .try_get_by_index::<i64>(0)
        .expect("a count")
}

/// Every table of a SQLite database: its rows, each as `quote(col1),quote(col2),…`, sorted.
async fn dump(db: &impl ConnectionTrait) -> BTreeMap<String, Vec<String>> {
    let tables = strings(
        db,
        sql(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
             ORDER BY name",
            [],
        ),
    )
    .await;
    let mut dump = BTreeMap::new();
    for table in tables {
        let columns = strings(
            db,
            sql(
                "SELECT name FROM pragma_table_info(?) ORDER BY cid",
                [table.clone().into()],
            ),
        )
        .await;
        let row = columns
            .iter()
            .map(|c| format!("quote(\"{c}\")"))
            .collect::<Vec<_>>()
            .join(" || ',' || ");
        let mut rows = strings(db, sql(&format!("SELECT {row} FROM \"{table}\""), [])).await;
        rows.sort();
        dump.insert(table, rows);
    }
    dump
}

async fn integrity(db: &impl ConnectionTrait) -> Vec<String> {
    strings(db, sql("PRAGMA integrity_check", [])).await
}

fn now() -> Value {
    chrono::Utc::now().to_rfc3339().into()
}

/// A tenant with one user, in one transaction.
async fn tenant_with_user(db: &DatabaseConnection, id: Uuid, slug: &str) {
    let txn = db.begin().await.expect("begin");
    txn.execute_raw(sql(
        "INSERT INTO tenants (id, slug, name, created_at) VALUES (?, ?, 'Writer', ?)",
        [id.into(), slug.into(), now()],
    ))
    .await
    .expect("insert a tenant");
    txn.execute_raw(sql(
        "INSERT INTO users (tenant_id, id, email, name, role, created_at, updated_at, version) \
         VALUES (?, ?, ?, 'Writer', 'admin', ?, ?, 1)",
        [
            id.into(),
            Uuid::now_v7().into(),
            format!("admin@{slug}.test").into(),
            now(),
            now(),
        ],
    ))
    .await
    .expect("insert its user");
    txn.commit().await.expect("commit");
}

/// A tenant with `people` people of ~400 bytes each: enough for a copy to take a while.
async fn preload(db: &DatabaseConnection, people: u32) {
    let tenant = Uuid::now_v7();
    tenant_with_user(db, tenant, "preload").await;
    db.execute_raw(sql(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) \
         INSERT INTO people (tenant_id, id, first_name, last_name, title, stage, created_at, \
         updated_at, version) \
         SELECT ?, randomblob(16), 'P' || i, 'Preload', hex(randomblob(200)), 'lead', ?, ?, 1 \
         FROM n",
        [people.into(), tenant.into(), now(), now()],
    ))
    .await
    .expect("preload people");
}

// ---------------------------------------------------------------------------
// Backup under write load, restore

/// Commits `w-000000`, `w-000001`, … (a tenant and its user per transaction) until told to
/// stop; `log` lists each one's id once its commit returned, so in commit order.
async fn write_until_stopped(
    db: DatabaseConnection,
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<Uuid>>>,
) {
    let mut i = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let id = Uuid::now_v7();
        tenant_with_user(&db, id, &format!("w-{i:06}")).await;
        log.lock().expect("log").push(id);
        i += 1;
    }
    db.close().await.expect("close the writer's pool");
}

fn written(log: &Mutex<Vec<Uuid>>) -> usize {
    log.lock().expect("log").len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_taken_under_write_load_is_one_consistent_snapshot_and_restores_exactly() {
    let scratch = Scratch::new();
    let source = scratch.path("tenantry.db");
    let db = migrated(&source).await;
    preload(&db, 30_000).await;

    let stop = Arc::new(AtomicBool::new(false));
    let log = Arc::new(Mutex::new(Vec::new()));
    let writer = tokio::spawn(write_until_stopped(
        open(&source).await,
        stop.clone(),
        log.clone(),
    ));
    while written(&log) < 20 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    let backup_path = scratch.path("backups/backup.db");
    let before = written(&log);
    let started = Instant::now();
    let backup = backup_to(&url(&source), &backup_path)
        .await
        .expect("back up");
    let took = started.elapsed();
    let after = written(&log);
    stop.store(true, Ordering::Relaxed);
    writer.await.expect("the writer ran to the end");
    let log = log.lock().expect("log").clone();
    eprintln!(
        "backup of {} bytes in {took:?}; the writer committed {} transactions meanwhile ({} in all)",
        backup.bytes,
        after - before,
        log.len()
    );
    assert!(
        after > before,
        "the writer kept committing while the backup ran"
    );
    assert_eq!(backup.path, backup_path);
    assert_eq!(
        backup.bytes,
        std::fs::metadata(&backup_path)
            .expect("the backup exists")
            .len()
    );
    assert_eq!(
        scratch.names(),
        [
            "backups",
            "tenantry.db",
            "tenantry.db-shm",
            "tenantry.db-wal"
        ],
        "nothing temporary left next to the source"
    );
    assert_eq!(
        std::fs::read_dir(scratch.path("backups"))
            .expect("list")
            .count(),
        1,
        "only the backup in its directory"
    );

    // The backup is one snapshot: sound, and holding exactly the writer's first k
    // transactions (every tenant with its user), for some k the writer reached while the
    // backup ran.
    let copy = look_at(&backup_path).await;
    assert_eq!(integrity(&copy).await, ["ok"]);
    let slugs = strings(
        &copy,
        sql(
            "SELECT slug FROM tenants WHERE slug LIKE 'w-%' ORDER BY slug",
            [],
        ),
    )
    .await;
    let k = slugs.len();
    // The one write in flight when the backup returned may have committed before its
    // snapshot without being counted yet: hence `after + 1`.
    assert!(
        (before..=after + 1).contains(&k),
        "the backup holds {k} writes; {before} had committed when it started, {after} when it returned"
    );
    let prefix: Vec<String> = (0..k).map(|i| format!("w-{i:06}")).collect();
    assert_eq!(slugs, prefix, "the backup holds a prefix of the commits");
    assert_eq!(
        count(
            &copy,
            "SELECT count(*) FROM tenants t WHERE NOT EXISTS \
             (SELECT 1 FROM users u WHERE u.tenant_id = t.id)"
        )
        .await,
        0,
        "no transaction is in the backup by half"
    );
    assert_eq!(count(&copy, "SELECT count(*) FROM people").await, 30_000);
    let copied = dump(&copy).await;

    // With no writer, a backup equals its source exactly.
    let quiet_path = scratch.path("backups/quiet.db");
    backup_to(&url(&source), &quiet_path)
        .await
        .expect("back up, quietly");
    let quiet = look_at(&quiet_path).await;
    assert_eq!(integrity(&quiet).await, ["ok"]);
    let source_now = dump(&db).await;
    assert_eq!(
        dump(&quiet).await,
        source_now,
        "a quiet backup equals its source"
    );
    quiet.close().await.expect("close");

    // The source as of the backup: now, without the writes the backup did not see.
    let as_of_backup = open(&quiet_path).await;
    for id in &log[k..] {
        as_of_backup
            .execute_raw(sql("DELETE FROM users WHERE tenant_id = ?", [(*id).into()]))
            .await
            .expect("forget a later user");
        as_of_backup
            .execute_raw(sql("DELETE FROM tenants WHERE id = ?", [(*id).into()]))
            .await
            .expect("forget a later tenant");
    }
    assert_eq!(
        dump(&as_of_backup).await,
        copied,
        "the backup is the source as of one instant"
    );
    as_of_backup.close().await.expect("close");

    // Restored into a fresh location, and opened like the server opens it: the same data.
    let fresh = Scratch::new();
    let target = fresh.path("data/tenantry.db");
    let restored = restore_from(&backup_path, &url(&target))
        .await
        .expect("restore into a fresh location");
    assert_eq!(restored.path, target);
    assert_eq!(restored.bytes, backup.bytes);
    assert!(
        restored.migration.starts_with("m2026"),
        "{}",
        restored.migration
    );
    let reopened = open(&target).await;
    assert_eq!(integrity(&reopened).await, ["ok"]);
    assert_eq!(
        dump(&reopened).await,
        copied,
        "the restored database is the backup"
    );
    up(&reopened).await.expect("the restored database migrates");
    reopened.close().await.expect("close");
    copy.close().await.expect("close");
    db.close().await.expect("close");
}

// ---------------------------------------------------------------------------
// Refusals

#[tokio::test]
async fn a_backup_never_overwrites_a_file_nor_creates_a_missing_source() {
    let scratch = Scratch::new();
    let source = scratch.path("tenantry.db");
    let db = migrated(&source).await;
    let dest = scratch.path("backup.db");
    std::fs::write(&dest, "keep me").expect("write the destination");

    let refused = backup_to(&url(&source), &dest).await.expect_err("refused");
    assert!(
        matches!(&refused, BackupError::DestinationExists(path) if path == &dest),
        "{refused:?}"
    );
    assert!(refused.to_string().contains("already exists"), "{refused}");
    assert_eq!(std::fs::read_to_string(&dest).expect("read"), "keep me");

    let missing = scratch.path("nothing-here.db");
    let refused = backup_to(&url(&missing), &scratch.path("other.db"))
        .await
        .expect_err("refused");
    assert!(
        matches!(refused, BackupError::SourceMissing(_)),
        "{refused:?}"
    );
    assert!(!missing.exists(), "a backup does not create its source");
    assert_eq!(
        scratch.names(),
        [
            "backup.db",
            "tenantry.db",
            "tenantry.db-shm",
            "tenantry.db-wal"
        ]
    );
    db.close().await.expect("close");
}

#[tokio::test]
async fn a_second_server_lock_on_a_database_is_refused_until_the_first_is_released() {
    let scratch = Scratch::new();
    let database = scratch.path("data/tenantry.db");
    let first = ServerLock::acquire(&database).expect("the first server locks");
    assert_eq!(first.path(), scratch.path("data/tenantry.db.lock"));

    let refused = ServerLock::acquire(&database).expect_err("a second server is refused");
    match &refused {
        BackupError::Locked {
            database: d, pid, ..
        } => {
            assert_eq!(d, &database);
            assert_eq!(*pid, Some(std::process::id()));
        }
        other => panic!("{other:?}"),
    }
    let text = refused.to_string();
    assert!(
        text.contains("is in use") && text.contains("tenantry.db.lock"),
        "{text}"
    );

    drop(first);
    ServerLock::acquire(&database).expect("free again once the first one stopped");
}

#[tokio::test]
async fn a_restore_is_refused_while_a_server_holds_the_lock_and_leaves_the_database_alone() {
    let scratch = Scratch::new();
    let source = scratch.path("source.db");
    let db = migrated(&source).await;
    tenant_with_user(&db, Uuid::now_v7(), "from-backup").await;
    let backup_path = scratch.path("backup.db");
    backup_to(&url(&source), &backup_path)
        .await
        .expect("back up");

    let target = scratch.path("live/tenantry.db");
    let live = migrated(&target).await;
    tenant_with_user(&live, Uuid::now_v7(), "live").await;
    let before = dump(&live).await;

    let server = ServerLock::acquire(&target).expect("the server locks");
    let refused = restore_from(&backup_path, &url(&target))
        .await
        .expect_err("refused while the server runs");
    assert!(matches!(refused, BackupError::Locked { .. }), "{refused:?}");
    assert_eq!(dump(&live).await, before, "the live database is untouched");
    live.close().await.expect("the server stops");
    drop(server);

    let restored = restore_from(&backup_path, &url(&target))
        .await
        .expect("restored once the server stopped");
    assert_eq!(restored.path, target);
    let reopened = open(&target).await;
    assert_eq!(dump(&reopened).await, dump(&db).await);
    reopened.close().await.expect("close");
    db.close().await.expect("close");
}

#[tokio::test]
async fn a_restore_removes_the_old_databases_log_before_the_new_file_takes_its_place() {
    let scratch = Scratch::new();
    let source = scratch.path("source.db");
    let db = migrated(&source).await;
    tenant_with_user(&db, Uuid::now_v7(), "from-backup").await;
    let backup_path = scratch.path("backup.db");
    backup_to(&url(&source), &backup_path)
        .await
        .expect("back up");

    let target = scratch.path("target/tenantry.db");
    migrated(&target).await.close().await.expect("close");
    for suffix in ["-wal", "-shm", "-journal"] {
        std::fs::write(format!("{}{suffix}", target.display()), vec![0xAB; 4096])
            .expect("leave a stale side file");
    }
    restore_from(&backup_path, &url(&target))
        .await
        .expect("restore");
    let target_dir: Vec<String> = std::fs::read_dir(scratch.path("target"))
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    let mut target_dir = target_dir;
    target_dir.sort();
    assert_eq!(target_dir, ["tenantry.db", "tenantry.db.lock"]);
    let reopened = open(&target).await;
    assert_eq!(integrity(&reopened).await, ["ok"]);
    assert_eq!(dump(&reopened).await, dump(&db).await);
    reopened.close().await.expect("close");
    db.close().await.expect("close");
}

#[tokio::test]
async fn a_restore_refuses_files_that_are_not_tenantry_backups() {
    let scratch = Scratch::new();
    let source = scratch.path("source.db");
    let db = migrated(&source).await;
    tenant_with_user(&db, Uuid::now_v7(), "acme").await;
    preload(&db, 2_000).await;
    let good = scratch.path("good.db");
    backup_to(&url(&source), &good).await.expect("back up");

    let target = scratch.path("target/tenantry.db");
    let live = migrated(&target).await;
    let before = dump(&live).await;
    live.close().await.expect("close");

    let garbage = scratch.path("garbage.db");
    std::fs::write(&garbage, vec![0x5A; 64 * 1024]).expect("write");

    let not_tenantry = scratch.path("other-app.db");
    let other = open(&not_tenantry).await;
    other
        .execute_unprepared("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        .await
        .expect("another application's table");
    other.close().await.expect("close");

    let future = scratch.path("future.db");
    std::fs::copy(&good, &future).expect("copy");
    let newer = open(&future).await;
    newer
        .execute_unprepared(
            "INSERT INTO seaql_migrations (version, applied_at) VALUES ('m29990101_000001_future', 0)",
        )
        .await
        .expect("a migration from the future");
    newer.close().await.expect("close");

    let truncated = scratch.path("truncated.db");
    let bytes = std::fs::read(&good).expect("read");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).expect("write half of it");

    for (file, expected) in [
        (&garbage, "SQLite cannot"),
        (&not_tenantry, "no seaql_migrations table"),
        (&future, "m29990101_000001_future"),
        (&truncated, "malformed"),
    ] {
        let refused = restore_from(file, &url(&target))
            .await
            .expect_err("refused");
        let text = refused.to_string();
        assert!(
            matches!(&refused, BackupError::NotTenantry { path, .. } if path == file),
            "{}: {refused:?}",
            file.display()
        );
        assert!(text.contains(expected), "{text}");
    }

    // A live database (its write-ahead log not yet checkpointed) is not a backup.
    let live_source = open(&source).await;
    tenant_with_user(&live_source, Uuid::now_v7(), "unflushed").await;
    let refused = restore_from(&source, &url(&target))
        .await
        .expect_err("refused");
    assert!(
        matches!(refused, BackupError::LiveDatabase(_)),
        "{refused:?}"
    );
    live_source.close().await.expect("close");

    let reopened = open(&target).await;
    assert_eq!(dump(&reopened).await, before, "the target is untouched");
    reopened.close().await.expect("close");
    let mut left: Vec<String> = std::fs::read_dir(scratch.path("target"))
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    left.sort();
    assert!(left.is_empty(), "temporary files left behind: {left:?}");
    db.close().await.expect("close");
}

#[tokio::test]
async fn backup_and_restore_explain_the_postgresql_tools_instead() {
    let scratch = Scratch::new();
    let url = "postgres://nobody@127.0.0.1:1/none";
    let refused = backup_to(url, &scratch.path("x.dump"))
        .await
        .expect_err("refused");
    assert!(matches!(refused, BackupError::Postgres));
    assert!(refused.to_string().contains("pg_dump -Fc"), "{refused}");
    let refused = restore_from(&scratch.path("x.dump"), url)
        .await
        .expect_err("refused");
    assert!(
        refused
            .to_string()
            .contains("pg_restore --clean --if-exists"),
        "{refused}"
    );
}

// ---------------------------------------------------------------------------
// PostgreSQL: pg_dump -Fc / pg_restore --clean --if-exists

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

/// The PostgreSQL server to make scratch databases on, when the environment has one and
/// the tools; `None` (with a note) otherwise, which `CI=true` turns into a failure.
fn postgres_with_tools() -> Option<String> {
    let ci = std::env::var("CI").as_deref() == Ok("true");
    let url = std::env::var("DATABASE_URL")
        .ok()
        .filter(|u| u.starts_with("postgres://") || u.starts_with("postgresql://"));
    let Some(url) = url else {
        assert!(!ci, "CI=true but DATABASE_URL names no PostgreSQL server");
        eprintln!("DATABASE_URL is not PostgreSQL: skipping the pg_dump test");
        return None;
    };
    for tool in ["pg_dump", "pg_restore"] {
        let found = std::process::Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            assert!(!ci, "CI=true but `{tool}` is not on PATH");
            eprintln!("`{tool}` is not on PATH: skipping the pg_dump test");
            return None;
        }
    }
    Some(url)
}

fn run(tool: &str, args: &[&str]) {
    let output = std::process::Command::new(tool)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{tool}: {e}"));
    assert!(
        output.status.success(),
        "{tool} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Every table of the current schema: its rows as `row::text`, sorted.
async fn dump_postgres(db: &DatabaseConnection) -> BTreeMap<String, Vec<String>> {
    let pg = |s: &str| Statement::from_string(DbBackend::Postgres, s);
    let tables = strings(
        db,
        pg("SELECT table_name::text FROM information_schema.tables \
            WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' \
            ORDER BY table_name"),
    )
    .await;
    let mut dump = BTreeMap::new();
    for table in tables {
        let mut rows = strings(db, pg(&format!("SELECT r::text FROM \"{table}\" r"))).await;
        rows.sort();
        dump.insert(table, rows);
    }
    dump
}

async fn postgres_sample(db: &DatabaseConnection) {
    let tenant = Uuid::now_v7();
    let person = Uuid::now_v7();
    for (statement, values) in [
        (
            "INSERT INTO tenants (id, slug, name, created_at) VALUES ($1, 'acme', 'Acme', now())",
            vec![tenant.into()],
        ),
        (
            "INSERT INTO users (tenant_id, id, email, name, role, created_at, updated_at, version) \
             VALUES ($1, $2, 'admin@acme.test', 'Admin', 'admin', now(), now(), 1)",
            vec![tenant.into(), Uuid::now_v7().into()],
        ),
        (
            "INSERT INTO people (tenant_id, id, first_name, last_name, stage, created_at, \
             updated_at, version) VALUES ($1, $2, 'Ada', 'Lovelace', 'lead', now(), now(), 1)",
            vec![tenant.into(), person.into()],
        ),
        (
            "INSERT INTO activities (tenant_id, id, person_id, kind, subject, occurred_at, \
             created_at, updated_at, version) \
             VALUES ($1, $2, $3, 'call', 'Intro', now(), now(), now(), 1)",
            vec![tenant.into(), Uuid::now_v7().into(), person.into()],
        ),
    ] {
        db.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            statement,
            values,
        ))
        .await
        .unwrap_or_else(|e| panic!("{statement}: {e}"));
    }
}

#[tokio::test]
async fn pg_dump_and_pg_restore_round_trip_a_tenantry_database() {
    let Some(server) = postgres_with_tools() else {
        return;
    };
    let admin = Database::connect(&server)
        .await
        .expect("connect to DATABASE_URL");
    let suffix = Uuid::now_v7().simple().to_string();
    let source_name = format!("tenantry_backup_{suffix}");
    let target_name = format!("tenantry_backup_{suffix}_restored");
    for name in [&source_name, &target_name] {
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create a scratch database");
    }
    let source_url = url_with_database(&server, &source_name);
    let target_url = url_with_database(&server, &target_name);

    let check = tokio::spawn(async move {
        let scratch = Scratch::new();
        let file = scratch.path("tenantry.dump");
        let file = file.to_str().expect("a UTF-8 path");
        let source = Database::connect(&source_url).await.expect("connect");
        up(&source).await.expect("migrate");
        postgres_sample(&source).await;
        let expected = dump_postgres(&source).await;
        assert!(expected["activities"].len() == 1 && expected["seaql_migrations"].len() >= 4);

        // The README's commands.
        run("pg_dump", &["-Fc", "-f", file, &source_url]);
        let restore = [
            "--clean",
            "--if-exists",
            "--single-transaction",
            "-d",
            &target_url,
            file,
        ];
        run("pg_restore", &restore);
        let target = Database::connect(&target_url).await.expect("connect");
        assert_eq!(
            dump_postgres(&target).await,
            expected,
            "restored into an empty database"
        );

        // Over a database that moved on: --clean puts back exactly what was dumped.
        target
            .execute_unprepared("DELETE FROM activities; UPDATE people SET first_name = 'Changed'")
            .await
            .expect("change the target");
        target.close().await.expect("close");
        run("pg_restore", &restore);
        let target = Database::connect(&target_url).await.expect("connect");
        assert_eq!(
            dump_postgres(&target).await,
            expected,
            "restored over changed data"
        );
        up(&target)
            .await
            .expect("the restored database migrates (nothing to do)");
        target.close().await.expect("close");
        source.close().await.expect("close");
    })
    .await;

    for name in [&source_name, &target_name] {
        admin
            .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await
            .expect("drop the scratch database");
    }
    if let Err(error) = check {
        match error.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(error) => panic!("check task failed: {error}"),
        }
    }
}
