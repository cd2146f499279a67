//! Activities: the calls, emails, notes and meetings logged against a person.

use chrono::{DateTime, Datelike, SubsecRound, Utc};
use tenancy::{ColumnExt, Keyset, Scoped, Set, TenantHandle};
use uuid::Uuid;

use crate::Writer;
use crate::entity::{activity, person, user};
use crate::error::{Error, FieldError, Resource, Result};
use crate::pagination::{OffsetPage, OffsetRequest, Page, PageRequest, Position, check_limit};
use crate::people::Person;
use crate::types::{Check, Invalid, Name, body, stored};
use crate::{store, time};

/// What kind of touch an activity records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(strum::Display, strum::EnumString, strum::IntoStaticStr, strum::VariantArray)]
#[strum(serialize_all = "snake_case")]
pub enum ActivityKind {
    /// A phone call.
    Call,
    /// An email sent or received.
    Email,
    /// A free-form note.
    Note,
    /// A meeting.
    Meeting,
}

/// An activity as the domain sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activity {
    /// UUIDv7, assigned on create.
    pub id: Uuid,
    /// The person it was with.
    pub person_id: Uuid,
    /// The user who performed it, if known.
    pub user_id: Option<Uuid>,
    /// Call, email, note or meeting.
    pub kind: ActivityKind,
    /// 1..=200 characters.
    pub subject: String,
    /// Free text of at most 64 KiB.
    pub body: Option<String>,
    /// When it happened (microsecond precision).
    pub occurred_at: DateTime<Utc>,
    /// When it was logged.
    pub created_at: DateTime<Utc>,
    /// When it last changed; strictly increases on every change.
    pub updated_at: DateTime<Utc>,
    /// Optimistic-concurrency version: 1 on create, +1 on every change.
    pub version: i64,
    /// When it was deleted; set only on tombstones returned by sync lists.
    pub deleted_at: Option<DateTime<Utc>>,
}

impl Activity {
    fn from_model(m: activity::Model) -> Result<Self> {
        Ok(Self {
            kind: stored(Resource::Activity, &m.kind)?,
            id: m.id,
            person_id: m.person_id,
            user_id: m.user_id,
            subject: m.subject,
            body: m.body,
            occurred_at: m.occurred_at,
            created_at: m.created_at,
            updated_at: m.updated_at,
            version: m.version,
            deleted_at: m.deleted_at,
        })
    }
}

/// One entry of the [`feed`]: an activity with the person it was with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedItem {
    /// The activity.
    pub activity: Activity,
    /// Its person.
    pub person: Person,
}

/// An activity with its person, read in one query through the tenancy crate's scoped
/// `LEFT JOIN` (the person side carries its own tenant predicate):
/// [`get_with_person`], [`list_with_person`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityWithPerson {
    /// The activity.
    pub activity: Activity,
    /// Its person; `None` when the person is deleted (the activity stays).
    pub person: Option<Person>,
}

impl ActivityWithPerson {
    fn from_row((activity, person): (activity::Model, Option<person::Model>)) -> Result<Self> {
        Ok(Self {
            activity: Activity::from_model(activity)?,
            person: person
                .filter(|p| p.deleted_at.is_none())
                .map(Person::from_model)
                .transpose()?,
        })
    }
}

/// The input of [`create`]; validated by it, every failing field reported at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityCreate {
    /// A live person of the same tenant.
    pub person_id: Uuid,
    /// A live user of the same tenant.
    pub user_id: Option<Uuid>,
    /// What kind of activity.
    pub kind: ActivityKind,
    /// Required, 1..=200 characters.
    pub subject: String,
    /// At most 64 KiB.
    pub body: Option<String>,
    /// When it happened (1970..=9999); defaults to now.
    pub occurred_at: Option<DateTime<Utc>>,
}

/// The input of [`update`]: `None` leaves a field as it is; for nullable fields,
/// `Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActivityPatch {
    /// Move it to another live person.
    pub person_id: Option<Uuid>,
    /// New user, or `Some(None)` to clear it.
    pub user_id: Option<Option<Uuid>>,
    /// New kind.
    pub kind: Option<ActivityKind>,
    /// New subject.
    pub subject: Option<String>,
    /// New body, or `Some(None)` to clear it.
    pub body: Option<Option<String>>,
    /// New time.
    pub occurred_at: Option<DateTime<Utc>>,
}

