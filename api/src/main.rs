//! The `tenantry` binary: the API server and its operator commands.
//!
//! `tenantry` (or `tenantry serve`) serves; `migrate` applies migrations; `seed` loads
//! bulk data; `token` prints a development JWT; `openapi` prints the spec; `backup` and
//! `restore` copy the SQLite database out and back. All read their configuration from the
//! environment or flags before the subcommand (`tenantry --help` lists every setting; see
//! `api::settings`).

use std::io::IsTerminal as _;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use api::auth::Scope;
use api::auth::jwt::{JwtIssuer, TokenType};
use api::bootstrap::{self, KnownTenant, Secrets};
use api::settings::{LogFormat, Settings};
use chrono::TimeDelta;
use clap::{CommandFactory as _, FromArgMatches as _, Parser, Subcommand, ValueEnum};
use secrecy::ExposeSecret as _;
use tenancy::{Connected, TenantId};
use tracing_subscriber::EnvFilter;
use uuid::Uuid;

/// mimalloc instead of the system allocator: a request allocates a few thousand small
/// blocks, where glibc's malloc spent a quarter of its instructions.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Tenantry: a multi-tenant sales-engagement REST API.
#[derive(Parser, Debug)]
#[command(name = "tenantry", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    settings: Settings,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the API (the default): migrate, create the demo tenant in development, listen.
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Load bulk data: N tenants with M people each (plus accounts), in batches.
    Seed {
        /// How many tenants to create.
        #[arg(long, default_value_t = 1)]
        tenants: u32,
        /// How many people per tenant.
        #[arg(long, default_value_t = 1000)]
        people: u32,
        /// People written per transaction.
        #[arg(long, default_value_t = 1000)]
        batch: u32,
    },
    /// Print a signed JWT for a tenant (development: production tokens come from your
    /// identity provider).
    Token {
        /// The tenant's slug (e.g. `acme`), looked up in the database, or its id.
        #[arg(long)]
        tenant: String,
        /// Comma-separated scopes (default: all).
        #[arg(long, value_delimiter = ',')]
        scopes: Vec<String>,
        /// Lifetime: `30m`, `12h`, `7d` (default `12h`).
        #[arg(long, default_value = "12h")]
        ttl: String,
        /// Token type.
        #[arg(long = "type", value_enum, default_value_t = TokenKind::User)]
        kind: TokenKind,
        /// Subject (default: the tenant's first admin for user tokens, `tenantry-cli`
        /// otherwise).
        #[arg(long)]
        sub: Option<String>,
    },
    /// Print the OpenAPI document (what `openapi/openapi.json` holds).
    Openapi,
    /// Copy the SQLite database to a new file: a consistent snapshot, taken while the
    /// server runs (PostgreSQL: explains `pg_dump`).
    Backup {
        /// The file to write; it must not exist.
        #[arg(long)]
        to: std::path::PathBuf,
    },
    /// Replace the SQLite database with a backup; refused while a server runs on it
    /// (PostgreSQL: explains `pg_restore`).
    Restore {
        /// The backup to restore.
        #[arg(long)]
        from: std::path::PathBuf,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum TokenKind {
    User,
    Integrator,
    Service,
}

fn main() -> std::process::ExitCode {
    let command = api::settings::with_environment(Cli::command());
    let cli = command
        .clone()
        .try_get_matches()
        .and_then(|matches| Cli::from_arg_matches(&matches))
        .unwrap_or_else(|e| {
            let _ = e.print();
            if let Some(var) = api::settings::variable_behind(&e, &command) {
                eprintln!("(the value is {var}'s)");
            }
            std::process::exit(e.exit_code())
        });
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| {
            runtime.block_on(run(cli.command.unwrap_or(Command::Serve), cli.settings))
        });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The whole chain on one line, without a backtrace: these are operator errors
            // (configuration, an unreachable database), not bugs.
            eprintln!("tenantry: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, settings: Settings) -> anyhow::Result<()> {
    if let Command::Openapi = command {
        print!("{}", api::openapi::spec_text());
        return Ok(());
    }
    let settings = settings.check().context("configuration")?;
    // `backup` and `restore` print one plain line and nothing else: no log lines.
    if !matches!(command, Command::Backup { .. } | Command::Restore { .. }) {
        init_logging(&settings, matches!(command, Command::Serve));
    }
    match command {
        Command::Serve => serve(settings).await,
        Command::Migrate => {
            bootstrap::open(&settings).await?;
            eprintln!("migrations applied");
            Ok(())
        }
        Command::Seed {
            tenants,
            people,
            batch,
        } => seed(settings, tenants, people, batch).await,
        Command::Token {
            tenant,
            scopes,
            ttl,
            kind,
            sub,
        } => {
            let secrets = bootstrap::secrets(&settings)?;
            let tenant = resolve_tenant(&settings, &tenant).await?;
            let token = token(
                &jwt_issuer(&settings, &secrets),
                &tenant,
                scopes,
                &ttl,
                kind,
                sub,
            )?;
            println!("{token}");
            Ok(())
        }
        Command::Backup { to } => {
            let backup = migrations::backup_to(settings.database_url().expose_secret(), &to)
                .await
                .context("backup")?;
            println!(
                "backup written to {} ({} bytes)",
                backup.path.display(),
                backup.bytes
            );
            Ok(())
        }
        Command::Restore { from } => {
            let restored = migrations::restore_from(&from, settings.database_url().expose_secret())
                .await
                .context("restore")?;
            println!(
                "restored {} into {} ({} bytes, last migration {})",
                from.display(),
                restored.path.display(),
                restored.bytes,
                restored.migration
            );
            Ok(())
        }
        Command::Openapi => Ok(()),
    }
}

/// Logging: the server's to stdout, the other commands' to stderr (their output is the
/// command's), each with its default filter unless `TENANTRY_LOG` says otherwise.
fn init_logging(settings: &Settings, serving: bool) {
    let to_stdout = serving;
    let default = if serving {
        api::settings::DEFAULT_SERVER_LOG
    } else {
        "warn"
    };
    let filter = settings
        .log_filter
        .as_deref()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let result = match (settings.log_format, to_stdout) {
        (LogFormat::Json, true) => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        (LogFormat::Json, false) => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .try_init(),
        (LogFormat::Pretty, true) => builder.try_init(),
        (LogFormat::Pretty, false) => builder.with_writer(std::io::stderr).try_init(),
    };
    if let Err(e) = result {
        eprintln!("logging: {e}");
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    // One server per SQLite file, and no restore under it: held until `serve` returns
    // (the OS releases it if the process dies).
    let secrets = bootstrap::secrets(&settings)?;
    let _lock = migrations::sqlite_path(settings.database_url().expose_secret())
        .map(|path| migrations::ServerLock::acquire(&path))
        .transpose()
        .context("locking the database file")?;
    let connected = bootstrap::open(&settings)
        .await
        .context("opening the database and applying migrations")?;
    let demo = if settings.demo {
        Some(
            bootstrap::ensure_demo(&connected)
                .await
                .context("creating the demo tenant")?,
        )
    } else {
        None
    };
    let bound = api::server::bind(settings.bind)
        .await
        .with_context(|| format!("binding {}", settings.bind))?;
    tracing::info!(addr = %bound.addr, database = if settings.is_sqlite() { "sqlite" } else { "postgres" }, "listening");
    if let Some(demo) = demo {
        banner(&jwt_issuer(&settings, &secrets), &demo, bound.addr)?;
    }
    let state = Arc::new(api::AppState::new(
        connected.db,
        Arc::new((connected.unscoped, connected.issuer)),
        settings,
        &secrets,
    )?);
    log_rate_limits(&state).await;
    api::server::serve(bound, state, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// Says where rate limits are kept; a Redis that does not answer yet is not fatal (the
/// limiter falls back in-process and keeps trying).
async fn log_rate_limits(state: &api::AppState) {
    match &state.limiter {
        None => tracing::warn!("rate limits are disabled (TENANTRY_RATE_LIMIT_ENABLED=false)"),
        Some(limiter) if !limiter.uses_redis() => {
            tracing::info!(
                "rate limits are per instance (in-process); set REDIS_URL to share them"
            );
        }
        Some(limiter) => match limiter.connect().await {
            Ok(()) => tracing::info!("rate limits are shared through Redis"),
            Err(e) => tracing::warn!(
                error = %e,
                "Redis does not answer: limiting in-process until it does"
            ),
        },
    }
}

/// Signs development tokens with the server's own JWT secret, issuer and audience.
fn jwt_issuer(settings: &Settings, secrets: &Secrets) -> JwtIssuer {
    JwtIssuer::new(
        secrets.jwt_secret.expose_secret().as_bytes(),
        &settings.jwt_issuer,
        &settings.jwt_audience,
    )
}

/// What a fresh clone's first run prints: where things are, a token, a curl line.
fn banner(
    issuer: &JwtIssuer,
    demo: &KnownTenant,
    addr: std::net::SocketAddr,
) -> anyhow::Result<()> {
    // The demo admin's token; a service token if the demo has no admin left.
    let (typ, sub) = match demo.admin_id {
        Some(admin) => (TokenType::User, admin.to_string()),
        None => (TokenType::Service, "tenantry-cli".to_owned()),
    };
    let token = issuer.issue(
        TenantId::from_uuid(demo.id),
        typ,
        &sub,
        &Scope::all_names(),
        TimeDelta::hours(12),
    )?;
    let base = format!("http://{addr}");
    let bold = if std::io::stdout().is_terminal() {
        "\x1b[1m"
    } else {
        ""
    };
    let reset = if bold.is_empty() { "" } else { "\x1b[0m" };
    println!(
        "\n{bold}Tenantry is running{reset} at {base}  (docs: {base}/docs, spec: {base}/openapi.json)\n\
         Demo tenant `acme`; a development token (12h, all scopes):\n\n  export TOKEN={token}\n\n\
         Try:\n\n  curl -s '{base}/v1/people?limit=2' -H \"Authorization: Bearer $TOKEN\"\n"
    );
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: draining in-flight requests");
}

fn parse_ttl(raw: &str) -> anyhow::Result<TimeDelta> {
    let (number, unit) = raw.split_at(raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len()));
    let n: i64 = number
        .parse()
        .with_context(|| format!("ttl `{raw}`: expected like 30m, 12h, 7d"))?;
    let ttl = match unit {
        "s" => TimeDelta::seconds(n),
        "m" | "" => TimeDelta::minutes(n),
        "h" => TimeDelta::hours(n),
        "d" => TimeDelta::days(n),
        other => bail!("ttl `{raw}`: unknown unit `{other}` (s, m, h, d)"),
    };
    if ttl <= TimeDelta::zero() {
        bail!("ttl must be positive");
    }
    Ok(ttl)
}

/// The tenant `--tenant` names: a tenant id as given (no database needed), or a slug
/// looked up in the database.
async fn resolve_tenant(settings: &Settings, tenant: &str) -> anyhow::Result<KnownTenant> {
    if let Ok(id) = Uuid::parse_str(tenant) {
        return Ok(KnownTenant { id, admin_id: None });
    }
    let connected = bootstrap::connect(settings)
        .await
        .context("connecting to the database")?;
    find_by_slug(&connected, tenant).await
}

/// The tenant with `slug`; an error saying so when there is none.
async fn find_by_slug(connected: &Connected, slug: &str) -> anyhow::Result<KnownTenant> {
    let found = bootstrap::find_tenant(connected, slug)
        .await
        .with_context(|| {
            format!(
                "looking up tenant `{slug}` (has `tenantry migrate` or `tenantry serve` run \
             against this database?)"
            )
        })?;
    found.with_context(|| {
        format!(
            "unknown tenant `{slug}`: no tenant has this slug in the database; pass the slug \
             of an existing tenant (`acme` is the demo's) or a tenant id"
        )
    })
}

fn token(
    issuer: &JwtIssuer,
    tenant: &KnownTenant,
    scopes: Vec<String>,
    ttl: &str,
    kind: TokenKind,
    sub: Option<String>,
) -> anyhow::Result<String> {
    let scopes = if scopes.is_empty() {
        Scope::all_names()
    } else {
        scopes
    };
    if let Some(unknown) = scopes.iter().find(|s| Scope::parse(s).is_none()) {
        bail!(
            "unknown scope `{unknown}`; scopes: {}",
            Scope::all_names().join(",")
        );
    }
    let (typ, default_sub) = match kind {
        TokenKind::User => (TokenType::User, tenant.admin_id.map(|a| a.to_string())),
        TokenKind::Integrator => (TokenType::Integrator, Some("tenantry-cli".to_owned())),
        TokenKind::Service => (TokenType::Service, Some("tenantry-cli".to_owned())),
    };
    let Some(sub) = sub.or(default_sub) else {
        bail!("a user token needs --sub <user id> for a tenant given by id (or without an admin)");
    };
    Ok(issuer.issue(
        TenantId::from_uuid(tenant.id),
        typ,
        &sub,
        &scopes,
        parse_ttl(ttl)?,
    )?)
}

async fn seed(settings: Settings, tenants: u32, people: u32, batch: u32) -> anyhow::Result<()> {
    use domain::identity::{self, TenantCreate};
    use domain::{accounts, people as people_ctx};
    use indicatif::{ProgressBar, ProgressStyle};
    use tenancy::Actor;

    let connected = bootstrap::open(&settings).await?;
    let total = u64::from(tenants) * u64::from(people);
    let bar = ProgressBar::new(total).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} people  {per_sec}  eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let batch = batch.max(1);
    let started = std::time::Instant::now();
    for t in 0..tenants {
        let slug = format!("seed-{}-{t}", &Uuid::now_v7().simple().to_string()[20..28]);
        let new = identity::create_tenant(
            &connected.unscoped,
            TenantCreate {
                slug: slug.clone(),
                name: format!("Seed tenant {t}"),
                plan: None,
                admin_email: format!("admin@{slug}.test"),
                admin_name: "Seed Admin".to_owned(),
            },
        )
        .await?;
        list_for_loadtest(&settings.data_dir, &slug, new.tenant.id.as_uuid())?;
        let ctx = connected.issuer.issue(new.tenant.id, Actor::System);
        let db = connected.db.tenant(&ctx);
        // One account per 20 people, created first so people can reference them.
        let account_count = people.div_ceil(20).max(1);
        let mut account_ids = Vec::with_capacity(account_count as usize);
        let txn = db.begin().await?;
        for a in 0..account_count {
            let account = accounts::create(
                &txn,
                accounts::AccountCreate {
                    name: format!("Account {a}"),
                    domain: Some(format!("account-{a}.example.com")),
                    owner_id: Some(new.admin.id),
                    custom_fields: None,
                },
            )
            .await?;
            account_ids.push(account.id);
        }
        txn.commit().await?;
        let mut written = 0u32;
        while written < people {
            let n = batch.min(people - written);
            // One transaction per batch: one commit (one fsync) per `batch` rows.
            let txn = db.begin().await?;
            for i in written..written + n {
                people_ctx::create(
                    &txn,
                    people_ctx::PersonCreate {
                        account_id: account_ids.get((i / 20) as usize).copied(),
                        first_name: format!("Person{i}"),
                        last_name: format!("Seed{t}"),
                        email: Some(format!("person{i}@{slug}.test")),
                        title: None,
                        phone: None,
                        stage: None,
                    },
                )
                .await?;
            }
            txn.commit().await?;
            written += n;
            bar.inc(u64::from(n));
        }
        bar.println(format!(
            "tenant {slug}: {people} people, {account_count} accounts"
        ));
    }
    bar.finish();
    let secs = started.elapsed().as_secs_f64().max(f64::EPSILON);
    eprintln!(
        "seeded {total} people in {secs:.1}s ({:.0}/s)",
        total as f64 / secs
    );
    Ok(())
}

/// Adds a seeded tenant to `<data dir>/tenants.json` (`{"<slug>": {"id": …}}`), which
/// `loadtest run --tenants N` reads to pick N seeded tenants. Tenantry itself never reads
/// it: `token --tenant <slug>` looks the slug up in the database.
fn list_for_loadtest(data_dir: &std::path::Path, slug: &str, id: Uuid) -> anyhow::Result<()> {
    let path = data_dir.join("tenants.json");
    let mut listed: serde_json::Map<String, serde_json::Value> = std::fs::read(&path)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default();
    listed.insert(slug.to_owned(), serde_json::json!({ "id": id }));
    std::fs::create_dir_all(data_dir)?;
    std::fs::write(&path, serde_json::to_vec_pretty(&listed)?)
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_take_a_unit() {
        assert_eq!(parse_ttl("30m").ok(), Some(TimeDelta::minutes(30)));
        assert_eq!(parse_ttl("12h").ok(), Some(TimeDelta::hours(12)));
        assert_eq!(parse_ttl("7d").ok(), Some(TimeDelta::days(7)));
        assert!(parse_ttl("0h").is_err());
        assert!(parse_ttl("5y").is_err());
        assert!(parse_ttl("h").is_err());
    }

    #[tokio::test]
    async fn token_finds_a_slug_in_the_database_and_refuses_an_unknown_one() {
        for backend in tenancy::testing::backends() {
            let test = tenancy::testing::TestDb::new(&backend)
                .await
                .expect("fresh database");
            migrations::up(&test.raw).await.expect("migrations apply");
            let demo = bootstrap::ensure_demo(&test.connected)
                .await
                .expect("demo created");
            assert_eq!(
                bootstrap::ensure_demo(&test.connected)
                    .await
                    .expect("demo found"),
                demo,
                "a second start finds the demo instead of creating it"
            );

            let acme = find_by_slug(&test.connected, "acme")
                .await
                .expect("acme found");
            assert_eq!(acme, demo);
            let admin = acme.admin_id.expect("the demo has its admin");
            let settings = Settings::for_tests("sqlite::memory:");
            let secrets = bootstrap::secrets(&settings).expect("explicit secrets");
            let jwt = token(
                &jwt_issuer(&settings, &secrets),
                &acme,
                vec![],
                "1h",
                TokenKind::User,
                None,
            )
            .expect("token signs");
            let verifier = api::auth::jwt::JwtVerifier::new(
                secrets.jwt_secret.expose_secret().as_bytes(),
                &settings.jwt_issuer,
                &settings.jwt_audience,
            );
            let principal = verifier
                .verify(&jwt, &test.connected.issuer)
                .expect("the token verifies");
            assert_eq!(principal.ctx().tenant(), TenantId::from_uuid(demo.id));
            assert_eq!(principal.ctx().actor(), &tenancy::Actor::User(admin));

            let unknown = find_by_slug(&test.connected, "nope")
                .await
                .expect_err("no tenant `nope`");
            let message = format!("{unknown:#}");
            assert!(message.contains("unknown tenant `nope`"), "{message}");
        }
    }

    #[tokio::test]
    async fn token_takes_a_tenant_id_without_a_database() {
        let id = Uuid::now_v7();
        // A database URL nothing answers at: an id must not need it.
        let settings = Settings::for_tests("postgres://nobody@127.0.0.1:1/none");
        let tenant = resolve_tenant(&settings, &id.to_string())
            .await
            .expect("an id resolves");
        assert_eq!(tenant, KnownTenant { id, admin_id: None });
        let issuer = jwt_issuer(
            &settings,
            &bootstrap::secrets(&settings).expect("explicit secrets"),
        );
        assert!(
            token(&issuer, &tenant, vec![], "1h", TokenKind::User, None).is_err(),
            "a user token for a tenant given by id needs --sub"
        );
        assert!(token(&issuer, &tenant, vec![], "1h", TokenKind::Service, None).is_ok());
    }

    #[test]
    fn the_cli_parses_every_subcommand() {
        for args in [
            vec!["tenantry"],
            vec!["tenantry", "serve"],
            vec!["tenantry", "migrate"],
            vec!["tenantry", "seed", "--tenants", "2", "--people", "10"],
            vec![
                "tenantry",
                "token",
                "--tenant",
                "acme",
                "--scopes",
                "people:read,people:write",
                "--ttl",
                "1h",
            ],
            vec!["tenantry", "openapi"],
            vec!["tenantry", "backup", "--to", "/tmp/tenantry-backup.db"],
            vec!["tenantry", "restore", "--from", "/tmp/tenantry-backup.db"],
        ] {
            assert!(Cli::try_parse_from(&args).is_ok(), "{args:?}");
        }
    }
}
