//! Idempotent creates (`idempotency::once`): the claim of the key, the write and the
//! stored response commit together or not at all, so a failure at any point — an error,
//! a cancelled request, a killed connection, a refused commit — leaves a key that a retry
//! can use: it replays or creates, never "in progress", and exactly one row exists.
//!
//! No sleeps: a test that needs a request to be at a given point makes it signal (inside
//! `run`) or watches PostgreSQL's lock views for it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use domain::Error;
use domain::accounts::{self, Account, AccountCreate, AccountFilter};
use domain::idempotency::{self, Claim, Once, Stored};
use domain::identity::{self, TenantCreate};
use domain::pagination::PageRequest;
use domain::people::{self, PersonCreate};
use tenancy::testing::Backend;
use tenancy::{Actor, TenantDb, TenantHandle};
use tokio::sync::oneshot;
use uuid::Uuid;

use self::raw::{
    REFUSE_COMMIT_FUNCTION, blocked_on_a_claim, claim_owner, committing, deferred_trigger, execute,
    hold_commits, terminate,
};
use crate::support::{World, each_backend, invalid_fields};

const DAY: Duration = Duration::from_secs(24 * 3600);
const CREDENTIAL: &str = "api_key:1";

fn claim<'a>(key: &'a str, hash: &'a str) -> Claim<'a> {
    Claim {
        credential_id: CREDENTIAL,
        key,
        request_hash: hash,
        ttl: DAY,
    }
}

fn named(name: &str) -> AccountCreate {
    AccountCreate {
        name: name.into(),
        ..Default::default()
    }
}

/// What these tests store as the response: the created account's id.
fn response(account: &Account) -> Stored {
    Stored {
        status: 201,
        body: account.id.to_string(),
    }
}

/// Creates the account `name` once per `claim`.
async fn create(
    db: &TenantDb,
    claim: Option<Claim<'_>>,
    name: &str,
) -> Result<Once<Account>, Error> {
    idempotency::once(
        db,
        claim,
        async |txn| accounts::create(txn, named(name)).await,
        response,
    )
    .await
}

/// The live accounts named `name`.
async fn accounts_named(db: &TenantDb, name: &str) -> Vec<Account> {
    let page = accounts::list(db, &AccountFilter::default(), &PageRequest::default())
        .await
        .unwrap();
    page.items.into_iter().filter(|a| a.name == name).collect()
}

/// Retries the create of account `key` under key `key` after a failure, and checks that it
/// acted once: it replayed or created (never refused), and exactly one account `key`
/// exists — the one a replay names.
async fn retry_acts_once(db: &TenantDb, key: &str) -> Once<Account> {
    let retried = create(db, Some(claim(key, "h")), key)
        .await
        .unwrap_or_else(|e| panic!("{key}: the retry failed: {e:?}"));
    let rows = accounts_named(db, key).await;
    assert_eq!(rows.len(), 1, "{key}: exactly one account after the retry");
    match &retried {
        Once::Ran(account) => assert_eq!(account.id, rows[0].id),
        Once::Replayed(stored) => assert_eq!(stored, &response(&rows[0]), "{key}"),
    }
    retried
}

/// The retry created the row: the failed attempt left nothing behind.
async fn retry_runs(db: &TenantDb, key: &str) {
    let retried = retry_acts_once(db, key).await;
    assert!(matches!(retried, Once::Ran(_)), "{key}: {retried:?}");
}

pub fn is_postgres(w: &World) -> bool {
    matches!(w.test.backend, Backend::Postgres(_))
}

#[tokio::test]
async fn a_keyed_create_runs_once_then_replays_its_stored_response() {
    each_backend(|w| async move {
        let runs = AtomicUsize::new(0);
        let counted = async |hash: &str| {
            idempotency::once(
                &w.a,
                Some(claim("k1", hash)),
                async |txn| {
                    runs.fetch_add(1, Ordering::SeqCst);
                    accounts::create(txn, named("k1")).await
                },
                response,
            )
            .await
        };
        let Once::Ran(first) = counted("hash-1").await.unwrap() else {
            panic!("the first use of a key runs")
        };
        assert_eq!(
            counted("hash-1").await.unwrap(),
            Once::Replayed(response(&first))
        );
        assert!(matches!(
            counted("hash-2").await,
            Err(Error::IdempotencyKeyReused)
        ));
        assert_eq!(
            runs.load(Ordering::SeqCst),
            1,
            "replays and refusals do not run"
        );
        assert_eq!(accounts_named(&w.a, "k1").await, [first]);

        // Without a key: a plain create in a transaction of its own, every time.
        for _ in 0..2 {
            assert!(matches!(
                create(&w.a, None, "unkeyed").await,
                Ok(Once::Ran(_))
            ));
        }
        assert_eq!(accounts_named(&w.a, "unkeyed").await.len(), 2);
    })
    .await;
}

