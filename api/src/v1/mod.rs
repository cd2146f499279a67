//! `/v1`: the public API. One module per context, each with its DTOs (`Object`s, kept
//! apart from domain types and converted with `From`) and its thin handlers: extract →
//! principal (scope checked) → tenant handle → one domain call → DTO.
//!
//! This module holds what the contexts share: tags, response shapes, list paging, and
//! ([`shape`]) the `fields` / `expand` parameters of the people and activities reads.

pub mod accounts;
pub mod activities;
pub mod api_keys;
pub mod people;
pub mod shape;

use chrono::{DateTime, TimeDelta, Utc};
use domain::pagination::{OffsetRequest, Page, PageRequest, Position, SortKey};
use poem::http::Uri;
use poem_openapi::types::ToJSON;
use poem_openapi::{ApiResponse, Enum, Tags};
use serde::Serialize;
use uuid::Uuid;

use crate::auth::Principal;
use crate::context::Operation;
use crate::cursor::Binding;
use crate::http::{JsonOut, link_next, query_escape};
use crate::problem::Problem;
use crate::state::AppState;

/// Every `/v1` operation.
pub type Api = (
    accounts::AccountsApi,
    people::PeopleApi,
    activities::ActivitiesApi,
    api_keys::ApiKeysApi,
);

/// Every operation's price: the catalog the front door prices requests from
/// ([`crate::front`]), and the spec's `x-rate-limit-cost`. The tests check that the spec's
/// operations are exactly these (`tests/api/rate_limits.rs`) and that each handler takes
/// over its own entry's charge (`tests/api/coverage.rs`).
pub const OPERATIONS: &[Operation] = &[
    accounts::AccountsApi::CREATE_ACCOUNT,
    accounts::AccountsApi::GET_ACCOUNT,
    accounts::AccountsApi::LIST_ACCOUNTS,
    accounts::AccountsApi::UPDATE_ACCOUNT,
    accounts::AccountsApi::DELETE_ACCOUNT,
    people::PeopleApi::CREATE_PERSON,
    people::PeopleApi::GET_PERSON,
    people::PeopleApi::LIST_PEOPLE,
    people::PeopleApi::UPDATE_PERSON,
    people::PeopleApi::DELETE_PERSON,
    activities::ActivitiesApi::CREATE_ACTIVITY,
    activities::ActivitiesApi::GET_ACTIVITY,
    activities::ActivitiesApi::LIST_ACTIVITIES,
    activities::ActivitiesApi::LIST_ACTIVITY_FEED,
    activities::ActivitiesApi::UPDATE_ACTIVITY,
    activities::ActivitiesApi::DELETE_ACTIVITY,
    api_keys::ApiKeysApi::CREATE_API_KEY,
    api_keys::ApiKeysApi::LIST_API_KEYS,
    api_keys::ApiKeysApi::REVOKE_API_KEY,
];

/// The operation with `id`.
pub fn operation(id: &str) -> Option<&'static Operation> {
    OPERATIONS.iter().find(|op| op.id == id)
}

/// One tag per context.
#[derive(Tags)]
pub enum Tag {
    /// Companies a tenant sells to.
    #[oai(rename = "accounts")]
    Accounts,
    /// Contacts, optionally at an account.
    #[oai(rename = "people")]
    People,
    /// Calls, emails, notes and meetings logged against people.
    #[oai(rename = "activities")]
    Activities,
    /// Credentials for integrations.
    #[oai(rename = "api_keys")]
    ApiKeys,
}

/// A created resource.
#[derive(ApiResponse)]
pub enum Created<T: ToJSON + Serialize> {
    /// Created. With an `Idempotency-Key` that was seen before, the stored response of
    /// the first request, marked `Idempotent-Replayed: true`.
    #[oai(status = 201)]
    Created(
        JsonOut<T>,
        /// The URL of the new resource.
        #[oai(header = "Location")]
        String,
        /// The resource's version, for `If-Match` / `If-None-Match`.
        #[oai(header = "ETag")]
        String,
        /// `true` when this response is a replay of an earlier request with the same
        /// `Idempotency-Key`.
        #[oai(header = "Idempotent-Replayed")]
        Option<String>,
    ),
}

