//! Generic reads and writes over [`Tracked`] entities: the one place where get,
//! keyset/offset lists, versioned updates and soft deletes are written; and [`Writer`],
//! the handle every public write takes, so that no write runs in autocommit.

use chrono::{DateTime, Utc};
use tenancy::{ColumnExt, Keyset, Scoped, TenantDb, TenantHandle, TenantTxn, Value};
use uuid::Uuid;

use crate::entity::Tracked;
use crate::error::{Error, Result};
use crate::pagination::{OffsetPage, OffsetRequest, Page, PageRequest, Position, SortKey};
use crate::time;

/// How many times an update without an expected version re-reads and retries when a
/// concurrent change wins the race for the row.
const RETRIES: usize = 5;

mod sealed {
    pub trait Sealed {}
    impl Sealed for tenancy::TenantDb {}
    impl Sealed for tenancy::TenantTxn {}
}

/// The handle every public write of this crate takes: each write runs in an explicit
/// transaction whose commit is checked, never in autocommit.
///
/// - On a [`TenantDb`], the write opens its own transaction and commits it; the write
///   returns `Ok` only when the commit did. (On SQLite, a row read back by `INSERT …
///   RETURNING` in autocommit can reach the caller before the implicit commit fails —
///   disk full, I/O error — so a 2xx could stand for a write that is not durable.)
/// - On a [`TenantTxn`], the write joins the caller's transaction (composing several
///   writes atomically, or an idempotent create with its stored response: see
///   [`crate::idempotency::once`]); the caller commits, and dropping the transaction
///   uncommitted rolls every write of it back.
///
/// Sealed: implemented by those two handles only.
pub trait Writer: sealed::Sealed + Sync {
    /// Runs `write` in a transaction: a new one, committed (and the commit checked)
    /// when `write` succeeds, on a [`TenantDb`]; the caller's own on a [`TenantTxn`].
    /// An error of `write` (or a dropped future) rolls a new transaction back.
    fn write<T>(
        &self,
        write: impl AsyncFnOnce(&TenantTxn) -> Result<T>,
    ) -> impl Future<Output = Result<T>>;
}

impl Writer for TenantDb {
    async fn write<T>(&self, write: impl AsyncFnOnce(&TenantTxn) -> Result<T>) -> Result<T> {
        let txn = self.begin().await?;
        match write(&txn).await {
            Ok(value) => {
                txn.commit().await?;
                Ok(value)
            }
            Err(error) => {
                rollback(txn).await;
                Err(error)
            }
        }
    }
}

impl Writer for TenantTxn {
    async fn write<T>(&self, write: impl AsyncFnOnce(&TenantTxn) -> Result<T>) -> Result<T> {
        write(self).await
    }
}

/// Rolls `txn` back after a failed write. A failing rollback is only logged: the write's
/// own error is the one to report, and a transaction that cannot be rolled back (a lost
/// connection) is rolled back by the database.
pub(crate) async fn rollback(txn: TenantTxn) {
    if let Err(error) = txn.rollback().await {
        tracing::warn!(error = %error, "rollback after a failed write failed");
    }
}

/// The live (not deleted) row `id`, or `NotFound`.
pub(crate) async fn get<E: Tracked>(db: &impl TenantHandle, id: Uuid) -> Result<E::Model> {
    db.find::<E>()
        .filter(E::ID.eq(id))
        .filter(E::DELETED_AT.is_null())
        .one()
        .await?
        .ok_or(Error::not_found(E::RESOURCE))
}

/// The live row `id` for a patch that changes nothing: checked against
/// `expected_version` like a write, but nothing is written (no version bump, no sync noise).
pub(crate) async fn unchanged<E: Tracked>(
    db: &impl TenantHandle,
    id: Uuid,
    expected_version: Option<i64>,
) -> Result<E::Model> {
    let current = get::<E>(db, id).await?;
    let version = E::meta(&current).version;
    match expected_version {
        Some(expected) if expected != version => Err(Error::VersionMismatch {
            resource: E::RESOURCE,
            expected,
            current: version,
        }),
        _ => Ok(current),
    }
}

