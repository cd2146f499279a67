//! `/v1/accounts`: the companies a tenant sells to.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use domain::accounts::{self, AccountFilter};
use poem::Request;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::types::{Example, MaybeUndefined};
use poem_openapi::{Object, OpenApi};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::{
    Created, Deleted, Fetched, ListParams, Listed, Plan, Sort, Tag, Updated, list_envelope,
    not_null,
};
use crate::auth::{BearerAuth, Scope};
use crate::context::{Call, Operation};
use crate::http::{JsonBody, idempotent, if_match_version};
use crate::problem::{
    ApiError, CreateErrors, DeleteErrors, ListErrors, Problem, ReadErrors, UpdateErrors,
};
use crate::timestamp::Timestamp;

/// An account: a company the tenant sells to.
#[derive(Object, Serialize, Debug, Clone, PartialEq)]
#[oai(example)]
pub struct Account {
    /// UUIDv7, assigned by the server.
    pub id: Uuid,
    /// Display name.
    pub name: String,
    /// Internet domain, lower-cased (`acme.com`).
    #[oai(nullable)]
    pub domain: Option<String>,
    /// The user who owns the relationship.
    #[oai(nullable)]
    pub owner_id: Option<Uuid>,
    /// Tenant-defined data: a JSON object of at most 16 KiB.
    pub custom_fields: BTreeMap<String, Value>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last changed (strictly increases on every change).
    pub updated_at: Timestamp,
    /// Version, +1 on every change; the ETag is `"<version>"`.
    pub version: i64,
    /// When it was deleted: set only on tombstones in sync lists.
    #[oai(nullable)]
    pub deleted_at: Option<Timestamp>,
}

impl Example for Account {
    fn example() -> Self {
        let at = DateTime::parse_from_rfc3339("2026-01-15T09:30:00Z")
            .map(|t| t.to_utc())
            .unwrap_or_default();
        Self {
            id: Uuid::parse_str("0194a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b").unwrap_or_default(),
            name: "Acme Corp".to_owned(),
            domain: Some("acme.com".to_owned()),
            owner_id: None,
            custom_fields: BTreeMap::from([("tier".to_owned(), Value::from("gold"))]),
            created_at: Timestamp::from(at),
            updated_at: Timestamp::from(at),
            version: 1,
            deleted_at: None,
        }
    }
}

impl From<accounts::Account> for Account {
    fn from(a: accounts::Account) -> Self {
        Self {
            id: a.id,
            name: a.name,
            domain: a.domain,
            owner_id: a.owner_id,
            custom_fields: a.custom_fields.into_iter().collect(),
            created_at: Timestamp::from(a.created_at),
            updated_at: Timestamp::from(a.updated_at),
            version: a.version,
            deleted_at: a.deleted_at.map(Timestamp),
        }
    }
}

/// The body of `create_account`.
#[derive(Object, Deserialize, Debug, Clone)]
#[oai(example, deny_unknown_fields)]
#[serde(deny_unknown_fields)]
pub struct AccountCreate {
    /// Display name: 1 to 200 characters once surrounding whitespace is
    /// trimmed, no control characters.
    pub name: String,
    /// Internet domain (`acme.com`): two or more labels of letters, digits and inner
    /// hyphens, the last starting with a letter; stored lower-cased.
    #[oai(nullable)]
    pub domain: Option<String>,
    /// A user of your tenant.
    #[oai(nullable)]
    pub owner_id: Option<Uuid>,
    /// A JSON object of at most 16 KiB, with keys of 1 to 64 characters; no key or string
    /// in it, at any depth, may contain NUL (U+0000).
    #[oai(nullable)]
    pub custom_fields: Option<BTreeMap<String, Value>>,
}

impl Example for AccountCreate {
    fn example() -> Self {
        Self {
            name: "Acme Corp".to_owned(),
            domain: Some("acme.com".to_owned()),
            owner_id: None,
            custom_fields: Some(BTreeMap::from([("tier".to_owned(), Value::from("gold"))])),
        }
    }
}

impl From<AccountCreate> for accounts::AccountCreate {
    fn from(a: AccountCreate) -> Self {
        Self {
            name: a.name,
            domain: a.domain,
            owner_id: a.owner_id,
            custom_fields: a
                .custom_fields
                .map(|m| Value::Object(m.into_iter().collect())),
        }
    }
}

/// The body of `update_account`: omitted fields stay as they are; `null` clears a
/// nullable field.
#[derive(Object, Deserialize, Debug, Clone, Default)]
#[oai(example, deny_unknown_fields)]
#[serde(deny_unknown_fields)]
pub struct AccountUpdate {
    /// New display name: 1 to 200 characters once surrounding whitespace is
    /// trimmed, no control characters.
    #[serde(default)]
    pub name: MaybeUndefined<String>,
    /// New domain (as `domain` of `create_account`), or `null` to clear it.
    #[oai(nullable)]
    #[serde(default)]
    pub domain: MaybeUndefined<String>,
    /// New owner, or `null` to clear it.
    #[oai(nullable)]
    #[serde(default)]
    pub owner_id: MaybeUndefined<Uuid>,
    /// A JSON merge patch of the custom fields: each key replaces the stored one, a
    /// `null` value removes it. Keys of 1 to 64 characters; no key or string in it, at any
    /// depth, may contain NUL (U+0000); the merged object is at most 16 KiB.
    #[serde(default)]
    pub custom_fields: MaybeUndefined<BTreeMap<String, Value>>,
}

