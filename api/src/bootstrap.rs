//! Getting a database ready: connect (SQLite in WAL mode, or PostgreSQL), apply
//! migrations, create the demo tenant on first start, and find a tenant by its slug (for
//! `tenantry token --tenant <slug>` and the demo banner).

use domain::identity::{self, Role, TenantCreate};
use domain::pagination::PageRequest;
use tenancy::{Actor, Connected, Db, TenantDb};
use uuid::Uuid;

use crate::settings::Settings;

/// What getting the database ready can fail with.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// The database could not be opened or failed.
    #[error("database: {0}")]
    Db(#[from] tenancy::Error),
    /// The database could not be opened, or a migration failed.
    #[error("{0}")]
    Migration(#[from] migrations::Error),
    /// A domain operation failed.
    #[error("{0}")]
    Domain(#[from] domain::Error),
}

type Result<T, E = BootstrapError> = std::result::Result<T, E>;

fn pool_settings(settings: &Settings) -> migrations::PoolSettings {
    migrations::PoolSettings {
        url: settings.database_url.expose().to_owned(),
        max_connections: settings.db_max_connections,
        acquire_timeout: settings.db_acquire_timeout,
    }
}

/// Opens the pool for `settings` (see [`migrations::connect`]: a fixed size, SQLite in
/// WAL mode with `synchronous=FULL`), without touching the schema.
///
/// # Errors
/// When the directory cannot be created or the database cannot be reached.
pub async fn connect(settings: &Settings) -> Result<Connected> {
    let conn = migrations::connect(&pool_settings(settings)).await?;
    Ok(Db::open(conn)?)
}

/// Opens the pool for `settings` and applies every pending migration first.
///
/// # Errors
/// When the database cannot be reached or a migration fails.
pub async fn open(settings: &Settings) -> Result<Connected> {
    let conn = migrations::connect(&pool_settings(settings)).await?;
    migrations::up(&conn).await?;
    Ok(Db::open(conn)?)
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
        .tenant(&connected.issuer.issue(tenant.id, Actor::System));
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
    let db = connected
        .db
        .tenant(&connected.issuer.issue(new.tenant.id, Actor::System));
    sample_data(&db, new.admin.id).await?;
    Ok(KnownTenant {
        id: new.tenant.id.as_uuid(),
        admin_id: Some(new.admin.id),
    })
}

/// A few accounts, people and activities, so the demo has something to list.
async fn sample_data(db: &TenantDb, admin_id: Uuid) -> Result<()> {
    use domain::{accounts, activities, people};
    let txn = db.begin().await?;
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
