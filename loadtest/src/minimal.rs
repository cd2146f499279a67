//! `minimal-server`: the practical ceiling for "HTTP + this query" on this machine.
//!
//! What a minimal hand-written service would do to serve `GET /v1/people`: poem, a fixed
//! set of tokio-postgres connections with prepared statements, the same SQL the API
//! issues, and the same JSON shape (`{data, next_cursor, has_more}`), so the generated
//! client reads it unchanged. No auth (the tenant comes from the `X-Tenant-Id` header the
//! load tool sends), no rate limits, no cursor signing (the cursor is the last id), no
//! metrics, no compression.
//!
//! `--mode rls` answers the same request under PostgreSQL row-level security instead of
//! an explicit `tenant_id` predicate: each request runs `BEGIN; SET LOCAL
//! app.tenant_id = '…'; SELECT … (no tenant predicate); COMMIT` as a non-superuser role
//! on which a policy `tenant_id = current_setting('app.tenant_id')::uuid` applies.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail};
use chrono::{DateTime, Utc};
use clap::ValueEnum;
use poem::http::StatusCode;
use poem::listener::TcpListener;
use poem::web::{Data, Query};
use poem::{EndpointExt as _, Request, Response, Route, Server, get, handler};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use tokio_postgres::{Client, NoTls, Row, Statement};
use uuid::Uuid;

/// How tenant isolation is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// `WHERE tenant_id = $1`, like the API.
    Plain,
    /// Row-level security: a policy on `tenant_id`, `SET LOCAL` per request.
    Rls,
}

/// `minimal-server` options.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// PostgreSQL connection string (URL or `key=value` form).
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    /// Listen address (loopback only).
    #[arg(long, default_value = "127.0.0.1:8090")]
    bind: SocketAddr,
    /// Isolation mode.
    #[arg(long, value_enum, default_value_t = Mode::Plain)]
    mode: Mode,
    /// Connections (the API's pool size is `TENANTRY_DB_MAX_CONNECTIONS`, default 10).
    #[arg(long, default_value_t = 10)]
    pool: usize,
    /// The non-superuser role the RLS mode queries as (superusers bypass RLS).
    #[arg(long, default_value = "tenantry_rls")]
    rls_role: String,
    /// Stop by itself after this many seconds (0: only on Ctrl-C / SIGTERM).
    #[arg(long, default_value_t = 0)]
    max_seconds: u64,
}

/// The columns the API's list reads, in its order (the `people` entity's fields).
const COLUMNS: &str = r#""people"."tenant_id", "people"."id", "people"."account_id", "people"."first_name", "people"."last_name", "people"."email", "people"."title", "people"."phone", "people"."stage", "people"."created_at", "people"."updated_at", "people"."version", "people"."deleted_at""#;

/// The SQL of the first page, plain mode: what the API issues for `GET /v1/people?limit=N`
/// (`$2` is the limit + 1, to learn `has_more`).
pub fn plain_first_sql() -> String {
    format!(
        r#"SELECT {COLUMNS} FROM "people" WHERE "people"."tenant_id" = $1 AND "people"."deleted_at" IS NULL ORDER BY "people"."id" ASC LIMIT $2"#
    )
}

/// The SQL of a next page, plain mode (`$2`: the last id of the previous page, `$3`: the
/// limit + 1), as the API issues it for `?cursor=…`.
pub fn plain_after_sql() -> String {
    format!(
        r#"SELECT {COLUMNS} FROM "people" WHERE "people"."tenant_id" = $1 AND "people"."deleted_at" IS NULL AND ("people"."id") > ($2) ORDER BY "people"."id" ASC LIMIT $3"#
    )
}