/// Checks that input `field` references a live row of this tenant: another tenant's
/// row, a deleted one and a missing one are all "not found", never a foreign-key error.
///
/// The row is read `FOR SHARE`, so it stays live until the write that references it
/// commits: a concurrent deletion of it waits, then sees the new reference (and unlinks
/// it, see [`unlink`]); a deletion that came first makes this check wait for it and then
/// answer "not found". Without the lock, on PostgreSQL a person created at the moment
/// its account was deleted could commit after the unlink and point at a tombstone. Call
/// it inside the write's transaction.
pub(crate) async fn referenced<E: Tracked>(
    db: &impl TenantHandle,
    id: Uuid,
    field: &'static str,
) -> Result<()> {
    let live = db
        .find::<E>()
        .filter(E::ID.eq(id))
        .filter(E::DELETED_AT.is_null())
        .for_share()
        .one()
        .await?;
    match live {
        Some(_) => Ok(()),
        None => Err(Error::missing_reference(E::RESOURCE, field)),
    }
}

/// [`referenced`] for an optional reference.
pub(crate) async fn referenced_opt<E: Tracked>(
    db: &impl TenantHandle,
    id: Option<Uuid>,
    field: &'static str,
) -> Result<()> {
    match id {
        Some(id) => referenced::<E>(db, id, field).await,
        None => Ok(()),
    }
}

/// The position of a row in `sort` order.
pub(crate) fn position<E: Tracked>(sort: SortKey, model: &E::Model) -> Position {
    let meta = E::meta(model);
    match sort {
        SortKey::Id => Position::Id(meta.id),
        SortKey::UpdatedAt => Position::UpdatedAt(meta.updated_at, meta.id),
    }
}

/// The key columns of `sort`: unique together (they end with the id), so a walk
/// visits each row exactly once.
pub(crate) fn key_columns<E: Tracked>(sort: SortKey) -> Vec<E::Column> {
    match sort {
        SortKey::Id => vec![E::ID],
        SortKey::UpdatedAt => vec![E::UPDATED_AT, E::ID],
    }
}

/// The key values of `position`, in key-column order.
pub(crate) fn key_values(position: Position) -> Vec<Value> {
    match position {
        Position::Id(id) => vec![id.into()],
        Position::UpdatedAt(at, id) | Position::OccurredAt(at, id) => vec![at.into(), id.into()],
    }
}

/// The key columns of `sort`, and the values of `position` for them.
fn keyset_parts<E: Tracked>(
    sort: SortKey,
    after: Option<Position>,
) -> (Vec<E::Column>, Option<Vec<Value>>) {
    (key_columns::<E>(sort), after.map(key_values))
}

/// The keyset of `request` over `E` (its sort's key columns, continuing after its
/// position), for the tenancy crate's `page` on plain and joined reads alike.
pub(crate) fn keyset<E: Tracked>(request: &PageRequest) -> Keyset<E> {
    let (columns, after) = keyset_parts::<E>(request.sort, request.after);
    Keyset::asc(columns).after(after).limit(request.limit)
}

/// `scoped` without tombstones, unless `include_deleted` (sync reads).
pub(crate) fn live<E: Tracked>(scoped: Scoped<'_, E>, include_deleted: bool) -> Scoped<'_, E> {
    if include_deleted {
        scoped
    } else {
        scoped.filter(E::DELETED_AT.is_null())
    }
}

/// `scoped` (already filtered) ready for a keyset page of `request`: the request checked,
/// tombstones dropped unless it asks for them. Run it with `page(keyset(request))`, alone
/// or joined (`also`), and finish with [`keyset_page`].
pub(crate) fn for_keyset<'a, E: Tracked>(
    scoped: Scoped<'a, E>,
    request: &PageRequest,
) -> Result<Scoped<'a, E>> {
    request.check()?;
    Ok(live(scoped, request.include_deleted))
}

