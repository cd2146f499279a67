//! `/v1/activities`: calls, emails, notes and meetings logged against people, and the
//! activity feed.

use chrono::{DateTime, Utc};
use domain::activities::{self, ActivityFilter};
use poem::Request;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::types::{Example, MaybeUndefined};
use poem_openapi::{Enum, Object, OpenApi};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::people::Person;
use super::shape::{
    Expand, FetchedShaped, Fields, ListedShaped, Representation, Shape, Vocabulary, bit,
    kept_nullable,
};
use super::{
    Created, Deleted, ListParams, Listed, Listing, Plan, Sort, Tag, Updated, list_envelope,
    not_null,
};
use crate::auth::{BearerAuth, Scope};
use crate::context::{Call, Operation};
use crate::cursor::Binding;
use crate::http::{JsonBody, JsonOut, idempotent, if_match_version, link_next};
use crate::problem::{
    ApiError, CreateErrors, DeleteErrors, ListErrors, Problem, ReadErrors, UpdateErrors,
};
use crate::timestamp::Timestamp;

/// What kind of touch an activity records.
#[derive(Enum, Deserialize, Serialize, Debug, Clone, Copy, PartialEq, Eq)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum ActivityKind {
    /// A phone call.
    Call,
    /// An email.
    Email,
    /// A note.
    Note,
    /// A meeting.
    Meeting,
}

impl From<activities::ActivityKind> for ActivityKind {
    fn from(k: activities::ActivityKind) -> Self {
        match k {
            activities::ActivityKind::Call => Self::Call,
            activities::ActivityKind::Email => Self::Email,
            activities::ActivityKind::Note => Self::Note,
            activities::ActivityKind::Meeting => Self::Meeting,
        }
    }
}

impl From<ActivityKind> for activities::ActivityKind {
    fn from(k: ActivityKind) -> Self {
        match k {
            ActivityKind::Call => Self::Call,
            ActivityKind::Email => Self::Email,
            ActivityKind::Note => Self::Note,
            ActivityKind::Meeting => Self::Meeting,
        }
    }
}

impl ActivityKind {
    fn as_str(self) -> &'static str {
        activities::ActivityKind::from(self).into()
    }
}

/// An activity: a call, email, note or meeting with a person.
#[derive(Object, Serialize, Debug, Clone, PartialEq)]
#[oai(example)]
pub struct Activity {
    /// UUIDv7, assigned by the server.
    pub id: Uuid,
    /// The person it was with.
    pub person_id: Uuid,
    /// The user who performed it.
    #[oai(nullable)]
    pub user_id: Option<Uuid>,
    /// Call, email, note or meeting.
    pub kind: ActivityKind,
    /// Subject line.
    pub subject: String,
    /// Free text, at most 64 KiB.
    #[oai(nullable)]
    pub body: Option<String>,
    /// When it happened.
    pub occurred_at: Timestamp,
    /// When it was logged.
    pub created_at: Timestamp,
    /// When it last changed (strictly increases on every change).
    pub updated_at: Timestamp,
    /// Version, +1 on every change; the ETag is `"<version>"`.
    pub version: i64,
    /// When it was deleted: set only on tombstones in sync lists.
    #[oai(nullable)]
    pub deleted_at: Option<Timestamp>,
}

fn example_time() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-01-15T09:30:00Z")
        .map(|t| t.to_utc())
        .unwrap_or_default()
}

impl Example for Activity {
    fn example() -> Self {
        Self {
            id: Uuid::parse_str("0194a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a70").unwrap_or_default(),
            person_id: Uuid::parse_str("0194a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a60").unwrap_or_default(),
            user_id: None,
            kind: ActivityKind::Call,
            subject: "Intro call".to_owned(),
            body: Some("Discussed the pilot; follow up Friday.".to_owned()),
            occurred_at: Timestamp::from(example_time()),
            created_at: Timestamp::from(example_time()),
            updated_at: Timestamp::from(example_time()),
            version: 1,
            deleted_at: None,
        }
    }
}

