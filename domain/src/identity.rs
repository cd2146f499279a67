//! Identity: tenants, their users, and the API keys integrations authenticate with.
//!
//! Four functions take the [`tenancy::Unscoped`] escape hatch, because they run before there
//! is a tenant to scope to: [`create_tenant`] (the tenant does not exist yet),
//! [`find_api_key_tenant`] and [`find_api_key_by_prefix`] (authentication has not yet
//! learned the tenant of a key that does not name it) and [`find_tenant_by_slug`]
//! (operator tooling names a tenant by its slug). Everything else takes a tenant handle.
//!
//! Every API key has a row in `api_key_prefixes` (prefix → tenant), written with the key
//! in one transaction: the directory a key without a tenant part is routed by. Under
//! Citus it is a table copied to every node, so routing such a key is one read on one
//! node, and the key is then read in its tenant's shard — never a read of `api_keys` by
//! prefix alone, which would run on every shard (see `migrations/CITUS.md`).
//!
//! Secrets never reach this module: the API derives an API key's prefix and keyed hash
//! and hands over only those.

use chrono::{DateTime, TimeDelta, Utc};
use entities::api_key_prefix;
use serde_json::Value;
use tenancy::{ColumnExt, Set, TenantHandle, TenantId};
use uuid::Uuid;

use crate::Writer;
use crate::entity::{api_key, tenant, user};
use crate::error::{Error, FieldError, Resource, Result, conflict_on};
use crate::pagination::{Page, PageRequest};
use crate::types::{Check, Email, Invalid, Name, Slug, stored};
use crate::{store, time};

/// A tenant's subscription plan.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
#[derive(strum::Display, strum::EnumString, strum::IntoStaticStr, strum::VariantArray)]
#[strum(serialize_all = "snake_case")]
pub enum Plan {
    /// The free tier (the default).
    #[default]
    Free,
    /// Paid, for teams.
    Team,
    /// Paid, with contract.
    Enterprise,
}

/// What a user may do in their tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(strum::Display, strum::EnumString, strum::IntoStaticStr, strum::VariantArray)]
#[strum(serialize_all = "snake_case")]
pub enum Role {
    /// Manages users, API keys and settings.
    Admin,
    /// Works with accounts, people and activities.
    Member,
}

/// A tenant (an organization using Tenantry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    /// Its id: what every tenant-owned row carries in `tenant_id`.
    pub id: TenantId,
    /// Unique URL-safe handle.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// Subscription plan.
    pub plan: Plan,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

impl Tenant {
    fn from_model(m: tenant::Model) -> Result<Self> {
        Ok(Self {
            plan: stored(Resource::Tenant, &m.plan)?,
            id: TenantId::from_uuid(m.id),
            slug: m.slug,
            name: m.name,
            created_at: m.created_at,
        })
    }
}

/// A user of a tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// UUIDv7.
    pub id: Uuid,
    /// Lower-cased, unique within the tenant.
    pub email: String,
    /// Display name.
    pub name: String,
    /// What the user may do.
    pub role: Role,
    /// When the user was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// Optimistic-concurrency version.
    pub version: i64,
    /// When it was deleted (tombstones in sync lists only).
    pub deleted_at: Option<DateTime<Utc>>,
}

impl User {
    fn from_model(m: user::Model) -> Result<Self> {
        Ok(Self {
            role: stored(Resource::User, &m.role)?,
            id: m.id,
            email: m.email,
            name: m.name,
            created_at: m.created_at,
            updated_at: m.updated_at,
            version: m.version,
            deleted_at: m.deleted_at,
        })
    }
}

/// The input of [`create_tenant`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantCreate {
    /// Unique handle: 3..=63 of `a-z`, `0-9`, inner `-`.
    pub slug: String,
    /// Display name, 1..=200 characters.
    pub name: String,
    /// Defaults to [`Plan::Free`].
    pub plan: Option<Plan>,
    /// The first admin's email.
    pub admin_email: String,
    /// The first admin's name.
    pub admin_name: String,
}

/// What [`create_tenant`] created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTenant {
    /// The tenant.
    pub tenant: Tenant,
    /// Its first user, an admin.
    pub admin: User,
}

