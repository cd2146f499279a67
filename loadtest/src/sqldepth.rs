//! `sql-depth`: keyset vs offset page latency by depth, straight against PostgreSQL
//! with the SQL the API issues (prepared statements, one connection, sequential: the
//! latency of the query itself, no HTTP).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use tokio_postgres::NoTls;
use uuid::Uuid;

use crate::minimal::{plain_after_sql, plain_first_sql};
use crate::stats::{Latency, LatencySummary};

/// `sql-depth` options.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// PostgreSQL connection string.
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    /// The tenant whose people are paged.
    #[arg(long)]
    tenant_id: Uuid,
    /// Page numbers.
    #[arg(long, value_delimiter = ',', default_value = "1,100,1000,10000")]
    pages: Vec<u64>,
    /// Rows per page.
    #[arg(long, default_value_t = 50)]
    page_size: u64,
    /// Timed samples per page and method (after 3 warm-up runs).
    #[arg(long, default_value_t = 30)]
    samples: usize,
    /// Write the JSON result here.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// One depth.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DepthRow {
    /// Page number (from 1).
    pub page: u64,
    /// Rows before it.
    pub row_offset: u64,
    /// `WHERE … AND id > $last ORDER BY id LIMIT n+1`.
    pub keyset: LatencySummary,
    /// `ORDER BY id LIMIT n+1 OFFSET k`.
    pub offset: LatencySummary,
}

/// The result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DepthReport {
    /// The tenant.
    pub tenant_id: Uuid,
    /// Its live people.
    pub rows: i64,
    /// Rows per page.
    pub page_size: u64,
    /// One row per page number.
    pub pages: Vec<DepthRow>,
}

/// The API's offset-page SQL (`GET /v1/people?page=N`): `$2` = page size + 1, `$3` = offset.
pub fn offset_sql() -> String {
    plain_first_sql().replace("LIMIT $2", "LIMIT $2 OFFSET $3")
}

/// Measures and prints (and writes) the report.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let (client, connection) = tokio_postgres::connect(&args.database_url, NoTls)
        .await
        .context("connecting to PostgreSQL")?;
    let conn = tokio::spawn(connection);
    let tenant = args.tenant_id;
    let size = i64::try_from(args.page_size.clamp(1, 200))?;
    let fetch = size + 1;
    let rows: i64 = client
        .query_one(
            r#"SELECT count(*) FROM "people" WHERE "tenant_id" = $1 AND "deleted_at" IS NULL"#,
            &[&tenant],
        )
        .await?
        .get(0);
    let first = client.prepare(&plain_first_sql()).await?;
    let after = client.prepare(&plain_after_sql()).await?;
    let offset = client.prepare(&offset_sql()).await?;
    let anchor = client
        .prepare(r#"SELECT "id" FROM "people" WHERE "tenant_id" = $1 AND "deleted_at" IS NULL ORDER BY "id" OFFSET $2 LIMIT 1"#)
        .await?;
    let mut out = Vec::new();
    for &page in &args.pages {
        let skip = i64::try_from(page.max(1) - 1)? * size;
        if skip >= rows {
            eprintln!("page {page}: the tenant has only {rows} rows; skipped");
            continue;
        }
        // The id the previous page ended on: where a cursor for this page points.
        let last: Option<Uuid> = if skip == 0 {
            None
        } else {
            Some(
                client
                    .query_one(&anchor, &[&tenant, &(skip - 1)])
                    .await?
                    .get(0),
            )
        };
        // Keyset samples first, then offset samples, each after 3 warm-up runs: interleaved,
        // every deep offset scan (hundreds of thousands of index entries) would evict the
        // CPU caches right before the next keyset sample and bill its cold start to keyset.
        let mut keyset = Latency::new();
        let mut n = 0;
        for i in 0..args.samples + 3 {
            let t = Instant::now();
            n = match last {
                None => client.query(&first, &[&tenant, &fetch]).await?.len(),
                Some(id) => client.query(&after, &[&tenant, &id, &fetch]).await?.len(),
            };
            if i >= 3 {
                keyset.record(t.elapsed());
            }
        }
        let mut offs = Latency::new();
        for i in 0..args.samples + 3 {
            let t = Instant::now();
            let m = client
                .query(&offset, &[&tenant, &fetch, &skip])
                .await?
                .len();
            if i >= 3 {
                offs.record(t.elapsed());
            }
            anyhow::ensure!(n == m, "page {page}: keyset returned {n} rows, offset {m}");
        }
        let row = DepthRow {
            page,
            row_offset: u64::try_from(skip)?,
            keyset: keyset.summary(),
            offset: offs.summary(),
        };
        eprintln!(
            "page {page:>6} (row {skip:>8}): keyset p50 {:.3} ms, offset p50 {:.3} ms",
            row.keyset.p50_ms, row.offset.p50_ms
        );
        out.push(row);
    }
    drop(client);
    let _ = conn.await;
    let report = DepthReport {
        tenant_id: tenant,
        rows,
        page_size: args.page_size,
        pages: out,
    };
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_offset_sql_is_the_first_page_sql_with_an_offset() {
        let sql = offset_sql();
        assert!(sql.ends_with("LIMIT $2 OFFSET $3"), "{sql}");
        assert!(sql.contains(r#""people"."tenant_id" = $1"#));
    }
}
