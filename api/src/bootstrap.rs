//! Getting a database ready: connect (SQLite in WAL mode, or PostgreSQL), apply
//! migrations, create the demo tenant on first start, and remember the tenants this
//! installation created so `tenantry token --tenant <slug>` can find them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use domain::identity::{self, TenantCreate};
use sea_orm_migration::MigratorTrait as _;
use sea_orm_migration::sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use serde::{Deserialize, Serialize};
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
    /// A file could not be read or written.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A file did not hold valid JSON.
    #[error("{0}")]
    Json(#[from] serde_json::Error),
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

/// A tenant this installation created (demo or seed), as remembered in
/// `<data dir>/tenants.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownTenant {
    /// The tenant id.
    pub id: Uuid,
    /// Its first admin user.
    pub admin_id: Uuid,
}

/// The slug → tenant registry in the data directory.
///
/// Why a file: the domain has no lookup of a tenant by slug (only by a tenant handle),
/// so the CLI remembers the tenants it created itself.
#[derive(Debug)]
pub struct Registry {
    path: PathBuf,
    tenants: BTreeMap<String, KnownTenant>,
}

impl Registry {
    /// Loads the registry of `data_dir` (empty when there is none yet).
    pub fn load(data_dir: &Path) -> Self {
        let path = data_dir.join("tenants.json");
        let tenants = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Self { path, tenants }
    }

    /// The tenant with `slug`.
    pub fn get(&self, slug: &str) -> Option<&KnownTenant> {
        self.tenants.get(slug)
    }

    /// Remembers a tenant and writes the file.
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn insert(&mut self, slug: &str, tenant: KnownTenant) -> Result<()> {
        self.tenants.insert(slug.to_owned(), tenant);
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&self.path, serde_json::to_vec_pretty(&self.tenants)?)?;
        Ok(())
    }
}

/// The demo tenant's slug.
pub const DEMO_SLUG: &str = "acme";

/// Creates the demo tenant `acme` with sample data, unless the registry knows it.
/// Returns the demo tenant (new or known), or `None` when it exists in the database
/// but not in the registry (then it cannot be found by slug).
///
/// # Errors
/// When the database fails.
pub async fn ensure_demo(
    connected: &Connected,
    registry: &mut Registry,
) -> Result<Option<KnownTenant>> {
    if let Some(known) = registry.get(DEMO_SLUG) {
        return Ok(Some(known.clone()));
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
        Err(domain::Error::Conflict { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let known = KnownTenant {
        id: new.tenant.id.as_uuid(),
        admin_id: new.admin.id,
    };
    sample_data(&connected.db, &known).await?;
    registry.insert(DEMO_SLUG, known.clone())?;
    Ok(Some(known))
}

/// A few accounts, people and activities, so the demo has something to list.
async fn sample_data(db: &Db, tenant: &KnownTenant) -> Result<()> {
    use domain::{accounts, activities, people};
    let ctx = TenantCtx::new(TenantId::from_uuid(tenant.id), Actor::System);
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
                owner_id: Some(tenant.admin_id),
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
                    user_id: Some(tenant.admin_id),
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