/// The input of [`create_user`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserCreate {
    /// An email address, unique within the tenant (case-insensitively).
    pub email: String,
    /// Display name, 1..=200 characters.
    pub name: String,
    /// What the user may do.
    pub role: Role,
}

/// An API key as its tenant sees it: never the secret, nor its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// UUIDv7.
    pub id: Uuid,
    /// What the key is for, 1..=200 characters.
    pub name: String,
    /// The public part of the key, shown to identify it.
    pub prefix: String,
    /// The scopes the key grants.
    pub scopes: Vec<String>,
    /// The user who created it, if known.
    pub created_by: Option<Uuid>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was last used (updated at most once a minute).
    pub last_used_at: Option<DateTime<Utc>>,
    /// When it was revoked; a revoked key authenticates nothing.
    pub revoked_at: Option<DateTime<Utc>>,
}

fn scopes_of(resource: Resource, stored_scopes: Value) -> Result<Vec<String>> {
    serde_json::from_value(stored_scopes).map_err(|e| Error::Corrupt {
        resource,
        detail: format!("scopes: {e}"),
    })
}

impl ApiKey {
    fn from_model(m: api_key::Model) -> Result<Self> {
        Ok(Self {
            scopes: scopes_of(Resource::ApiKey, m.scopes)?,
            id: m.id,
            name: m.name,
            prefix: m.prefix,
            created_by: m.created_by,
            created_at: m.created_at,
            last_used_at: m.last_used_at,
            revoked_at: m.revoked_at,
        })
    }
}

/// The input of [`create_api_key`]: the API generated the secret and computed these.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiKeyCreate {
    /// What the key is for, 1..=200 characters.
    pub name: String,
    /// The key's public prefix: 1..=64 printable ASCII characters, globally unique.
    pub prefix: String,
    /// The keyed hash of the secret (1..=512 printable ASCII characters).
    pub secret_hash: String,
    /// At most 64 scopes, each 1..=64 of `a-z`, `0-9`, `_`, `-`, `.`, `:`.
    pub scopes: Vec<String>,
    /// A live user of the same tenant.
    pub created_by: Option<Uuid>,
}

/// What authentication needs to know about a key found by its prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyCredential {
    /// The tenant the key belongs to: the tenant of the request it authenticates.
    pub tenant_id: TenantId,
    /// The key's id (the request's actor).
    pub key_id: Uuid,
    /// The stored keyed hash, to compare in constant time with the presented secret's.
    pub secret_hash: String,
    /// The scopes the key grants.
    pub scopes: Vec<String>,
    /// Whether the key has been revoked (then it must be refused).
    pub revoked: bool,
}

fn printable(raw: &str, max: usize) -> Result<String, Invalid> {
    if raw.is_empty() || raw.len() > max || !raw.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Invalid::new(
            "invalid_format",
            format!("must be 1 to {max} printable ASCII characters"),
        ));
    }
    Ok(raw.to_owned())
}

fn scope_ok(scope: &str) -> bool {
    (1..=64).contains(&scope.len())
        && scope
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-.:".contains(&b))
}

