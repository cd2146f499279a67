//! Typed configuration, read once from the environment in `main` and passed down.
//!
//! Every variable is documented on the field it fills. Defaults are the embedded mode
//! (SQLite under `./data`, bound to localhost); `TENANTRY_ENV=production` turns the
//! missing-secret fallbacks into startup errors.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ipnet::IpNet;
use rand::RngCore as _;

use crate::admission::{AdmissionLimits, BodyLimits};

/// A secret value: never printed by `Debug` or `Display`, only read through
/// [`Secret::expose`], so a settings dump in a log line cannot leak it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Where the process runs; decides whether missing secrets may be generated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    /// Local use: secrets are generated and persisted under the data directory, the
    /// demo tenant is created on first start, logs may be pretty.
    Development,
    /// Real deployments: secrets must come from the environment.
    Production,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line (the default; what log shippers expect).
    Json,
    /// Human-readable lines for a terminal.
    Pretty,
}

/// The server's log filter when `TENANTRY_LOG` is unset: `info`, without a line per
/// migration applied (`sea_orm_migration`) and poem's own start-up lines.
pub const DEFAULT_SERVER_LOG: &str = "info,sea_orm_migration=warn,poem::server=warn";

/// Everything the server and the CLI are configured with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `TENANTRY_ENV`: `development` (default) or `production`. Production refuses to
    /// start without `TENANTRY_JWT_SECRET` and `TENANTRY_SECRET_KEY`, and never seeds
    /// the demo tenant.
    pub environment: Environment,
    /// `TENANTRY_BIND`: the address the server listens on. Default `127.0.0.1:8080`.
    pub bind: SocketAddr,
    /// `TENANTRY_METRICS_BIND`: when set (e.g. `127.0.0.1:9090`), Prometheus metrics are
    /// served at `/metrics` on a listener of their own at this address, and not on the
    /// public one at all. Unset (the default): `/metrics` is served on `TENANTRY_BIND`
    /// with the API, to anyone who can reach it — fine on localhost, not on a public
    /// address.
    pub metrics_bind: Option<SocketAddr>,
    /// `DATABASE_URL`: `sqlite://…` (default `sqlite://./data/tenantry.db?mode=rwc`, run in
    /// WAL mode) or `postgres://user:pass@host/db`.
    pub database_url: Secret,
    /// `TENANTRY_DB_MAX_CONNECTIONS`: the fixed pool size. Default 10 (PostgreSQL) or 4
    /// (SQLite, where writers queue on one lock anyway).
    pub db_max_connections: u32,
    /// `TENANTRY_DB_ACQUIRE_TIMEOUT_MS`: how long a request waits for a database connection
    /// (including opening one) before it fails as unavailable (503 + `Retry-After`); also
    /// the bound of `/readyz`'s check. Default 1000: with the database down, requests and
    /// probes fail within about a second instead of piling up.
    pub db_acquire_timeout: Duration,
    /// `TENANTRY_SQLITE_MIN_FREE_BYTES`: the free space kept on the SQLite file's
    /// filesystem: below it writes are refused with 507 and `/readyz` reports 503 (see
    /// [`crate::storage`]). Default 64 MiB.
    pub sqlite_min_free_bytes: u64,
    /// `TENANTRY_DATA_DIR`: where the embedded mode keeps its files (the SQLite database
    /// and, in development, the generated secrets). Default `./data`.
    pub data_dir: PathBuf,
    /// `TENANTRY_JWT_SECRET`: the HS256 key JWTs are verified with (at least 32 bytes),
    /// shared with whatever issues tokens. Development: generated into
    /// `<data dir>/dev-secrets.json` when unset.
    pub jwt_secret: Secret,
    /// `TENANTRY_JWT_ISSUER`: the required `iss` claim. Default `tenantry`.
    pub jwt_issuer: String,
    /// `TENANTRY_JWT_AUDIENCE`: the required `aud` claim. Default `tenantry-api`.
    pub jwt_audience: String,
    /// `TENANTRY_SECRET_KEY`: the server-only master key (at least 32 bytes). The API-key
    /// pepper and the cursor-signing key are derived from it; changing it invalidates
    /// every API key. Development: generated like the JWT secret.
    pub secret_key: Secret,
    /// `TENANTRY_CORS_ORIGINS`: comma-separated origins allowed to call the API from a
    /// browser, e.g. `https://app.example.com,chrome-extension://abcdefghijklmnop`. Empty
    /// (the default) allows none.
    pub cors_origins: Vec<String>,
    /// The request body (see [`crate::admission`]): `TENANTRY_BODY_LIMIT_BYTES`, the
    /// largest accepted after decompression (default 1 MiB; larger gets 413);
    /// `TENANTRY_BODY_TIMEOUT_MS`, the whole body's deadline (default 20000);
    /// `TENANTRY_BODY_MIN_RATE`, bytes per second it must keep up with (default 1024),
    /// falling at most `TENANTRY_BODY_GRACE_MS` behind (default 5000); slower gets 408.
    pub body: BodyLimits,
    /// `TENANTRY_REQUEST_TIMEOUT_MS`: how long one request may take before it is abandoned
    /// with 503. Default 30000.
    pub request_timeout: Duration,
    /// Overload protection and fair shares (see [`crate::admission`]):
    /// `TENANTRY_MAX_IN_FLIGHT` requests served at once (default 64),
    /// `TENANTRY_MAX_QUEUED` more waiting for a slot (default 512), each at most
    /// `TENANTRY_QUEUE_TIMEOUT_MS` (default 1000); beyond that requests are shed at once
    /// with 503 + `Retry-After`. Running + queued requests per tenant
    /// (`TENANTRY_MAX_IN_FLIGHT_PER_TENANT`, default half the slots), per credential
    /// (`…_PER_CREDENTIAL`, a quarter), for all anonymous traffic (`…_ANONYMOUS`, an
    /// eighth) and per anonymous client address (`…_PER_ADDRESS`, a sixteenth).
    pub admission: AdmissionLimits,
    /// `TENANTRY_SYNC_SAFETY_WINDOW_MS`: in sync mode (`sort=updated_at`), rows changed less
    /// than this long ago are held back, so a transaction that committed late with an
    /// older `updated_at` is not skipped by a cursor that already moved past it. Must
    /// exceed the longest write transaction. Default 2000.
    pub sync_safety_window: Duration,
    /// `TENANTRY_API_KEY_CACHE_SECS`: how long a verified API key is trusted without
    /// asking the database again (a revoked key keeps working on other instances for at
    /// most this long). Default 30.
    pub api_key_cache_ttl: Duration,
    /// `TENANTRY_DEMO`: create the demo tenant `acme` with sample data on first start.
    /// Default `true` in development, always `false` in production.
    pub demo: bool,
    /// `TENANTRY_LOG`: the log filter (`tracing` env-filter syntax). `None` (unset): the
    /// server logs at `info` what an operator needs — not each migration applied nor
    /// poem's own start-up lines ([`DEFAULT_SERVER_LOG`]) — and the other commands only
    /// warnings, so that what they print is all there is.
    pub log_filter: Option<String>,
    /// `TENANTRY_LOG_FORMAT`: `json` (default) or `pretty`.
    pub log_format: LogFormat,
    /// `REDIS_URL`: the Redis every instance shares its rate limits through
    /// (`redis://[:password@]host:port[/db]`). Unset (the default): each instance limits
    /// in-process. Set but unreachable or slow: each instance falls back to in-process
    /// limits (fail-open, logged and counted in `/metrics`) and returns to Redis when it
    /// answers again.
    pub redis_url: Option<Secret>,
    /// Rate limits: quotas, window, Redis timeout, trusted proxies.
    pub rate_limit: RateLimitSettings,
}

