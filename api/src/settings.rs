//! Typed configuration, declared once.
//!
//! Each setting is one field of [`Settings`]: its attribute names the environment variable
//! (and the command-line flag) and gives the default and the parser, its doc comment is its
//! documentation. `tenantry --help` prints them all; a test checks that the README's
//! configuration table lists exactly these variables.
//!
//! Rules:
//! - Reading the settings reads the environment and the arguments, nothing else: no file
//!   is read or written here (the development secrets file is
//!   [`crate::bootstrap::secrets`]'s).
//! - A secret is a [`SecretString`]: `Debug` prints it redacted, clap's help never shows
//!   its value (`hide_env_values`), and its parser cannot fail (so an error message cannot
//!   echo it); its length is checked by [`Settings::check`], which names the variable only.
//! - Defaults are the embedded mode (SQLite under `./data`, bound to localhost);
//!   `TENANTRY_ENV=production` turns the missing-secret fallbacks into start-up errors.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::ArgAction;
use ipnet::IpNet;
use secrecy::{ExposeSecret as _, SecretString};

/// Where the process runs; decides whether missing secrets may be generated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Environment {
    /// Local use: secrets are generated and persisted under the data directory, the
    /// demo tenant is created on first start.
    #[default]
    #[value(alias = "dev")]
    Development,
    /// Real deployments: secrets must come from the environment.
    #[value(alias = "prod")]
    Production,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line (what log shippers expect).
    #[default]
    Json,
    /// Human-readable lines for a terminal.
    Pretty,
}

/// The server's log filter when `TENANTRY_LOG` is unset: `info`, without a line per
/// migration applied (`sea_orm_migration`) and poem's own start-up lines.
pub const DEFAULT_SERVER_LOG: &str = "info,sea_orm_migration=warn,poem::server=warn";

/// The default SQLite location, relative to the working directory: the default data
/// directory's `tenantry.db`.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://./data/tenantry.db?mode=rwc";

/// The shortest secret accepted, in bytes.
pub const MIN_SECRET_BYTES: usize = 32;

/// Everything the server and the CLI are configured with. Each flag is also read from the
/// environment variable named beside it (the usual way to configure a server).
#[derive(Debug, Clone, clap::Args)]
pub struct Settings {
    /// Where the process runs: `development` or `production`. Production refuses to start
    /// without TENANTRY_JWT_SECRET and TENANTRY_SECRET_KEY, and never seeds the demo tenant.
    #[arg(long = "env", env = "TENANTRY_ENV", value_enum, default_value_t)]
    pub environment: Environment,

    /// The address the server listens on.
    #[arg(long, env = "TENANTRY_BIND", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,

    /// When set (e.g. `127.0.0.1:9090`), Prometheus metrics are served at `/metrics` on a
    /// listener of their own at this address, and not on the public one at all. Unset:
    /// `/metrics` is served with the API, to anyone who can reach it — fine on localhost,
    /// not on a public address.
    #[arg(long, env = "TENANTRY_METRICS_BIND")]
    pub metrics_bind: Option<SocketAddr>,

    /// `sqlite://…` (run in WAL mode) or `postgres://user:pass@host/db`. Default: SQLite
    /// at `<data dir>/tenantry.db`.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, value_parser = secret)]
    database_url: Option<SecretString>,

    /// The fixed pool size. Default 10 (PostgreSQL) or 4 (SQLite, where writers queue on
    /// one lock anyway).
    #[arg(long, env = "TENANTRY_DB_MAX_CONNECTIONS")]
    db_max_connections: Option<u32>,

    /// Milliseconds a request waits for a database connection (including opening one)
    /// before it fails as unavailable (503 + `Retry-After`); also the bound of `/readyz`'s
    /// check. With the database down, requests and probes fail within about this long.
    #[arg(long = "db-acquire-timeout-ms", env = "TENANTRY_DB_ACQUIRE_TIMEOUT_MS", default_value = "1000", value_parser = millis)]
    pub db_acquire_timeout: Duration,

    /// Free bytes kept on the SQLite file's filesystem: below it writes are refused with
    /// 507 + `Retry-After` and `/readyz` reports 503 (64 MiB by default).
    #[arg(long, env = "TENANTRY_SQLITE_MIN_FREE_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub sqlite_min_free_bytes: u64,