impl<T: ToJSON + Serialize> Created<T> {
    /// A 201 for `value` at `location` with `version`.
    pub fn new(value: T, location: String, version: i64, replayed: bool) -> Self {
        Self::Created(
            JsonOut(value),
            location,
            crate::http::etag(version),
            replayed.then(|| "true".to_owned()),
        )
    }
}

/// A fetched resource.
#[derive(ApiResponse)]
pub enum Fetched<T: ToJSON + Serialize> {
    /// The resource.
    #[oai(status = 200)]
    Ok(
        JsonOut<T>,
        /// The resource's version, for `If-Match` / `If-None-Match`.
        #[oai(header = "ETag")]
        String,
    ),
    /// Unchanged since the ETag named in `If-None-Match`.
    #[oai(status = 304)]
    NotModified(
        /// The current ETag.
        #[oai(header = "ETag")]
        String,
    ),
}

impl<T: ToJSON + Serialize> Fetched<T> {
    /// Whether this is the 304 (which costs nothing).
    pub fn is_not_modified(&self) -> bool {
        matches!(self, Self::NotModified(_))
    }

    /// 200 with the body, or 304 when `if_none_match` names `version`.
    pub fn new(value: T, version: i64, if_none_match: Option<&str>) -> Self {
        if crate::http::none_match(if_none_match, version) {
            Self::NotModified(crate::http::etag(version))
        } else {
            Self::Ok(JsonOut(value), crate::http::etag(version))
        }
    }
}

/// An updated resource.
#[derive(ApiResponse)]
pub enum Updated<T: ToJSON + Serialize> {
    /// The resource after the change.
    #[oai(status = 200)]
    Ok(
        JsonOut<T>,
        /// The new version.
        #[oai(header = "ETag")]
        String,
    ),
}

impl<T: ToJSON + Serialize> Updated<T> {
    /// 200 with the body and its ETag.
    pub fn new(value: T, version: i64) -> Self {
        Self::Ok(JsonOut(value), crate::http::etag(version))
    }
}

/// A deleted resource.
#[derive(ApiResponse)]
pub enum Deleted {
    /// Deleted. Sync lists (`sort=updated_at`) return it once more with `deleted_at` set.
    #[oai(status = 204)]
    NoContent,
}

/// A page of a list.
#[derive(ApiResponse)]
pub enum Listed<L: ToJSON + Serialize> {
    /// The page.
    #[oai(status = 200)]
    Ok(
        JsonOut<L>,
        /// `<url>; rel="next"` when more items follow.
        #[oai(header = "Link")]
        Option<String>,
    ),
}

/// The order of a list.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[oai(rename_all = "snake_case")]
pub enum Sort {
    /// By id: creation order (ids are UUIDv7). The default.
    Id,
    /// By `(updated_at, id)`: the sync order. Includes deleted items (tombstones, with
    /// `deleted_at` set) and always returns a `next_cursor` to resume from later.
    UpdatedAt,
}

impl Sort {
    fn as_str(self) -> &'static str {
        match self {
            Self::Id => "id",
            Self::UpdatedAt => "updated_at",
        }
    }

    fn key(self) -> SortKey {
        match self {
            Self::Id => SortKey::Id,
            Self::UpdatedAt => SortKey::UpdatedAt,
        }
    }
}