/// Rate limits (see [`crate::limits`]). Quotas are in cost units per window, refilled
/// continuously; every operation's cost is published in the spec (`x-rate-limit-cost`).
#[derive(Debug, Clone)]
pub struct RateLimitSettings {
    /// `TENANTRY_RATE_LIMIT_ENABLED`: `true` (default) or `false`. Off, nothing is refused
    /// and no rate-limit header is sent (for benchmarks, or behind a gateway that limits).
    pub enabled: bool,
    /// `TENANTRY_RATE_LIMIT_TENANT_QUOTA`: cost units per window for a whole tenant, all its
    /// credentials together. Default 600 (a per-team budget like Salesloft's).
    pub tenant_quota: u64,
    /// `TENANTRY_RATE_LIMIT_CREDENTIAL_QUOTA`: cost units per window for one credential (an
    /// API key, or a token's subject) inside its tenant's budget — smaller, so one
    /// integration cannot starve the rest of its tenant. Default 300. Must be at least the
    /// dearest request's cost (35), as must the tenant quota.
    pub credential_quota: u64,
    /// `TENANTRY_RATE_LIMIT_ANONYMOUS_QUOTA`: cost units per window per client IP (IPv6:
    /// per /64) for requests without a valid credential. Default 60.
    pub anonymous_quota: u64,
    /// `TENANTRY_RATE_LIMIT_WINDOW_SECS`: the window of all three quotas, in seconds.
    /// Default 60.
    pub window: Duration,
    /// `TENANTRY_RATE_LIMIT_REDIS_TIMEOUT_MS`: how long a decision waits for Redis before
    /// the in-process limiter decides instead. Default 100: a reply that a loaded 2-core
    /// host takes 50 ms for is slow, not lost, and falling back to per-instance budgets
    /// for it weakens the limit more than the wait costs.
    pub redis_timeout: Duration,
    /// `TENANTRY_RATE_LIMIT_KEY_PREFIX`: prepended to every Redis key, so deployments can
    /// share a Redis. Default `tenantry:`.
    pub key_prefix: String,
    /// `TENANTRY_TRUSTED_PROXIES`: comma-separated addresses and CIDR blocks of the reverse
    /// proxies / load balancers in front of the API, e.g. `10.0.0.0/8,192.0.2.10`. Only
    /// for a request whose peer is one of them is the client address taken from
    /// `X-Forwarded-For` (its right-most address that is not a trusted proxy); from any
    /// other peer the header is ignored, so it cannot be forged. Default empty: the peer
    /// address is the client.
    pub trusted_proxies: Vec<IpNet>,
}

