//! Getting a server ready: its secrets (from the environment, or in development from a
//! file generated on first start), its database — connect (SQLite in WAL mode, or
//! PostgreSQL), apply migrations, create the demo tenant on first start — and a tenant
//! found by its slug (for `tenantry token --tenant <slug>` and the demo banner).
//!
//! This is the only module that writes a file at start-up (`<data dir>/dev-secrets.json`,
//! mode 0600, in development only).

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use domain::identity::{self, Role, TenantCreate};
use domain::pagination::PageRequest;
use rand::RngCore as _;
use secrecy::{ExposeSecret as _, SecretString};
use tenancy::{Actor, Connected, Db, TenantDb};
use uuid::Uuid;

use crate::settings::{Environment, Settings};

/// What getting the server ready can fail with.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// The development secrets file could not be read or written.
    #[error("development secrets in {path}: {reason}")]
    DevSecrets {
        /// The file.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// The database could not be opened or failed.
    #[error("database: {0}")]
    Db(#[from] tenancy::Error),
    /// The database could not be opened, or a migration failed.
    #[error("{0}")]
    Migration(#[from] migrations::Error),
    /// A domain operation failed.
    #[error("{0}")]
    Domain(#[from] domain::Error),
    /// The settings cannot work.
    #[error("{0}")]
    Settings(#[from] crate::settings::SettingsError),
}

type Result<T, E = BootstrapError> = std::result::Result<T, E>;

/// The two secrets a server needs, resolved.
#[derive(Debug, Clone)]
pub struct Secrets {
    /// The HS256 key JWTs are verified (and, by the CLI, signed) with.
    pub jwt_secret: SecretString,
    /// The master key the API-key pepper and the cursor key are derived from.
    pub secret_key: SecretString,
}

/// The secrets `settings` name; in development, those it leaves unset come from
/// `<data dir>/dev-secrets.json`, generated (0600) on the first start, so that tokens and
/// API keys survive restarts. ([`Settings::check`] already refused production without
/// them.)
///
/// # Errors
/// When the file cannot be read, parsed or written; in production, a missing secret.
pub fn secrets(settings: &Settings) -> Result<Secrets> {
    if let (Some(jwt_secret), Some(secret_key)) = (&settings.jwt_secret, &settings.secret_key) {
        return Ok(Secrets {
            jwt_secret: jwt_secret.clone(),
            secret_key: secret_key.clone(),
        });
    }
    if settings.environment == Environment::Production {
        let var = if settings.jwt_secret.is_none() {
            "TENANTRY_JWT_SECRET"
        } else {
            "TENANTRY_SECRET_KEY"
        };
        return Err(crate::settings::SettingsError::MissingSecret { var }.into());
    }
    let generated = DevSecrets::load_or_create(&settings.data_dir)?;
    Ok(Secrets {
        jwt_secret: settings
            .jwt_secret
            .clone()
            .unwrap_or_else(|| generated.jwt_secret.into()),
        secret_key: settings
            .secret_key
            .clone()
            .unwrap_or_else(|| generated.secret_key.into()),
    })
}

/// The secrets development generates once.
#[derive(serde::Serialize, serde::Deserialize)]
struct DevSecrets {
    jwt_secret: String,
    secret_key: String,
}

impl DevSecrets {
    const FILE: &'static str = "dev-secrets.json";

    fn load_or_create(dir: &Path) -> Result<Self> {
        let path = dir.join(Self::FILE);
        let fail = |reason: String| BootstrapError::DevSecrets {
            path: path.clone(),
            reason,
        };
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| fail(e.to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let secrets = Self {
                    jwt_secret: random_secret(),
                    secret_key: random_secret(),
                };
                std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
                let json = serde_json::to_vec_pretty(&secrets).map_err(|e| fail(e.to_string()))?;
                write_private(&path, &json).map_err(|e| fail(e.to_string()))?;
                Ok(secrets)
            }
            Err(e) => Err(fail(e.to_string())),
        }
    }
}

/// 32 random bytes, base64url: 43 characters.
fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

fn pool_settings(settings: &Settings) -> migrations::PoolSettings {
    migrations::PoolSettings {
        url: settings.database_url().expose_secret().to_owned(),
        max_connections: settings.db_max_connections(),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn development_in(dir: &Path) -> Settings {
        let mut settings = Settings::for_tests("sqlite::memory:");
        settings.data_dir = dir.to_owned();
        settings.jwt_secret = None;
        settings.secret_key = None;
        settings
    }

    #[test]
    fn development_generates_secrets_once_private_and_reuses_them() {
        let dir = std::env::temp_dir().join(format!("tenantry-secrets-{}", uuid::Uuid::now_v7()));
        let settings = development_in(&dir);
        let (Ok(first), Ok(second)) = (secrets(&settings), secrets(&settings)) else {
            panic!("secrets failed")
        };
        let shown = |s: &SecretString| s.expose_secret().to_owned();
        assert_eq!(shown(&first.jwt_secret), shown(&second.jwt_secret));
        assert_eq!(shown(&first.secret_key), shown(&second.secret_key));
        assert!(first.jwt_secret.expose_secret().len() >= 32);
        assert_ne!(shown(&first.jwt_secret), shown(&first.secret_key));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.join(DevSecrets::FILE))
                .map(|m| m.permissions().mode() & 0o777)
                .ok();
            assert_eq!(mode, Some(0o600));
        }
        // A secret set in the environment wins over the file, which is left as it was.
        let mut explicit = settings.clone();
        explicit.jwt_secret = Some("x".repeat(40).into());
        let mixed = secrets(&explicit).map(|s| (shown(&s.jwt_secret), shown(&s.secret_key)));
        assert_eq!(mixed.ok(), Some(("x".repeat(40), shown(&first.secret_key))));
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn explicit_secrets_touch_no_file_and_production_never_generates() {
        let dir = std::env::temp_dir().join(format!("tenantry-secrets-{}", uuid::Uuid::now_v7()));
        let mut settings = Settings::for_tests("sqlite::memory:");
        settings.data_dir = dir.clone();
        assert!(secrets(&settings).is_ok());
        assert!(!dir.exists());
        let mut production = development_in(&dir);
        production.environment = Environment::Production;
        assert!(matches!(
            secrets(&production),
            Err(BootstrapError::Settings(
                crate::settings::SettingsError::MissingSecret { .. }
            ))
        ));
        assert!(!dir.exists());
    }
}
