//! `/v1/people`: contacts, optionally at an account.

use chrono::{DateTime, Utc};
use domain::people::{self, PersonFilter};
use poem::Request;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::types::{Example, MaybeUndefined};
use poem_openapi::{Enum, Object, OpenApi};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::shape::{
    Expand, FetchedShaped, Fields, ListedShaped, Representation, Shape, Vocabulary, bit,
    kept_nullable,
};
use super::{
    Created, Deleted, ListParams, Listing, Plan, Sort, Tag, Updated, list_envelope, not_null,
};
use crate::auth::{BearerAuth, Scope};
use crate::context::{Call, Operation};
use crate::http::{JsonBody, JsonOut, idempotent, if_match_version};
use crate::problem::{
    ApiError, CreateErrors, DeleteErrors, ListErrors, Problem, ReadErrors, UpdateErrors,
};
use crate::timestamp::Timestamp;

/// Where a person stands in the sales process.
#[derive(Enum, Deserialize, Serialize, Debug, Clone, Copy, PartialEq, Eq)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Known, not yet contacted.
    Lead,
    /// Reached out to.
    Contacted,
    /// A real opportunity.
    Qualified,
    /// Bought.
    Customer,
    /// Not going to buy.
    Lost,
}

impl From<people::Stage> for Stage {
    fn from(s: people::Stage) -> Self {
        match s {
            people::Stage::Lead => Self::Lead,
            people::Stage::Contacted => Self::Contacted,
            people::Stage::Qualified => Self::Qualified,
            people::Stage::Customer => Self::Customer,
            people::Stage::Lost => Self::Lost,
        }
    }
}

impl From<Stage> for people::Stage {
    fn from(s: Stage) -> Self {
        match s {
            Stage::Lead => Self::Lead,
            Stage::Contacted => Self::Contacted,
            Stage::Qualified => Self::Qualified,
            Stage::Customer => Self::Customer,
            Stage::Lost => Self::Lost,
        }
    }
}

impl Stage {
    fn as_str(self) -> &'static str {
        people::Stage::from(self).into()
    }
}

/// A person: a contact, optionally at an account.
#[derive(Object, Serialize, Debug, Clone, PartialEq)]
#[oai(example)]
pub struct Person {
    /// UUIDv7, assigned by the server.
    pub id: Uuid,
    /// The account the person works at.
    #[oai(nullable)]
    pub account_id: Option<Uuid>,
    /// The account's name: filled by `list_people?include_account_name=true`, `null`
    /// otherwise (and when there is no live account).
    #[oai(nullable)]
    pub account_name: Option<String>,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// Email address, lower-cased.
    #[oai(nullable)]
    pub email: Option<String>,
    /// Job title.
    #[oai(nullable)]
    pub title: Option<String>,
    /// Phone number, digits with an optional leading `+`.
    #[oai(nullable)]
    pub phone: Option<String>,
    /// Sales stage.
    pub stage: Stage,
    /// When the person was created.
    pub created_at: Timestamp,
    /// When it last changed (strictly increases on every change).
    pub updated_at: Timestamp,
    /// Version, +1 on every change; the ETag is `"<version>"`.
    pub version: i64,
    /// When it was deleted: set only on tombstones in sync lists.
    #[oai(nullable)]
    pub deleted_at: Option<Timestamp>,
}

impl Example for Person {
    fn example() -> Self {
        let at = DateTime::parse_from_rfc3339("2026-01-15T09:30:00Z")
            .map(|t| t.to_utc())
            .unwrap_or_default();
        Self {
            id: Uuid::parse_str("0194a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a60").unwrap_or_default(),
            account_id: Uuid::parse_str("0194a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b").ok(),
            account_name: None,
            first_name: "Ada".to_owned(),
            last_name: "Lovelace".to_owned(),
            email: Some("ada@acme.com".to_owned()),
            title: Some("CTO".to_owned()),
            phone: Some("+15550102030".to_owned()),
            stage: Stage::Qualified,
            created_at: Timestamp::from(at),
            updated_at: Timestamp::from(at),
            version: 1,
            deleted_at: None,
        }
    }
}