impl RateLimitSettings {
    fn from_lookup(lookup: &impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        Ok(Self {
            enabled: parse(lookup, "TENANTRY_RATE_LIMIT_ENABLED", true)?,
            tenant_quota: parse(lookup, "TENANTRY_RATE_LIMIT_TENANT_QUOTA", 600)?,
            credential_quota: parse(lookup, "TENANTRY_RATE_LIMIT_CREDENTIAL_QUOTA", 300)?,
            anonymous_quota: parse(lookup, "TENANTRY_RATE_LIMIT_ANONYMOUS_QUOTA", 60)?,
            window: Duration::from_secs(parse(lookup, "TENANTRY_RATE_LIMIT_WINDOW_SECS", 60)?),
            redis_timeout: Duration::from_millis(parse(
                lookup,
                "TENANTRY_RATE_LIMIT_REDIS_TIMEOUT_MS",
                100,
            )?),
            key_prefix: lookup("TENANTRY_RATE_LIMIT_KEY_PREFIX")
                .unwrap_or_else(|| "tenantry:".to_owned()),
            trusted_proxies: match lookup("TENANTRY_TRUSTED_PROXIES") {
                None => Vec::new(),
                Some(raw) => parse_networks(&raw)
                    .map_err(|reason| invalid("TENANTRY_TRUSTED_PROXIES", reason))?,
            },
        })
    }