/// Which activities [`list`] and [`feed`] return (all conditions ANDed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActivityFilter {
    /// With this person.
    pub person_id: Option<Uuid>,
    /// Of this kind.
    pub kind: Option<ActivityKind>,
    /// Occurred at or after this time.
    pub occurred_from: Option<DateTime<Utc>>,
    /// Occurred strictly before this time.
    pub occurred_before: Option<DateTime<Utc>>,
}

/// Validates a time: within years 1970..=9999 (so it sorts correctly as text on SQLite),
/// truncated to microseconds (what PostgreSQL stores).
fn occurred_at(at: DateTime<Utc>) -> Result<DateTime<Utc>, Invalid> {
    if (1970..=9999).contains(&at.year()) {
        Ok(at.trunc_subsecs(6))
    } else {
        Err(Invalid {
            code: "out_of_range",
            message: "must be between the years 1970 and 9999".into(),
        })
    }
}

fn subject(raw: &str) -> Result<String, Invalid> {
    Name::parse(raw).map(Name::into_inner)
}

/// Logs an activity: `version` 1, `created_at = updated_at = now`.
///
/// # Errors
/// `Validation` for invalid fields; `NotFound` with `field: "person_id"` or
/// `"user_id"` when the reference is not a live row of this tenant. Nothing is written.
pub async fn create(db: &impl Writer, input: ActivityCreate) -> Result<Activity> {
    let now = time::now();
    let mut check = Check::default();
    let subject = check.field("subject", subject(&input.subject));
    let body = check.field("body", input.body.as_deref().map(body).transpose());
    let occurred = check.field("occurred_at", occurred_at(input.occurred_at.unwrap_or(now)));
    let (Some(subject), Some(body), Some(occurred)) = (subject, body, occurred) else {
        return Err(check.fail());
    };
    db.write(async |db| {
        store::referenced::<person::Entity>(db, input.person_id, "person_id").await?;
        store::referenced_opt::<user::Entity>(db, input.user_id, "user_id").await?;
        let model = db
            .insert(activity::ActiveModel {
                id: Set(Uuid::now_v7()),
                person_id: Set(input.person_id),
                user_id: Set(input.user_id),
                kind: Set(input.kind.to_string()),
                subject: Set(subject),
                body: Set(body),
                occurred_at: Set(occurred),
                created_at: Set(now),
                updated_at: Set(now),
                version: Set(1),
                deleted_at: Set(None),
                ..Default::default()
            })
            .exec()
            .await?;
        Activity::from_model(model)
    })
    .await
}

/// The live activity `id`.
///
/// # Errors
/// `NotFound` when it does not exist in this tenant or is deleted.
pub async fn get(db: &impl TenantHandle, id: Uuid) -> Result<Activity> {
    Activity::from_model(store::get::<activity::Entity>(db, id).await?)
}

/// Applies `patch` to the live activity `id`, if it is at `expected_version` (when
/// given). An empty patch changes nothing and returns the activity.
///
/// # Errors
/// `Validation` (nothing written); `NotFound` for the activity, or with a `field` for a
/// reference; `VersionMismatch { current }`.
pub async fn update(
    db: &impl Writer,
    id: Uuid,
    expected_version: Option<i64>,
    patch: ActivityPatch,
) -> Result<Activity> {
    let mut check = Check::default();
    let subject = check.field("subject", patch.subject.as_deref().map(subject).transpose());
    let body = check.field(
        "body",
        patch
            .body
            .as_ref()
            .map(|b| b.as_deref().map(body).transpose())
            .transpose(),
    );
    let occurred = check.field(
        "occurred_at",
        patch.occurred_at.map(occurred_at).transpose(),
    );
    let (Some(subject), Some(body), Some(occurred)) = (subject, body, occurred) else {
        return Err(check.fail());
    };
    db.write(async |db| {
        if patch == ActivityPatch::default() {
            return Activity::from_model(
                store::unchanged::<activity::Entity>(db, id, expected_version).await?,
            );
        }
        if let Some(person_id) = patch.person_id {
            store::referenced::<person::Entity>(db, person_id, "person_id").await?;
        }
        store::referenced_opt::<user::Entity>(db, patch.user_id.flatten(), "user_id").await?;
        let model = store::update::<activity::Entity>(db, id, expected_version, |_, _| {
            let model = activity::ActiveModel {
                person_id: store::patched(patch.person_id),
                user_id: store::patched(patch.user_id),
                kind: store::patched(patch.kind.map(|k| k.to_string())),
                subject: store::patched(subject.clone()),
                body: store::patched(body.clone()),
                occurred_at: store::patched(occurred),
                ..Default::default()
            };
            Ok((model, Vec::new()))
        })
        .await?;
        Activity::from_model(model)
    })
    .await
}