impl Example for AccountUpdate {
    fn example() -> Self {
        Self {
            name: MaybeUndefined::Value("Acme Corporation".to_owned()),
            ..Self::default()
        }
    }
}

impl TryFrom<AccountUpdate> for accounts::AccountPatch {
    type Error = Problem;

    fn try_from(u: AccountUpdate) -> Result<Self, Problem> {
        let mut errors = Vec::new();
        let patch = Self {
            name: not_null("name", u.name, &mut errors),
            domain: u.domain.into(),
            owner_id: u.owner_id.into(),
            custom_fields: not_null("custom_fields", u.custom_fields, &mut errors)
                .map(|m| Value::Object(m.into_iter().collect())),
        };
        if errors.is_empty() {
            Ok(patch)
        } else {
            Err(Problem::validation(errors))
        }
    }
}

list_envelope!(
    /// A page of accounts.
    AccountList,
    Account
);

/// The accounts operations.
pub struct AccountsApi;

/// Where an account lives.
fn location(id: Uuid) -> String {
    format!("/v1/accounts/{id}")
}

#[OpenApi(prefix_path = "/v1", tag = "Tag::Accounts")]
impl AccountsApi {
    /// Price of `create_account` (see [`crate::limits`]): a write.
    pub const CREATE_ACCOUNT: Operation = Operation::write("create_account", Scope::AccountsWrite);

    /// Create an account
    ///
    /// Send an `Idempotency-Key` to retry safely: the same key with the same body returns
    /// the first response again.
    #[oai(path = "/accounts", method = "post", operation_id = "create_account")]
    async fn create_account(
        &self,
        #[oai(scope = "Scope::AccountsWrite")] auth: BearerAuth,
        req: &Request,
        /// A unique key (e.g. a UUID) making retries of this request safe, for 24 hours.
        #[oai(name = "Idempotency-Key")]
        idempotency_key: Header<Option<String>>,
        body: JsonBody<AccountCreate>,
    ) -> Result<Created<Account>, ApiError<CreateErrors>> {
        let Call { principal, db, .. } = Self::CREATE_ACCOUNT.begin(req, &auth)?;
        let input = body.value.into();
        let out = idempotent(
            &db,
            principal,
            idempotency_key.0.as_deref(),
            "create_account",
            &body.canonical,
            async |txn| Ok(Account::from(accounts::create(txn, input).await?)),
        )
        .await?;
        let (location, version) = (location(out.value.id), out.value.version);
        Ok(Created::new(out.value, location, version, out.replayed))
    }

    /// Price of `get_account` (see [`crate::limits`]): 1, and 0 on a 304.
    pub const GET_ACCOUNT: Operation =
        Operation::conditional_read("get_account", Scope::AccountsRead);

    /// Get an account
    ///
    /// Send the ETag you have in `If-None-Match` to get `304 Not Modified` when it is
    /// unchanged.
    #[oai(path = "/accounts/:id", method = "get", operation_id = "get_account")]
    async fn get_account(
        &self,
        #[oai(scope = "Scope::AccountsRead")] auth: BearerAuth,
        req: &Request,
        /// The account's id.
        id: Path<Uuid>,
        /// An ETag from an earlier response.
        #[oai(name = "If-None-Match")]
        if_none_match: Header<Option<String>>,
    ) -> Result<Fetched<Account>, ApiError<ReadErrors>> {
        let Call { db, charge, .. } = Self::GET_ACCOUNT.begin(req, &auth)?;
        let account = Account::from(accounts::get(&db, id.0).await?);
        let version = account.version;
        let fetched = Fetched::new(account, version, if_none_match.0.as_deref());
        if fetched.is_not_modified() {
            charge.refund().await;
        }
        Ok(fetched)
    }

    /// Price of `list_accounts` (see [`crate::limits`]): a page; deep offset pages cost more.
    pub const LIST_ACCOUNTS: Operation =
        Operation::offset_page("list_accounts", Scope::AccountsRead);