/// The RLS-mode SQL: the same without the tenant predicate (the policy adds it). First
/// page: `$1` = limit + 1; next page: `$1` = last id, `$2` = limit + 1.
fn rls_sql(after: bool) -> String {
    if after {
        format!(
            r#"SELECT {COLUMNS} FROM "people" WHERE "people"."deleted_at" IS NULL AND ("people"."id") > ($1) ORDER BY "people"."id" ASC LIMIT $2"#
        )
    } else {
        format!(
            r#"SELECT {COLUMNS} FROM "people" WHERE "people"."deleted_at" IS NULL ORDER BY "people"."id" ASC LIMIT $1"#
        )
    }
}

struct Conn {
    client: Client,
    first: Statement,
    after: Statement,
}

struct State {
    mode: Mode,
    conns: Vec<Mutex<Conn>>,
    next: AtomicUsize,
}

impl State {
    /// A free connection, or the next one in turn.
    async fn conn(&self) -> tokio::sync::MutexGuard<'_, Conn> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let n = self.conns.len();
        for i in 0..n {
            if let Ok(guard) = self.conns[(start + i) % n].try_lock() {
                return guard;
            }
        }
        self.conns[start % n].lock().await
    }
}

#[derive(Deserialize)]
struct ListQuery {
    limit: Option<i64>,
    cursor: Option<Uuid>,
}

/// The API's `Person` shape.
#[derive(Serialize)]
struct Person {
    id: Uuid,
    account_id: Option<Uuid>,
    account_name: Option<String>,
    first_name: String,
    last_name: String,
    email: Option<String>,
    title: Option<String>,
    phone: Option<String>,
    stage: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    version: i64,
    deleted_at: Option<DateTime<Utc>>,
}

impl Person {
    fn from_row(row: &Row) -> Result<Self, tokio_postgres::Error> {
        Ok(Self {
            id: row.try_get(1)?,
            account_id: row.try_get(2)?,
            account_name: None,
            first_name: row.try_get(3)?,
            last_name: row.try_get(4)?,
            email: row.try_get(5)?,
            title: row.try_get(6)?,
            phone: row.try_get(7)?,
            stage: row.try_get(8)?,
            created_at: row.try_get(9)?,
            updated_at: row.try_get(10)?,
            version: row.try_get(11)?,
            deleted_at: row.try_get(12)?,
        })
    }
}

#[derive(Serialize)]
struct PersonList {
    data: Vec<Person>,
    next_cursor: Option<String>,
    has_more: bool,
}

fn plain(status: StatusCode, body: &str) -> Response {
    Response::builder().status(status).body(body.to_owned())
}

