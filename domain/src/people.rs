//! People: the contacts a tenant sells to, optionally at an account.

use chrono::{DateTime, Utc};
use tenancy::{ColumnExt, Scoped, Set, TenantHandle};
use uuid::Uuid;

use crate::Writer;
use crate::entity::{account, person};
use crate::error::{Error, Resource, Result};
use crate::pagination::{OffsetPage, OffsetRequest, Page, PageRequest};
use crate::types::{Check, Email, Invalid, Name, Phone, stored};
use crate::{store, time};

/// Where a person stands in the sales process.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
#[derive(strum::Display, strum::EnumString, strum::IntoStaticStr, strum::VariantArray)]
#[strum(serialize_all = "snake_case")]
pub enum Stage {
    /// Known, not yet contacted (the default).
    #[default]
    Lead,
    /// Reached out to.
    Contacted,
    /// Confirmed as a real opportunity.
    Qualified,
    /// Bought.
    Customer,
    /// Not going to buy.
    Lost,
}

/// A person as the domain sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    /// UUIDv7, assigned on create.
    pub id: Uuid,
    /// The account the person works at, if any.
    pub account_id: Option<Uuid>,
    /// 1..=200 characters.
    pub first_name: String,
    /// 1..=200 characters.
    pub last_name: String,
    /// Lower-cased email address.
    pub email: Option<String>,
    /// Job title, 1..=200 characters.
    pub title: Option<String>,
    /// Phone number without separators (`+15550102030`).
    pub phone: Option<String>,
    /// Sales stage.
    pub stage: Stage,
    /// When the person was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed; strictly increases on every change.
    pub updated_at: DateTime<Utc>,
    /// Optimistic-concurrency version: 1 on create, +1 on every change.
    pub version: i64,
    /// When it was deleted; set only on tombstones returned by sync lists.
    pub deleted_at: Option<DateTime<Utc>>,
}

impl Person {
    pub(crate) fn from_model(m: person::Model) -> Result<Self> {
        Ok(Self {
            stage: stored(Resource::Person, &m.stage)?,
            id: m.id,
            account_id: m.account_id,
            first_name: m.first_name,
            last_name: m.last_name,
            email: m.email,
            title: m.title,
            phone: m.phone,
            created_at: m.created_at,
            updated_at: m.updated_at,
            version: m.version,
            deleted_at: m.deleted_at,
        })
    }
}

/// The account a person works at, as a read of the person embeds it
/// ([`get_with_account`], [`list_with_account`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountSummary {
    /// The account's id.
    pub id: Uuid,
    /// Its display name.
    pub name: String,
    /// Its normalized domain, if known.
    pub domain: Option<String>,
    /// Its version: a representation that embeds the account changes when the account does.
    pub version: i64,
}

/// A person with their account, read in one query through the tenancy crate's scoped
/// `LEFT JOIN` (the account side carries its own tenant predicate).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonWithAccount {
    /// The person.
    pub person: Person,
    /// Their account; `None` without one or when it is deleted.
    pub account: Option<AccountSummary>,
}

impl PersonWithAccount {
    fn from_row((person, account): (person::Model, Option<account::Model>)) -> Result<Self> {
        Ok(Self {
            person: Person::from_model(person)?,
            account: account
                .filter(|a| a.deleted_at.is_none())
                .map(|a| AccountSummary {
                    id: a.id,
                    name: a.name,
                    domain: a.domain,
                    version: a.version,
                }),
        })
    }
}

/// The input of [`create`]; validated by it, every failing field reported at once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PersonCreate {
    /// A live account of the same tenant.
    pub account_id: Option<Uuid>,
    /// Required, 1..=200 characters.
    pub first_name: String,
    /// Required, 1..=200 characters.
    pub last_name: String,
    /// An email address.
    pub email: Option<String>,
    /// 1..=200 characters.
    pub title: Option<String>,
    /// 7 to 15 digits, separators allowed.
    pub phone: Option<String>,
    /// Defaults to [`Stage::Lead`].
    pub stage: Option<Stage>,
}

/// The input of [`update`]: `None` leaves a field as it is; for nullable fields,
/// `Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PersonPatch {
    /// New account, or `Some(None)` to detach.
    pub account_id: Option<Option<Uuid>>,
    /// New first name.
    pub first_name: Option<String>,
    /// New last name.
    pub last_name: Option<String>,
    /// New email, or `Some(None)` to clear it.
    pub email: Option<Option<String>>,
    /// New title, or `Some(None)` to clear it.
    pub title: Option<Option<String>>,
    /// New phone, or `Some(None)` to clear it.
    pub phone: Option<Option<String>>,
    /// New stage.
    pub stage: Option<Stage>,
}

/// Which people [`list`] returns (all conditions ANDed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PersonFilter {
    /// At this account.
    pub account_id: Option<Uuid>,
    /// In this stage.
    pub stage: Option<Stage>,
    /// With exactly this email (normalized before comparing).
    pub email: Option<String>,
}