/// Defines a list envelope DTO.
macro_rules! list_envelope {
    ($(#[$meta:meta])* $name:ident, $item:ty) => {
        $(#[$meta])*
        #[derive(poem_openapi::Object, serde::Serialize, Debug, Clone)]
        pub struct $name {
            /// The items of this page.
            pub data: Vec<$item>,
            /// Pass as `cursor` (with the same filters) for the next page. Present when
            /// `has_more`, and always in sync mode (`sort=updated_at`), where it is where
            /// to resume later even when the page is empty.
            #[oai(nullable)]
            pub next_cursor: Option<String>,
            /// Whether more items followed when this page was read.
            pub has_more: bool,
        }

        impl $name {
            /// The page of `listing`.
            pub fn from_listing(listing: $crate::v1::Listing<$item>) -> $crate::v1::Listed<Self> {
                let (body, link) = Self::split(listing);
                $crate::v1::Listed::Ok($crate::http::JsonOut(body), link)
            }

            /// The envelope of `listing`, and its `Link` header.
            pub fn split(listing: $crate::v1::Listing<$item>) -> (Self, Option<String>) {
                (
                    Self {
                        data: listing.data,
                        next_cursor: listing.next_cursor,
                        has_more: listing.has_more,
                    },
                    listing.link,
                )
            }
        }
    };
}
pub(crate) use list_envelope;

/// The paging parameters every list takes.
#[derive(Debug, Clone, Default)]
pub struct ListParams {
    /// `limit`.
    pub limit: Option<u64>,
    /// `cursor`.
    pub cursor: Option<String>,
    /// `sort`.
    pub sort: Option<Sort>,
    /// `updated_after`.
    pub updated_after: Option<DateTime<Utc>>,
    /// `page`.
    pub page: Option<u64>,
}

/// How to read one page.
#[derive(Debug)]
pub enum Plan {
    /// A keyset page.
    Keyset {
        /// The domain request.
        request: PageRequest,
        /// The order.
        sort: Sort,
        /// What cursors of this walk are bound to.
        binding: Binding,
    },
    /// An offset page (`page=N`).
    Offset(OffsetRequest),
}

impl Plan {
    /// Whether this is a sync page (`sort=updated_at`), whose empty answer is free: polling
    /// for changes should stay cheap.
    pub fn is_sync(&self) -> bool {
        matches!(
            self,
            Self::Keyset {
                sort: Sort::UpdatedAt,
                ..
            }
        )
    }
}

/// One page, ready for the envelope.
#[derive(Debug)]
pub struct Listing<T> {
    /// The items.
    pub data: Vec<T>,
    /// The cursor for the next page.
    pub next_cursor: Option<String>,
    /// Whether more followed.
    pub has_more: bool,
    /// The `Link` header.
    pub link: Option<String>,
}

impl<T> Listing<T> {
    /// The same page with each item converted.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Listing<U> {
        Listing {
            data: self.data.into_iter().map(f).collect(),
            next_cursor: self.next_cursor,
            has_more: self.has_more,
            link: self.link,
        }
    }
}

/// The default page size.
pub const DEFAULT_LIMIT: u64 = domain::pagination::DEFAULT_LIMIT;
/// The largest page size.
pub const MAX_LIMIT: u64 = domain::pagination::MAX_LIMIT;

impl ListParams {
    /// Turns the parameters into a plan, checking that they fit together and that the
    /// cursor is authentic and was made for this operation and these `filters`.
    ///
    /// # Errors
    /// 400 problems for contradictory parameters or a bad cursor.
    pub fn plan(
        self,
        state: &AppState,
        principal: &Principal,
        operation: &str,
        filters: &[(&str, String)],
    ) -> Result<Plan, Problem> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if let Some(page) = self.page {
            if self.cursor.is_some() {
                return Err(Problem::invalid_parameter(
                    "page",
                    "use either `page` or `cursor`, not both",
                ));
            }
            if self.sort == Some(Sort::UpdatedAt) || self.updated_after.is_some() {
                return Err(Problem::invalid_parameter(
                    "page",
                    "offset pages are by id; sync (`sort=updated_at`, `updated_after`) needs cursors",
                ));
            }
            return Ok(Plan::Offset(OffsetRequest {
                page,
                per_page: limit,
                include_deleted: false,
            }));
        }
        let binding = Binding::new(operation, &principal.ctx().tenant(), filters);
        let (sort, after) = match &self.cursor {
            Some(cursor) => {
                let (sort, after) = state.cursors.decode(cursor, &binding)?;
                let sort = match sort.as_str() {
                    "updated_at" => Sort::UpdatedAt,
                    _ => Sort::Id,
                };
                if self.sort.is_some_and(|s| s != sort) {
                    return Err(Problem::invalid_parameter(
                        "sort",
                        "differs from the sort the cursor was made for",
                    ));
                }
                (sort, after)
            }
            None => {
                let sort = self.sort.unwrap_or(if self.updated_after.is_some() {
                    Sort::UpdatedAt
                } else {
                    Sort::Id
                });
                if sort == Sort::Id && self.updated_after.is_some() {
                    return Err(Problem::invalid_parameter(
                        "updated_after",
                        "needs `sort=updated_at`",
                    ));
                }
                // `updated_at > t` is the keyset condition `(updated_at, id) > (t, max id)`.
                let after = self
                    .updated_after
                    .map(|t| Position::UpdatedAt(t, Uuid::max()));
                (sort, after)
            }
        };
        let request = PageRequest {
            sort: sort.key(),
            after,
            limit,
            include_deleted: sort == Sort::UpdatedAt,
        };
        Ok(Plan::Keyset {
            request,
            sort,
            binding,
        })
    }
}

