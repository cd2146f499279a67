//! Authentication and scopes: the only place a [`TenantCtx`] is made.
//!
//! `Authorization: Bearer <credential>` carries either a JWT ([`jwt`]) or an API key
//! ([`api_key`]). [`Authenticator::authenticate`] verifies it and yields a [`Principal`]:
//! the tenant context (tenant + actor, from the credential only — never from a path,
//! query or body) and the granted scopes. Operations declare the scope they need with
//! `#[oai(scope = "...")]` on their [`BearerAuth`] argument (so it appears in the spec)
//! and enforce the same scope with [`BearerAuth::require`]; the integration tests check
//! that the two agree for every operation.

pub mod api_key;
pub mod jwt;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, KeyInit as _, Mac as _};
use poem::Request;
use poem::http::StatusCode;
use poem_openapi::auth::Bearer;
use poem_openapi::{OAuthScopes, SecurityScheme};
use sha2::Sha256;
use tenancy::{Actor, CtxIssuer, Db, TenantCtx, TenantId};
use uuid::Uuid;

use crate::problem::{Problem, kind};

/// The permissions a credential can carry. Each operation requires exactly one.
#[derive(OAuthScopes, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// Read accounts.
    #[oai(rename = "accounts:read")]
    AccountsRead,
    /// Create, change and delete accounts.
    #[oai(rename = "accounts:write")]
    AccountsWrite,
    /// Read people.
    #[oai(rename = "people:read")]
    PeopleRead,
    /// Create, change and delete people.
    #[oai(rename = "people:write")]
    PeopleWrite,
    /// Read activities and the activity feed.
    #[oai(rename = "activities:read")]
    ActivitiesRead,
    /// Log, change and delete activities.
    #[oai(rename = "activities:write")]
    ActivitiesWrite,
    /// List API keys.
    #[oai(rename = "api_keys:read")]
    ApiKeysRead,
    /// Create and revoke API keys.
    #[oai(rename = "api_keys:write")]
    ApiKeysWrite,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Scope; 8] = [
        Scope::AccountsRead,
        Scope::AccountsWrite,
        Scope::PeopleRead,
        Scope::PeopleWrite,
        Scope::ActivitiesRead,
        Scope::ActivitiesWrite,
        Scope::ApiKeysRead,
        Scope::ApiKeysWrite,
    ];

    /// The scope's wire name (`accounts:read`).
    pub fn as_str(self) -> &'static str {
        OAuthScopes::name(&self)
    }

    /// The scope named `name`, if it is one.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// The known scopes among `names`; unknown names are ignored, so tokens may carry
    /// scopes of other services.
    pub fn parse_all(names: &[String]) -> BTreeSet<Self> {
        names.iter().filter_map(|n| Self::parse(n)).collect()
    }

    /// Every scope's name.
    pub fn all_names() -> Vec<String> {
        Self::ALL.iter().map(|s| s.as_str().to_owned()).collect()
    }
}

/// Which credential authenticated a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A JWT of type `typ` for subject `sub`.
    Jwt {
        /// `user`, `integrator` or `service`.
        typ: &'static str,
        /// The token's subject.
        sub: String,
    },
    /// The API key with this id.
    ApiKey(Uuid),
}

impl Credential {
    /// A stable id for the credential: what idempotency keys and rate limits are scoped
    /// to. (Built with plain pushes, not `format!`: it runs for every request.)
    pub fn id(&self) -> String {
        match self {
            Self::Jwt { typ, sub } => {
                let mut id = String::with_capacity(5 + typ.len() + sub.len());
                id.push_str("jwt:");
                id.push_str(typ);
                id.push(':');
                id.push_str(sub);
                id
            }
            Self::ApiKey(key) => {
                let mut buf = Uuid::encode_buffer();
                let mut id = String::with_capacity(8 + uuid::fmt::Hyphenated::LENGTH);
                id.push_str("api_key:");
                id.push_str(key.hyphenated().encode_lower(&mut buf));
                id
            }
        }
    }
}

/// A verified caller.
#[derive(Debug, Clone)]
pub struct Principal {
    /// Tenant and actor, from the credential.
    pub(crate) ctx: TenantCtx,
    /// Granted scopes.
    pub(crate) scopes: BTreeSet<Scope>,
    /// The credential.
    pub(crate) credential: Credential,
}

