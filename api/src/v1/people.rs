//! `/v1/people`: contacts, optionally at an account.

use chrono::{DateTime, Utc};
use domain::people::{self, PersonFilter};
use poem::Request;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::types::{Example, MaybeUndefined};
use poem_openapi::{Enum, Object, OpenApi};
use serde::{Deserialize, Serialize};
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
        people::Stage::from(self).as_str()
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
    #[serde(serialize_with = "crate::http::rfc3339")]
    pub created_at: DateTime<Utc>,
    /// When it last changed (strictly increases on every change).
    #[serde(serialize_with = "crate::http::rfc3339")]
    pub updated_at: DateTime<Utc>,
    /// Version, +1 on every change; the ETag is `"<version>"`.
    pub version: i64,
    /// When it was deleted: set only on tombstones in sync lists.
    #[oai(nullable)]
    #[serde(serialize_with = "crate::http::rfc3339_opt")]
    pub deleted_at: Option<DateTime<Utc>>,
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
            created_at: at,
            updated_at: at,
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
            created_at: p.created_at,
            updated_at: p.updated_at,
            version: p.version,
            deleted_at: p.deleted_at,
        }
    }
}

impl From<people::PersonWithAccount> for Person {
    fn from(p: people::PersonWithAccount) -> Self {
        Self {
            account_name: p.account_name,
            ..Self::from(p.person)
        }
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
    /// unchanged.
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
    ) -> Result<Fetched<Person>, ApiError<ReadErrors>> {
        let Call { db, charge, .. } = Self::GET_PERSON.begin(req, &auth)?;
        let person = Person::from(people::get(&db, id.0).await?);
        let version = person.version;
        let fetched = Fetched::new(person, version, if_none_match.0.as_deref());
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
    /// each person's account name (one joined query; not with `page`).
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
    ) -> Result<Listed<PersonList>, ApiError<ListErrors>> {
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
        let listing = match plan {
            Plan::Offset(request) => super::offset_listing(
                req.uri(),
                people::list_offset(&db, &filter, &request).await?,
                Person::from,
            ),
            Plan::Keyset {
                request,
                sort,
                binding,
            } if with_names => {
                let page = people::list_with_account_name(&db, &filter, &request).await?;
                let key = |p: &people::PersonWithAccount| (p.person.updated_at, p.person.id);
                super::keyset_listing(
                    state,
                    req.uri(),
                    sort,
                    &binding,
                    &request,
                    page,
                    key,
                    Person::from,
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
                    Person::from,
                )
            }
        };
        if sync && listing.data.is_empty() {
            charge.refund().await;
        }
        Ok(PersonList::from_listing(listing))
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