impl From<activities::Activity> for Activity {
    fn from(a: activities::Activity) -> Self {
        Self {
            id: a.id,
            person_id: a.person_id,
            user_id: a.user_id,
            kind: a.kind.into(),
            subject: a.subject,
            body: a.body,
            occurred_at: Timestamp::from(a.occurred_at),
            created_at: Timestamp::from(a.created_at),
            updated_at: Timestamp::from(a.updated_at),
            version: a.version,
            deleted_at: a.deleted_at.map(Timestamp),
        }
    }
}

/// A person as an activity embeds them (`expand=person`).
#[derive(Object, Serialize, Debug, Clone, PartialEq)]
pub struct PersonSummary {
    /// The person's id.
    pub id: Uuid,
    /// The account they work at.
    #[oai(nullable)]
    pub account_id: Option<Uuid>,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// Email address.
    #[oai(nullable)]
    pub email: Option<String>,
    /// Job title.
    #[oai(nullable)]
    pub title: Option<String>,
}

impl From<domain::people::Person> for PersonSummary {
    fn from(p: domain::people::Person) -> Self {
        Self {
            id: p.id,
            account_id: p.account_id,
            first_name: p.first_name,
            last_name: p.last_name,
            email: p.email,
            title: p.title,
        }
    }
}

/// An activity as `fields` and `expand` shape it (served as
/// `application/vnd.tenantry.partial+json`): `id` and `version` always; any other property
/// of `Activity` only when `fields` names it (every one of them without `fields`; in sync
/// mode `updated_at` and `deleted_at` always); `person` only with `expand=person`.
#[derive(Object, Serialize, Debug, Clone, PartialEq)]
#[oai(example)]
pub struct ActivityPartial {
    /// UUIDv7, assigned by the server.
    pub id: Uuid,
    /// The person it was with.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub person_id: Option<Uuid>,
    /// The user who performed it.
    #[oai(nullable)]
    #[serde(skip_serializing_if = "MaybeUndefined::is_undefined")]
    pub user_id: MaybeUndefined<Uuid>,
    /// Call, email, note or meeting.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<ActivityKind>,
    /// Subject line.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Free text, at most 64 KiB.
    #[oai(nullable)]
    #[serde(skip_serializing_if = "MaybeUndefined::is_undefined")]
    pub body: MaybeUndefined<String>,
    /// When it happened.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub occurred_at: Option<Timestamp>,
    /// When it was logged.
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
    /// The person it was with, with `expand=person`: `null` when the person was deleted.
    #[oai(nullable)]
    #[serde(skip_serializing_if = "MaybeUndefined::is_undefined")]
    pub person: MaybeUndefined<PersonSummary>,
}

/// What `fields` and `expand` may name on an activity.
#[derive(Debug)]
pub struct ActivityVocabulary;

impl Vocabulary for ActivityVocabulary {
    const NOUN: &'static str = "activity";
    const FIELDS: &'static [&'static str] = &[
        "id",
        "person_id",
        "user_id",
        "kind",
        "subject",
        "body",
        "occurred_at",
        "created_at",
        "updated_at",
        "version",
        "deleted_at",
    ];
    const EXPAND: &'static [(&'static str, Scope)] = &[("person", Scope::PeopleRead)];
}

/// The bit of an activity's property or expansion.
mod field {
    use super::{ActivityVocabulary as V, Vocabulary as _, bit};
    pub(super) const PERSON_ID: u64 = bit(V::FIELDS, "person_id");
    pub(super) const USER_ID: u64 = bit(V::FIELDS, "user_id");
    pub(super) const KIND: u64 = bit(V::FIELDS, "kind");
    pub(super) const SUBJECT: u64 = bit(V::FIELDS, "subject");
    pub(super) const BODY: u64 = bit(V::FIELDS, "body");
    pub(super) const OCCURRED_AT: u64 = bit(V::FIELDS, "occurred_at");
    pub(super) const CREATED_AT: u64 = bit(V::FIELDS, "created_at");
    pub(super) const UPDATED_AT: u64 = bit(V::FIELDS, "updated_at");
    pub(super) const DELETED_AT: u64 = bit(V::FIELDS, "deleted_at");
    /// `expand=person`.
    pub(super) const PERSON: u64 = 1;
}