fn optional<T>(
    raw: Option<&str>,
    parse: impl Fn(&str) -> Result<T, Invalid>,
) -> Result<Option<T>, Invalid> {
    raw.map(parse).transpose()
}

fn name(raw: &str) -> Result<String, Invalid> {
    Name::parse(raw).map(Name::into_inner)
}
fn email(raw: &str) -> Result<String, Invalid> {
    Email::parse(raw).map(Email::into_inner)
}
fn phone(raw: &str) -> Result<String, Invalid> {
    Phone::parse(raw).map(Phone::into_inner)
}

/// Creates a person: `version` 1, `created_at = updated_at = now`.
///
/// # Errors
/// `Validation` for invalid fields; `NotFound { field: "account_id" }` when the account
/// is not a live account of this tenant (another tenant's included). Nothing is written.
pub async fn create(db: &impl Writer, input: PersonCreate) -> Result<Person> {
    let mut check = Check::default();
    let first_name = check.field("first_name", name(&input.first_name));
    let last_name = check.field("last_name", name(&input.last_name));
    let email = check.field("email", optional(input.email.as_deref(), email));
    let title = check.field("title", optional(input.title.as_deref(), name));
    let phone = check.field("phone", optional(input.phone.as_deref(), phone));
    let (Some(first_name), Some(last_name), Some(email), Some(title), Some(phone)) =
        (first_name, last_name, email, title, phone)
    else {
        return Err(check.fail());
    };
    db.write(async |db| {
        store::referenced_opt::<account::Entity>(db, input.account_id, "account_id").await?;
        let now = time::now();
        let model = db
            .insert(person::ActiveModel {
                id: Set(Uuid::now_v7()),
                account_id: Set(input.account_id),
                first_name: Set(first_name),
                last_name: Set(last_name),
                email: Set(email),
                title: Set(title),
                phone: Set(phone),
                stage: Set(input.stage.unwrap_or_default().to_string()),
                created_at: Set(now),
                updated_at: Set(now),
                version: Set(1),
                deleted_at: Set(None),
                ..Default::default()
            })
            .exec()
            .await?;
        Person::from_model(model)
    })
    .await
}

/// The live person `id`.
///
/// # Errors
/// `NotFound` when it does not exist in this tenant or is deleted.
pub async fn get(db: &impl TenantHandle, id: Uuid) -> Result<Person> {
    Person::from_model(store::get::<person::Entity>(db, id).await?)
}

/// Applies `patch` to the live person `id`, if it is at `expected_version` (when given).
/// An empty patch changes nothing and returns the person.
///
/// # Errors
/// `Validation` (nothing written); `NotFound` for the person, or with
/// `field: "account_id"` for the account; `VersionMismatch { current }`.
pub async fn update(
    db: &impl Writer,
    id: Uuid,
    expected_version: Option<i64>,
    patch: PersonPatch,
) -> Result<Person> {
    let mut check = Check::default();
    let first_name = check.field("first_name", optional(patch.first_name.as_deref(), name));
    let last_name = check.field("last_name", optional(patch.last_name.as_deref(), name));
    let email = check.field(
        "email",
        patch
            .email
            .as_ref()
            .map(|e| optional(e.as_deref(), email))
            .transpose(),
    );
    let title = check.field(
        "title",
        patch
            .title
            .as_ref()
            .map(|t| optional(t.as_deref(), name))
            .transpose(),
    );
    let phone = check.field(
        "phone",
        patch
            .phone
            .as_ref()
            .map(|p| optional(p.as_deref(), phone))
            .transpose(),
    );
    let (Some(first_name), Some(last_name), Some(email), Some(title), Some(phone)) =
        (first_name, last_name, email, title, phone)
    else {
        return Err(check.fail());
    };
    db.write(async |db| {
        if patch == PersonPatch::default() {
            return Person::from_model(
                store::unchanged::<person::Entity>(db, id, expected_version).await?,
            );
        }
        if let Some(account_id) = patch.account_id.flatten() {
            store::referenced::<account::Entity>(db, account_id, "account_id").await?;
        }
        let model = store::update::<person::Entity>(db, id, expected_version, |_, _| {
            Ok((
                person::ActiveModel {
                    account_id: store::patched(patch.account_id),
                    first_name: store::patched(first_name.clone()),
                    last_name: store::patched(last_name.clone()),
                    email: store::patched(email.clone()),
                    title: store::patched(title.clone()),
                    phone: store::patched(phone.clone()),
                    stage: store::patched(patch.stage.map(|s| s.to_string())),
                    ..Default::default()
                },
                Vec::new(),
            ))
        })
        .await?;
        Person::from_model(model)
    })
    .await
}

/// Soft-deletes the live person `id` (at `expected_version`, when given) and returns the
/// tombstone. Their activities stay, but leave the feed.
///
/// # Errors
/// `NotFound` (also when already deleted); `VersionMismatch`.
pub async fn delete(db: &impl Writer, id: Uuid, expected_version: Option<i64>) -> Result<Person> {
    db.write(async |db| {
        Person::from_model(store::soft_delete::<person::Entity>(db, id, expected_version).await?)
    })
    .await
}