/// Creates a tenant and its first admin user, atomically.
///
/// # Errors
/// `Validation` (fields `slug`, `name`, `admin_email`, `admin_name`); `Conflict` on
/// `slug` when it is taken. Nothing is written in either case.
#[expect(
    clippy::disallowed_types,
    reason = "audited escape hatch: the tenant row is global and the new tenant has no handle yet"
)]
pub async fn create_tenant(unscoped: &tenancy::Unscoped, input: TenantCreate) -> Result<NewTenant> {
    let mut check = Check::default();
    let slug = check.field("slug", Slug::parse(&input.slug));
    let name = check.field("name", Name::parse(&input.name));
    let email = check.field("admin_email", Email::parse(&input.admin_email));
    let admin_name = check.field("admin_name", Name::parse(&input.admin_name));
    let (Some(slug), Some(name), Some(email), Some(admin_name)) = (slug, name, email, admin_name)
    else {
        return Err(check.fail());
    };
    let now = time::now();
    let id = Uuid::now_v7();
    // The escape hatch: the tenant row is global and the new tenant has no handle yet.
    // Both rows are written in one transaction, so a tenant never exists without an admin.
    let (tenant, txn) = unscoped
        .create_tenant(
            "create a tenant and its first admin",
            tenant::ActiveModel {
                id: Set(id),
                slug: Set(slug.into_inner()),
                name: Set(name.into_inner()),
                plan: Set(input.plan.unwrap_or_default().to_string()),
                created_at: Set(now),
            },
        )
        .await
        .map_err(conflict_on(Resource::Tenant, "slug"))?;
    let admin = txn
        .insert(user::ActiveModel {
            id: Set(Uuid::now_v7()),
            email: Set(email.into_inner()),
            name: Set(admin_name.into_inner()),
            role: Set(Role::Admin.to_string()),
            created_at: Set(now),
            updated_at: Set(now),
            version: Set(1),
            deleted_at: Set(None),
            ..Default::default()
        })
        .exec()
        .await?;
    txn.commit().await?;
    Ok(NewTenant {
        tenant: Tenant::from_model(tenant)?,
        admin: User::from_model(admin)?,
    })
}

/// The handle's own tenant.
///
/// # Errors
/// `NotFound` if the tenant row is gone.
pub async fn get_tenant(db: &impl TenantHandle) -> Result<Tenant> {
    let row = db.find_own::<tenant::Entity>().one().await?;
    Tenant::from_model(row.ok_or(Error::not_found(Resource::Tenant))?)
}

/// Finds a tenant by its slug across all tenants: operator tooling (`tenantry token
/// --tenant SLUG`, the demo tenant's first start) names a tenant before it has a handle.
/// `None` when no tenant has exactly that slug.
///
/// # Errors
/// Storage failures only.
#[expect(
    clippy::disallowed_types,
    reason = "audited escape hatch: the tenant row is global and the caller has no tenant handle yet"
)]
pub async fn find_tenant_by_slug(
    unscoped: &tenancy::Unscoped,
    slug: &str,
) -> Result<Option<Tenant>> {
    let Some(row) = unscoped
        .find::<tenant::Entity>("find a tenant by its slug")
        .filter(tenant::Column::Slug.eq(slug))
        .one()
        .await?
    else {
        return Ok(None);
    };
    Tenant::from_model(row).map(Some)
}

/// Creates a user.
///
/// # Errors
/// `Validation`; `Conflict` on `email` when a user of this tenant has it.
pub async fn create_user(db: &impl Writer, input: UserCreate) -> Result<User> {
    let mut check = Check::default();
    let email = check.field("email", Email::parse(&input.email));
    let name = check.field("name", Name::parse(&input.name));
    let (Some(email), Some(name)) = (email, name) else {
        return Err(check.fail());
    };
    db.write(async |db| {
        let now = time::now();
        let model = db
            .insert(user::ActiveModel {
                id: Set(Uuid::now_v7()),
                email: Set(email.into_inner()),
                name: Set(name.into_inner()),
                role: Set(input.role.to_string()),
                created_at: Set(now),
                updated_at: Set(now),
                version: Set(1),
                deleted_at: Set(None),
                ..Default::default()
            })
            .exec()
            .await
            .map_err(conflict_on(Resource::User, "email"))?;
        User::from_model(model)
    })
    .await
}

/// The live user `id`.
///
/// # Errors
/// `NotFound`.
pub async fn get_user(db: &impl TenantHandle, id: Uuid) -> Result<User> {
    User::from_model(store::get::<user::Entity>(db, id).await?)
}

/// A keyset page of the tenant's users.
///
/// # Errors
/// `Validation` for an invalid limit or cursor.
pub async fn list_users(db: &impl TenantHandle, page: &PageRequest) -> Result<Page<User>> {
    let page = store::list(db.find::<user::Entity>(), page).await?;
    let items = page
        .items
        .into_iter()
        .map(User::from_model)
        .collect::<Result<_>>()?;
    Ok(Page {
        items,
        next: page.next,
        has_more: page.has_more,
    })
}