impl Principal {
    /// Whether the principal holds `scope`.
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }

    /// The tenant context.
    pub fn ctx(&self) -> &TenantCtx {
        &self.ctx
    }

    /// The credential.
    pub fn credential(&self) -> &Credential {
        &self.credential
    }

    /// The user behind the request, if it is a user.
    pub fn user_id(&self) -> Option<Uuid> {
        match self.ctx.actor() {
            Actor::User(id) => Some(*id),
            _ => None,
        }
    }
}

/// Bearer credential: a JWT from your identity provider (or `tenantry token` in
/// development), or an API key (`tnt_…`) created with `POST /v1/api_keys`. Send it as
/// `Authorization: Bearer <credential>`. Each operation requires one scope; the token
/// URL is your identity provider's.
#[derive(SecurityScheme)]
#[oai(
    rename = "bearer",
    ty = "oauth2",
    flows(client_credentials(
        token_url = "https://auth.tenantry.dev/oauth/token",
        scopes = "Scope"
    )),
    checker = "check_bearer"
)]
pub struct BearerAuth(Principal);

impl BearerAuth {
    /// The principal, if it holds `scope`.
    ///
    /// # Errors
    /// A 403 `insufficient-scope` problem.
    pub fn require(&self, scope: Scope) -> Result<&Principal, Problem> {
        if self.0.has(scope) {
            Ok(&self.0)
        } else {
            Err(insufficient_scope(scope))
        }
    }
}

/// The 403 of a credential without `scope`.
pub fn insufficient_scope(scope: Scope) -> Problem {
    Problem::new(
        StatusCode::FORBIDDEN,
        kind::INSUFFICIENT_SCOPE,
        format!("this operation requires the `{}` scope", scope.as_str()),
    )
}

/// A principal verified before the body was read ([`crate::front`]), in the request's
/// extensions for the operation's security checker, which takes it instead of verifying
/// the credential again.
#[derive(Debug, Clone)]
pub struct Verified(pub Principal);

async fn check_bearer(req: &Request, bearer: Bearer) -> poem::Result<Principal> {
    if let Some(Verified(principal)) = req.extensions().get::<Verified>() {
        return Ok(principal.clone());
    }
    // Not through the front door (a route served without it): verify here.
    let Some(auth) = req.data::<Arc<Authenticator>>() else {
        return Err(Problem::internal().into());
    };
    let principal = auth.authenticate(&bearer.token).await?;
    tracing::Span::current().record("tenant", tracing::field::display(principal.ctx.tenant()));
    Ok(principal)
}

/// The two capabilities of the authentication edge: the escape hatch (the API-key lookup
/// by prefix, made before the tenant is known) and the context issuer (a verified
/// credential becomes a [`TenantCtx`]). Both come from `tenancy::Db::open`, once, at
/// start-up: the server's own, or a test database's. Only the [`Authenticator`] holds them.
#[expect(
    clippy::disallowed_types,
    reason = "audited: the API-key lookup by prefix needs the escape hatch"
)]
pub trait UnscopedHandle: Send + Sync + 'static {
    /// The escape hatch.
    fn unscoped(&self) -> &tenancy::Unscoped;
    /// The context issuer.
    fn issuer(&self) -> &CtxIssuer;
}

#[expect(
    clippy::disallowed_types,
    reason = "audited: the server's own capabilities, handed to the authenticator"
)]
impl UnscopedHandle for (tenancy::Unscoped, CtxIssuer) {
    fn unscoped(&self) -> &tenancy::Unscoped {
        &self.0
    }
    fn issuer(&self) -> &CtxIssuer {
        &self.1
    }
}

type CacheKey = [u8; 32];

/// How far [`Authenticator::verify`] got without asking the database about an API key.
#[derive(Debug)]
pub enum Verification<'t> {
    /// Verified or refused: a JWT (its tenant checked, from a cache or the database), a
    /// malformed API key, or an API key verified recently (the cache).
    Done(Result<Principal, Problem>),
    /// A well-formed API key that is not in the cache: only a database lookup
    /// ([`Authenticator::lookup`]) can tell. The caller may refuse to pay for one.
    Lookup(KeyLookup<'t>),
}

/// A well-formed API key awaiting its database lookup (see [`Verification::Lookup`]).
pub struct KeyLookup<'t> {
    parsed: api_key::ParsedKey<'t>,
    cache_key: CacheKey,
}

impl std::fmt::Debug for KeyLookup<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        f.debug_struct("KeyLookup")
            .field("prefix", &self.parsed.prefix)
            .finish_non_exhaustive()
    }
}