#[tokio::test]
async fn an_expired_key_and_a_claim_left_without_a_response_are_taken_over() {
    each_backend(|w| async move {
        let short = Claim {
            ttl: Duration::ZERO,
            ..claim("k", "old")
        };
        assert!(matches!(
            create(&w.a, Some(short), "old").await,
            Ok(Once::Ran(_))
        ));
        let Once::Ran(new) = create(&w.a, Some(claim("k", "new")), "new").await.unwrap() else {
            panic!("an expired key is free again, whatever its request was")
        };
        assert_eq!(
            create(&w.a, Some(claim("k", "new")), "new").await.unwrap(),
            Once::Replayed(response(&new))
        );

        // A claim committed without a response: what a crash mid-request left behind
        // under the earlier three-commit protocol. It is abandoned, not "in progress".
        raw::leftover_claim(&w.test.raw, w.a.tenant().as_uuid(), "left").await;
        retry_runs(&w.a, "left").await;

        let short = Claim {
            ttl: Duration::ZERO,
            ..claim("short", "h")
        };
        create(&w.a, Some(short), "short").await.unwrap();
        assert_eq!(idempotency::purge_expired(&w.a).await.unwrap(), 1);
    })
    .await;
}

#[tokio::test]
async fn keys_are_scoped_to_the_tenant_and_the_credential() {
    each_backend(|w| async move {
        let Once::Ran(mine) = create(&w.a, Some(claim("k", "h")), "mine").await.unwrap() else {
            panic!("a fresh key runs")
        };
        let other_credential = Claim {
            credential_id: "api_key:2",
            ..claim("k", "h")
        };
        assert!(matches!(
            create(&w.a, Some(other_credential), "other credential").await,
            Ok(Once::Ran(_))
        ));
        assert!(matches!(
            create(&w.b, Some(claim("k", "h")), "other tenant").await,
            Ok(Once::Ran(_))
        ));
        assert_eq!(
            create(&w.a, Some(claim("k", "h")), "mine").await.unwrap(),
            Once::Replayed(response(&mine))
        );
        assert_eq!(idempotency::purge_expired(&w.b).await.unwrap(), 0);

        let bad = Claim {
            credential_id: "",
            ..claim("has space", "h")
        };
        assert_eq!(
            invalid_fields(create(&w.a, Some(bad), "bad").await),
            [
                ("credential_id".into(), "invalid_format"),
                ("idempotency_key".into(), "invalid_format")
            ]
        );
        let long = "k".repeat(256);
        assert!(matches!(
            create(&w.a, Some(claim(&long, "h")), "bad").await,
            Err(Error::Validation(_))
        ));
        assert!(accounts_named(&w.a, "bad").await.is_empty());
    })
    .await;
}

#[tokio::test]
async fn a_keyed_create_that_fails_at_any_point_leaves_nothing_and_its_key_free() {
    each_backend(|w| async move {
        // Right after the claim, before anything is written.
        let failed = create(&w.a, Some(claim("after-claim", "h")), "").await;
        assert!(matches!(failed, Err(Error::Validation(_))), "{failed:?}");
        retry_runs(&w.a, "after-claim").await;

        // After the write: a later step of the same request fails.
        let failed = idempotency::once(
            &w.a,
            Some(claim("after-write", "h")),
            async |txn| {
                accounts::create(txn, named("after-write")).await?;
                let owner = AccountCreate {
                    owner_id: Some(Uuid::now_v7()),
                    ..named("after-write")
                };
                accounts::create(txn, owner).await
            },
            response,
        )
        .await;
        assert!(matches!(failed, Err(Error::NotFound { .. })), "{failed:?}");
        retry_runs(&w.a, "after-write").await;

        // After the write and `run`, before the response is stored and the commit: the
        // process dies (a panic unwinds through the open transaction).
        let db = w.a.clone();
        let crashed = tokio::spawn(async move {
            idempotency::once(
                &db,
                Some(claim("before-commit", "h")),
                async |txn| accounts::create(txn, named("before-commit")).await,
                |_| panic!("crash between the write and the stored response (expected)"),
            )
            .await
        })
        .await;
        assert!(crashed.is_err_and(|e| e.is_panic()));
        retry_runs(&w.a, "before-commit").await;

        // The commit itself fails (PostgreSQL: a deferred constraint refuses it). The
        // write is not reported as done, and nothing of it is durable.
        if is_postgres(&w) {
            let raw = &w.test.raw;
            execute(raw, REFUSE_COMMIT_FUNCTION).await;
            execute(raw, &deferred_trigger("refuse_commit")).await;
            let failed = create(&w.a, Some(claim("commit-refused", "h")), "commit-refused").await;
            assert!(failed.is_err(), "{failed:?}");
            assert!(accounts_named(&w.a, "commit-refused").await.is_empty());
            execute(raw, "DROP TRIGGER refuse_commit ON idempotency_keys").await;
            retry_runs(&w.a, "commit-refused").await;
        }
    })
    .await;
}

