//! Accounts: the companies a tenant sells to.
//!
//! People work at accounts (`people.account_id`); deleting an account unlinks them in the
//! same transaction ([`delete`]), so a live person never names a deleted account.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use tenancy::TenantHandle;
use tenancy::{ColumnExt, NotSet, Set};
use uuid::Uuid;

use crate::Writer;
use crate::entity::{account, person, user};
use crate::error::{Error, Result};
use crate::pagination::{OffsetPage, OffsetRequest, Page, PageRequest};
use crate::types::{Check, CustomFields, DomainName, Name, filter_text};
use crate::{store, time};

/// An account as the domain sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Account {
    /// UUIDv7, assigned on create.
    pub id: Uuid,
    /// Display name, 1..=200 characters.
    pub name: String,
    /// Normalized internet domain (`acme.com`), if known.
    pub domain: Option<String>,
    /// The user who owns the relationship, if any.
    pub owner_id: Option<Uuid>,
    /// Tenant-defined extra data: a JSON object of at most 16 KiB.
    pub custom_fields: Map<String, Value>,
    /// When the account was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed; strictly increases on every change.
    pub updated_at: DateTime<Utc>,
    /// Optimistic-concurrency version: 1 on create, +1 on every change.
    pub version: i64,
    /// When it was deleted; set only on tombstones returned by sync lists.
    pub deleted_at: Option<DateTime<Utc>>,
}

impl Account {
    fn from_model(m: account::Model) -> Self {
        let custom_fields = match m.custom_fields {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        Self {
            id: m.id,
            name: m.name,
            domain: m.domain,
            owner_id: m.owner_id,
            custom_fields,
            created_at: m.created_at,
            updated_at: m.updated_at,
            version: m.version,
            deleted_at: m.deleted_at,
        }
    }
}

/// The input of [`create`]; validated by it, every failing field reported at once.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AccountCreate {
    /// Required, 1..=200 characters after trimming.
    pub name: String,
    /// A domain name; normalized to lower case.
    pub domain: Option<String>,
    /// A live user of the same tenant.
    pub owner_id: Option<Uuid>,
    /// A JSON object of at most 16 KiB; `None` means `{}`.
    pub custom_fields: Option<Value>,
}

/// The input of [`update`]: `None` leaves a field as it is; for nullable fields,
/// `Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AccountPatch {
    /// New name.
    pub name: Option<String>,
    /// New domain, or `Some(None)` to clear it.
    pub domain: Option<Option<String>>,
    /// New owner, or `Some(None)` to clear it.
    pub owner_id: Option<Option<Uuid>>,
    /// A JSON merge patch of the custom fields: keys replace, `null` removes.
    pub custom_fields: Option<Value>,
}

impl AccountPatch {
    fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// Which accounts [`list`] returns (all conditions ANDed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountFilter {
    /// Exactly this domain (normalized before comparing).
    pub domain: Option<String>,
    /// Names starting with this text, ignoring ASCII case.
    pub name_prefix: Option<String>,
}

/// Creates an account: `version` 1, `created_at = updated_at = now`.
///
/// # Errors
/// `Validation` for invalid fields; `NotFound { field: "owner_id" }` when the owner is
/// not a live user of this tenant. Nothing is written in either case.
pub async fn create(db: &impl Writer, input: AccountCreate) -> Result<Account> {
    let mut check = Check::default();
    let name = check.field("name", Name::parse(&input.name));
    let domain = check.field(
        "domain",
        input.domain.as_deref().map(DomainName::parse).transpose(),
    );
    let custom_fields = check.field(
        "custom_fields",
        input
            .custom_fields
            .map_or(Ok(CustomFields::default()), CustomFields::parse),
    );
    let (Some(name), Some(domain), Some(custom_fields)) = (name, domain, custom_fields) else {
        return Err(check.fail());
    };
    db.write(async |db| {
        store::referenced_opt::<user::Entity>(db, input.owner_id, "owner_id").await?;
        let now = time::now();
        let model = db
            .insert(account::ActiveModel {
                id: Set(Uuid::now_v7()),
                name: Set(name.into_inner()),
                domain: Set(domain.map(DomainName::into_inner)),
                owner_id: Set(input.owner_id),
                custom_fields: Set(custom_fields.into_value()),
                created_at: Set(now),
                updated_at: Set(now),
                version: Set(1),
                deleted_at: Set(None),
                ..Default::default()
            })
            .exec()
            .await?;
        Ok(Account::from_model(model))
    })
    .await
}

/// The live account `id`.
///
/// # Errors
/// `NotFound` when it does not exist in this tenant or is deleted.
pub async fn get(db: &impl TenantHandle, id: Uuid) -> Result<Account> {
    store::get::<account::Entity>(db, id)
        .await
        .map(Account::from_model)
}