    /// Limits that tests never reach unless they lower them: a million units a minute.
    pub fn generous() -> Self {
        Self {
            enabled: true,
            tenant_quota: 1_000_000,
            credential_quota: 1_000_000,
            anonymous_quota: 1_000_000,
            window: Duration::from_secs(60),
            redis_timeout: Duration::from_millis(50),
            key_prefix: "tenantry:".to_owned(),
            trusted_proxies: Vec::new(),
        }
    }
}

/// A comma-separated list of IP addresses (one host each) and CIDR blocks; blanks around
/// entries are ignored.
fn parse_networks(raw: &str) -> Result<Vec<IpNet>, String> {
    raw.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            entry
                .parse::<IpNet>()
                .map(|net| net.trunc())
                .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("`{entry}` is neither an IP address nor a CIDR block"))
        })
        .collect()
}

/// A configuration value that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A variable is set to something that does not parse.
    #[error("{var}: {reason}")]
    Invalid {
        /// The environment variable.
        var: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A secret is missing where it cannot be generated.
    #[error("{var} must be set when TENANTRY_ENV=production")]
    MissingSecret {
        /// The environment variable.
        var: &'static str,
    },
    /// The development secrets file could not be read or written.
    #[error("development secrets in {path}: {reason}")]
    DevSecrets {
        /// The file.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
}

/// The default SQLite location, relative to the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://./data/tenantry.db?mode=rwc";
const MIN_SECRET_BYTES: usize = 32;

impl Settings {
    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_lookup(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
    }

    /// Reads the settings through `lookup` (the environment in production, a map in
    /// tests). Missing development secrets are generated and persisted.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let environment = match lookup("TENANTRY_ENV").as_deref() {
            None | Some("development" | "dev") => Environment::Development,
            Some("production" | "prod") => Environment::Production,
            Some(other) => {
                return Err(invalid(
                    "TENANTRY_ENV",
                    format!("`{other}` is not development|production"),
                ));
            }
        };
        let data_dir =
            PathBuf::from(lookup("TENANTRY_DATA_DIR").unwrap_or_else(|| "./data".to_owned()));
        let database_url = lookup("DATABASE_URL").unwrap_or_else(|| {
            if lookup("TENANTRY_DATA_DIR").is_some() {
                format!(
                    "sqlite://{}?mode=rwc",
                    data_dir.join("tenantry.db").display()
                )
            } else {
                DEFAULT_DATABASE_URL.to_owned()
            }
        });
        if !(database_url.starts_with("sqlite:") || database_url.starts_with("postgres")) {
            return Err(invalid(
                "DATABASE_URL",
                "must start with sqlite:// or postgres://".to_owned(),
            ));
        }
        let is_sqlite = database_url.starts_with("sqlite:");

        let (jwt_secret, secret_key) = match environment {
            Environment::Production => (
                require_secret(&lookup, "TENANTRY_JWT_SECRET")?,
                require_secret(&lookup, "TENANTRY_SECRET_KEY")?,
            ),
            Environment::Development => {
                let jwt = lookup("TENANTRY_JWT_SECRET");
                let key = lookup("TENANTRY_SECRET_KEY");
                let dev = if jwt.is_none() || key.is_none() {
                    Some(DevSecrets::load_or_create(&data_dir)?)
                } else {
                    None
                };
                let pick = |set: Option<String>, var, generated: fn(&DevSecrets) -> &str| match set
                {
                    Some(value) => check_secret(var, value),
                    None => Ok(Secret::new(dev.as_ref().map(generated).unwrap_or_default())),
                };
                (
                    pick(jwt, "TENANTRY_JWT_SECRET", |d| &d.jwt_secret)?,
                    pick(key, "TENANTRY_SECRET_KEY", |d| &d.secret_key)?,
                )
            }
        };

        let cors_origins = lookup("TENANTRY_CORS_ORIGINS")
            .map(|raw| {
                raw.split(',')
                    .map(str::trim)
                    .filter(|o| !o.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let log_format = match lookup("TENANTRY_LOG_FORMAT").as_deref() {
            None | Some("json") => LogFormat::Json,
            Some("pretty") => LogFormat::Pretty,
            Some(other) => {
                return Err(invalid(
                    "TENANTRY_LOG_FORMAT",
                    format!("`{other}` is not json|pretty"),
                ));
            }
        };
        let demo = match environment {
            Environment::Production => false,
            Environment::Development => parse(&lookup, "TENANTRY_DEMO", true)?,
        };

        Ok(Self {
            environment,
            bind: parse(
                &lookup,
                "TENANTRY_BIND",
                SocketAddr::from(([127, 0, 0, 1], 8080)),
            )?,
            metrics_bind: parse_optional(&lookup, "TENANTRY_METRICS_BIND")?,
            database_url: Secret::new(database_url),
            db_max_connections: parse(
                &lookup,
                "TENANTRY_DB_MAX_CONNECTIONS",
                if is_sqlite { 4 } else { 10 },
            )?,
            db_acquire_timeout: Duration::from_millis(parse(
                &lookup,
                "TENANTRY_DB_ACQUIRE_TIMEOUT_MS",
                1_000,
            )?),
            sqlite_min_free_bytes: parse(
                &lookup,
                "TENANTRY_SQLITE_MIN_FREE_BYTES",
                64 * 1024 * 1024,
            )?,
            data_dir,
            jwt_secret,
            jwt_issuer: lookup("TENANTRY_JWT_ISSUER").unwrap_or_else(|| "tenantry".to_owned()),
            jwt_audience: lookup("TENANTRY_JWT_AUDIENCE")
                .unwrap_or_else(|| "tenantry-api".to_owned()),
            secret_key,
            cors_origins,
            body: BodyLimits {
                max_bytes: parse(&lookup, "TENANTRY_BODY_LIMIT_BYTES", 1024 * 1024)?,
                timeout: Duration::from_millis(parse(&lookup, "TENANTRY_BODY_TIMEOUT_MS", 20_000)?),
                min_rate: parse(&lookup, "TENANTRY_BODY_MIN_RATE", 1024)?,
                grace: Duration::from_millis(parse(&lookup, "TENANTRY_BODY_GRACE_MS", 5_000)?),
            },
            request_timeout: Duration::from_millis(parse(
                &lookup,
                "TENANTRY_REQUEST_TIMEOUT_MS",
                30_000,
            )?),
            admission: {
                let max_in_flight = parse(&lookup, "TENANTRY_MAX_IN_FLIGHT", 64_usize)?.max(1);
                let defaults = AdmissionLimits::with_default_shares(
                    max_in_flight,
                    parse(&lookup, "TENANTRY_MAX_QUEUED", 512)?,
                    Duration::from_millis(parse(&lookup, "TENANTRY_QUEUE_TIMEOUT_MS", 1_000)?),
                );
                AdmissionLimits {
                    per_tenant: parse(
                        &lookup,
                        "TENANTRY_MAX_IN_FLIGHT_PER_TENANT",
                        defaults.per_tenant,
                    )?
                    .max(1),
                    per_credential: parse(
                        &lookup,
                        "TENANTRY_MAX_IN_FLIGHT_PER_CREDENTIAL",
                        defaults.per_credential,
                    )?
                    .max(1),
                    anonymous: parse(
                        &lookup,
                        "TENANTRY_MAX_IN_FLIGHT_ANONYMOUS",
                        defaults.anonymous,
                    )?
                    .max(1),
                    per_address: parse(
                        &lookup,
                        "TENANTRY_MAX_IN_FLIGHT_PER_ADDRESS",
                        defaults.per_address,
                    )?
                    .max(1),
                    ..defaults
                }
            },
            sync_safety_window: Duration::from_millis(parse(
                &lookup,
                "TENANTRY_SYNC_SAFETY_WINDOW_MS",
                domain::pagination::DEFAULT_SYNC_SAFETY_WINDOW.as_millis() as u64,
            )?),
            api_key_cache_ttl: Duration::from_secs(parse(
                &lookup,
                "TENANTRY_API_KEY_CACHE_SECS",
                30,
            )?),
            demo,
            log_filter: lookup("TENANTRY_LOG"),
            log_format,
            redis_url: lookup("REDIS_URL").map(Secret::new),
            rate_limit: RateLimitSettings::from_lookup(&lookup)?,
        })
    }

    /// Settings for tests and tools: development defaults with the given secrets, a
    /// database URL, no demo data and no files touched.
    pub fn for_tests(database_url: &str) -> Self {
        Self {
            environment: Environment::Development,
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            metrics_bind: None,
            database_url: Secret::new(database_url),
            db_max_connections: 4,
            db_acquire_timeout: Duration::from_secs(1),
            sqlite_min_free_bytes: 64 * 1024 * 1024,
            data_dir: std::env::temp_dir(),
            jwt_secret: Secret::new("test-jwt-secret-test-jwt-secret-test-jwt-secret"),
            jwt_issuer: "tenantry".to_owned(),
            jwt_audience: "tenantry-api".to_owned(),
            secret_key: Secret::new("test-secret-key-test-secret-key-test-secret-key"),
            cors_origins: vec!["chrome-extension://abcdefghijklmnopabcdefghijklmnop".to_owned()],
            body: BodyLimits {
                max_bytes: 64 * 1024,
                timeout: Duration::from_secs(20),
                min_rate: 1024,
                grace: Duration::from_secs(5),
            },
            request_timeout: Duration::from_secs(30),
            admission: AdmissionLimits::with_default_shares(64, 512, Duration::from_secs(1)),
            sync_safety_window: Duration::ZERO,
            api_key_cache_ttl: Duration::from_secs(30),
            demo: false,
            log_filter: Some("warn".to_owned()),
            log_format: LogFormat::Json,
            redis_url: None,
            rate_limit: RateLimitSettings::generous(),
        }
    }

    /// Whether the database is SQLite (the embedded mode).
    pub fn is_sqlite(&self) -> bool {
        self.database_url.expose().starts_with("sqlite:")
    }
}

fn invalid(var: &'static str, reason: String) -> SettingsError {
    SettingsError::Invalid { var, reason }
}

fn parse<T>(
    lookup: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    default: T,
) -> Result<T, SettingsError>
where
    T: std::str::FromStr,
    T::Err: fmt::Display,
{
    match lookup(var) {
        None => Ok(default),
        Some(raw) => raw
            .trim()
            .parse()
            .map_err(|e: T::Err| invalid(var, format!("`{raw}`: {e}"))),
    }
}

/// Like [`parse`], for a variable without a default: `None` when unset.
fn parse_optional<T>(
    lookup: &impl Fn(&str) -> Option<String>,
    var: &'static str,
) -> Result<Option<T>, SettingsError>
where
    T: std::str::FromStr,
    T::Err: fmt::Display,
{
    lookup(var)
        .map(|raw| {
            raw.trim()
                .parse()
                .map_err(|e: T::Err| invalid(var, format!("`{raw}`: {e}")))
        })
        .transpose()
}

fn check_secret(var: &'static str, value: String) -> Result<Secret, SettingsError> {
    if value.len() < MIN_SECRET_BYTES {
        return Err(invalid(
            var,
            format!("must be at least {MIN_SECRET_BYTES} bytes"),
        ));
    }
    Ok(Secret::new(value))
}

fn require_secret(
    lookup: &impl Fn(&str) -> Option<String>,
    var: &'static str,
) -> Result<Secret, SettingsError> {
    match lookup(var) {
        Some(value) => check_secret(var, value),
        None => Err(SettingsError::MissingSecret { var }),
    }
}

/// The secrets development generates once and keeps in `<data dir>/dev-secrets.json`,
/// so tokens and API keys survive restarts.
#[derive(serde::Serialize, serde::Deserialize)]
struct DevSecrets {
    jwt_secret: String,
    secret_key: String,
}

impl DevSecrets {
    const FILE: &'static str = "dev-secrets.json";

    fn load_or_create(dir: &Path) -> Result<Self, SettingsError> {
        let path = dir.join(Self::FILE);
        let fail = |reason: String| SettingsError::DevSecrets {
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    fn temp_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tenantry-settings-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).ok();
        dir
    }

    #[test]
    fn production_refuses_to_start_without_secrets() {
        let err = Settings::from_lookup(lookup(&[("TENANTRY_ENV", "production")])).err();
        assert!(
            matches!(
                err,
                Some(SettingsError::MissingSecret {
                    var: "TENANTRY_JWT_SECRET"
                })
            ),
            "{err:?}"
        );
        let err = Settings::from_lookup(lookup(&[
            ("TENANTRY_ENV", "production"),
            ("TENANTRY_JWT_SECRET", &"j".repeat(32)),
        ]))
        .err();
        assert!(
            matches!(
                err,
                Some(SettingsError::MissingSecret {
                    var: "TENANTRY_SECRET_KEY"
                })
            ),
            "{err:?}"
        );
    }

    #[test]
    fn production_rejects_short_secrets_and_never_seeds_the_demo() {
        let short = Settings::from_lookup(lookup(&[
            ("TENANTRY_ENV", "production"),
            ("TENANTRY_JWT_SECRET", "short"),
            ("TENANTRY_SECRET_KEY", &"k".repeat(32)),
        ]));
        assert!(matches!(
            short,
            Err(SettingsError::Invalid {
                var: "TENANTRY_JWT_SECRET",
                ..
            })
        ));
        let ok = Settings::from_lookup(lookup(&[
            ("TENANTRY_ENV", "production"),
            ("TENANTRY_JWT_SECRET", &"j".repeat(32)),
            ("TENANTRY_SECRET_KEY", &"k".repeat(32)),
            ("TENANTRY_DEMO", "true"),
        ]));
        assert!(ok.is_ok_and(|s| !s.demo));
    }

    #[test]
    fn development_generates_secrets_once_and_reuses_them() {
        let dir = temp_dir();
        let dir_str = dir.display().to_string();
        let first = Settings::from_lookup(lookup(&[("TENANTRY_DATA_DIR", &dir_str)]));
        let second = Settings::from_lookup(lookup(&[("TENANTRY_DATA_DIR", &dir_str)]));
        let (Ok(first), Ok(second)) = (first, second) else {
            panic!("settings failed")
        };
        assert_eq!(first.jwt_secret, second.jwt_secret);
        assert_eq!(first.secret_key, second.secret_key);
        assert!(first.jwt_secret.expose().len() >= 32);
        assert_ne!(first.jwt_secret, first.secret_key);
        assert!(first.database_url.expose().contains("tenantry.db"));
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn defaults_are_the_embedded_mode() {
        let dir = temp_dir();
        let s = Settings::from_lookup(lookup(&[
            ("TENANTRY_JWT_SECRET", &"j".repeat(32)),
            ("TENANTRY_SECRET_KEY", &"k".repeat(32)),
        ]));
        let Ok(s) = s else { panic!("settings failed") };
        assert_eq!(s.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(s.database_url.expose(), DEFAULT_DATABASE_URL);
        assert!(s.demo && s.is_sqlite());
        assert_eq!(s.log_format, LogFormat::Json);
        let limits = &s.rate_limit;
        assert!(limits.enabled && s.redis_url.is_none());
        assert_eq!(
            (
                limits.tenant_quota,
                limits.credential_quota,
                limits.anonymous_quota
            ),
            (600, 300, 60)
        );
        assert_eq!(limits.window, Duration::from_secs(60));
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn trusted_proxies_are_addresses_and_cidr_blocks_and_none_by_default() {
        let base = [
            ("TENANTRY_JWT_SECRET", "j".repeat(32)),
            ("TENANTRY_SECRET_KEY", "k".repeat(32)),
        ];
        let with = |proxies: Option<&str>| {
            let mut vars: Vec<(&str, &str)> = base.iter().map(|(k, v)| (*k, v.as_str())).collect();
            vars.extend(proxies.map(|p| ("TENANTRY_TRUSTED_PROXIES", p)));
            Settings::from_lookup(lookup(&vars)).map(|s| s.rate_limit.trusted_proxies)
        };
        assert!(with(None).is_ok_and(|p| p.is_empty()));
        let parsed = with(Some(
            " 10.0.0.0/8, 192.0.2.10 ,2001:db8::/32,10.1.2.3/16,, ",
        ));
        let Ok(parsed) = parsed else {
            panic!("{parsed:?}")
        };
        let shown: Vec<String> = parsed.iter().map(ToString::to_string).collect();
        // A host is a /32 (/128); host bits of a block are dropped.
        assert_eq!(
            shown,
            [
                "10.0.0.0/8",
                "192.0.2.10/32",
                "2001:db8::/32",
                "10.1.0.0/16"
            ]
        );
        for bad in ["10.0.0.0/33", "proxy.internal", "10.0.0.1 10.0.0.2", "*"] {
            let err = with(Some(bad));
            assert!(
                matches!(
                    &err,
                    Err(SettingsError::Invalid {
                        var: "TENANTRY_TRUSTED_PROXIES",
                        reason,
                    }) if reason.contains(bad)
                ),
                "{bad}: {err:?}"
            );
        }
    }

    #[test]
    fn metrics_get_their_own_listener_only_when_an_address_is_set() {
        let with = |bind: Option<&str>| {
            let mut vars = vec![
                ("TENANTRY_JWT_SECRET", "j".repeat(32)),
                ("TENANTRY_SECRET_KEY", "k".repeat(32)),
            ];
            vars.extend(bind.map(|b| ("TENANTRY_METRICS_BIND", b.to_owned())));
            let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
            Settings::from_lookup(lookup(&vars)).map(|s| s.metrics_bind)
        };
        assert!(with(None).is_ok_and(|b| b.is_none()));
        let bound = with(Some(" 127.0.0.1:9090 "));
        assert!(
            bound
                .as_ref()
                .is_ok_and(|b| *b == Some(SocketAddr::from(([127, 0, 0, 1], 9090)))),
            "{bound:?}"
        );
        assert!(matches!(
            with(Some("localhost")),
            Err(SettingsError::Invalid {
                var: "TENANTRY_METRICS_BIND",
                ..
            })
        ));
    }

    #[test]
    fn secrets_are_redacted_in_debug_output() {
        let s = Settings::for_tests("sqlite::memory:");
        let dump = format!("{s:?}");
        assert!(!dump.contains("test-jwt-secret"), "{dump}");
        assert!(dump.contains("[redacted]"));
    }

    #[test]
    fn invalid_values_name_their_variable() {
        let err = Settings::from_lookup(lookup(&[
            ("TENANTRY_JWT_SECRET", &"j".repeat(32)),
            ("TENANTRY_SECRET_KEY", &"k".repeat(32)),
            ("TENANTRY_BIND", "not-an-address"),
        ]));
        assert!(matches!(
            err,
            Err(SettingsError::Invalid {
                var: "TENANTRY_BIND",
                ..
            })
        ));
    }
}