    /// Where the embedded mode keeps its files: the SQLite database, in development the
    /// generated secrets (`dev-secrets.json`, mode 0600, so tokens and API keys survive
    /// restarts), and `tenants.json` (the slugs `tenantry seed` created, read only by
    /// `loadtest run --tenants N`).
    #[arg(long, env = "TENANTRY_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// The HS256 key JWTs are verified with (at least 32 bytes), shared with whatever
    /// issues tokens. Development: generated into `<data dir>/dev-secrets.json` when unset.
    #[arg(long, env = "TENANTRY_JWT_SECRET", hide_env_values = true, value_parser = secret)]
    pub jwt_secret: Option<SecretString>,

    /// The required `iss` claim of JWTs.
    #[arg(long, env = "TENANTRY_JWT_ISSUER", default_value = "tenantry")]
    pub jwt_issuer: String,

    /// The required `aud` claim of JWTs.
    #[arg(long, env = "TENANTRY_JWT_AUDIENCE", default_value = "tenantry-api")]
    pub jwt_audience: String,

    /// The server-only master key (at least 32 bytes). The API-key pepper and the
    /// cursor-signing key are derived from it; changing it invalidates every API key.
    /// Development: generated like the JWT secret.
    #[arg(long, env = "TENANTRY_SECRET_KEY", hide_env_values = true, value_parser = secret)]
    pub secret_key: Option<SecretString>,

    /// Comma-separated origins allowed to call the API from a browser, e.g.
    /// `https://app.example.com,chrome-extension://abcdefghijklmnop`; `*` allows any.
    /// Default: none.
    #[arg(long, env = "TENANTRY_CORS_ORIGINS", value_delimiter = ',', value_parser = origin)]
    pub cors_origins: Vec<String>,

    /// The request body's limits.
    #[command(flatten)]
    pub body: BodyLimits,

    /// Milliseconds one request may take before it is abandoned with 503.
    #[arg(long = "request-timeout-ms", env = "TENANTRY_REQUEST_TIMEOUT_MS", default_value = "30000", value_parser = millis)]
    pub request_timeout: Duration,

    /// Overload protection and fair shares.
    #[command(flatten)]
    pub admission: AdmissionSettings,

    /// In sync mode (`sort=updated_at`), milliseconds during which changed rows are held
    /// back, so a transaction that committed late with an older `updated_at` is not
    /// skipped by a cursor that already moved past it. Must exceed the longest write
    /// transaction.
    #[arg(long = "sync-safety-window-ms", env = "TENANTRY_SYNC_SAFETY_WINDOW_MS", default_value = "2000", value_parser = millis)]
    pub sync_safety_window: Duration,

    /// Seconds a verified API key is trusted without asking the database again (a revoked
    /// key keeps working on other instances for at most this long).
    #[arg(long = "api-key-cache-secs", env = "TENANTRY_API_KEY_CACHE_SECS", default_value = "30", value_parser = seconds)]
    pub api_key_cache_ttl: Duration,

    /// Create the demo tenant `acme` with sample data on first start (development only:
    /// always off in production).
    #[arg(long, env = "TENANTRY_DEMO", default_value_t = true, action = ArgAction::Set)]
    pub demo: bool,

    /// The log filter (`tracing` env-filter syntax, e.g. `info,tenancy=debug`). Unset: the
    /// server logs at `info` what an operator needs (not each migration applied nor poem's
    /// start-up lines), the other commands only warnings, so that what they print is all
    /// there is.
    #[arg(long = "log", env = "TENANTRY_LOG")]
    pub log_filter: Option<String>,

    /// `json` or `pretty`.
    #[arg(long, env = "TENANTRY_LOG_FORMAT", value_enum, default_value_t)]
    pub log_format: LogFormat,

    /// The Redis every instance shares its rate limits through
    /// (`redis://[:password@]host:port[/db]`, or comma-separated node URLs of a Redis
    /// Cluster). Unset: each instance limits in-process. Set but unreachable or slow: each
    /// instance falls back to in-process limits (fail-open, logged and counted in
    /// `/metrics`) and returns to Redis when it answers again.
    #[arg(long, env = "REDIS_URL", hide_env_values = true, value_parser = secret)]
    pub redis_url: Option<SecretString>,