/// Verifies credentials.
pub struct Authenticator {
    jwt: jwt::JwtVerifier,
    pepper: [u8; 32],
    unscoped: Arc<dyn UnscopedHandle>,
    /// To check that a JWT's tenant exists (a PK read, cached like keys).
    db: Db,
    /// Verified API keys, by a keyed hash of the whole key.
    cache: moka::sync::Cache<CacheKey, Principal>,
    /// Tenants known to exist (for JWTs).
    tenants: moka::sync::Cache<TenantId, ()>,
    cache_ttl: Duration,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("cache_ttl", &self.cache_ttl)
            .finish_non_exhaustive()
    }
}

/// The most verified keys (and known tenants) kept; past it the least recently used are
/// evicted (and verified again when they return).
const CACHE_CAPACITY: u64 = 10_000;

impl Authenticator {
    /// An authenticator verifying JWTs with `jwt` and API keys against `pepper` through
    /// `unscoped` (the prefix lookup happens before the tenant is known).
    pub fn new(
        jwt: jwt::JwtVerifier,
        pepper: [u8; 32],
        unscoped: Arc<dyn UnscopedHandle>,
        db: Db,
        cache_ttl: Duration,
    ) -> Self {
        Self {
            jwt,
            pepper,
            unscoped,
            db,
            cache: moka::sync::Cache::builder()
                .max_capacity(CACHE_CAPACITY)
                .time_to_live(cache_ttl)
                .support_invalidation_closures()
                .build(),
            tenants: moka::sync::Cache::builder()
                .max_capacity(CACHE_CAPACITY)
                .time_to_live(cache_ttl)
                .build(),
            cache_ttl,
        }
    }

    /// The pepper API-key secrets are hashed with.
    pub fn pepper(&self) -> &[u8; 32] {
        &self.pepper
    }

    /// The principal `token` stands for.
    ///
    /// # Errors
    /// A 401 problem for anything that does not verify; 500/503 when the key lookup fails.
    pub async fn authenticate(&self, token: &str) -> Result<Principal, Problem> {
        match self.verify(token).await {
            Verification::Done(result) => result,
            Verification::Lookup(lookup) => self.lookup(lookup).await,
        }
    }

