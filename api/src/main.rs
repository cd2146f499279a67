//! The `tenantry` binary: the API server and its operator commands.
//!
//! `tenantry` (or `tenantry serve`) serves; `migrate` applies migrations; `seed` loads
//! bulk data; `token` prints a development JWT; `openapi` prints the spec. All read
//! their configuration from the environment (see `api::settings`).

use std::io::IsTerminal as _;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use api::auth::Scope;
use api::auth::jwt::{JwtIssuer, TokenType};
use api::bootstrap::{self, KnownTenant, Registry};
use api::settings::{LogFormat, Settings};
use chrono::TimeDelta;
use clap::{Parser, Subcommand, ValueEnum};
use tenancy::TenantId;
use tracing_subscriber::EnvFilter;
use uuid::Uuid;

/// Tenantry: a multi-tenant sales-engagement REST API.
#[derive(Parser, Debug)]
#[command(name = "tenantry", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
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
        /// The tenant's slug (one this installation created, e.g. `acme`) or id.
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
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum TokenKind {
    User,
    Integrator,
    Service,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(run(cli.command.unwrap_or(Command::Serve))));
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

async fn run(command: Command) -> anyhow::Result<()> {
    if let Command::Openapi = command {
        print!(
            "{}",
            api::openapi::spec_text()
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?
        );
        return Ok(());
    }
    let settings = Settings::from_env().context("configuration")?;
    init_logging(&settings, matches!(command, Command::Serve));
    match command {
        Command::Serve => serve(settings).await,
        Command::Migrate => {
            let connected = bootstrap::connect(&settings).await?;
            bootstrap::migrate(&connected.unscoped).await?;
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
            let token = token(&settings, &tenant, scopes, &ttl, kind, sub)?;
            println!("{token}");
            Ok(())
        }
        Command::Openapi => Ok(()),
    }
}

fn init_logging(settings: &Settings, to_stdout: bool) {
    let filter =
        EnvFilter::try_new(&settings.log_filter).unwrap_or_else(|_| EnvFilter::new("info"));
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
    let connected = bootstrap::connect(&settings)
        .await
        .context("connecting to the database")?;
    bootstrap::migrate(&connected.unscoped)
        .await
        .context("applying migrations")?;
    let demo = if settings.demo {
        let mut registry = Registry::load(&settings.data_dir);
        bootstrap::ensure_demo(&connected, &mut registry)
            .await
            .context("creating the demo tenant")?
    } else {
        None
    };
    let bound = api::server::bind(settings.bind)
        .await
        .with_context(|| format!("binding {}", settings.bind))?;
    tracing::info!(addr = %bound.addr, database = if settings.is_sqlite() { "sqlite" } else { "postgres" }, "listening");
    if let Some(demo) = demo {
        banner(&settings, &demo, bound.addr)?;
    }
    let state = Arc::new(api::AppState::new(
        connected.db,
        Arc::new(connected.unscoped),
        settings,
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

/// What a fresh clone's first run prints: where things are, a token, a curl line.
fn banner(
    settings: &Settings,
    demo: &KnownTenant,
    addr: std::net::SocketAddr,
) -> anyhow::Result<()> {
    let issuer = JwtIssuer::new(
        settings.jwt_secret.expose().as_bytes(),
        &settings.jwt_issuer,
        &settings.jwt_audience,
    );
    let token = issuer.issue(
        TenantId::from_uuid(demo.id),
        TokenType::User,
        &demo.admin_id.to_string(),
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

fn token(
    settings: &Settings,
    tenant: &str,
    scopes: Vec<String>,
    ttl: &str,
    kind: TokenKind,
    sub: Option<String>,
) -> anyhow::Result<String> {
    let registry = Registry::load(&settings.data_dir);
    let (tenant_id, admin) = match (Uuid::parse_str(tenant), registry.get(tenant)) {
        (Ok(id), _) => (id, None),
        (Err(_), Some(known)) => (known.id, Some(known.admin_id)),
        (Err(_), None) => bail!(
            "unknown tenant `{tenant}`: pass a tenant id, or a slug this installation created \
             (recorded in {}/tenants.json)",
            settings.data_dir.display()
        ),
    };
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
        TokenKind::User => (TokenType::User, admin.map(|a| a.to_string())),
        TokenKind::Integrator => (TokenType::Integrator, Some("tenantry-cli".to_owned())),
        TokenKind::Service => (TokenType::Service, Some("tenantry-cli".to_owned())),
    };
    let Some(sub) = sub.or(default_sub) else {
        bail!("a user token needs --sub <user id> for a tenant given by id");
    };
    let issuer = JwtIssuer::new(
        settings.jwt_secret.expose().as_bytes(),
        &settings.jwt_issuer,
        &settings.jwt_audience,
    );
    Ok(issuer.issue(
        TenantId::from_uuid(tenant_id),
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
    use tenancy::{Actor, TenantCtx};

    let connected = bootstrap::connect(&settings).await?;
    bootstrap::migrate(&connected.unscoped).await?;
    let mut registry = Registry::load(&settings.data_dir);
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
        registry.insert(
            &slug,
            KnownTenant {
                id: new.tenant.id.as_uuid(),
                admin_id: new.admin.id,
            },
        )?;
        let ctx = TenantCtx::new(new.tenant.id, Actor::System);
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
        ] {
            assert!(Cli::try_parse_from(&args).is_ok(), "{args:?}");
        }
    }
}