    /// Rate limits: quotas, window, Redis timeout, trusted proxies.
    #[command(flatten)]
    pub rate_limit: RateLimitSettings,
}

/// The request body's limits (see [`crate::admission`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::Args)]
pub struct BodyLimits {
    /// The largest body accepted, in bytes after decompression; larger gets 413.
    #[arg(long = "body-limit-bytes", env = "TENANTRY_BODY_LIMIT_BYTES", default_value_t = 1024 * 1024)]
    pub max_bytes: usize,
    /// Milliseconds by which the whole body must have arrived; later gets 408.
    #[arg(long = "body-timeout-ms", env = "TENANTRY_BODY_TIMEOUT_MS", default_value = "20000", value_parser = millis)]
    pub timeout: Duration,
    /// Bytes per second a body must keep up with; slower gets 408.
    #[arg(
        long = "body-min-rate",
        env = "TENANTRY_BODY_MIN_RATE",
        default_value_t = 1024
    )]
    pub min_rate: u64,
    /// Milliseconds a body may fall behind the minimum rate (a pause, the first bytes).
    #[arg(long = "body-grace-ms", env = "TENANTRY_BODY_GRACE_MS", default_value = "5000", value_parser = millis)]
    pub grace: Duration,
}

/// Overload protection and fair shares (see [`crate::admission`]): requests beyond a share
/// or the queue are shed at once with 503 + `Retry-After`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::Args)]
pub struct AdmissionSettings {
    /// Requests served at once (at least 1).
    #[arg(long, env = "TENANTRY_MAX_IN_FLIGHT", default_value_t = 64)]
    pub max_in_flight: usize,
    /// Requests that may wait for a slot; more are shed at once with 503 + `Retry-After`
    /// (`tenantry_http_requests_shed_total`); `/healthz`, `/readyz` and `/metrics` are
    /// never shed.
    #[arg(long, env = "TENANTRY_MAX_QUEUED", default_value_t = 512)]
    pub max_queued: usize,
    /// Milliseconds a request may wait for a slot.
    #[arg(long = "queue-timeout-ms", env = "TENANTRY_QUEUE_TIMEOUT_MS", default_value = "1000", value_parser = millis)]
    pub queue_timeout: Duration,
    /// Running + queued requests of one tenant. Default: half the slots.
    #[arg(long, env = "TENANTRY_MAX_IN_FLIGHT_PER_TENANT")]
    pub per_tenant: Option<usize>,
    /// Running + queued requests of one credential. Default: a quarter of the slots.
    #[arg(long, env = "TENANTRY_MAX_IN_FLIGHT_PER_CREDENTIAL")]
    pub per_credential: Option<usize>,
    /// Running + queued requests without a credential (docs, spec, refused credentials),
    /// all together. Default: an eighth of the slots.
    #[arg(long, env = "TENANTRY_MAX_IN_FLIGHT_ANONYMOUS")]
    pub anonymous: Option<usize>,
    /// Running + queued requests of one anonymous client address. Default: a sixteenth of
    /// the slots.
    #[arg(long, env = "TENANTRY_MAX_IN_FLIGHT_PER_ADDRESS")]
    pub per_address: Option<usize>,
}

impl AdmissionSettings {
    /// `max_in_flight` slots, `max_queued` places in the queue, the default shares.
    pub fn slots(max_in_flight: usize, max_queued: usize, queue_timeout: Duration) -> Self {
        Self {
            max_in_flight,
            max_queued,
            queue_timeout,
            per_tenant: None,
            per_credential: None,
            anonymous: None,
            per_address: None,
        }
    }
}

