//! Class D: open a pool of our own, to get the escape hatch without naming it.
async fn open() {
    let _hatch = tenancy::Db::connect("sqlite://data/tenantry.db").await;
    let _raw = sea_orm::Database::connect("sqlite://data/tenantry.db").await;
    let _sqlx = sqlx::SqlitePool::connect("sqlite://data/tenantry.db").await;
}

fn main() {}