/// The page of `rows` read by a keyset walk of `request`: `row` picks each item's `E`
/// row, whose position continues the walk (on an empty page, where it started).
pub(crate) fn keyset_page<E: Tracked, T>(
    request: &PageRequest,
    rows: tenancy::Page<T>,
    row: impl Fn(&T) -> &E::Model,
) -> Page<T> {
    let next = rows
        .rows
        .last()
        .map(|item| position::<E>(request.sort, row(item)))
        .or(request.after);
    Page {
        items: rows.rows,
        next,
        has_more: rows.has_more,
    }
}

/// A keyset page of `scoped` (already filtered) in `request` order.
pub(crate) async fn list<E>(scoped: Scoped<'_, E>, request: &PageRequest) -> Result<Page<E::Model>>
where
    E: Tracked,
{
    let rows = for_keyset(scoped, request)?
        .page(keyset::<E>(request))
        .await?;
    Ok(keyset_page::<E, _>(request, rows, |row| row))
}

/// `scoped` (already filtered) narrowed to the offset page `request` asks for, by id, with
/// one row more (to learn whether another page follows). Run it with `all`, alone or
/// joined (`also`), and finish with [`offset_page`].
///
/// # Errors
/// `Validation` for a page 0, a bad page size or a page past the deepest offset.
pub(crate) fn for_offset<'a, E: Tracked>(
    scoped: Scoped<'a, E>,
    request: &OffsetRequest,
) -> Result<Scoped<'a, E>> {
    let offset = request.offset()?;
    Ok(live(scoped, request.include_deleted)
        .order_by_asc(E::ID)
        .offset(offset)
        .limit(request.per_page + 1))
}

/// The offset page of `rows`, read by [`for_offset`].
pub(crate) fn offset_page<T>(request: &OffsetRequest, mut rows: Vec<T>) -> OffsetPage<T> {
    let has_more = rows.len() as u64 > request.per_page;
    rows.truncate(usize::try_from(request.per_page).unwrap_or(usize::MAX));
    OffsetPage {
        items: rows,
        page: request.page,
        per_page: request.per_page,
        has_more,
    }
}

/// An offset page of `scoped` (already filtered), by id.
pub(crate) async fn list_offset<E: Tracked>(
    scoped: Scoped<'_, E>,
    request: &OffsetRequest,
) -> Result<OffsetPage<E::Model>> {
    let rows = for_offset(scoped, request)?.all().await?;
    Ok(offset_page(request, rows))
}

/// Changes the live row `id`: `change` turns the current row and the new `updated_at`
/// into the columns to set — the entity's active model (typed fields) plus columns set
/// by name (generic bookkeeping such as a tombstone's `deleted_at`); `version` and
/// `updated_at` are bumped here.
///
/// The write is guarded by the version that was read (`WHERE version = $read`), so the
/// `updated_at` computed from the read row (see [`time::next_updated_at`]) is still the
/// row's latest when the write lands. With `expected_version`, a different current
/// version is a [`Error::VersionMismatch`] and nothing is written; without one, a
/// concurrent change that wins the race is simply re-read and the change re-applied.
pub(crate) async fn update<E>(
    db: &impl TenantHandle,
    id: Uuid,
    expected_version: Option<i64>,
    change: impl Fn(&E::Model, DateTime<Utc>) -> Result<(E::ActiveModel, Vec<(E::Column, Value)>)>,
) -> Result<E::Model>
where
    E: Tracked,
{
    for _ in 0..RETRIES {
        let current = get::<E>(db, id).await?;
        let meta = E::meta(&current);
        if let Some(expected) = expected_version
            && expected != meta.version
        {
            return Err(Error::VersionMismatch {
                resource: E::RESOURCE,
                expected,
                current: meta.version,
            });
        }
        let updated_at = time::next_updated_at(meta.updated_at);
        let (model, columns) = change(&current, updated_at)?;
        let mut update = db
            .update(model)
            .set(E::ID, id)
            .set(E::VERSION, meta.version + 1)
            .set(E::UPDATED_AT, updated_at)
            .filter(E::VERSION.eq(meta.version));
        for (column, value) in columns {
            update = update.set(column, value);
        }
        match update.exec().await {
            Ok(updated) => return Ok(updated),
            // The guard missed: someone changed (or deleted) the row since the read.
            Err(tenancy::Error::NotFound { .. }) => {}
            Err(other) => return Err(other.into()),
        }
        if let Some(expected) = expected_version {
            let current = get::<E>(db, id).await?;
            return Err(Error::VersionMismatch {
                resource: E::RESOURCE,
                expected,
                current: E::meta(&current).version,
            });
        }
    }
    Err(Error::Contention {
        resource: E::RESOURCE,
    })
}

