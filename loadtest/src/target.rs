//! Who the tool talks to, and as whom: the base URL (loopback only), and one
//! [`Tenant`] per tenant — a generated [`client::Client`] whose every request carries
//! that tenant's bearer token (a JWT, minted or passed in), and optionally one more that
//! authenticates with an API key the tool created through the API ([`create_api_key`]:
//! `POST /v1/api_keys` with the JWT, then `Bearer tnt_…`).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use uuid::Uuid;

use crate::client;
use crate::engine::{describe, retrying};

/// A tenant the run acts as.
#[derive(Debug, Clone)]
pub struct Tenant {
    /// Its slug: also the marker its rows carry (`…@<slug>.test`, see `leak`).
    pub slug: String,
    /// The `tenant` claim of its JWT (`None` for an API key).
    pub tenant_id: Option<Uuid>,
    /// The generated client, authenticated as this tenant.
    pub client: client::Client,
    /// A client authenticated with an API key of this tenant, created for the run.
    pub api_key: Option<ApiKey>,
    /// The base URL and connection pool size, to build more clients.
    base_url: String,
    pool: usize,
}

/// An API key the tool created, and a client that authenticates with it.
#[derive(Debug, Clone)]
pub struct ApiKey {
    /// The key's id (to revoke it).
    pub id: Uuid,
    /// The key's prefix (safe to print).
    pub prefix: String,
    /// The client sending `Authorization: Bearer tnt_…`.
    pub client: client::Client,
    /// The `RateLimit-Policy` the server sent with the key's creation.
    pub policy_header: Option<String>,
}

impl Tenant {
    /// The client for a worker: the API key's if `api_key` and there is one, else the JWT's.
    pub fn client(&self, api_key: bool) -> &client::Client {
        match (&self.api_key, api_key) {
            (Some(key), true) => &key.client,
            _ => &self.client,
        }
    }
}

/// Creates an API key of `tenant` named `name` with `scopes` through the API (with the
/// tenant's JWT) and returns a client that authenticates with it.
pub async fn create_api_key(
    tenant: &Tenant,
    name: &str,
    scopes: &[&str],
) -> anyhow::Result<ApiKey> {
    let body = client::types::ApiKeyCreate {
        name: name
            .parse()
            .map_err(|e| anyhow::anyhow!("API key name `{name}`: {e}"))?,
        scopes: scopes
            .iter()
            .map(|s| s.parse())
            .collect::<Result<_, _>>()
            .map_err(|e| anyhow::anyhow!("API key scopes {scopes:?}: {e}"))?,
    };
    let created = retrying(5, || {
        tenant.client.create_api_key().body(body.clone()).send()
    })
    .await
    .map_err(|e| {
        anyhow::anyhow!(
            "creating an API key for `{}` (POST /v1/api_keys; the token needs \
                 api_keys:write, or pass --api-key-share 0): {}",
            tenant.slug,
            describe(&e)
        )
    })?;
    let policy_header = created
        .headers()
        .get("ratelimit-policy")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let created = created.into_inner();
    let http = http_client(&created.secret, tenant.tenant_id, tenant.pool)?;
    Ok(ApiKey {
        id: created.api_key.id,
        prefix: created.api_key.prefix,
        client: client::Client::new_with_client(&tenant.base_url, http),
        policy_header,
    })
}

/// Revokes an API key the tool created (with the tenant's JWT).
pub async fn revoke_api_key(tenant: &Tenant, id: Uuid) -> anyhow::Result<()> {
    retrying(5, || tenant.client.revoke_api_key().id(id).send())
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "revoking API key {id} of `{}`: {}",
                tenant.slug,
                describe(&e)
            )
        })?;
    Ok(())
}

/// Refuses anything but a loopback address: this tool only loads servers on this machine.
pub fn check_loopback(base_url: &str) -> anyhow::Result<()> {
    let rest = base_url
        .strip_prefix("http://")
        .with_context(|| format!("`{base_url}`: only http:// URLs are supported"))?;
    let authority = rest.split('/').next().unwrap_or_default();
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    let loopback = host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        bail!(
            "`{base_url}`: the load test only targets loopback addresses (127.0.0.0/8, localhost, [::1])"
        );
    }
    Ok(())
}

/// The `tenant` claim of a JWT, read without verifying it (the server verifies).
pub fn jwt_tenant(token: &str) -> Option<Uuid> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("tenant")?.as_str()?.parse().ok()
}