/// Starts the create of account `key` under key `key`, lets its `run` reach a point —
/// right after the claim, or after the write — and drops it there.
async fn cancel_in_run(w: &World, key: &str, after_write: bool) {
    let (reached, at) = oneshot::channel();
    let attempt = idempotency::once(
        &w.a,
        Some(claim(key, "h")),
        async |txn| {
            if after_write {
                accounts::create(txn, named(key)).await?;
            }
            reached.send(()).unwrap();
            std::future::pending().await
        },
        response,
    );
    tokio::select! {
        done = attempt => panic!("{key}: the attempt finished: {done:?}"),
        _ = at => {}
    }
}

#[tokio::test]
async fn a_keyed_create_cancelled_at_any_point_leaves_nothing_and_its_key_free() {
    each_backend(|w| async move {
        cancel_in_run(&w, "cancelled-after-claim", false).await;
        retry_runs(&w.a, "cancelled-after-claim").await;

        cancel_in_run(&w, "cancelled-after-write", true).await;
        retry_runs(&w.a, "cancelled-after-write").await;

        // Cancelled while its COMMIT is in flight (held by a deferred trigger until the
        // test lets it go): the commit's outcome was never seen, so the retry waits for
        // it and replays — or runs, had it failed.
        if is_postgres(&w) {
            let raw = &w.test.raw;
            let held = hold_commits(raw).await;
            let attempt = create(
                &w.a,
                Some(claim("cancelled-in-commit", "h")),
                "cancelled-in-commit",
            );
            tokio::select! {
                done = attempt => panic!("the attempt finished: {done:?}"),
                _ = committing(raw) => {}
            }
            held.commit().await.unwrap();
            retry_acts_once(&w.a, "cancelled-in-commit").await;
            execute(raw, "DROP TRIGGER hold_commit ON idempotency_keys").await;
        }
    })
    .await;
}

#[tokio::test]
async fn a_keyed_create_whose_connection_is_killed_at_any_point_leaves_nothing_and_its_key_free() {
    each_backend(|w| async move {
        if !is_postgres(&w) {
            return; // SQLite has no server process to kill.
        }
        let raw = &w.test.raw;
        for after_write in [false, true] {
            let key = if after_write {
                "killed-after-write"
            } else {
                "killed-after-claim"
            };
            let failed = idempotency::once(
                &w.a,
                Some(claim(key, "h")),
                async |txn| {
                    if after_write {
                        let created = accounts::create(txn, named(key)).await?;
                        terminate(raw, claim_owner(raw).await).await;
                        Ok(created)
                    } else {
                        terminate(raw, claim_owner(raw).await).await;
                        accounts::create(txn, named(key)).await
                    }
                },
                response,
            )
            .await;
            assert!(failed.is_err(), "{key}: {failed:?}");
            retry_runs(&w.a, key).await;
        }

        // Killed while its COMMIT waits (held by a deferred trigger).
        let held = hold_commits(raw).await;
        let (failed, ()) = tokio::join!(
            create(
                &w.a,
                Some(claim("killed-in-commit", "h")),
                "killed-in-commit"
            ),
            async {
                terminate(raw, committing(raw).await).await;
                held.commit().await.unwrap();
            }
        );
        assert!(failed.is_err(), "{failed:?}");
        retry_runs(&w.a, "killed-in-commit").await;
        execute(raw, "DROP TRIGGER hold_commit ON idempotency_keys").await;
    })
    .await;
}