/// Soft-deletes the live row `id`: sets `deleted_at` (to the new `updated_at`) and bumps
/// the version, leaving a tombstone that sync lists return and every other read skips.
///
/// Rows that reference it are not touched here; each delete decides (the contract, one
/// line per reference of the schema):
/// - `people.account_id` → an account: cleared by [`unlink`] in the deleting transaction
///   (`accounts::delete`), so no live person names a deleted account.
/// - `activities.person_id` → a person: kept (`NOT NULL`: an activity is always with
///   someone). The activity stays readable and listed with that `person_id`, whose `GET`
///   is a 404 and whose tombstone sync lists return; the feed, which joins live people,
///   leaves it out.
/// - `accounts.owner_id`, `activities.user_id` → a user: no operation deletes a user yet;
///   one that does must decide these two.
pub(crate) async fn soft_delete<E>(
    db: &impl TenantHandle,
    id: Uuid,
    expected_version: Option<i64>,
) -> Result<E::Model>
where
    E: Tracked,
{
    update::<E>(db, id, expected_version, |_, updated_at| {
        Ok((
            E::ActiveModel::default(),
            vec![(E::DELETED_AT, Some(updated_at).into())],
        ))
    })
    .await
}

/// Clears the reference `column = target` on every live row of `E` that holds it (when
/// `target`, the row it names, is deleted), each cleared row changing like any other
/// change: `version` + 1 and `updated_at` moved strictly forwards, to `at` (the
/// tombstone's time, so a sync walk sees the unlink no earlier than the deletion) or, for
/// a row already at or past `at`, to its own next instant. Tombstones keep their
/// reference: they are the row as it was deleted. Returns how many rows were unlinked.
///
/// One scoped statement for every row stamped before `at` — `UPDATE … SET column = NULL,
/// version = version + 1, updated_at = at WHERE column = target AND deleted_at IS NULL
/// AND updated_at < at` — however many rows the target had; then a guarded single-row
/// update for each row whose `updated_at` is not before `at` (a change in the same
/// microsecond, or a server whose clock ran ahead), which moves it to its own next
/// instant. Run it in the deleting write's transaction.
pub(crate) async fn unlink<E>(
    db: &impl TenantHandle,
    column: E::Column,
    target: Uuid,
    at: DateTime<Utc>,
) -> Result<u64>
where
    E: Tracked,
{
    let mut unlinked = db
        .update_many::<E>()
        .set(column, None::<Uuid>)
        .increment(E::VERSION, 1)
        .set(E::UPDATED_AT, at)
        .filter(column.eq(target))
        .filter(E::DELETED_AT.is_null())
        .filter(E::UPDATED_AT.lt(at))
        .exec()
        .await?;
    let mut misses = 0;
    while let Some(row) = db
        .find::<E>()
        .filter(column.eq(target))
        .filter(E::DELETED_AT.is_null())
        .one()
        .await?
    {
        let meta = E::meta(&row);
        // Guarded by the version read, so it clears this very link or nothing (never a
        // link the row was given since).
        let cleared = update::<E>(db, meta.id, Some(meta.version), |_, _| {
            Ok((
                E::ActiveModel::default(),
                vec![(column, None::<Uuid>.into())],
            ))
        })
        .await;
        match cleared {
            Ok(_) => {
                misses = 0;
                unlinked += 1;
            }
            // Only a concurrent change of the row read can make it miss.
            Err(Error::VersionMismatch { .. } | Error::NotFound { .. }) => {
                misses += 1;
                if misses == RETRIES {
                    return Err(Error::Contention {
                        resource: E::RESOURCE,
                    });
                }
            }
            Err(other) => return Err(other),
        }
    }
    Ok(unlinked)
}

pub(crate) use tenancy::set_if as patched;