/// Builds the HTTP client for one credential.
pub fn http_client(
    token: &str,
    tenant_id: Option<Uuid>,
    pool: usize,
) -> anyhow::Result<reqwest::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    let mut auth = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
        .context("the token is not a valid header value")?;
    auth.set_sensitive(true);
    headers.insert(reqwest::header::AUTHORIZATION, auth);
    if let Some(id) = tenant_id {
        // Ignored by Tenantry; the minimal baseline server (which has no auth) reads
        // the tenant from it.
        headers.insert(
            "x-tenant-id",
            reqwest::header::HeaderValue::from_str(&id.to_string())?,
        );
    }
    Ok(reqwest::Client::builder()
        .default_headers(headers)
        .pool_max_idle_per_host(pool)
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(5))
        // Above the server's own 30 s request timeout: a slow answer is measured, not cut.
        .timeout(Duration::from_secs(35))
        .build()?)
}

/// One tenant from a token (`token_arg` is `slug=TOKEN`).
pub fn from_token_arg(base_url: &str, token_arg: &str, pool: usize) -> anyhow::Result<Tenant> {
    let (slug, token) = token_arg
        .split_once('=')
        .with_context(|| "--token takes SLUG=TOKEN".to_owned())?;
    tenant(base_url, slug, token.trim(), pool)
}

fn tenant(base_url: &str, slug: &str, token: &str, pool: usize) -> anyhow::Result<Tenant> {
    let tenant_id = jwt_tenant(token);
    let http = http_client(token, tenant_id, pool)?;
    Ok(Tenant {
        slug: slug.to_owned(),
        tenant_id,
        client: client::Client::new_with_client(base_url, http),
        api_key: None,
        base_url: base_url.to_owned(),
        pool,
    })
}

/// Mints a token for `slug` with `tenantry token` (the environment — `DATABASE_URL`,
/// `TENANTRY_DATA_DIR`, secrets — must be the server's) and builds its tenant.
pub async fn minted(
    base_url: &str,
    tenantry_bin: &Path,
    slug: &str,
    pool: usize,
) -> anyhow::Result<Tenant> {
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(tenantry_bin)
            .args(["token", "--tenant", slug, "--ttl", "2h"])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .with_context(|| format!("`{} token` timed out", tenantry_bin.display()))?
    .with_context(|| format!("running `{} token`", tenantry_bin.display()))?;
    if !output.status.success() {
        bail!(
            "`{} token --tenant {slug}` failed: {}",
            tenantry_bin.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let token = String::from_utf8(output.stdout)?.trim().to_owned();
    tenant(base_url, slug, &token, pool)
}

/// Reads `--tenants`: a comma-separated list of slugs, or a number N meaning the first N
/// tenants `tenantry seed` recorded in `<data dir>/tenants.json` (sorted by slug).
pub fn tenant_slugs(arg: &[String], data_dir: &Path) -> anyhow::Result<Vec<String>> {
    if let [single] = arg
        && let Ok(n) = single.parse::<usize>()
    {
        let path = data_dir.join("tenants.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("--tenants {n}: reading {}", path.display()))?;
        let registry: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text)?;
        let slugs: Vec<String> = registry
            .keys()
            .filter(|s| s.starts_with("seed-"))
            .take(n)
            .cloned()
            .collect();
        if slugs.len() < n {
            bail!(
                "--tenants {n}: only {} seeded tenants in {}",
                slugs.len(),
                path.display()
            );
        }
        return Ok(slugs);
    }
    Ok(arg.iter().filter(|s| !s.is_empty()).cloned().collect())
}

/// The default data directory of a local Tenantry (`TENANTRY_DATA_DIR` or `./data`).
pub fn default_data_dir() -> PathBuf {
    std::env::var_os("TENANTRY_DATA_DIR").map_or_else(|| PathBuf::from("./data"), PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_targets_are_accepted() {
        for ok in [
            "http://127.0.0.1:8080",
            "http://127.0.0.2:1/x",
            "http://localhost:8080",
            "http://[::1]:8080",
        ] {
            assert!(check_loopback(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://10.0.0.1:8080",
            "http://example.com",
            "https://127.0.0.1:8080",
            "http://192.168.1.2",
        ] {
            assert!(check_loopback(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_tenant_claim_is_read_from_the_jwt_payload() {
        let id = Uuid::now_v7();
        let payload = URL_SAFE_NO_PAD.encode(format!(r#"{{"tenant":"{id}","sub":"x"}}"#));
        assert_eq!(jwt_tenant(&format!("e30.{payload}.sig")), Some(id));
        assert_eq!(jwt_tenant("tnt_not_a_jwt"), None);
    }

    #[test]
    fn tenants_are_a_list_of_slugs() {
        let slugs = tenant_slugs(&["a".into(), "b".into()], Path::new("/nonexistent"));
        assert_eq!(slugs.ok(), Some(vec!["a".to_owned(), "b".to_owned()]));
    }
}