/// Rate limits (see [`crate::limits`]). Quotas are in cost units per window, refilled
/// continuously; every operation's cost is published in the spec (`x-rate-limit-cost`).
#[derive(Debug, Clone, clap::Args)]
pub struct RateLimitSettings {
    /// Off, nothing is refused and no rate-limit header is sent (for benchmarks, or behind
    /// a gateway that limits).
    #[arg(long = "rate-limit-enabled", env = "TENANTRY_RATE_LIMIT_ENABLED", default_value_t = true, action = ArgAction::Set)]
    pub enabled: bool,
    /// Cost units per window for a whole tenant, all its credentials together (a per-team
    /// budget like Salesloft's). At least the dearest request's cost (35).
    #[arg(
        long = "rate-limit-tenant-quota",
        env = "TENANTRY_RATE_LIMIT_TENANT_QUOTA",
        default_value_t = 600
    )]
    pub tenant_quota: u64,
    /// Cost units per window for one credential (an API key, or a token's subject) inside
    /// its tenant's budget — smaller, so one integration cannot starve the rest of its
    /// tenant. At least the dearest request's cost (35).
    #[arg(
        long = "rate-limit-credential-quota",
        env = "TENANTRY_RATE_LIMIT_CREDENTIAL_QUOTA",
        default_value_t = 300
    )]
    pub credential_quota: u64,
    /// Cost units per window per client IP (IPv6: per /64) for requests without a valid
    /// credential.
    #[arg(
        long = "rate-limit-anonymous-quota",
        env = "TENANTRY_RATE_LIMIT_ANONYMOUS_QUOTA",
        default_value_t = 60
    )]
    pub anonymous_quota: u64,
    /// The window of all three quotas, in seconds.
    #[arg(long = "rate-limit-window-secs", env = "TENANTRY_RATE_LIMIT_WINDOW_SECS", default_value = "60", value_parser = seconds)]
    pub window: Duration,
    /// Milliseconds a decision waits for Redis before the in-process limiter decides
    /// instead: a reply that a loaded 2-core host takes 50 ms for is slow, not lost, and
    /// falling back to per-instance budgets for it weakens the limit more than the wait
    /// costs.
    #[arg(long = "rate-limit-redis-timeout-ms", env = "TENANTRY_RATE_LIMIT_REDIS_TIMEOUT_MS", default_value = "100", value_parser = millis)]
    pub redis_timeout: Duration,
    /// Prepended to every Redis key, so deployments can share a Redis.
    #[arg(
        long = "rate-limit-key-prefix",
        env = "TENANTRY_RATE_LIMIT_KEY_PREFIX",
        default_value = "tenantry:"
    )]
    pub key_prefix: String,
    /// Comma-separated addresses and CIDR blocks of the reverse proxies / load balancers
    /// in front of the API, e.g. `10.0.0.0/8,192.0.2.10`. Only for a request whose peer is
    /// one of them is the client address taken from `X-Forwarded-For` (its right-most
    /// address that is not a trusted proxy); from any other peer the header is ignored, so
    /// it cannot be forged. Default: none (the peer address is the client).
    #[arg(long, env = "TENANTRY_TRUSTED_PROXIES", value_delimiter = ',', value_parser = network)]
    pub trusted_proxies: Vec<IpNet>,
}

impl RateLimitSettings {
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

/// A configuration that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A variable is set to something that cannot be used.
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
}

impl Settings {
    /// Refuses what cannot work — production without its secrets, a secret shorter than
    /// [`MIN_SECRET_BYTES`], a database URL of another scheme — and turns the demo off in
    /// production.
    ///
    /// # Errors
    /// The first of these, naming its variable (never its value).
    pub fn check(mut self) -> Result<Self, SettingsError> {
        for (var, secret) in [
            ("TENANTRY_JWT_SECRET", &self.jwt_secret),
            ("TENANTRY_SECRET_KEY", &self.secret_key),
        ] {
            match secret {
                Some(value) if value.expose_secret().len() < MIN_SECRET_BYTES => {
                    return Err(SettingsError::Invalid {
                        var,
                        reason: format!("must be at least {MIN_SECRET_BYTES} bytes"),
                    });
                }
                None if self.environment == Environment::Production => {
                    return Err(SettingsError::MissingSecret { var });
                }
                _ => {}
            }
        }
        let url = self.database_url();
        if !(url.expose_secret().starts_with("sqlite:")
            || url.expose_secret().starts_with("postgres"))
        {
            return Err(SettingsError::Invalid {
                var: "DATABASE_URL",
                reason: "must start with sqlite:// or postgres://".to_owned(),
            });
        }
        if self.environment == Environment::Production {
            self.demo = false;
        }
        Ok(self)
    }