/// The sync safety window: rows changed more recently than this are held back.
pub(crate) fn safety_cutoff(state: &AppState) -> DateTime<Utc> {
    let window =
        TimeDelta::from_std(state.settings.sync_safety_window).unwrap_or(TimeDelta::zero());
    Utc::now() - window
}

/// Finishes a keyset page: in sync mode holds back rows inside the safety window, then
/// signs the next cursor and builds the `Link` header.
#[expect(
    clippy::too_many_arguments,
    reason = "one call per list; a struct would only rename them"
)]
pub(crate) fn keyset_listing<D, T>(
    state: &AppState,
    uri: &Uri,
    sort: Sort,
    binding: &Binding,
    request: &PageRequest,
    mut page: Page<D>,
    updated_key: impl Fn(&D) -> (DateTime<Utc>, Uuid),
    to_dto: impl FnMut(D) -> T,
) -> Listing<T> {
    if sort == Sort::UpdatedAt {
        domain::pagination::hold_back_unsettled(
            &mut page,
            request,
            safety_cutoff(state),
            updated_key,
        );
    }
    let sync = sort == Sort::UpdatedAt;
    let next_cursor =
        (sync || page.has_more).then(|| state.cursors.encode(binding, sort.as_str(), page.next));
    let link = match (&next_cursor, page.has_more) {
        (Some(cursor), true) => Some(link_next(&replace_query(uri, "cursor", cursor))),
        _ => None,
    };
    Listing {
        data: page.items.into_iter().map(to_dto).collect(),
        next_cursor,
        has_more: page.has_more,
        link,
    }
}

/// Finishes an offset page.
pub(crate) fn offset_listing<D, T>(
    uri: &Uri,
    page: domain::pagination::OffsetPage<D>,
    to_dto: impl FnMut(D) -> T,
) -> Listing<T> {
    let link = page
        .has_more
        .then(|| link_next(&replace_query(uri, "page", &(page.page + 1).to_string())));
    Listing {
        data: page.items.into_iter().map(to_dto).collect(),
        next_cursor: None,
        has_more: page.has_more,
        link,
    }
}

/// `uri` with `name=value` replacing any `cursor` or `page` parameter.
fn replace_query(uri: &Uri, name: &str, value: &str) -> String {
    let mut pairs: Vec<String> = uri
        .query()
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .filter(|p| {
            let key = p.split('=').next().unwrap_or_default();
            key != "cursor" && key != "page"
        })
        .map(str::to_owned)
        .collect();
    pairs.push(format!("{name}={}", query_escape(value)));
    format!("{}?{}", uri.path(), pairs.join("&"))
}