/// Soft-deletes the live activity `id` (at `expected_version`, when given) and returns
/// the tombstone.
///
/// # Errors
/// `NotFound` (also when already deleted); `VersionMismatch`.
pub async fn delete(db: &impl Writer, id: Uuid, expected_version: Option<i64>) -> Result<Activity> {
    db.write(async |db| {
        Activity::from_model(
            store::soft_delete::<activity::Entity>(db, id, expected_version).await?,
        )
    })
    .await
}

fn filtered<'a>(
    db: &'a impl TenantHandle,
    filter: &ActivityFilter,
) -> Result<Scoped<'a, activity::Entity>> {
    let mut scoped = db.find::<activity::Entity>();
    if let Some(person_id) = filter.person_id {
        scoped = scoped.filter(activity::Column::PersonId.eq(person_id));
    }
    if let Some(kind) = filter.kind {
        scoped = scoped.filter(activity::Column::Kind.eq(<&str>::from(kind)));
    }
    let mut check = Check::default();
    let from = check.field(
        "occurred_from",
        filter.occurred_from.map(occurred_at).transpose(),
    );
    let before = check.field(
        "occurred_before",
        filter.occurred_before.map(occurred_at).transpose(),
    );
    if let (Some(Some(from)), Some(Some(before))) = (from, before)
        && from >= before
    {
        check.push(FieldError::new(
            "occurred_before",
            "out_of_range",
            "must be after occurred_from",
        ));
    }
    check.finish()?;
    if let Some(Some(from)) = from {
        scoped = scoped.filter(activity::Column::OccurredAt.gte(from));
    }
    if let Some(Some(before)) = before {
        scoped = scoped.filter(activity::Column::OccurredAt.lt(before));
    }
    Ok(scoped)
}

/// A keyset page of activities matching `filter`, in `page.sort` order.
///
/// # Errors
/// `Validation` for an invalid time range, limit or cursor.
pub async fn list(
    db: &impl TenantHandle,
    filter: &ActivityFilter,
    page: &PageRequest,
) -> Result<Page<Activity>> {
    let page = store::list(filtered(db, filter)?, page).await?;
    let items = page
        .items
        .into_iter()
        .map(Activity::from_model)
        .collect::<Result<_>>()?;
    Ok(Page {
        items,
        next: page.next,
        has_more: page.has_more,
    })
}

/// An offset page of activities matching `filter`, by id.
///
/// # Errors
/// `Validation` for an invalid filter, page or page size.
pub async fn list_offset(
    db: &impl TenantHandle,
    filter: &ActivityFilter,
    page: &OffsetRequest,
) -> Result<OffsetPage<Activity>> {
    let page = store::list_offset(filtered(db, filter)?, page).await?;
    let items = page
        .items
        .into_iter()
        .map(Activity::from_model)
        .collect::<Result<_>>()?;
    Ok(OffsetPage {
        items,
        page: page.page,
        per_page: page.per_page,
        has_more: page.has_more,
    })
}