impl ActivityPartial {
    /// `a` as `shape` wants it, with `person` (read when `expand=person` was asked for).
    pub fn new(a: Activity, shape: &Shape, person: Option<PersonSummary>) -> Self {
        let keeps = |bit| shape.keeps(bit);
        Self {
            id: a.id,
            person_id: keeps(field::PERSON_ID).then_some(a.person_id),
            user_id: kept_nullable(keeps(field::USER_ID), a.user_id),
            kind: keeps(field::KIND).then_some(a.kind),
            subject: keeps(field::SUBJECT).then_some(a.subject),
            body: kept_nullable(keeps(field::BODY), a.body),
            occurred_at: keeps(field::OCCURRED_AT).then_some(a.occurred_at),
            created_at: keeps(field::CREATED_AT).then_some(a.created_at),
            updated_at: keeps(field::UPDATED_AT).then_some(a.updated_at),
            version: a.version,
            deleted_at: kept_nullable(keeps(field::DELETED_AT), a.deleted_at),
            person: kept_nullable(shape.expands(field::PERSON), person),
        }
    }
}

impl Example for ActivityPartial {
    fn example() -> Self {
        let shape =
            Shape::of::<ActivityVocabulary>(&["kind", "subject", "occurred_at"], &["person"]);
        let person = PersonSummary {
            id: Uuid::parse_str("0194a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a60").unwrap_or_default(),
            account_id: Uuid::parse_str("0194a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b").ok(),
            first_name: "Ada".to_owned(),
            last_name: "Lovelace".to_owned(),
            email: Some("ada@acme.com".to_owned()),
            title: Some("CTO".to_owned()),
        };
        Self::new(Activity::example(), &shape, Some(person))
    }
}

/// The body of `create_activity`.
#[derive(Object, Deserialize, Debug, Clone)]
#[oai(example, deny_unknown_fields)]
#[serde(deny_unknown_fields)]
pub struct ActivityCreate {
    /// A person of your tenant.
    pub person_id: Uuid,
    /// A user of your tenant; defaults to the caller when the caller is a user.
    #[oai(nullable)]
    pub user_id: Option<Uuid>,
    /// Call, email, note or meeting.
    pub kind: ActivityKind,
    /// Subject line: 1 to 200 characters once surrounding whitespace is
    /// trimmed, no control characters.
    pub subject: String,
    /// Free text, at most 64 KiB (UTF-8); no control characters but tab, line feed and
    /// carriage return.
    #[oai(nullable)]
    pub body: Option<String>,
    /// When it happened (default: now), in the years 1970 to 9999 (UTC).
    #[oai(nullable)]
    pub occurred_at: Option<DateTime<Utc>>,
}

impl Example for ActivityCreate {
    fn example() -> Self {
        Self {
            person_id: Uuid::parse_str("0194a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a60").unwrap_or_default(),
            user_id: None,
            kind: ActivityKind::Call,
            subject: "Intro call".to_owned(),
            body: Some("Discussed the pilot; follow up Friday.".to_owned()),
            occurred_at: Some(example_time()),
        }
    }
}

/// The body of `update_activity`: omitted fields stay as they are; `null` clears a
/// nullable field.
#[derive(Object, Deserialize, Debug, Clone, Default)]
#[oai(example, deny_unknown_fields)]
#[serde(deny_unknown_fields)]
pub struct ActivityUpdate {
    /// Move it to another person.
    #[serde(default)]
    pub person_id: MaybeUndefined<Uuid>,
    /// New user, or `null` to clear it.
    #[oai(nullable)]
    #[serde(default)]
    pub user_id: MaybeUndefined<Uuid>,
    /// New kind.
    #[serde(default)]
    pub kind: MaybeUndefined<ActivityKind>,
    /// New subject: 1 to 200 characters once surrounding whitespace is
    /// trimmed, no control characters.
    #[serde(default)]
    pub subject: MaybeUndefined<String>,
    /// New body (as `body` of `create_activity`), or `null` to clear it.
    #[oai(nullable)]
    #[serde(default)]
    pub body: MaybeUndefined<String>,
    /// New time, in the years 1970 to 9999 (UTC).
    #[serde(default)]
    pub occurred_at: MaybeUndefined<DateTime<Utc>>,
}

impl Example for ActivityUpdate {
    fn example() -> Self {
        Self {
            subject: MaybeUndefined::Value("Intro call (rescheduled)".to_owned()),
            ..Self::default()
        }
    }
}