/// Stores a new API key (its prefix and hash, computed by the caller).
///
/// # Errors
/// `Validation` (`name`, `prefix`, `secret_hash`, `scopes[i]`); `NotFound` on
/// `created_by`; `Conflict` on `prefix`.
pub async fn create_api_key(db: &impl Writer, input: ApiKeyCreate) -> Result<ApiKey> {
    let mut check = Check::default();
    let name = check.field("name", Name::parse(&input.name));
    let prefix = check.field("prefix", printable(&input.prefix, 64));
    let secret_hash = check.field("secret_hash", printable(&input.secret_hash, 512));
    if input.scopes.len() > 64 {
        check.push(FieldError::new("scopes", "too_many", "at most 64 scopes"));
    }
    for (i, scope) in input
        .scopes
        .iter()
        .enumerate()
        .filter(|(_, s)| !scope_ok(s))
    {
        let shown: String = scope.chars().take(64).collect();
        check.push(FieldError::new(
            format!("scopes[{i}]"),
            "invalid_scope",
            format!("`{shown}` is not a valid scope"),
        ));
    }
    let (Some(name), Some(prefix), Some(secret_hash)) = (name, prefix, secret_hash) else {
        return Err(check.fail());
    };
    check.finish()?;
    db.write(async |db| {
        store::referenced_opt::<user::Entity>(db, input.created_by, "created_by").await?;
        let model = db
            .insert(api_key::ActiveModel {
                id: Set(Uuid::now_v7()),
                name: Set(name.into_inner()),
                prefix: Set(prefix),
                secret_hash: Set(secret_hash),
                scopes: Set(Value::from(input.scopes)),
                created_by: Set(input.created_by),
                created_at: Set(time::now()),
                last_used_at: Set(None),
                revoked_at: Set(None),
                ..Default::default()
            })
            .exec()
            .await
            .map_err(conflict_on(Resource::ApiKey, "prefix"))?;
        // The directory row, in the same transaction: a prefix routes to one tenant
        // (under Citus this unique index is what keeps prefixes unique across tenants).
        db.insert(api_key_prefix::ActiveModel {
            prefix: Set(model.prefix.clone()),
            ..Default::default()
        })
        .exec()
        .await
        .map_err(conflict_on(Resource::ApiKey, "prefix"))?;
        ApiKey::from_model(model)
    })
    .await
}

/// Every API key of the tenant, revoked ones included, oldest first. A tenant has a
/// handful, so this is not paged.
///
/// # Errors
/// Storage failures only.
pub async fn list_api_keys(db: &impl TenantHandle) -> Result<Vec<ApiKey>> {
    let rows = db
        .find::<api_key::Entity>()
        .order_by_asc(api_key::Column::Id)
        .all()
        .await?;
    rows.into_iter().map(ApiKey::from_model).collect()
}

/// Revokes the key `id` and returns it. Revoking a revoked key changes nothing.
///
/// # Errors
/// `NotFound`.
pub async fn revoke_api_key(db: &impl Writer, id: Uuid) -> Result<ApiKey> {
    db.write(async |db| {
        let revoked = db
            .update_many::<api_key::Entity>()
            .set(api_key::Column::RevokedAt, time::now())
            .filter(api_key::Column::Id.eq(id))
            .filter(api_key::Column::RevokedAt.is_null())
            .exec_with_returning()
            .await?;
        if let Some(key) = revoked.into_iter().next() {
            return ApiKey::from_model(key);
        }
        let existing = db
            .find::<api_key::Entity>()
            .filter(api_key::Column::Id.eq(id))
            .one()
            .await?;
        ApiKey::from_model(existing.ok_or(Error::not_found(Resource::ApiKey))?)
    })
    .await
}