#[tokio::test]
async fn concurrent_requests_with_one_key_act_once_and_the_second_replays_the_first() {
    each_backend(|w| async move {
        let runs = AtomicUsize::new(0);
        let contender = async || {
            idempotency::once(
                &w.a,
                Some(claim("same", "h")),
                async |txn| {
                    runs.fetch_add(1, Ordering::SeqCst);
                    if is_postgres(&w) {
                        // Prove the overlap: hold the key until the other request is
                        // blocked on it.
                        blocked_on_a_claim(&w.test.raw).await;
                    }
                    accounts::create(txn, named("same")).await
                },
                response,
            )
            .await
        };
        let (one, two) = tokio::join!(contender(), contender());
        assert_eq!(runs.load(Ordering::SeqCst), 1, "{one:?} {two:?}");
        let rows = accounts_named(&w.a, "same").await;
        assert_eq!(rows.len(), 1);
        let replayed = Once::Replayed(response(&rows[0]));
        let ran = Once::Ran(rows[0].clone());
        let (one, two) = (one.unwrap(), two.unwrap());
        assert!(
            (one == ran && two == replayed) || (one == replayed && two == ran),
            "{one:?} {two:?}"
        );
    })
    .await;
}

/// Creates 16 people of one account at once: each write reads (the account reference)
/// before it writes, the pattern a deferred SQLite transaction fails with `SQLITE_BUSY`
/// (`SQLITE_BUSY_SNAPSHOT` in WAL mode) when another writer commits in between.
async fn racing_writes_that_read_first(db: &TenantDb) {
    let account = accounts::create(db, named("racers")).await.unwrap();
    let mut writes = tokio::task::JoinSet::new();
    for i in 0..16 {
        let db = db.clone();
        writes.spawn(async move {
            let input = PersonCreate {
                account_id: Some(account.id),
                first_name: format!("Racer{i}"),
                last_name: "Write".into(),
                ..Default::default()
            };
            people::create(&db, input).await
        });
    }
    while let Some(written) = writes.join_next().await {
        written.unwrap().unwrap();
    }
    assert_eq!(people::count_for_account(db, account.id).await.unwrap(), 16);
}

#[tokio::test]
async fn writes_that_read_first_do_not_fail_when_they_race() {
    each_backend(|w| async move { racing_writes_that_read_first(&w.a).await }).await;

    // And on SQLite exactly as the server opens it (WAL mode).
    let dir = std::env::temp_dir().join("tenantry-tests");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{}-wal.db", Uuid::now_v7().simple()));
    let settings = migrations::PoolSettings {
        url: format!("sqlite://{}?mode=rwc", path.display()),
        max_connections: 4,
        acquire_timeout: Duration::from_secs(30),
    };
    let conn = migrations::connect(&settings).await.unwrap();
    migrations::up(&conn).await.unwrap();
    let connected = tenancy::Db::open(conn).unwrap();
    let new = identity::create_tenant(
        &connected.unscoped,
        TenantCreate {
            slug: "wal".into(),
            name: "WAL".into(),
            plan: None,
            admin_email: "admin@wal.example".into(),
            admin_name: "Admin".into(),
        },
    )
    .await
    .unwrap();
    let db = connected
        .db
        .tenant(&connected.issuer.issue(new.tenant.id, Actor::System));
    racing_writes_that_read_first(&db).await;
    connected.db.close().await.unwrap();
    for suffix in ["", "-wal", "-shm"] {
        let mut name = path.clone().into_os_string();
        name.push(suffix);
        let _ = std::fs::remove_file(name);
    }
}

/// Reaching behind the tenancy guard, as only a test may: a row in the format of the
/// older protocol, and PostgreSQL's lock views, triggers and backends. The test's own
/// schema is first on the pool's search path, so `idempotency_keys` below is this test's
/// table, and the locks on it are this test's.
#[expect(
    clippy::disallowed_types,
    reason = "tests only: the raw test connection, to set up faults the API cannot cause"
)]
pub mod raw {
    use sea_orm::{
        ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, QueryResult,
        Statement, TransactionTrait,
    };
    use uuid::Uuid;

    use super::CREDENTIAL;

    /// A claim of `key` committed without a response, as a crash mid-request left one
    /// behind under the earlier three-commit protocol.
    pub async fn leftover_claim(raw: &DatabaseConnection, tenant: Uuid, key: &str) {
        let backend = raw.get_database_backend();
        let placeholders = match backend {
            DbBackend::Postgres => "$1, $2, $3, $4, $5, $6",
            _ => "?, ?, ?, ?, ?, ?",
        };
        let sql = format!(
            "INSERT INTO idempotency_keys \
             (tenant_id, credential_id, key, request_hash, created_at, expires_at) \
             VALUES ({placeholders})"
        );
        let now = chrono::Utc::now();
        let values: [sea_orm::Value; 6] = [
            tenant.into(),
            CREDENTIAL.into(),
            key.into(),
            "h".into(),
            now.into(),
            (now + chrono::TimeDelta::days(1)).into(),
        ];
        raw.execute_raw(Statement::from_sql_and_values(backend, sql, values))
            .await
            .unwrap();
    }