    /// Settings for tests and tools: development defaults with fixed secrets, the given
    /// database URL, no demo data and no files touched.
    pub fn for_tests(database_url: &str) -> Self {
        Self {
            environment: Environment::Development,
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            metrics_bind: None,
            database_url: Some(database_url.into()),
            db_max_connections: Some(4),
            db_acquire_timeout: Duration::from_secs(1),
            sqlite_min_free_bytes: 64 * 1024 * 1024,
            data_dir: std::env::temp_dir(),
            jwt_secret: Some("test-jwt-secret-test-jwt-secret-test-jwt-secret".into()),
            jwt_issuer: "tenantry".to_owned(),
            jwt_audience: "tenantry-api".to_owned(),
            secret_key: Some("test-secret-key-test-secret-key-test-secret-key".into()),
            cors_origins: vec!["chrome-extension://abcdefghijklmnopabcdefghijklmnop".to_owned()],
            body: BodyLimits {
                max_bytes: 64 * 1024,
                timeout: Duration::from_secs(20),
                min_rate: 1024,
                grace: Duration::from_secs(5),
            },
            request_timeout: Duration::from_secs(30),
            admission: AdmissionSettings::slots(64, 512, Duration::from_secs(1)),
            sync_safety_window: Duration::ZERO,
            api_key_cache_ttl: Duration::from_secs(30),
            demo: false,
            log_filter: Some("warn".to_owned()),
            log_format: LogFormat::Json,
            redis_url: None,
            rate_limit: RateLimitSettings::generous(),
        }
    }

    /// The database: `DATABASE_URL`, or SQLite at `<data dir>/tenantry.db`.
    pub fn database_url(&self) -> SecretString {
        self.database_url.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("tenantry.db").display()
            )
            .into()
        })
    }

    /// The pool size: `TENANTRY_DB_MAX_CONNECTIONS`, or 4 for SQLite and 10 for PostgreSQL.
    pub fn db_max_connections(&self) -> u32 {
        self.db_max_connections
            .unwrap_or(if self.is_sqlite() { 4 } else { 10 })
    }

    /// Whether the database is SQLite (the embedded mode).
    pub fn is_sqlite(&self) -> bool {
        self.database_url().expose_secret().starts_with("sqlite:")
    }
}

/// `command` reading the environment as operators expect: a variable set to the empty
/// string counts as unset (what `VAR=` in a compose or unit file means).
pub fn with_environment(command: clap::Command) -> clap::Command {
    command.mut_args(|arg| {
        let empty = arg
            .get_env()
            .is_some_and(|var| std::env::var_os(var).is_some_and(|value| value.is_empty()));
        if empty { arg.env(None) } else { arg }
    })
}

/// The environment variable an invalid value of `error` came from, when it came from one
/// (clap's message names only the flag).
pub fn variable_behind(error: &clap::Error, command: &clap::Command) -> Option<String> {
    use clap::error::{ContextKind, ContextValue};
    let Some(ContextValue::String(shown)) = error.get(ContextKind::InvalidArg) else {
        return None;
    };
    let long = shown.strip_prefix("--")?.split([' ', '=']).next()?;
    let flag_given =
        std::env::args().any(|a| a == format!("--{long}") || a.starts_with(&format!("--{long}=")));
    let arg = command
        .get_arguments()
        .find(|a| a.get_long() == Some(long))?;
    let var = arg.get_env()?.to_string_lossy().into_owned();
    (!flag_given && std::env::var_os(&var).is_some()).then_some(var)
}

/// A secret: taken as it is (its length is checked by [`Settings::check`], so that no
/// parse error can print it).
fn secret(raw: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(raw.into())
}

/// A whole number of milliseconds.
fn millis(raw: &str) -> Result<Duration, std::num::ParseIntError> {
    raw.trim().parse().map(Duration::from_millis)
}

/// A whole number of seconds.
fn seconds(raw: &str) -> Result<Duration, std::num::ParseIntError> {
    raw.trim().parse().map(Duration::from_secs)
}

/// A browser origin, blanks around it dropped.
fn origin(raw: &str) -> Result<String, String> {
    match raw.trim() {
        "" => Err("an empty origin (a doubled or trailing comma?)".to_owned()),
        origin => Ok(origin.to_owned()),
    }
}