impl From<people::Person> for Person {
    fn from(p: people::Person) -> Self {
        Self {
            id: p.id,
            account_id: p.account_id,
            account_name: None,
            first_name: p.first_name,
            last_name: p.last_name,
            email: p.email,
            title: p.title,
            phone: p.phone,
            stage: p.stage.into(),
            created_at: Timestamp::from(p.created_at),
            updated_at: Timestamp::from(p.updated_at),
            version: p.version,
            deleted_at: p.deleted_at.map(Timestamp),
        }
    }
}

/// An account as a person embeds it (`expand=account`).
#[derive(Object, Serialize, Debug, Clone, PartialEq)]
pub struct AccountSummary {
    /// The account's id.
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// Its domain.
    #[oai(nullable)]
    pub domain: Option<String>,
}

impl From<people::AccountSummary> for AccountSummary {
    fn from(a: people::AccountSummary) -> Self {
        Self {
            id: a.id,
            name: a.name,
            domain: a.domain,
        }
    }
}

/// A person as `fields` and `expand` shape it (served as
/// `application/vnd.tenantry.partial+json`): `id` and `version` always; any other property
/// of `Person` only when `fields` names it (every one of them without `fields`; in sync
/// mode `updated_at` and `deleted_at` always); `account` only with `expand=account`.
#[derive(Object, Serialize, Debug, Clone, PartialEq)]
#[oai(example)]
pub struct PersonPartial {
    /// UUIDv7, assigned by the server.
    pub id: Uuid,
    /// The account the person works at.
    #[oai(nullable)]
    #[serde(skip_serializing_if = "MaybeUndefined::is_undefined")]
    pub account_id: MaybeUndefined<Uuid>,
    /// The account's name (see `Person`).
    #[oai(nullable)]
    #[serde(skip_serializing_if = "MaybeUndefined::is_undefined")]
    pub account_name: MaybeUndefined<String>,
    /// First name.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    /// Last name.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    /// Email address, lower-cased.
    #[oai(nullable)]
    #[serde(skip_serializing_if = "MaybeUndefined::is_undefined")]
    pub email: MaybeUndefined<String>,
    /// Job title.
    #[oai(nullable)]
    #[serde(skip_serializing_if = "MaybeUndefined::is_undefined")]
    pub title: MaybeUndefined<String>,
    /// Phone number, digits with an optional leading `+`.
    #[oai(nullable)]
    #[serde(skip_serializing_if = "MaybeUndefined::is_undefined")]
    pub phone: MaybeUndefined<String>,
    /// Sales stage.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<Stage>,
    /// When the person was created.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Timestamp>,
    /// When it last changed (strictly increases on every change).
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<Timestamp>,
    /// Version, +1 on every change: `If-Match: "<version>"` makes a later change
    /// conditional.
    pub version: i64,
    /// When it was deleted: set only on tombstones in sync lists.
    #[oai(nullable)]
    #[serde(skip_serializing_if = "MaybeUndefined::is_undefined")]
    pub deleted_at: MaybeUndefined<Timestamp>,
    /// The person's account, with `expand=account`: `null` when they have none (or it was
    /// deleted).
    #[oai(nullable)]
    #[serde(skip_serializing_if = "MaybeUndefined::is_undefined")]
    pub account: MaybeUndefined<AccountSummary>,
}

/// What `fields` and `expand` may name on a person.
#[derive(Debug)]
pub struct PersonVocabulary;

impl Vocabulary for PersonVocabulary {
    const NOUN: &'static str = "person";
    const FIELDS: &'static [&'static str] = &[
        "id",
        "account_id",
        "account_name",
        "first_name",
        "last_name",
        "email",
        "title",
        "phone",
        "stage",
        "created_at",
        "updated_at",
        "version",
        "deleted_at",
    ];
    const EXPAND: &'static [(&'static str, Scope)] = &[("account", Scope::AccountsRead)];
}