    pub async fn execute(raw: &impl ConnectionTrait, sql: &str) {
        raw.execute_unprepared(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    async fn query(raw: &DatabaseConnection, sql: &str) -> Vec<QueryResult> {
        raw.query_all_raw(Statement::from_string(DbBackend::Postgres, sql))
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Polls `sql` (which selects `pid`) until it returns a row; its first `pid`.
    async fn first_pid(raw: &DatabaseConnection, sql: &str, what: &str) -> i32 {
        // A bound only so a broken test fails instead of hanging; each turn is a round trip.
        for _ in 0..100_000 {
            if let Some(row) = query(raw, sql).await.first() {
                return row.try_get("", "pid").unwrap();
            }
            tokio::task::yield_now().await;
        }
        panic!("never saw {what}")
    }

    /// The backend whose open transaction holds a claim on this test's `idempotency_keys`.
    pub async fn claim_owner(raw: &DatabaseConnection) -> i32 {
        first_pid(
            raw,
            "SELECT pid FROM pg_locks WHERE locktype = 'relation' \
             AND relation = 'idempotency_keys'::regclass AND mode = 'RowExclusiveLock' \
             AND granted AND pid <> pg_backend_pid()",
            "the claim's owner",
        )
        .await
    }

    /// Waits until a backend holding a lock on this test's `table` is blocked by another
    /// backend (a write or a `FOR SHARE` read waiting for a row another transaction
    /// keeps); its pid.
    pub async fn blocked_on_a_row_of(raw: &DatabaseConnection, table: &str) -> i32 {
        first_pid(
            raw,
            &format!(
                "SELECT pid FROM pg_locks WHERE locktype = 'relation' \
                 AND relation = '{table}'::regclass AND granted \
                 AND pid <> pg_backend_pid() AND cardinality(pg_blocking_pids(pid)) > 0"
            ),
            "a backend blocked on a row",
        )
        .await
    }

    /// Waits until a backend is blocked while holding a claim attempt on this test's
    /// `idempotency_keys` (a second request waiting for the first's claim).
    pub async fn blocked_on_a_claim(raw: &DatabaseConnection) -> i32 {
        first_pid(
            raw,
            "SELECT pid FROM pg_locks WHERE locktype = 'relation' \
             AND relation = 'idempotency_keys'::regclass AND granted \
             AND pid <> pg_backend_pid() AND cardinality(pg_blocking_pids(pid)) > 0",
            "a request blocked on the claim",
        )
        .await
    }

    /// Kills backend `pid` and waits until it is gone.
    pub async fn terminate(raw: &DatabaseConnection, pid: i32) {
        let done = query(
            raw,
            &format!("SELECT pg_terminate_backend({pid}, 30000) AS done"),
        )
        .await;
        assert_eq!(done[0].try_get::<bool>("", "done").ok(), Some(true));
    }

    /// The advisory lock a held commit waits for: per test table (its oid), so tests running
    /// in parallel on one database do not share it.
    const COMMIT_LOCK: &str = "pg_advisory_xact_lock(7411, 'idempotency_keys'::regclass::oid::int)";

    /// A trigger that runs at COMMIT (deferred) on every claim of this test's table.
    pub fn deferred_trigger(function: &str) -> String {
        format!(
            "CREATE CONSTRAINT TRIGGER {function} AFTER INSERT OR UPDATE ON idempotency_keys \
             DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION {function}()"
        )
    }

    pub const REFUSE_COMMIT_FUNCTION: &str = "CREATE FUNCTION refuse_commit() RETURNS trigger \
         LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'commit refused by the test'; END $$";

    /// Makes every commit that claims a key wait at COMMIT until the returned transaction
    /// ends (it holds the lock the trigger waits for).
    pub async fn hold_commits(raw: &DatabaseConnection) -> DatabaseTransaction {
        execute(
            raw,
            "CREATE OR REPLACE FUNCTION hold_commit() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN PERFORM pg_advisory_xact_lock(7411, TG_RELID::int); RETURN NULL; END $$",
        )
        .await;
        execute(raw, &deferred_trigger("hold_commit")).await;
        let held = raw.begin().await.unwrap();
        execute(&held, &format!("SELECT {COMMIT_LOCK}")).await;
        held
    }

    /// Waits until a claiming transaction is inside its COMMIT, held; its backend.
    pub async fn committing(raw: &DatabaseConnection) -> i32 {
        first_pid(
            raw,
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND NOT granted \
             AND classid = 7411 AND objid = 'idempotency_keys'::regclass::oid AND objsubid = 2",
            "a commit held at the trigger",
        )
        .await
    }
}