/// An IP address (one host) or a CIDR block (its host bits dropped).
fn network(raw: &str) -> Result<IpNet, String> {
    let entry = raw.trim();
    entry
        .parse::<IpNet>()
        .map(|net| net.trunc())
        .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("`{entry}` is neither an IP address nor a CIDR block"))
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory as _, FromArgMatches as _};

    use super::*;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        settings: Settings,
    }

    /// The settings given `flags` alone, checked: the test process's own environment (CI
    /// sets `DATABASE_URL`) is not read.
    fn settings(flags: &[&str]) -> Result<Settings, String> {
        let matches = Cli::command()
            .mut_args(|arg| arg.env(None))
            .try_get_matches_from(std::iter::once("tenantry").chain(flags.iter().copied()))
            .map_err(|e| e.to_string())?;
        let cli = Cli::from_arg_matches(&matches).map_err(|e| e.to_string())?;
        cli.settings.check().map_err(|e| e.to_string())
    }

    const SECRETS: [&str; 4] = [
        "--jwt-secret",
        "jjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjj",
        "--secret-key",
        "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk",
    ];

    fn with_secrets(flags: &[&'static str]) -> Vec<&'static str> {
        SECRETS.iter().chain(flags).copied().collect()
    }

    #[test]
    fn production_refuses_to_start_without_secrets() {
        let err = settings(&["--env", "production"]).err();
        assert_eq!(
            err.as_deref(),
            Some("TENANTRY_JWT_SECRET must be set when TENANTRY_ENV=production")
        );
        let err = settings(&["--env", "prod", "--jwt-secret", &"j".repeat(32)]).err();
        assert_eq!(
            err.as_deref(),
            Some("TENANTRY_SECRET_KEY must be set when TENANTRY_ENV=production")
        );
    }

    #[test]
    fn short_secrets_are_refused_without_being_shown_and_production_never_seeds_the_demo() {
        let err = settings(&["--jwt-secret", "short-secret-value"]).err();
        let err = err.unwrap_or_default();
        assert!(
            err.starts_with("TENANTRY_JWT_SECRET: must be at least 32"),
            "{err}"
        );
        assert!(!err.contains("short-secret-value"), "{err}");
        let production = settings(&with_secrets(&["--env", "production", "--demo", "true"]));
        assert!(production.is_ok_and(|s| !s.demo));
    }

    #[test]
    fn defaults_are_the_embedded_mode() {
        let s = settings(&[]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.environment, Environment::Development);
        assert_eq!(s.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(s.database_url().expose_secret(), DEFAULT_DATABASE_URL);
        assert!(s.demo && s.is_sqlite() && s.db_max_connections() == 4);
        assert!(s.jwt_secret.is_none() && s.secret_key.is_none());
        assert_eq!(s.log_format, LogFormat::Json);
        assert_eq!(s.db_acquire_timeout, Duration::from_secs(1));
        assert_eq!(s.body.max_bytes, 1024 * 1024);
        assert_eq!(
            s.admission,
            AdmissionSettings::slots(64, 512, Duration::from_secs(1))
        );
        let limits = &s.rate_limit;
        assert!(limits.enabled && s.redis_url.is_none() && limits.trusted_proxies.is_empty());
        assert_eq!(
            (
                limits.tenant_quota,
                limits.credential_quota,
                limits.anonymous_quota
            ),
            (600, 300, 60)
        );
        assert_eq!(limits.window, Duration::from_secs(60));
        assert_eq!(limits.redis_timeout, Duration::from_millis(100));
    }

    #[test]
    fn the_data_dir_places_the_database_and_postgres_gets_a_bigger_pool() {
        let s = settings(&["--data-dir", "/srv/t"]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            s.database_url().expose_secret(),
            "sqlite:///srv/t/tenantry.db?mode=rwc"
        );
        let s =
            settings(&["--database-url", "postgres://u@h/db"]).unwrap_or_else(|e| panic!("{e}"));
        assert!(!s.is_sqlite() && s.db_max_connections() == 10);
        let err = settings(&["--database-url", "mysql://u@h/db"]).err();
        assert_eq!(
            err.as_deref(),
            Some("DATABASE_URL: must start with sqlite:// or postgres://")
        );
    }

    #[test]
    fn trusted_proxies_are_addresses_and_cidr_blocks() {
        let parsed = settings(&[
            "--trusted-proxies",
            " 10.0.0.0/8, 192.0.2.10 ,2001:db8::/32,10.1.2.3/16",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        let shown: Vec<String> = parsed
            .rate_limit
            .trusted_proxies
            .iter()
            .map(ToString::to_string)
            .collect();
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
            let err = settings(&["--trusted-proxies", bad])
                .err()
                .unwrap_or_default();
            assert!(
                err.contains("TRUSTED_PROXIES") || err.contains("trusted-proxies"),
                "{bad}: {err}"
            );
            assert!(err.contains(bad), "{bad}: {err}");
        }
    }

    #[test]
    fn metrics_get_their_own_listener_only_when_an_address_is_set() {
        assert!(settings(&[]).is_ok_and(|s| s.metrics_bind.is_none()));
        let bound = settings(&["--metrics-bind", "127.0.0.1:9090"]).map(|s| s.metrics_bind);
        assert_eq!(bound, Ok(Some(SocketAddr::from(([127, 0, 0, 1], 9090)))));
        let err = settings(&["--metrics-bind", "localhost"])
            .err()
            .unwrap_or_default();
        assert!(err.contains("metrics-bind"), "{err}");
    }

    #[test]
    fn secrets_are_redacted_in_debug_output_and_help() {
        let s = Settings::for_tests("sqlite::memory:");
        let dump = format!("{s:?}");
        assert!(!dump.contains("test-jwt-secret"), "{dump}");
        assert!(dump.contains("REDACTED"), "{dump}");
        let help = Cli::command().render_long_help().to_string();
        for var in [
            "TENANTRY_JWT_SECRET",
            "TENANTRY_SECRET_KEY",
            "DATABASE_URL",
            "REDIS_URL",
        ] {
            assert!(help.contains(&format!("[env: {var}]")), "{var} in\n{help}");
        }
    }

    /// The README's configuration table, rendered from the declarations: one row per
    /// variable, its default, its doc.
    fn readme_table() -> String {
        let mut table = String::from("| variable | default | meaning |\n|---|---|---|\n");
        for arg in Cli::command().get_arguments() {
            let Some(var) = arg.get_env() else { continue };
            let default: Vec<String> = arg
                .get_default_values()
                .iter()
                .map(|v| format!("`{}`", v.to_string_lossy()))
                .collect();
            let default = if default.is_empty() {
                "unset".to_owned()
            } else {
                default.join(", ")
            };
            let doc = arg
                .get_long_help()
                .or(arg.get_help())
                .map(ToString::to_string);
            let doc = doc
                .unwrap_or_default()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            table.push_str(&format!(
                "| `{}` | {default} | {} |\n",
                var.to_string_lossy(),
                doc.replace('|', "\\|")
            ));
        }
        table
    }

    /// The README's table of settings is rendered from the declarations: it cannot drift.
    /// `UPDATE_README=1 cargo test -p api --lib readme` rewrites it.
    #[test]
    fn the_readme_lists_every_setting_as_declared() {
        const BEGIN: &str = "<!-- settings: rendered from api/src/settings.rs by a test -->\n";
        const END: &str = "<!-- /settings -->";
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
        let readme = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
        let (Some(start), Some(end)) = (readme.find(BEGIN), readme.find(END)) else {
            panic!("README.md has no {BEGIN:?} … {END:?} block")
        };
        let current = &readme[start + BEGIN.len()..end];
        let wanted = readme_table();
        if current == wanted {
            return;
        }
        if std::env::var_os("UPDATE_README").is_some() {
            let updated = format!("{}{BEGIN}{wanted}{}", &readme[..start], &readme[end..]);
            std::fs::write(&path, updated).unwrap_or_else(|e| panic!("{e}"));
            return;
        }
        panic!(
            "README.md's settings table differs from api/src/settings.rs; run \
             `UPDATE_README=1 cargo test -p api --lib readme`.\nwanted:\n{wanted}\nfound:\n{current}"
        );
    }

    #[test]
    fn every_setting_has_a_variable_and_a_doc() {
        let command = Cli::command();
        let arguments: Vec<_> = command
            .get_arguments()
            .filter(|a| !matches!(a.get_id().as_str(), "help"))
            .collect();
        assert!(arguments.len() > 30, "{}", arguments.len());
        for arg in arguments {
            let name = arg.get_id();
            assert!(
                arg.get_env().is_some(),
                "{name} has no environment variable"
            );
            assert!(arg.get_help().is_some(), "{name} has no doc");
        }
    }
}