/// The bit of a person's property or expansion.
mod field {
    use super::{PersonVocabulary as V, Vocabulary as _, bit};
    pub(super) const ACCOUNT_ID: u64 = bit(V::FIELDS, "account_id");
    pub(super) const ACCOUNT_NAME: u64 = bit(V::FIELDS, "account_name");
    pub(super) const FIRST_NAME: u64 = bit(V::FIELDS, "first_name");
    pub(super) const LAST_NAME: u64 = bit(V::FIELDS, "last_name");
    pub(super) const EMAIL: u64 = bit(V::FIELDS, "email");
    pub(super) const TITLE: u64 = bit(V::FIELDS, "title");
    pub(super) const PHONE: u64 = bit(V::FIELDS, "phone");
    pub(super) const STAGE: u64 = bit(V::FIELDS, "stage");
    pub(super) const CREATED_AT: u64 = bit(V::FIELDS, "created_at");
    pub(super) const UPDATED_AT: u64 = bit(V::FIELDS, "updated_at");
    pub(super) const DELETED_AT: u64 = bit(V::FIELDS, "deleted_at");
    /// `expand=account`.
    pub(super) const ACCOUNT: u64 = 1;
}

impl PersonPartial {
    /// `p` as `shape` wants it, with `account` (read when `expand=account` was asked for).
    pub fn new(p: Person, shape: &Shape, account: Option<AccountSummary>) -> Self {
        let keeps = |bit| shape.keeps(bit);
        Self {
            id: p.id,
            account_id: kept_nullable(keeps(field::ACCOUNT_ID), p.account_id),
            account_name: kept_nullable(keeps(field::ACCOUNT_NAME), p.account_name),
            first_name: keeps(field::FIRST_NAME).then_some(p.first_name),
            last_name: keeps(field::LAST_NAME).then_some(p.last_name),
            email: kept_nullable(keeps(field::EMAIL), p.email),
            title: kept_nullable(keeps(field::TITLE), p.title),
            phone: kept_nullable(keeps(field::PHONE), p.phone),
            stage: keeps(field::STAGE).then_some(p.stage),
            created_at: keeps(field::CREATED_AT).then_some(p.created_at),
            updated_at: keeps(field::UPDATED_AT).then_some(p.updated_at),
            version: p.version,
            deleted_at: kept_nullable(keeps(field::DELETED_AT), p.deleted_at),
            account: kept_nullable(shape.expands(field::ACCOUNT), account),
        }
    }
}

impl Example for PersonPartial {
    fn example() -> Self {
        let shape =
            Shape::of::<PersonVocabulary>(&["first_name", "last_name", "email"], &["account"]);
        let account = AccountSummary {
            id: Uuid::parse_str("0194a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b").unwrap_or_default(),
            name: "Acme".to_owned(),
            domain: Some("acme.com".to_owned()),
        };
        Self::new(Person::example(), &shape, Some(account))
    }
}

/// The body of `create_person`.
#[derive(Object, Deserialize, Debug, Clone)]
#[oai(example, deny_unknown_fields)]
#[serde(deny_unknown_fields)]
pub struct PersonCreate {
    /// An account of your tenant.
    #[oai(nullable)]
    pub account_id: Option<Uuid>,
    /// First name: 1 to 200 characters once surrounding whitespace is
    /// trimmed, no control characters.
    pub first_name: String,
    /// Last name: 1 to 200 characters once surrounding whitespace is
    /// trimmed, no control characters.
    pub last_name: String,
    /// Email address: 1 to 64 printable ASCII characters, `@`, a domain name; stored
    /// lower-cased.
    #[oai(nullable)]
    pub email: Option<String>,
    /// Job title: 1 to 200 characters once surrounding whitespace is
    /// trimmed, no control characters.
    #[oai(nullable)]
    pub title: Option<String>,
    /// Phone number: an optional `+`, then 7 to 15 digits and any separators (space, `-`,
    /// `.`, parentheses); stored as the digits with their `+`.
    #[oai(nullable)]
    pub phone: Option<String>,
    /// Sales stage (default `lead`).
    #[oai(nullable)]
    pub stage: Option<Stage>,
}