impl TryFrom<ActivityUpdate> for activities::ActivityPatch {
    type Error = Problem;

    fn try_from(u: ActivityUpdate) -> Result<Self, Problem> {
        let mut errors = Vec::new();
        let patch = Self {
            person_id: not_null("person_id", u.person_id, &mut errors),
            user_id: u.user_id.into(),
            kind: not_null("kind", u.kind, &mut errors).map(Into::into),
            subject: not_null("subject", u.subject, &mut errors),
            body: u.body.into(),
            occurred_at: not_null("occurred_at", u.occurred_at, &mut errors),
        };
        if errors.is_empty() {
            Ok(patch)
        } else {
            Err(Problem::validation(errors))
        }
    }
}

list_envelope!(
    /// A page of activities.
    ActivityList,
    Activity
);

list_envelope!(
    /// A page of activities shaped by `fields` / `expand`.
    ActivityPartialList,
    ActivityPartial
);

/// A page of activities, each with the person it was read with (`None` when not
/// expanded): the full envelope, or the shaped one.
fn shaped_page(
    listing: Listing<(Activity, Option<PersonSummary>)>,
    shape: &Shape,
) -> ListedShaped<ActivityList, ActivityPartialList> {
    if shape.is_full() {
        let (body, link) = ActivityList::split(listing.map(|(a, _)| a));
        ListedShaped::Ok(Representation::Full(JsonOut(body)), link)
    } else {
        let listing = listing.map(|(a, p)| ActivityPartial::new(a, shape, p));
        let (body, link) = ActivityPartialList::split(listing);
        ListedShaped::Ok(Representation::Partial(JsonOut(body)), link)
    }
}

/// One entry of the activity feed: an activity with its person.
#[derive(Object, Serialize, Debug, Clone, PartialEq)]
pub struct FeedItem {
    /// The activity.
    pub activity: Activity,
    /// The person it was with.
    pub person: Person,
}

impl From<activities::FeedItem> for FeedItem {
    fn from(f: activities::FeedItem) -> Self {
        Self {
            activity: f.activity.into(),
            person: f.person.into(),
        }
    }
}

list_envelope!(
    /// A page of the activity feed, newest first.
    FeedPage,
    FeedItem
);

/// The activities operations.
pub struct ActivitiesApi;

fn location(id: Uuid) -> String {
    format!("/v1/activities/{id}")
}

#[OpenApi(prefix_path = "/v1", tag = "Tag::Activities")]
impl ActivitiesApi {
    /// Price of `create_activity` (see [`crate::limits`]): a write.
    pub const CREATE_ACTIVITY: Operation =
        Operation::write("create_activity", Scope::ActivitiesWrite);