    /// Verifies `token` as far as it can without looking an API key up in the database:
    /// [`Authenticator::authenticate`] in two steps, so that a caller (the rate limits) can
    /// decide whether a lookup is worth its cost before it is made.
    pub async fn verify<'t>(&self, token: &'t str) -> Verification<'t> {
        if !api_key::looks_like_key(token) {
            let result = match self.jwt.verify(token, self.unscoped.issuer()) {
                Ok(principal) => self.ensure_tenant(&principal.ctx).await.map(|()| principal),
                Err(problem) => Err(problem),
            };
            return Verification::Done(result);
        }
        let Some(parsed) = api_key::parse(token) else {
            return Verification::Done(Err(Problem::unauthenticated(
                "the API key is malformed (check for a typo)",
            )));
        };
        // The cache is keyed by a keyed hash of the whole key: the secret itself is not
        // kept in memory after the request.
        let cache_key = self.cache_key(token);
        match self.cached(&cache_key) {
            Some(principal) => Verification::Done(Ok(principal)),
            None => Verification::Lookup(KeyLookup { parsed, cache_key }),
        }
    }

    /// Looks a well-formed API key up in the database and verifies its secret (the second
    /// step of [`Authenticator::verify`]); a verified key is cached.
    ///
    /// # Errors
    /// A 401 problem when the key is unknown, revoked or its secret does not match; 500/503
    /// when the lookup fails.
    pub async fn lookup(&self, lookup: KeyLookup<'_>) -> Result<Principal, Problem> {
        // Boxed: the database calls' state is large and rarely needed (a cache miss), and
        // inline it would enlarge — and be copied with — every request's future.
        Box::pin(self.lookup_in_db(lookup)).await
    }

    async fn lookup_in_db(&self, lookup: KeyLookup<'_>) -> Result<Principal, Problem> {
        let KeyLookup { parsed, cache_key } = lookup;
        let prefix = parsed.prefix;
        let tenant = match parsed.tenant {
            // The key names its tenant: look it up there (no escape hatch).
            Some(tenant) => Some(TenantId::from_uuid(tenant)),
            // A legacy key: its tenant from the prefix directory (through the escape
            // hatch; one read of a table every node holds, under Citus too).
            None => domain::identity::find_api_key_tenant(self.unscoped.unscoped(), prefix)
                .await
                .map_err(Problem::from)?,
        };
        // Then the key itself, with that tenant's handle (one shard). A key whose tenant
        // part was changed is not found in the tenant it names.
        let found = match tenant {
            Some(tenant) => {
                let ctx = self.unscoped.issuer().issue(tenant, Actor::System);
                domain::identity::find_api_key(&self.db.tenant(&ctx), prefix)
                    .await
                    .map_err(Problem::from)?
            }
            None => None,
        };
        let refused = || Problem::unauthenticated("the API key is unknown or revoked");
        let credential = found.ok_or_else(refused)?;
        if credential.revoked
            || !api_key::verify_secret(&self.pepper, parsed.secret, &credential.secret_hash)
        {
            return Err(refused());
        }
        let principal = Principal {
            ctx: self
                .unscoped
                .issuer()
                .issue(credential.tenant_id, Actor::ApiKey(credential.key_id)),
            scopes: Scope::parse_all(&credential.scopes),
            credential: Credential::ApiKey(credential.key_id),
        };
        // At most one write a minute per key (the domain skips recent touches); only on
        // a database verification, so a cached key costs nothing.
        if let Err(e) = domain::identity::touch_api_key_last_used(
            &self.db.tenant(&principal.ctx),
            credential.key_id,
        )
        .await
        {
            crate::problem::log_internal(&e);
        }
        self.remember(cache_key, &principal);
        Ok(principal)
    }

    /// A validly signed token may still name a tenant that does not exist (deleted, or
    /// a misconfigured issuer): refuse it here rather than fail its first write.
    async fn ensure_tenant(&self, ctx: &TenantCtx) -> Result<(), Problem> {
        let tenant = ctx.tenant();
        if self.tenants.contains_key(&tenant) {
            return Ok(());
        }
        // Boxed, as in `lookup`: a cache miss is rare.
        match Box::pin(domain::identity::get_tenant(&self.db.tenant(ctx))).await {
            Ok(_) => {
                self.tenants.insert(tenant, ());
                Ok(())
            }
            Err(domain::Error::NotFound { .. }) => Err(Problem::unauthenticated(
                "the token's tenant does not exist",
            )),
            Err(other) => Err(Problem::from(other)),
        }
    }

    fn cache_key(&self, token: &str) -> CacheKey {
        let mut mac =
            <Hmac<Sha256>>::new_from_slice(&self.pepper).expect("HMAC accepts any key length");
        mac.update(b"api-key-cache\0");
        mac.update(token.as_bytes());
        mac.finalize().into_bytes().into()
    }

    fn cached(&self, key: &CacheKey) -> Option<Principal> {
        self.cache.get(key)
    }

    fn remember(&self, key: CacheKey, principal: &Principal) {
        self.cache.insert(key, principal.clone());
    }

    /// Forgets the cached verification of API key `key_id` (after it is revoked here;
    /// other instances forget it within the cache TTL).
    pub fn forget_key(&self, key_id: Uuid) {
        let revoked = Credential::ApiKey(key_id);
        // Only fails when the cache was built without invalidation closures (it is not).
        let _ = self
            .cache
            .invalidate_entries_if(move |_, principal| principal.credential == revoked);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_names_round_trip_and_unknown_names_are_ignored() {
        for scope in Scope::ALL {
            assert_eq!(Scope::parse(scope.as_str()), Some(scope));
        }
        let parsed = Scope::parse_all(&["people:read".to_owned(), "billing:admin".to_owned()]);
        assert_eq!(parsed.into_iter().collect::<Vec<_>>(), [Scope::PeopleRead]);
    }

    #[test]
    fn credential_ids_distinguish_token_types_and_keys() {
        let user = Credential::Jwt {
            typ: "user",
            sub: "u1".to_owned(),
        };
        let service = Credential::Jwt {
            typ: "service",
            sub: "u1".to_owned(),
        };
        assert_ne!(user.id(), service.id());
        // The ids are keys in Redis and in the idempotency table: their format is fixed.
        assert_eq!(user.id(), "jwt:user:u1");
        assert_eq!(
            Credential::ApiKey(Uuid::nil()).id(),
            "api_key:00000000-0000-0000-0000-000000000000"
        );
    }
}