/// Turns a `MaybeUndefined` of a field that may be omitted but not cleared into an
/// `Option`; `null` is a validation error.
pub(crate) fn not_null<T>(
    field: &str,
    value: poem_openapi::types::MaybeUndefined<T>,
    errors: &mut Vec<crate::problem::FieldProblem>,
) -> Option<T> {
    use poem_openapi::types::MaybeUndefined;
    match value {
        MaybeUndefined::Undefined => None,
        MaybeUndefined::Value(v) => Some(v),
        MaybeUndefined::Null => {
            errors.push(crate::problem::FieldProblem::new(
                field,
                "not_nullable",
                "cannot be null; omit it to keep it",
            ));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timestamp::Timestamp;
    use poem_openapi::types::Example as _;
    use proptest::prelude::*;
    use serde_json::Value;

    /// What serde writes for a DTO must be exactly what its `ToJSON` (the schema's
    /// serializer) gives: the spec describes the latter, clients receive the former.
    fn same_json<T: ToJSON + Serialize>(dto: &T) {
        let served = serde_json::to_value(dto).unwrap();
        assert_eq!(Some(served), dto.to_json());
    }

    fn time() -> impl Strategy<Value = DateTime<Utc>> {
        let nanos = prop_oneof![
            Just(0_u32),
            (0_u32..1_000).prop_map(|ms| ms * 1_000_000),
            (0_u32..1_000_000).prop_map(|us| us * 1_000),
            0_u32..1_000_000_000,
        ];
        // From year 1 to past 9999 (where chrono writes the time itself).
        (-62_135_596_800_i64..300_000_000_000, nanos)
            .prop_map(|(secs, nanos)| DateTime::from_timestamp(secs, nanos).unwrap_or_default())
    }

    fn text() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9 \"\\\\/\u{0}-\u{1f}\u{e9}\u{1F600}]{0,12}"
    }

    fn person() -> impl Strategy<Value = people::Person> {
        (
            (
                any::<u128>(),
                proptest::option::of(any::<u128>()),
                proptest::option::of(text()),
            ),
            (
                text(),
                text(),
                proptest::option::of(text()),
                proptest::option::of(text()),
            ),
            (
                time(),
                time(),
                any::<i64>(),
                proptest::option::of(time()),
                any::<bool>(),
            ),
        )
            .prop_map(
                |((id, account, account_name), (first, last, email, phone), (c, u, v, d, lead))| {
                    people::Person {
                        id: Uuid::from_u128(id),
                        account_id: account.map(Uuid::from_u128),
                        account_name,
                        first_name: first,
                        last_name: last,
                        email,
                        title: None,
                        phone,
                        stage: if lead {
                            people::Stage::Lead
                        } else {
                            people::Stage::Customer
                        },
                        created_at: Timestamp::from(c),
                        updated_at: Timestamp::from(u),
                        version: v,
                        deleted_at: d.map(Timestamp),
                    }
                },
            )
    }

    fn activity() -> impl Strategy<Value = activities::Activity> {
        (
            (
                any::<u128>(),
                any::<u128>(),
                proptest::option::of(any::<u128>()),
            ),
            (text(), proptest::option::of(text())),
            (
                time(),
                time(),
                time(),
                any::<i64>(),
                proptest::option::of(time()),
            ),
        )
            .prop_map(|((id, person, user), (subject, body), (o, c, u, v, d))| {
                activities::Activity {
                    id: Uuid::from_u128(id),
                    person_id: Uuid::from_u128(person),
                    user_id: user.map(Uuid::from_u128),
                    kind: activities::ActivityKind::Meeting,
                    subject,
                    body,
                    occurred_at: Timestamp::from(o),
                    created_at: Timestamp::from(c),
                    updated_at: Timestamp::from(u),
                    version: v,
                    deleted_at: d.map(Timestamp),
                }
            })
    }

    /// A shape of `V`: any subset of its fields (or all of them) and of its expansions.
    fn shape<V: shape::Vocabulary>() -> impl Strategy<Value = shape::Shape> {
        let fields = proptest::sample::subsequence(V::FIELDS.to_vec(), 0..=V::FIELDS.len());
        let expand: Vec<&'static str> = V::EXPAND.iter().map(|(name, _)| *name).collect();
        let expand = proptest::sample::subsequence(expand.clone(), 0..=expand.len());
        (fields, expand).prop_map(|(fields, expand)| shape::Shape::of::<V>(&fields, &expand))
    }

    proptest! {
        #[test]
        fn people_serialize_as_their_schema_says(p in person(), cursor in proptest::option::of(text())) {
            same_json(&p);
            same_json(&people::PersonList { data: vec![p.clone(), p], next_cursor: cursor, has_more: true });
        }

        #[test]
        fn shaped_people_and_activities_serialize_as_their_schema_says(
            p in person(),
            a in activity(),
            person_shape in shape::<people::PersonVocabulary>(),
            activity_shape in shape::<activities::ActivityVocabulary>(),
            name in text(),
            domain in proptest::option::of(text()),
            embedded in any::<bool>(),
        ) {
            let account = embedded.then(|| people::AccountSummary { id: p.id, name: name.clone(), domain });
            let shaped = people::PersonPartial::new(p.clone(), &person_shape, account);
            same_json(&shaped);
            same_json(&people::PersonPartialList { data: vec![shaped], next_cursor: None, has_more: false });
            let summary = embedded.then(|| activities::PersonSummary {
                id: p.id, account_id: p.account_id, first_name: p.first_name.clone(),
                last_name: name, email: p.email.clone(), title: None,
            });
            let shaped = activities::ActivityPartial::new(a, &activity_shape, summary);
            same_json(&shaped);
            same_json(&activities::ActivityPartialList { data: vec![shaped], next_cursor: Some("c".into()), has_more: true });
        }

        #[test]
        fn activities_and_feed_items_serialize_as_their_schema_says(a in activity(), p in person()) {
            same_json(&a);
            same_json(&activities::FeedPage {
                data: vec![activities::FeedItem { activity: a, person: p }],
                next_cursor: None,
                has_more: false,
            });
        }

        #[test]
        fn accounts_serialize_as_their_schema_says(
            name in text(),
            domain in proptest::option::of(text()),
            field in text(),
            deleted in proptest::option::of(time()),
            number in any::<f64>().prop_filter("finite", |n| n.is_finite()),
        ) {
            let mut account = accounts::Account::example();
            account.name = name;
            account.domain = domain;
            account.deleted_at = deleted.map(Timestamp);
            account.custom_fields.insert(field, serde_json::json!({"n": number, "list": [null, true, "x"]}));
            same_json(&account);
            same_json(&accounts::AccountList { data: vec![account], next_cursor: Some("c".into()), has_more: true });
        }
    }

    #[test]
    fn every_kind_of_response_dto_serializes_as_its_schema_says() {
        same_json(&accounts::Account::example());
        same_json(&people::Person::example());
        same_json(&activities::Activity::example());
        same_json(&people::PersonPartial::example());
        same_json(&activities::ActivityPartial::example());
        let key = api_keys::ApiKey::example();
        same_json(&key);
        same_json(&api_keys::ApiKeyList {
            data: vec![
                key.clone(),
                api_keys::ApiKey {
                    last_used_at: Some(key.created_at),
                    revoked_at: None,
                    created_by: None,
                    ..key
                },
            ],
            next_cursor: None,
            has_more: false,
        });
        for stage in [people::Stage::Lead, people::Stage::Customer] {
            assert_eq!(serde_json::to_value(stage).ok(), stage.to_json());
        }
        assert!(matches!(
            serde_json::to_value(people::Person::example()).ok(),
            Some(Value::Object(_))
        ));
    }

    #[test]
    fn the_next_link_keeps_filters_and_replaces_the_cursor() {
        let uri: Uri = "/v1/people?stage=lead&cursor=old&limit=10"
            .parse()
            .unwrap_or_default();
        assert_eq!(
            replace_query(&uri, "cursor", "a.b"),
            "/v1/people?stage=lead&limit=10&cursor=a.b"
        );
        let bare: Uri = "/v1/people".parse().unwrap_or_default();
        assert_eq!(replace_query(&bare, "page", "2"), "/v1/people?page=2");
    }
}