    /// Log an activity
    ///
    /// Send an `Idempotency-Key` to retry safely: the same key with the same body returns
    /// the first response again.
    #[oai(
        path = "/activities",
        method = "post",
        operation_id = "create_activity"
    )]
    async fn create_activity(
        &self,
        #[oai(scope = "Scope::ActivitiesWrite")] auth: BearerAuth,
        req: &Request,
        /// A unique key (e.g. a UUID) making retries of this request safe, for 24 hours.
        #[oai(name = "Idempotency-Key")]
        idempotency_key: Header<Option<String>>,
        body: JsonBody<ActivityCreate>,
    ) -> Result<Created<Activity>, ApiError<CreateErrors>> {
        let Call { principal, db, .. } = Self::CREATE_ACTIVITY.begin(req, &auth)?;
        let b = body.value;
        let input = activities::ActivityCreate {
            person_id: b.person_id,
            user_id: b.user_id.or_else(|| principal.user_id()),
            kind: b.kind.into(),
            subject: b.subject,
            body: b.body,
            occurred_at: b.occurred_at,
        };
        let out = idempotent(
            &db,
            principal,
            idempotency_key.0.as_deref(),
            "create_activity",
            &body.canonical,
            async |txn| Ok(Activity::from(activities::create(txn, input).await?)),
        )
        .await?;
        let (location, version) = (location(out.value.id), out.value.version);
        Ok(Created::new(out.value, location, version, out.replayed))
    }

    /// Price of `get_activity` (see [`crate::limits`]): 1, and 0 on a 304.
    pub const GET_ACTIVITY: Operation =
        Operation::conditional_read("get_activity", Scope::ActivitiesRead);

    /// Get an activity
    ///
    /// Send the ETag you have in `If-None-Match` to get `304 Not Modified` when it is
    /// unchanged. `fields` and `expand` shape the answer (then served as
    /// `application/vnd.tenantry.partial+json`, with a weak ETag of its own) at the same
    /// price.
    #[oai(
        path = "/activities/:id",
        method = "get",
        operation_id = "get_activity"
    )]
    async fn get_activity(
        &self,
        #[oai(scope = "Scope::ActivitiesRead")] auth: BearerAuth,
        req: &Request,
        /// The activity's id.
        id: Path<Uuid>,
        /// An ETag from an earlier response.
        #[oai(name = "If-None-Match")]
        if_none_match: Header<Option<String>>,
        /// Only these properties, comma-separated without spaces (`kind,subject,occurred_at`);
        /// `id` and `version` always come. Unknown names are refused (422).
        fields: Query<Option<Fields<ActivityVocabulary>>>,
        /// Embed related resources, comma-separated: `person` (the person it was with,
        /// `null` once deleted; needs `people:read` too), read in the same query.
        expand: Query<Option<Expand<ActivityVocabulary>>>,
    ) -> Result<FetchedShaped<Activity, ActivityPartial>, ApiError<ReadErrors>> {
        let shape = Shape::parse(&auth, fields.0.as_ref(), expand.0.as_ref())?;
        let Call { db, charge, .. } = Self::GET_ACTIVITY.begin(req, &auth)?;
        let (activity, person) = if shape.expands(field::PERSON) {
            let row = activities::get_with_person(&db, id.0).await?;
            (Activity::from(row.activity), Some(row.person))
        } else {
            (Activity::from(activities::get(&db, id.0).await?), None)
        };
        let (body, etag) = if shape.is_full() {
            let etag = crate::http::etag(activity.version);
            (Representation::Full(JsonOut(activity)), etag)
        } else {
            let embedded: Vec<Option<i64>> = person
                .iter()
                .map(|p| p.as_ref().map(|p| p.version))
                .collect();
            let etag = shape.etag(activity.version, &embedded);
            let person = person.flatten().map(PersonSummary::from);
            let partial = ActivityPartial::new(activity, &shape, person);
            (Representation::Partial(JsonOut(partial)), etag)
        };
        let fetched = FetchedShaped::new(body, etag, if_none_match.0.as_deref());
        if fetched.is_not_modified() {
            charge.refund().await;
        }
        Ok(fetched)
    }

    /// Price of `list_activities` (see [`crate::limits`]): a page; deep offset pages cost more.
    pub const LIST_ACTIVITIES: Operation =
        Operation::offset_page("list_activities", Scope::ActivitiesRead);

    /// List activities
    ///
    /// Cursor pagination by default (`limit`, then `cursor` from `next_cursor` or the
    /// `Link` header, with the same filters). Sync mode: `sort=updated_at` with
    /// `updated_after`, including deleted activities as tombstones. `page` gives offset
    /// pages for compatibility (by id; deep pages cost more). `fields` and `expand` shape
    /// each activity (then served as `application/vnd.tenantry.partial+json`) at the same
    /// price; a cursor works with any of them.
    #[oai(path = "/activities", method = "get", operation_id = "list_activities")]
    #[expect(
        clippy::too_many_arguments,
        reason = "one argument per query parameter"
    )]
    async fn list_activities(
        &self,
        #[oai(scope = "Scope::ActivitiesRead")] auth: BearerAuth,
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
        /// Only activities with this person.
        person_id: Query<Option<Uuid>>,
        /// Only activities of this kind.
        kind: Query<Option<ActivityKind>>,
        /// Only activities that occurred at or after this time.
        occurred_from: Query<Option<DateTime<Utc>>>,
        /// Only activities that occurred before this time (after `occurred_from`, when both
        /// are given).
        occurred_before: Query<Option<DateTime<Utc>>>,
        /// Only these properties of each activity, comma-separated without spaces
        /// (`kind,subject,occurred_at`); `id` and `version` always come, and in sync mode
        /// `updated_at` and `deleted_at` too. Unknown names are refused (422).
        fields: Query<Option<Fields<ActivityVocabulary>>>,
        /// Embed related resources in each activity, comma-separated: `person` (`null` once
        /// deleted; needs `people:read` too), read in the same query.
        expand: Query<Option<Expand<ActivityVocabulary>>>,
    ) -> Result<ListedShaped<ActivityList, ActivityPartialList>, ApiError<ListErrors>> {
        let mut shape = Shape::parse(&auth, fields.0.as_ref(), expand.0.as_ref())?;
        let Call {
            principal,
            db,
            charge,
            state,
        } = Self::LIST_ACTIVITIES.begin(req, &auth)?;
        let expanded = shape.expands(field::PERSON);
        let (filter, bound) = filter_of(person_id.0, kind.0, occurred_from.0, occurred_before.0);
        let params = ListParams {
            limit: limit.0,
            cursor: cursor.0,
            sort: sort.0,
            updated_after: updated_after.0,
            page: page.0,
        };
        let plan = params.plan(state, principal, "list_activities", &bound)?;
        let sync = plan.is_sync();
        if sync {
            shape = shape.keeping(field::UPDATED_AT | field::DELETED_AT);
        }
        let joined = |row: activities::ActivityWithPerson| {
            (
                Activity::from(row.activity),
                row.person.map(PersonSummary::from),
            )
        };
        let plain = |a: activities::Activity| (Activity::from(a), None);
        let listing = match plan {
            Plan::Offset(request) if expanded => super::offset_listing(
                req.uri(),
                activities::list_offset_with_person(&db, &filter, &request).await?,
                joined,
            ),
            Plan::Offset(request) => super::offset_listing(
                req.uri(),
                activities::list_offset(&db, &filter, &request).await?,
                plain,
            ),
            Plan::Keyset {
                request,
                sort,
                binding,
            } if expanded => {
                let page = activities::list_with_person(&db, &filter, &request).await?;
                let key =
                    |a: &activities::ActivityWithPerson| (a.activity.updated_at, a.activity.id);
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
                let page = activities::list(&db, &filter, &request).await?;
                super::keyset_listing(
                    state,
                    req.uri(),
                    sort,
                    &binding,
                    &request,
                    page,
                    |a| (a.updated_at, a.id),
                    plain,
                )
            }
        };
        if sync && listing.data.is_empty() {
            charge.refund().await;
        }
        Ok(shaped_page(listing, &shape))
    }

    /// Price of `list_activity_feed` (see [`crate::limits`]): a list page.
    pub const LIST_ACTIVITY_FEED: Operation =
        Operation::page("list_activity_feed", Scope::ActivitiesRead);

    /// The activity feed
    ///
    /// Live activities with their person, newest first (by `occurred_at`). Continue with
    /// `cursor` (same filters).
    #[oai(
        path = "/activities/feed",
        method = "get",
        operation_id = "list_activity_feed"
    )]
    #[expect(
        clippy::too_many_arguments,
        reason = "one argument per query parameter"
    )]
    async fn list_activity_feed(
        &self,
        #[oai(scope = "Scope::ActivitiesRead")] auth: BearerAuth,
        req: &Request,
        /// Items per page, 1 to 200 (default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
        limit: Query<Option<u64>>,
        /// `next_cursor` of the previous page, with the same filters.
        cursor: Query<Option<String>>,
        /// Only activities with this person.
        person_id: Query<Option<Uuid>>,
        /// Only activities of this kind.
        kind: Query<Option<ActivityKind>>,
        /// Only activities that occurred at or after this time.
        occurred_from: Query<Option<DateTime<Utc>>>,
        /// Only activities that occurred before this time (after `occurred_from`, when both
        /// are given).
        occurred_before: Query<Option<DateTime<Utc>>>,
    ) -> Result<Listed<FeedPage>, ApiError<ListErrors>> {
        let Call {
            principal,
            db,
            state,
            ..
        } = Self::LIST_ACTIVITY_FEED.begin(req, &auth)?;
        let (filter, bound) = filter_of(person_id.0, kind.0, occurred_from.0, occurred_before.0);
        let binding = Binding::new("list_activity_feed", &principal.ctx().tenant(), &bound);
        let before = match &cursor.0 {
            Some(cursor) => state.cursors.decode(cursor, &binding)?.1,
            None => None,
        };
        let limit = limit.0.unwrap_or(super::DEFAULT_LIMIT);
        let page = activities::feed(&db, &filter, before, limit).await?;
        let next_cursor = page.has_more.then(|| {
            state
                .cursors
                .encode(&binding, "occurred_at_desc", page.next)
        });
        let link = next_cursor
            .as_ref()
            .map(|c| link_next(&super::replace_query(req.uri(), "cursor", c)));
        let data = page.items.into_iter().map(FeedItem::from).collect();
        Ok(FeedPage::from_listing(super::Listing {
            data,
            next_cursor,
            has_more: page.has_more,
            link,
        }))
    }

    /// Price of `update_activity` (see [`crate::limits`]): a write.
    pub const UPDATE_ACTIVITY: Operation =
        Operation::write("update_activity", Scope::ActivitiesWrite);

    /// Update an activity
    ///
    /// Send the ETag you have in `If-Match` to update only if nobody changed the activity
    /// since (`412 Precondition Failed` otherwise).
    #[oai(
        path = "/activities/:id",
        method = "patch",
        operation_id = "update_activity"
    )]
    async fn update_activity(
        &self,
        #[oai(scope = "Scope::ActivitiesWrite")] auth: BearerAuth,
        req: &Request,
        /// The activity's id.
        id: Path<Uuid>,
        /// The ETag the change is based on.
        #[oai(name = "If-Match")]
        if_match: Header<Option<String>>,
        body: JsonBody<ActivityUpdate>,
    ) -> Result<Updated<Activity>, ApiError<UpdateErrors>> {
        let Call { db, .. } = Self::UPDATE_ACTIVITY.begin(req, &auth)?;
        let expected = if_match_version(if_match.0.as_deref())?;
        let patch = activities::ActivityPatch::try_from(body.value)?;
        let activity = Activity::from(activities::update(&db, id.0, expected, patch).await?);
        let version = activity.version;
        Ok(Updated::new(activity, version))
    }

    /// Price of `delete_activity` (see [`crate::limits`]): a write.
    pub const DELETE_ACTIVITY: Operation =
        Operation::write("delete_activity", Scope::ActivitiesWrite);

    /// Delete an activity
    ///
    /// A soft delete: the activity disappears from reads and the feed, and sync lists
    /// return it once more as a tombstone. `If-Match` makes it conditional.
    #[oai(
        path = "/activities/:id",
        method = "delete",
        operation_id = "delete_activity"
    )]
    async fn delete_activity(
        &self,
        #[oai(scope = "Scope::ActivitiesWrite")] auth: BearerAuth,
        req: &Request,
        /// The activity's id.
        id: Path<Uuid>,
        /// The ETag the deletion is based on.
        #[oai(name = "If-Match")]
        if_match: Header<Option<String>>,
    ) -> Result<Deleted, ApiError<DeleteErrors>> {
        let Call { db, .. } = Self::DELETE_ACTIVITY.begin(req, &auth)?;
        let expected = if_match_version(if_match.0.as_deref())?;
        activities::delete(&db, id.0, expected).await?;
        Ok(Deleted::NoContent)
    }
}

/// The domain filter and the cursor binding of the activity filters.
fn filter_of(
    person_id: Option<Uuid>,
    kind: Option<ActivityKind>,
    occurred_from: Option<DateTime<Utc>>,
    occurred_before: Option<DateTime<Utc>>,
) -> (ActivityFilter, [(&'static str, String); 4]) {
    let bound = [
        (
            "person_id",
            person_id.map(|p| p.to_string()).unwrap_or_default(),
        ),
        (
            "kind",
            kind.map(|k| k.as_str().to_owned()).unwrap_or_default(),
        ),
        (
            "occurred_from",
            occurred_from.map(|t| t.to_rfc3339()).unwrap_or_default(),
        ),
        (
            "occurred_before",
            occurred_before.map(|t| t.to_rfc3339()).unwrap_or_default(),
        ),
    ];
    let filter = ActivityFilter {
        person_id,
        kind: kind.map(Into::into),
        occurred_from,
        occurred_before,
    };
    (filter, bound)
}