/// Applies `patch` to the live account `id`, if it is at `expected_version` (when given).
/// An empty patch changes nothing and returns the account.
///
/// # Errors
/// `Validation` (nothing written); `NotFound` for the account, or with
/// `field: "owner_id"` for the owner; `VersionMismatch { current }` when the account
/// changed since `expected_version`.
pub async fn update(
    db: &impl Writer,
    id: Uuid,
    expected_version: Option<i64>,
    patch: AccountPatch,
) -> Result<Account> {
    let mut check = Check::default();
    let name = check.field("name", patch.name.as_deref().map(Name::parse).transpose());
    let domain = check.field(
        "domain",
        patch
            .domain
            .as_ref()
            .map(|d| d.as_deref().map(DomainName::parse).transpose())
            .transpose(),
    );
    if let Some(fields) = &patch.custom_fields
        && !fields.is_object()
    {
        check.push(crate::FieldError::new(
            "custom_fields",
            "not_an_object",
            "must be a JSON object",
        ));
    }
    let (Some(name), Some(domain)) = (name, domain) else {
        return Err(check.fail());
    };
    check.finish()?;
    db.write(async |db| {
        if patch.is_empty() {
            return store::unchanged::<account::Entity>(db, id, expected_version)
                .await
                .map(Account::from_model);
        }
        if let Some(owner) = patch.owner_id.flatten() {
            store::referenced::<user::Entity>(db, owner, "owner_id").await?;
        }
        let model = store::update::<account::Entity>(db, id, expected_version, |current, _| {
            let custom_fields = match &patch.custom_fields {
                Some(merge) => {
                    let merged = CustomFields::stored(&current.custom_fields)
                        .merge(merge.clone())
                        .map_err(|e| Error::Validation(vec![e.at("custom_fields")]))?;
                    Set(merged.into_value())
                }
                None => NotSet,
            };
            let model = account::ActiveModel {
                name: store::patched(name.clone().map(Name::into_inner)),
                domain: store::patched(domain.clone().map(|d| d.map(DomainName::into_inner))),
                owner_id: store::patched(patch.owner_id),
                custom_fields,
                ..Default::default()
            };
            Ok((model, Vec::new()))
        })
        .await?;
        Ok(Account::from_model(model))
    })
    .await
}

/// Soft-deletes the live account `id` (at `expected_version`, when given) and returns
/// the tombstone; the account disappears from every read except sync lists.
///
/// **Its people are unlinked in the same transaction**: every live person at the account
/// gets `account_id = null` as a change of its own — `version` + 1 and `updated_at`
/// moved to the tombstone's `deleted_at` (or, for a person changed at that very instant
/// or later, just past its own `updated_at`) — so a sync walk from before the deletion
/// returns the account's tombstone and each unlinked person, and their old ETags no
/// longer match. Either all of it commits or none. People already deleted keep their
/// `account_id` (a tombstone is the row as it was deleted). Activities hang off people,
/// not accounts, and are not touched. Another tenant's rows are never read or written:
/// every statement is scoped to the caller's tenant.
///
/// Cost: two scoped statements per distinct `version` among the account's people (see
/// `store::unlink`), however many people there are.
///
/// # Errors
/// `NotFound` (also when already deleted); `VersionMismatch` (nothing changed);
/// `Contention` when concurrent changes to the account's people keep winning.
pub async fn delete(db: &impl Writer, id: Uuid, expected_version: Option<i64>) -> Result<Account> {
    db.write(async |db| {
        let tombstone = store::soft_delete::<account::Entity>(db, id, expected_version).await?;
        let at = tombstone.updated_at;
        store::unlink::<person::Entity>(db, person::Column::AccountId, id, at).await?;
        Ok(Account::from_model(tombstone))
    })
    .await
}

fn filtered<'a>(
    db: &'a impl TenantHandle,
    filter: &AccountFilter,
) -> Result<tenancy::Scoped<'a, account::Entity>> {
    let mut scoped = db.find::<account::Entity>();
    if let Some(domain) = &filter.domain {
        let domain =
            DomainName::parse(domain).map_err(|e| Error::Validation(vec![e.at("domain")]))?;
        scoped = scoped.filter(account::Column::Domain.eq(domain.into_inner()));
    }
    if let Some(prefix) = &filter.name_prefix {
        let prefix =
            filter_text(prefix).map_err(|e| Error::Validation(vec![e.at("name_prefix")]))?;
        // LIKE with the wildcards of the input escaped, on LOWER(name): case-insensitive
        // on both backends (SQLite's LIKE ignores ASCII case, PostgreSQL's does not).
        scoped = scoped.filter(account::Column::Name.starts_with_ci(prefix));
    }
    Ok(scoped)
}

/// A keyset page of accounts matching `filter`, in `page.sort` order.
///
/// # Errors
/// `Validation` for an invalid filter domain, limit or cursor.
pub async fn list(
    db: &impl TenantHandle,
    filter: &AccountFilter,
    page: &PageRequest,
) -> Result<Page<Account>> {
    Ok(store::list(filtered(db, filter)?, page)
        .await?
        .map(Account::from_model))
}

/// An offset page of accounts matching `filter`, by id.
///
/// # Errors
/// `Validation` for an invalid filter, page or page size.
pub async fn list_offset(
    db: &impl TenantHandle,
    filter: &AccountFilter,
    page: &OffsetRequest,
) -> Result<OffsetPage<Account>> {
    Ok(store::list_offset(filtered(db, filter)?, page)
        .await?
        .map(Account::from_model))
}