#[handler]
async fn list_people(
    req: &Request,
    Query(q): Query<ListQuery>,
    state: Data<&Arc<State>>,
) -> Response {
    let Some(tenant) = req
        .headers()
        .get("x-tenant-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<Uuid>().ok())
    else {
        return plain(StatusCode::BAD_REQUEST, "X-Tenant-Id header required");
    };
    let limit = q.limit.unwrap_or(50).clamp(1, 200);
    let fetch = limit + 1;
    let mut conn = state.conn().await;
    let rows = match state.mode {
        Mode::Plain => match q.cursor {
            None => conn.client.query(&conn.first, &[&tenant, &fetch]).await,
            Some(after) => {
                conn.client
                    .query(&conn.after, &[&tenant, &after, &fetch])
                    .await
            }
        },
        Mode::Rls => rls_query(&mut conn, tenant, fetch, q.cursor).await,
    };
    drop(conn);
    let rows = match rows {
        Ok(rows) => rows,
        Err(e) => return plain(StatusCode::INTERNAL_SERVER_ERROR, &format!("{e:?}")),
    };
    let mut data = match rows
        .iter()
        .map(Person::from_row)
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(data) => data,
        Err(e) => return plain(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    let has_more = data.len() as i64 > limit;
    data.truncate(usize::try_from(limit).unwrap_or(0));
    let next_cursor = has_more
        .then(|| data.last().map(|p| p.id.to_string()))
        .flatten();
    match serde_json::to_vec(&PersonList {
        data,
        next_cursor,
        has_more,
    }) {
        Ok(body) => Response::builder()
            .content_type("application/json")
            .body(body),
        Err(e) => plain(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

async fn rls_query(
    conn: &mut Conn,
    tenant: Uuid,
    fetch: i64,
    after: Option<Uuid>,
) -> Result<Vec<Row>, tokio_postgres::Error> {
    let (first, next) = (conn.first.clone(), conn.after.clone());
    let tx = conn.client.transaction().await?;
    // A UUID's text is only hex digits and dashes: nothing to escape. SET takes no
    // parameters, so the value is inlined, as an application doing this would.
    tx.batch_execute(&format!("SET LOCAL app.tenant_id = '{tenant}'"))
        .await?;
    let rows = match after {
        None => tx.query(&first, &[&fetch]).await?,
        Some(after) => tx.query(&next, &[&after, &fetch]).await?,
    };
    tx.commit().await?;
    Ok(rows)
}

async fn connect(args: &Args) -> anyhow::Result<Conn> {
    let (client, connection) = tokio_postgres::connect(&args.database_url, NoTls)
        .await
        .context("connecting to PostgreSQL")?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            eprintln!("minimal-server: connection ended: {e}");
        }
    });
    let (first, after) = match args.mode {
        Mode::Plain => (plain_first_sql(), plain_after_sql()),
        Mode::Rls => {
            if args
                .rls_role
                .chars()
                .any(|c| !(c.is_ascii_alphanumeric() || c == '_'))
            {
                bail!("--rls-role must be a plain identifier");
            }
            client
                .batch_execute(&format!("SET ROLE {}", args.rls_role))
                .await
                .context("SET ROLE for the RLS mode (see bench.sh for the role and policy)")?;
            (rls_sql(false), rls_sql(true))
        }
    };
    Ok(Conn {
        first: client.prepare(&first).await?,
        after: client.prepare(&after).await?,
        client,
    })
}

/// Runs the server until Ctrl-C, SIGTERM or `--max-seconds`.
pub async fn serve(args: Args) -> anyhow::Result<()> {
    if !args.bind.ip().is_loopback() {
        bail!("--bind must be a loopback address");
    }
    let mut conns = Vec::with_capacity(args.pool.max(1));
    for _ in 0..args.pool.max(1) {
        conns.push(Mutex::new(connect(&args).await?));
    }
    let state = Arc::new(State {
        mode: args.mode,
        conns,
        next: AtomicUsize::new(0),
    });
    let app = Route::new()
        .at("/v1/people", get(list_people))
        .at("/healthz", get(poem::endpoint::make_sync(|_| "ok")))
        .data(state);
    eprintln!(
        "minimal-server ({:?}, {} connections) listening on {}",
        args.mode,
        args.pool.max(1),
        args.bind
    );
    let max = args.max_seconds;
    let stop = async move {
        let limit = async {
            if max == 0 {
                std::future::pending::<()>().await;
            } else {
                tokio::time::sleep(Duration::from_secs(max)).await;
            }
        };
        #[cfg(unix)]
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            () = term => {},
            () = limit => {},
        }
    };
    Server::new(TcpListener::bind(args.bind))
        .run_with_graceful_shutdown(app, stop, Some(Duration::from_secs(5)))
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plain_sql_filters_by_tenant_and_the_rls_sql_leaves_it_to_the_policy() {
        assert!(plain_first_sql().contains(r#""people"."tenant_id" = $1"#));
        assert!(
            plain_after_sql()
                .contains(r#"("people"."id") > ($2) ORDER BY "people"."id" ASC LIMIT $3"#)
        );
        let rls = rls_sql(true);
        assert!(!rls.contains(r#""tenant_id" ="#), "{rls}");
        assert!(rls.contains("> ($1)") && rls.ends_with("LIMIT $2"));
        assert!(rls_sql(false).ends_with("LIMIT $1"));
    }
}
