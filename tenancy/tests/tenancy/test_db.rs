//! `TestDb` opens SQLite as production does (`migrations::pool::connect`): WAL journal,
//! `synchronous=FULL`, a 10 s busy timeout. The values are production's, written out
//! here, so changing one side without the other fails.

use sea_orm::{ConnectionTrait, DatabaseTransaction, Statement, TransactionTrait};
use tenancy::testing::{Backend, TestDb};

/// `PRAGMA name` as read on `conn`, as text.
async fn pragma(conn: &DatabaseTransaction, name: &str) -> String {
    let statement = Statement::from_string(conn.get_database_backend(), format!("PRAGMA {name}"));
    let row = conn
        .query_one_raw(statement)
        .await
        .expect("pragma reads")
        .expect("pragma returns a row");
    row.try_get_by_index::<String>(0)
        .or_else(|_| row.try_get_by_index::<i64>(0).map(|n| n.to_string()))
        .expect("text or integer")
}

#[tokio::test]
async fn every_sqlite_connection_of_a_test_db_is_opened_as_production_opens_it() {
    let test = TestDb::new(&Backend::Sqlite).await.expect("fresh database");
    // Two transactions at once hold two pooled connections: `synchronous` and
    // `busy_timeout` are per connection, so each must have been opened with them.
    let first = test.raw.begin().await.expect("begin");
    let second = test.raw.begin().await.expect("begin");
    for conn in [&first, &second] {
        assert_eq!(pragma(conn, "journal_mode").await, "wal");
        assert_eq!(pragma(conn, "synchronous").await, "2", "2 is FULL");
        assert_eq!(pragma(conn, "busy_timeout").await, "10000", "milliseconds");
    }
}