    /// List accounts
    ///
    /// Cursor pagination by default (`limit`, then `cursor` from `next_cursor` or the
    /// `Link` header, with the same filters). Sync mode: `sort=updated_at` with
    /// `updated_after`, including deleted accounts as tombstones. `page` gives offset
    /// pages for compatibility (by id; deep pages cost more).
    #[oai(path = "/accounts", method = "get", operation_id = "list_accounts")]
    #[expect(
        clippy::too_many_arguments,
        reason = "one argument per query parameter"
    )]
    async fn list_accounts(
        &self,
        #[oai(scope = "Scope::AccountsRead")] auth: BearerAuth,
        req: &Request,
        /// Items per page, 1 to 200 (default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
        limit: Query<Option<u64>>,
        /// `next_cursor` of the previous page, with the same filters (not with `page`).
        cursor: Query<Option<String>>,
        /// The order: `id` (default) or `updated_at` (sync; not with `page`).
        sort: Query<Option<Sort>>,
        /// Sync from this time: items changed after it (implies `sort=updated_at`; not with
        /// `sort=id` or `page`).
        updated_after: Query<Option<DateTime<Utc>>>,
        /// Offset page number, from 1, in id order (compatibility; prefer cursors). Offset
        /// pages end at row 10,000: `(page - 1) * limit` may not exceed it.
        #[oai(validator(minimum(value = "1")))]
        page: Query<Option<u64>>,
        /// Only accounts with this domain.
        domain: Query<Option<String>>,
        /// Only accounts whose name starts with this (case-insensitive).
        name_prefix: Query<Option<String>>,
    ) -> Result<Listed<AccountList>, ApiError<ListErrors>> {
        let Call {
            principal,
            db,
            charge,
            state,
        } = Self::LIST_ACCOUNTS.begin(req, &auth)?;
        let filter = AccountFilter {
            domain: domain.0,
            name_prefix: name_prefix.0,
        };
        let bound = [
            ("domain", filter.domain.clone().unwrap_or_default()),
            (
                "name_prefix",
                filter.name_prefix.clone().unwrap_or_default(),
            ),
        ];
        let params = ListParams {
            limit: limit.0,
            cursor: cursor.0,
            sort: sort.0,
            updated_after: updated_after.0,
            page: page.0,
        };
        let plan = params.plan(state, principal, "list_accounts", &bound)?;
        let sync = plan.is_sync();
        let listing = match plan {
            Plan::Offset(request) => super::offset_listing(
                req.uri(),
                accounts::list_offset(&db, &filter, &request).await?,
                Account::from,
            ),
            Plan::Keyset {
                request,
                sort,
                binding,
            } => {
                let page = accounts::list(&db, &filter, &request).await?;
                super::keyset_listing(
                    state,
                    req.uri(),
                    sort,
                    &binding,
                    &request,
                    page,
                    |a| (a.updated_at, a.id),
                    Account::from,
                )
            }
        };
        if sync && listing.data.is_empty() {
            charge.refund().await;
        }
        Ok(AccountList::from_listing(listing))
    }

    /// Price of `update_account` (see [`crate::limits`]): a write.
    pub const UPDATE_ACCOUNT: Operation = Operation::write("update_account", Scope::AccountsWrite);

    /// Update an account
    ///
    /// Send the ETag you have in `If-Match` to update only if nobody changed the account
    /// since (`412 Precondition Failed` otherwise).
    #[oai(
        path = "/accounts/:id",
        method = "patch",
        operation_id = "update_account"
    )]
    async fn update_account(
        &self,
        #[oai(scope = "Scope::AccountsWrite")] auth: BearerAuth,
        req: &Request,
        /// The account's id.
        id: Path<Uuid>,
        /// The ETag the change is based on.
        #[oai(name = "If-Match")]
        if_match: Header<Option<String>>,
        body: JsonBody<AccountUpdate>,
    ) -> Result<Updated<Account>, ApiError<UpdateErrors>> {
        let Call { db, .. } = Self::UPDATE_ACCOUNT.begin(req, &auth)?;
        let expected = if_match_version(if_match.0.as_deref())?;
        let patch = accounts::AccountPatch::try_from(body.value)?;
        let account = Account::from(accounts::update(&db, id.0, expected, patch).await?);
        let version = account.version;
        Ok(Updated::new(account, version))
    }

    /// Price of `delete_account` (see [`crate::limits`]): a write.
    pub const DELETE_ACCOUNT: Operation = Operation::write("delete_account", Scope::AccountsWrite);

    /// Delete an account
    ///
    /// A soft delete: the account disappears from reads, and sync lists return it once
    /// more as a tombstone. `If-Match` makes it conditional.
    ///
    /// Its people are unlinked in the same transaction: each live person at the account
    /// gets `account_id: null` as a change of its own — a new `version` (so its ETag
    /// changes) and an `updated_at` no earlier than the account's `deleted_at` — so a sync
    /// walk (`sort=updated_at`) returns the account's tombstone and every unlinked person.
    /// All of it happens or none of it (a stale `If-Match` changes nothing). Deleted
    /// people keep their `account_id`; activities belong to people and are not touched.
    /// The price is one write, however many people the account has.
    #[oai(
        path = "/accounts/:id",
        method = "delete",
        operation_id = "delete_account"
    )]
    async fn delete_account(
        &self,
        #[oai(scope = "Scope::AccountsWrite")] auth: BearerAuth,
        req: &Request,
        /// The account's id.
        id: Path<Uuid>,
        /// The ETag the deletion is based on.
        #[oai(name = "If-Match")]
        if_match: Header<Option<String>>,
    ) -> Result<Deleted, ApiError<DeleteErrors>> {
        let Call { db, .. } = Self::DELETE_ACCOUNT.begin(req, &auth)?;
        let expected = if_match_version(if_match.0.as_deref())?;
        accounts::delete(&db, id.0, expected).await?;
        Ok(Deleted::NoContent)
    }
}