/// The tenant whose key has the prefix `prefix`, from the `api_key_prefixes` directory:
/// how authentication routes a key that does not name its tenant (a legacy key), before
/// reading the key with that tenant's handle ([`find_api_key`]). `None` when no key has
/// that prefix. One read of a table every node holds (under Citus, a reference table).
///
/// # Errors
/// Storage failures only.
#[expect(
    clippy::disallowed_types,
    reason = "audited escape hatch: authentication routes the key before it knows the tenant"
)]
pub async fn find_api_key_tenant(
    unscoped: &tenancy::Unscoped,
    prefix: &str,
) -> Result<Option<TenantId>> {
    let row = unscoped
        .find::<api_key_prefix::Entity>("route an API key by its prefix")
        .filter(api_key_prefix::Column::Prefix.eq(prefix))
        .one()
        .await?;
    Ok(row.map(|row| TenantId::from_uuid(row.tenant_id)))
}

/// Finds a key by its prefix across all tenants (operator tooling): its tenant from the
/// directory ([`find_api_key_tenant`]), then the key in that tenant — two single-shard
/// reads under Citus, never a read of `api_keys` by prefix alone. `None` when no key has
/// that prefix. Authentication uses the two steps itself, reading the key with the
/// tenant's handle.
///
/// # Errors
/// Storage failures only.
#[expect(
    clippy::disallowed_types,
    reason = "audited escape hatch: a key found by its prefix before its tenant is known"
)]
pub async fn find_api_key_by_prefix(
    unscoped: &tenancy::Unscoped,
    prefix: &str,
) -> Result<Option<ApiKeyCredential>> {
    let Some(tenant) = find_api_key_tenant(unscoped, prefix).await? else {
        return Ok(None);
    };
    let Some(key) = unscoped
        .find::<api_key::Entity>("read an API key in the tenant its prefix routes to")
        .filter(api_key::Column::TenantId.eq(tenant.as_uuid()))
        .filter(api_key::Column::Prefix.eq(prefix))
        .one()
        .await?
    else {
        return Ok(None);
    };
    credential(key).map(Some)
}

/// Finds a key of the handle's tenant by its prefix: the authentication lookup of a key
/// that names its tenant (a single-shard read). `None` when this tenant has no such key.
///
/// # Errors
/// Storage failures only.
pub async fn find_api_key(
    db: &impl TenantHandle,
    prefix: &str,
) -> Result<Option<ApiKeyCredential>> {
    let Some(key) = db
        .find::<api_key::Entity>()
        .filter(api_key::Column::Prefix.eq(prefix))
        .one()
        .await?
    else {
        return Ok(None);
    };
    credential(key).map(Some)
}

fn credential(key: api_key::Model) -> Result<ApiKeyCredential> {
    Ok(ApiKeyCredential {
        tenant_id: TenantId::from_uuid(key.tenant_id),
        key_id: key.id,
        scopes: scopes_of(Resource::ApiKey, key.scopes)?,
        secret_hash: key.secret_hash,
        revoked: key.revoked_at.is_some(),
    })
}

/// How stale `last_used_at` may get: touching a key writes at most once per interval,
/// so authentication does not turn every request into a write.
pub const LAST_USED_RESOLUTION: TimeDelta = TimeDelta::minutes(1);

/// Records that the key `id` was just used, unless that was already recorded within
/// [`LAST_USED_RESOLUTION`]. Unknown keys are ignored.
///
/// # Errors
/// Storage failures only.
pub async fn touch_api_key_last_used(db: &impl TenantHandle, id: Uuid) -> Result<()> {
    let now = time::now();
    db.update_many::<api_key::Entity>()
        .set(api_key::Column::LastUsedAt, now)
        .filter(api_key::Column::Id.eq(id))
        .filter(
            api_key::Column::LastUsedAt
                .is_null()
                .or(api_key::Column::LastUsedAt.lt(now - LAST_USED_RESOLUTION)),
        )
        .exec()
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_lower_case_words_with_separators() {
        assert!(scope_ok("people:read"));
        assert!(scope_ok("accounts.write"));
        assert!(!scope_ok(""));
        assert!(!scope_ok("People:Read"));
        assert!(!scope_ok("people read"));
    }

    #[test]
    fn prefixes_and_hashes_are_printable_ascii() {
        assert!(printable("tnt_live_ab12", 64).is_ok());
        assert!(printable("", 64).is_err());
        assert!(printable("with space", 64).is_err());
        assert!(printable("é", 64).is_err());
        assert!(printable(&"x".repeat(65), 64).is_err());
    }
}