fn filtered<'a>(
    db: &'a impl TenantHandle,
    filter: &PersonFilter,
) -> Result<Scoped<'a, person::Entity>> {
    let mut scoped = db.find::<person::Entity>();
    if let Some(account_id) = filter.account_id {
        scoped = scoped.filter(person::Column::AccountId.eq(account_id));
    }
    if let Some(stage) = filter.stage {
        scoped = scoped.filter(person::Column::Stage.eq(<&str>::from(stage)));
    }
    if let Some(raw) = &filter.email {
        let email = Email::parse(raw).map_err(|e| Error::Validation(vec![e.at("email")]))?;
        scoped = scoped.filter(person::Column::Email.eq(email.into_inner()));
    }
    Ok(scoped)
}

/// A keyset page of people matching `filter`, in `page.sort` order.
///
/// # Errors
/// `Validation` for an invalid filter email, limit or cursor.
pub async fn list(
    db: &impl TenantHandle,
    filter: &PersonFilter,
    page: &PageRequest,
) -> Result<Page<Person>> {
    let page = store::list(filtered(db, filter)?, page).await?;
    let items = page
        .items
        .into_iter()
        .map(Person::from_model)
        .collect::<Result<_>>()?;
    Ok(Page {
        items,
        next: page.next,
        has_more: page.has_more,
    })
}

/// An offset page of people matching `filter`, by id.
///
/// # Errors
/// `Validation` for an invalid filter, page or page size.
pub async fn list_offset(
    db: &impl TenantHandle,
    filter: &PersonFilter,
    page: &OffsetRequest,
) -> Result<OffsetPage<Person>> {
    let page = store::list_offset(filtered(db, filter)?, page).await?;
    let items = page
        .items
        .into_iter()
        .map(Person::from_model)
        .collect::<Result<_>>()?;
    Ok(OffsetPage {
        items,
        page: page.page,
        per_page: page.per_page,
        has_more: page.has_more,
    })
}

/// The live person `id` with their account, in one joined query.
///
/// # Errors
/// `NotFound` when the person does not exist in this tenant or is deleted.
pub async fn get_with_account(db: &impl TenantHandle, id: Uuid) -> Result<PersonWithAccount> {
    let row = db
        .find::<person::Entity>()
        .filter(person::Column::Id.eq(id))
        .filter(person::Column::DeletedAt.is_null())
        .also::<account::Entity>()
        .one()
        .await?
        .ok_or(Error::not_found(Resource::Person))?;
    PersonWithAccount::from_row(row)
}

/// Like [`list`], each person with their account, read in one joined query.
///
/// # Errors
/// As [`list`].
pub async fn list_with_account(
    db: &impl TenantHandle,
    filter: &PersonFilter,
    page: &PageRequest,
) -> Result<Page<PersonWithAccount>> {
    let rows = store::for_keyset(filtered(db, filter)?, page)?
        .also::<account::Entity>()
        .page(store::keyset::<person::Entity>(page))
        .await?;
    store::keyset_page::<person::Entity, _>(page, rows, |(p, _)| p)
        .try_map(PersonWithAccount::from_row)
}

/// A person with only the name of their account (see [`list_with_account_name`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonWithAccountName {
    /// The person.
    pub person: Person,
    /// The account's name; `None` without an account or when the account is deleted.
    pub account_name: Option<String>,
}

/// [`list_with_account`] with only each account's name.
///
/// # Errors
/// As [`list`].
pub async fn list_with_account_name(
    db: &impl TenantHandle,
    filter: &PersonFilter,
    page: &PageRequest,
) -> Result<Page<PersonWithAccountName>> {
    Ok(list_with_account(db, filter, page)
        .await?
        .map(|row| PersonWithAccountName {
            person: row.person,
            account_name: row.account.map(|a| a.name),
        }))
}

/// Like [`list_offset`], each person with their account, read in one joined query.
///
/// # Errors
/// As [`list_offset`].
pub async fn list_offset_with_account(
    db: &impl TenantHandle,
    filter: &PersonFilter,
    page: &OffsetRequest,
) -> Result<OffsetPage<PersonWithAccount>> {
    let rows = store::for_offset(filtered(db, filter)?, page)?
        .also::<account::Entity>()
        .all()
        .await?;
    store::offset_page(page, rows).try_map(PersonWithAccount::from_row)
}

/// How many live people the account `account_id` has (served by the
/// `(tenant_id, account_id)` index). Zero for an unknown account.
///
/// # Errors
/// Storage failures only.
pub async fn count_for_account(db: &impl TenantHandle, account_id: Uuid) -> Result<u64> {
    Ok(db
        .find::<person::Entity>()
        .filter(person::Column::AccountId.eq(account_id))
        .filter(person::Column::DeletedAt.is_null())
        .count()
        .await?)
}