impl Example for PersonCreate {
    fn example() -> Self {
        Self {
            account_id: Uuid::parse_str("0194a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b").ok(),
            first_name: "Ada".to_owned(),
            last_name: "Lovelace".to_owned(),
            email: Some("ada@acme.com".to_owned()),
            title: Some("CTO".to_owned()),
            phone: Some("+1 (555) 010-2030".to_owned()),
            stage: Some(Stage::Qualified),
        }
    }
}

impl From<PersonCreate> for people::PersonCreate {
    fn from(p: PersonCreate) -> Self {
        Self {
            account_id: p.account_id,
            first_name: p.first_name,
            last_name: p.last_name,
            email: p.email,
            title: p.title,
            phone: p.phone,
            stage: p.stage.map(Into::into),
        }
    }
}

/// The body of `update_person`: omitted fields stay as they are; `null` clears a
/// nullable field.
#[derive(Object, Deserialize, Debug, Clone, Default)]
#[oai(example, deny_unknown_fields)]
#[serde(deny_unknown_fields)]
pub struct PersonUpdate {
    /// New account, or `null` to detach.
    #[oai(nullable)]
    #[serde(default)]
    pub account_id: MaybeUndefined<Uuid>,
    /// New first name: 1 to 200 characters once surrounding whitespace is
    /// trimmed, no control characters.
    #[serde(default)]
    pub first_name: MaybeUndefined<String>,
    /// New last name: 1 to 200 characters once surrounding whitespace is
    /// trimmed, no control characters.
    #[serde(default)]
    pub last_name: MaybeUndefined<String>,
    /// New email (as `email` of `create_person`), or `null` to clear it.
    #[oai(nullable)]
    #[serde(default)]
    pub email: MaybeUndefined<String>,
    /// New title (as `title` of `create_person`), or `null` to clear it.
    #[oai(nullable)]
    #[serde(default)]
    pub title: MaybeUndefined<String>,
    /// New phone (as `phone` of `create_person`), or `null` to clear it.
    #[oai(nullable)]
    #[serde(default)]
    pub phone: MaybeUndefined<String>,
    /// New stage.
    #[serde(default)]
    pub stage: MaybeUndefined<Stage>,
}

impl Example for PersonUpdate {
    fn example() -> Self {
        Self {
            stage: MaybeUndefined::Value(Stage::Customer),
            ..Self::default()
        }
    }
}

impl TryFrom<PersonUpdate> for people::PersonPatch {
    type Error = Problem;

    fn try_from(u: PersonUpdate) -> Result<Self, Problem> {
        let mut errors = Vec::new();
        let patch = Self {
            account_id: u.account_id.into(),
            first_name: not_null("first_name", u.first_name, &mut errors),
            last_name: not_null("last_name", u.last_name, &mut errors),
            email: u.email.into(),
            title: u.title.into(),
            phone: u.phone.into(),
            stage: not_null("stage", u.stage, &mut errors).map(Into::into),
        };
        if errors.is_empty() {
            Ok(patch)
        } else {
            Err(Problem::validation(errors))
        }
    }
}

list_envelope!(
    /// A page of people.
    PersonList,
    Person
);

list_envelope!(
    /// A page of people shaped by `fields` / `expand`.
    PersonPartialList,
    PersonPartial
);

/// A page of people, each with the account it was read with (`None` when not expanded):
/// the full envelope, or the shaped one.
fn shaped_page(
    listing: Listing<(Person, Option<AccountSummary>)>,
    shape: &Shape,
) -> ListedShaped<PersonList, PersonPartialList> {
    if shape.is_full() {
        let (body, link) = PersonList::split(listing.map(|(p, _)| p));
        ListedShaped::Ok(Representation::Full(JsonOut(body)), link)
    } else {
        let listing = listing.map(|(p, a)| PersonPartial::new(p, shape, a));
        let (body, link) = PersonPartialList::split(listing);
        ListedShaped::Ok(Representation::Partial(JsonOut(body)), link)
    }
}