/// The live activity `id` with its person, in one joined query.
///
/// # Errors
/// `NotFound` when the activity does not exist in this tenant or is deleted.
pub async fn get_with_person(db: &impl TenantHandle, id: Uuid) -> Result<ActivityWithPerson> {
    let row = db
        .find::<activity::Entity>()
        .filter(activity::Column::Id.eq(id))
        .filter(activity::Column::DeletedAt.is_null())
        .also::<person::Entity>()
        .one()
        .await?
        .ok_or(Error::not_found(Resource::Activity))?;
    ActivityWithPerson::from_row(row)
}

/// Like [`list`], each activity with its person, read in one joined query.
///
/// # Errors
/// As [`list`].
pub async fn list_with_person(
    db: &impl TenantHandle,
    filter: &ActivityFilter,
    page: &PageRequest,
) -> Result<Page<ActivityWithPerson>> {
    let rows = store::for_keyset(filtered(db, filter)?, page)?
        .also::<person::Entity>()
        .page(store::keyset::<activity::Entity>(page))
        .await?;
    store::keyset_page::<activity::Entity, _>(page, rows, |(a, _)| a)
        .try_map(ActivityWithPerson::from_row)
}

/// Like [`list_offset`], each activity with its person, read in one joined query.
///
/// # Errors
/// As [`list_offset`].
pub async fn list_offset_with_person(
    db: &impl TenantHandle,
    filter: &ActivityFilter,
    page: &OffsetRequest,
) -> Result<OffsetPage<ActivityWithPerson>> {
    let rows = store::for_offset(filtered(db, filter)?, page)?
        .also::<person::Entity>()
        .all()
        .await?;
    store::offset_page(page, rows).try_map(ActivityWithPerson::from_row)
}

/// The activity feed: live activities matching `filter`, each with its (live) person,
/// newest first, by `(occurred_at, id)` descending. Continue with the page's `next`
/// ([`Position::OccurredAt`]) as `before`.
///
/// One query, joined through the tenancy crate's scoped `also` (the person side of the
/// join carries its own tenant predicate); served by the `(tenant_id, occurred_at)` index.
///
/// # Errors
/// `Validation` for an invalid filter, `limit`, or a `before` of another kind.
pub async fn feed(
    db: &impl TenantHandle,
    filter: &ActivityFilter,
    before: Option<Position>,
    limit: u64,
) -> Result<Page<FeedItem>> {
    check_limit(limit)?;
    let scoped = filtered(db, filter)?.filter(activity::Column::DeletedAt.is_null());
    let after = match before {
        None => None,
        Some(Position::OccurredAt(at, id)) => Some(vec![at.into(), id.into()]),
        Some(_) => {
            return Err(Error::invalid(
                "cursor",
                "cursor_mismatch",
                "the cursor belongs to a different list",
            ));
        }
    };
    let keyset = Keyset::desc([activity::Column::OccurredAt, activity::Column::Id])
        .after(after)
        .limit(limit);
    let page = scoped
        .also::<person::Entity>()
        // `also` is a LEFT JOIN: keep only rows whose person is there and alive.
        .filter_joined(person::Column::Id.is_not_null())
        .filter_joined(person::Column::DeletedAt.is_null())
        .page(keyset)
        .await?;
    let has_more = page.has_more;
    let rows = page.rows;
    let next = rows
        .last()
        .map(|(a, _)| Position::OccurredAt(a.occurred_at, a.id))
        .or(before);
    let items = rows
        .into_iter()
        .filter_map(|(activity, person)| person.map(|person| (activity, person)))
        .map(|(activity, person)| {
            Ok(FeedItem {
                activity: Activity::from_model(activity)?,
                person: Person::from_model(person)?,
            })
        })
        .collect::<Result<_>>()?;
    Ok(Page {
        items,
        next,
        has_more,
    })
}

/// How many live activities the person `person_id` has (served by the
/// `(tenant_id, person_id, occurred_at)` index). Zero for an unknown person.
///
/// # Errors
/// Storage failures only.
pub async fn count_for_person(db: &impl TenantHandle, person_id: Uuid) -> Result<u64> {
    Ok(db
        .find::<activity::Entity>()
        .filter(activity::Column::PersonId.eq(person_id))
        .filter(activity::Column::DeletedAt.is_null())
        .count()
        .await?)
}
