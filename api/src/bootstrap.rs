//! Getting a database ready: connect (SQLite in WAL mode, or PostgreSQL), apply
//! migrations, create the demo tenant on first start, and find a tenant by its slug (for
//! `tenantry token --tenant <slug>` and the demo banner).

use std::path::PathBuf;
use std::time::Duration;

use domain::identity::{self, Role, TenantCreate};
use domain::pagination::PageRequest;
use sea_orm_migration::MigratorTrait as _;
use sea_orm_migration::sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use tenancy::{Actor, ConnectOptions, Connected, Db, TenantCtx, TenantId};
use uuid::Uuid;

use crate::settings::Settings;

/// What getting the database ready can fail with.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// The database could not be opened or failed.
    #[error("database: {0}")]
    Db(#[from] tenancy::Error),
    /// A migration failed.
    #[error("migration: {0}")]
    Migration(#[from] sea_orm_migration::DbErr),
    /// A domain operation failed.
    #[error("{0}")]
    Domain(#[from] domain::Error),
    /// The database file's directory could not be created.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

type Result<T, E = BootstrapError> = std::result::Result<T, E>;

/// Opens the pool for `settings`: a fixed size, SQLite in WAL mode (readers never wait
/// for the writer) with `synchronous=NORMAL`, the database file's directory created.
///
/// # Errors
/// When the directory cannot be created or the database cannot be reached.
pub async fn connect(settings: &Settings) -> Result<Connected> {
    let url = settings.database_url.expose();
    if let Some(path) = sqlite_path(url)
        && let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .max_connections(settings.db_max_connections)
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(5))
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(|o| {
            o.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
        });
    Ok(Db::connect(options).await?)
}

/// The file of a `sqlite://path?…` URL (none for in-memory databases).
fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && !path.starts_with(":memory:")).then(|| PathBuf::from(path))
}

/// Applies every pending migration.
///
/// # Errors
/// When a migration fails.
#[expect(
    clippy::disallowed_types,
    reason = "audited: migrations run on the raw connection"
)]
pub async fn migrate(unscoped: &tenancy::Unscoped) -> Result<()> {
    migrations::Migrator::up(unscoped.connection("apply migrations"), None).await?;
    Ok(())
}

/// A tenant as the operator commands need it: its id and, to sign user tokens for, its
/// first admin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownTenant {
    /// The tenant id.
    pub id: Uuid,
    /// Its oldest live admin user (`None` when it has none left).
    pub admin_id: Option<Uuid>,
}

/// The tenant with `slug`, looked up in the database, with its first admin; `None` when no
/// tenant has that slug.
///
/// # Errors
/// When the database fails (or has not been migrated).
pub async fn find_tenant(connected: &Connected, slug: &str) -> Result<Option<KnownTenant>> {
    let Some(tenant) = identity::find_tenant_by_slug(&connected.unscoped, slug).await? else {
        return Ok(None);
    };
    // Users come in id (UUIDv7, so creation) order: the tenant's first admin, made with
    // it, leads the first page unless it was deleted.
    let db = connected
        .db
        .tenant(&TenantCtx::new(tenant.id, Actor::System));
    let users = identity::list_users(&db, &PageRequest::default()).await?;
    let admin_id = users
        .items
        .iter()
        .find(|user| user.role == Role::Admin)
        .map(|user| user.id);
    Ok(Some(KnownTenant {
        id: tenant.id.as_uuid(),
        admin_id,
    }))
}

/// The demo tenant's slug.
pub const DEMO_SLUG: &str = "acme";

/// The demo tenant `acme`: found in the database, or created with sample data on the
/// first start.
///
/// # Errors
/// When the database fails.
pub async fn ensure_demo(connected: &Connected) -> Result<KnownTenant> {
    if let Some(known) = find_tenant(connected, DEMO_SLUG).await? {
        return Ok(known);
    }
    let created = identity::create_tenant(
        &connected.unscoped,
        TenantCreate {
            slug: DEMO_SLUG.to_owned(),
            name: "Acme Corp (demo)".to_owned(),
            plan: None,
            admin_email: "admin@acme.test".to_owned(),
            admin_name: "Demo Admin".to_owned(),
        },
    )
    .await;
    let new = match created {
        Ok(new) => new,
        // Another instance starting at the same time created it first.
        Err(conflict @ domain::Error::Conflict { .. }) => {
            return find_tenant(connected, DEMO_SLUG)
                .await?
                .ok_or_else(|| conflict.into());
        }
        Err(e) => return Err(e.into()),
    };
    sample_data(&connected.db, new.tenant.id, new.admin.id).await?;
    Ok(KnownTenant {
        id: new.tenant.id.as_uuid(),
        admin_id: Some(new.admin.id),
    })
}

/// A few accounts, people and activities, so the demo has something to list.
async fn sample_data(db: &Db, tenant: TenantId, admin_id: Uuid) -> Result<()> {
    use domain::{accounts, activities, people};
    let ctx = TenantCtx::new(tenant, Actor::System);
    let txn = db.tenant(&ctx).begin().await?;
    let companies = [
        ("Globex", "globex.com"),
        ("Initech", "initech.com"),
        ("Umbrella", "umbrella.com"),
    ];
    let names = [
        ("Ada", "Lovelace"),
        ("Grace", "Hopper"),
        ("Alan", "Turing"),
        ("Edsger", "Dijkstra"),
    ];
    for (i, (company, domain_name)) in companies.iter().enumerate() {
        let account = accounts::create(
            &txn,
            accounts::AccountCreate {
                name: (*company).to_owned(),
                domain: Some((*domain_name).to_owned()),
                owner_id: Some(admin_id),
                custom_fields: Some(
                    serde_json::json!({ "tier": if i == 0 { "gold" } else { "silver" } }),
                ),
            },
        )
        .await?;
        for (first, last) in names {
            let person = people::create(
                &txn,
                people::PersonCreate {
                    account_id: Some(account.id),
                    first_name: first.to_owned(),
                    last_name: last.to_owned(),
                    email: Some(format!("{}@{domain_name}", first.to_lowercase())),
                    title: Some("Engineer".to_owned()),
                    phone: None,
                    stage: None,
                },
            )
            .await?;
            activities::create(
                &txn,
                activities::ActivityCreate {
                    person_id: person.id,
                    user_id: Some(admin_id),
                    kind: activities::ActivityKind::Call,
                    subject: format!("Intro call with {first}"),
                    body: None,
                    occurred_at: None,
                },
            )
            .await?;
        }
    }
    txn.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_name_their_file() {
        assert_eq!(
            sqlite_path("sqlite://./data/tenantry.db?mode=rwc"),
            Some(PathBuf::from("./data/tenantry.db"))
        );
        assert_eq!(
            sqlite_path("sqlite:/tmp/x.db"),
            Some(PathBuf::from("/tmp/x.db"))
        );
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert_eq!(sqlite_path("postgres://localhost/db"), None);
    }
}