/// The people operations.
pub struct PeopleApi;

fn location(id: Uuid) -> String {
    format!("/v1/people/{id}")
}

#[OpenApi(prefix_path = "/v1", tag = "Tag::People")]
impl PeopleApi {
    /// Price of `create_person` (see [`crate::limits`]): a write.
    pub const CREATE_PERSON: Operation = Operation::write("create_person", Scope::PeopleWrite);

    /// Create a person
    ///
    /// Send an `Idempotency-Key` to retry safely: the same key with the same body returns
    /// the first response again.
    #[oai(path = "/people", method = "post", operation_id = "create_person")]
    async fn create_person(
        &self,
        #[oai(scope = "Scope::PeopleWrite")] auth: BearerAuth,
        req: &Request,
        /// A unique key (e.g. a UUID) making retries of this request safe, for 24 hours.
        #[oai(name = "Idempotency-Key")]
        idempotency_key: Header<Option<String>>,
        body: JsonBody<PersonCreate>,
    ) -> Result<Created<Person>, ApiError<CreateErrors>> {
        let Call { principal, db, .. } = Self::CREATE_PERSON.begin(req, &auth)?;
        let input = body.value.into();
        let out = idempotent(
            &db,
            principal,
            idempotency_key.0.as_deref(),
            "create_person",
            &body.canonical,
            async |txn| Ok(Person::from(people::create(txn, input).await?)),
        )
        .await?;
        let (location, version) = (location(out.value.id), out.value.version);
        Ok(Created::new(out.value, location, version, out.replayed))
    }

    /// Price of `get_person` (see [`crate::limits`]): 1, and 0 on a 304.
    pub const GET_PERSON: Operation = Operation::conditional_read("get_person", Scope::PeopleRead);

    /// Get a person
    ///
    /// Send the ETag you have in `If-None-Match` to get `304 Not Modified` when it is
    /// unchanged. `fields` and `expand` shape the answer (then served as
    /// `application/vnd.tenantry.partial+json`, with a weak ETag of its own) at the same
    /// price.
    #[oai(path = "/people/:id", method = "get", operation_id = "get_person")]
    async fn get_person(
        &self,
        #[oai(scope = "Scope::PeopleRead")] auth: BearerAuth,
        req: &Request,
        /// The person's id.
        id: Path<Uuid>,
        /// An ETag from an earlier response.
        #[oai(name = "If-None-Match")]
        if_none_match: Header<Option<String>>,
        /// Only these properties, comma-separated without spaces (`first_name,last_name,email`);
        /// `id` and `version` always come. Unknown names are refused (422).
        fields: Query<Option<Fields<PersonVocabulary>>>,
        /// Embed related resources, comma-separated: `account` (the person's account, `null`
        /// without one; needs `accounts:read` too), read in the same query.
        expand: Query<Option<Expand<PersonVocabulary>>>,
    ) -> Result<FetchedShaped<Person, PersonPartial>, ApiError<ReadErrors>> {
        let shape = Shape::parse(&auth, fields.0.as_ref(), expand.0.as_ref())?;
        let Call { db, charge, .. } = Self::GET_PERSON.begin(req, &auth)?;
        let (person, account) = if shape.expands(field::ACCOUNT) {
            let row = people::get_with_account(&db, id.0).await?;
            (Person::from(row.person), Some(row.account))
        } else {
            (Person::from(people::get(&db, id.0).await?), None)
        };
        let (body, etag) = if shape.is_full() {
            let etag = crate::http::etag(person.version);
            (Representation::Full(JsonOut(person)), etag)
        } else {
            let embedded: Vec<Option<i64>> = account
                .iter()
                .map(|a| a.as_ref().map(|a| a.version))
                .collect();
            let etag = shape.etag(person.version, &embedded);
            let account = account.flatten().map(AccountSummary::from);
            let partial = PersonPartial::new(person, &shape, account);
            (Representation::Partial(JsonOut(partial)), etag)
        };
        let fetched = FetchedShaped::new(body, etag, if_none_match.0.as_deref());
        if fetched.is_not_modified() {
            charge.refund().await;
        }
        Ok(fetched)
    }

    /// Price of `list_people` (see [`crate::limits`]): a page; deep offset pages cost more.
    pub const LIST_PEOPLE: Operation = Operation::offset_page("list_people", Scope::PeopleRead);

    /// List people
    ///
    /// Cursor pagination by default (`limit`, then `cursor` from `next_cursor` or the
    /// `Link` header, with the same filters). Sync mode: `sort=updated_at` with
    /// `updated_after`, including deleted people as tombstones. `page` gives offset pages
    /// for compatibility (by id; deep pages cost more). `include_account_name=true` adds
    /// each person's account name (one joined query; not with `page`). `fields` and
    /// `expand` shape each person (then served as `application/vnd.tenantry.partial+json`)
    /// at the same price; a cursor works with any of them.
    #[oai(path = "/people", method = "get", operation_id = "list_people")]
    #[expect(
        clippy::too_many_arguments,
        reason = "one argument per query parameter"
    )]
    async fn list_people(
        &self,
        #[oai(scope = "Scope::PeopleRead")] auth: BearerAuth,
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
        /// Only people at this account.
        account_id: Query<Option<Uuid>>,
        /// Only people in this stage.
        stage: Query<Option<Stage>>,
        /// Only the person with this email.
        email: Query<Option<String>>,
        /// Fill `account_name` on each person (not with `page`).
        include_account_name: Query<Option<bool>>,
        /// Only these properties of each person, comma-separated without spaces
        /// (`first_name,last_name,email`); `id` and `version` always come, and in sync mode
        /// `updated_at` and `deleted_at` too. Unknown names are refused (422).
        fields: Query<Option<Fields<PersonVocabulary>>>,
        /// Embed related resources in each person, comma-separated: `account` (`null` for a
        /// person without one; needs `accounts:read` too), read in the same query.
        expand: Query<Option<Expand<PersonVocabulary>>>,
    ) -> Result<ListedShaped<PersonList, PersonPartialList>, ApiError<ListErrors>> {
        let mut shape = Shape::parse(&auth, fields.0.as_ref(), expand.0.as_ref())?;
        let Call {
            principal,
            db,
            charge,
            state,
        } = Self::LIST_PEOPLE.begin(req, &auth)?;
        let with_names = include_account_name.0.unwrap_or(false);
        if with_names && page.0.is_some() {
            return Err(Problem::invalid_parameter(
                "include_account_name",
                "is not available with `page`",
            )
            .into());
        }
        let expanded = shape.expands(field::ACCOUNT);
        let filter = PersonFilter {
            account_id: account_id.0,
            stage: stage.0.map(Into::into),
            email: email.0,
        };
        let bound = [
            (
                "account_id",
                filter.account_id.map(|a| a.to_string()).unwrap_or_default(),
            ),
            (
                "stage",
                stage.0.map(|s| s.as_str().to_owned()).unwrap_or_default(),
            ),
            ("email", filter.email.clone().unwrap_or_default()),
            ("include_account_name", with_names.to_string()),
        ];
        let params = ListParams {
            limit: limit.0,
            cursor: cursor.0,
            sort: sort.0,
            updated_after: updated_after.0,
            page: page.0,
        };
        let plan = params.plan(state, principal, "list_people", &bound)?;
        let sync = plan.is_sync();
        if sync {
            shape = shape.keeping(field::UPDATED_AT | field::DELETED_AT);
        }
        // A person with the account the join read (when one was asked for).
        let joined = move |row: people::PersonWithAccount| {
            let account = row.account.map(AccountSummary::from);
            let person = Person {
                account_name: with_names
                    .then(|| account.as_ref().map(|a| a.name.clone()))
                    .flatten(),
                ..Person::from(row.person)
            };
            (person, expanded.then_some(account).flatten())
        };
        let plain = |p: people::Person| (Person::from(p), None);
        let listing = match plan {
            Plan::Offset(request) if expanded => super::offset_listing(
                req.uri(),
                people::list_offset_with_account(&db, &filter, &request).await?,
                joined,
            ),
            Plan::Offset(request) => super::offset_listing(
                req.uri(),
                people::list_offset(&db, &filter, &request).await?,
                plain,
            ),
            Plan::Keyset {
                request,
                sort,
                binding,
            } if with_names || expanded => {
                let page = people::list_with_account(&db, &filter, &request).await?;
                let key = |p: &people::PersonWithAccount| (p.person.updated_at, p.person.id);
                super::keyset_listing(
                    state,
                    req.uri(),
                    sort,
                    &binding,
                    &request,
                    page,
                    key,
                    joined,
                )
            }
            Plan::Keyset {
                request,
                sort,
                binding,
            } => {
                let page = people::list(&db, &filter, &request).await?;
                super::keyset_listing(
                    state,
                    req.uri(),
                    sort,
                    &binding,
                    &request,
                    page,
                    |p| (p.updated_at, p.id),
                    plain,
                )
            }
        };
        if sync && listing.data.is_empty() {
            charge.refund().await;
        }
        Ok(shaped_page(listing, &shape))
    }

    /// Price of `update_person` (see [`crate::limits`]): a write.
    pub const UPDATE_PERSON: Operation = Operation::write("update_person", Scope::PeopleWrite);

    /// Update a person
    ///
    /// Send the ETag you have in `If-Match` to update only if nobody changed the person
    /// since (`412 Precondition Failed` otherwise).
    #[oai(path = "/people/:id", method = "patch", operation_id = "update_person")]
    async fn update_person(
        &self,
        #[oai(scope = "Scope::PeopleWrite")] auth: BearerAuth,
        req: &Request,
        /// The person's id.
        id: Path<Uuid>,
        /// The ETag the change is based on.
        #[oai(name = "If-Match")]
        if_match: Header<Option<String>>,
        body: JsonBody<PersonUpdate>,
    ) -> Result<Updated<Person>, ApiError<UpdateErrors>> {
        let Call { db, .. } = Self::UPDATE_PERSON.begin(req, &auth)?;
        let expected = if_match_version(if_match.0.as_deref())?;
        let patch = people::PersonPatch::try_from(body.value)?;
        let person = Person::from(people::update(&db, id.0, expected, patch).await?);
        let version = person.version;
        Ok(Updated::new(person, version))
    }

    /// Price of `delete_person` (see [`crate::limits`]): a write.
    pub const DELETE_PERSON: Operation = Operation::write("delete_person", Scope::PeopleWrite);

    /// Delete a person
    ///
    /// A soft delete: the person disappears from reads, and sync lists return them once
    /// more as a tombstone. `If-Match` makes it conditional.
    #[oai(
        path = "/people/:id",
        method = "delete",
        operation_id = "delete_person"
    )]
    async fn delete_person(
        &self,
        #[oai(scope = "Scope::PeopleWrite")] auth: BearerAuth,
        req: &Request,
        /// The person's id.
        id: Path<Uuid>,
        /// The ETag the deletion is based on.
        #[oai(name = "If-Match")]
        if_match: Header<Option<String>>,
    ) -> Result<Deleted, ApiError<DeleteErrors>> {
        let Call { db, .. } = Self::DELETE_PERSON.begin(req, &auth)?;
        let expected = if_match_version(if_match.0.as_deref())?;
        people::delete(&db, id.0, expected).await?;
        Ok(Deleted::NoContent)
    }
}
