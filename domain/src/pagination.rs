//! Paging shared by every list: keyset pages (the default, stable under concurrent
//! writes) and offset pages (for compatibility; cost grows with depth).
//!
//! A keyset page ends at a [`Position`]: a small serializable value naming the last row
//! by its sort key. The API signs it into an opaque cursor; the domain only needs it
//! back to continue.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Error, Result};

/// Rows per page when the caller does not say.
pub const DEFAULT_LIMIT: u64 = 50;
/// The most rows one page may hold.
pub const MAX_LIMIT: u64 = 200;
/// The deepest row an offset page may start at: beyond it, use keyset pages.
pub const MAX_OFFSET: u64 = 10_000;
/// What an offset page costs beyond a keyset page of the same size, by depth: from this
/// many rows skipped, this many more units. The tiers end at [`MAX_OFFSET`], where offset
/// pages end, so no price is quoted for a page that is refused.
pub const OFFSET_SURCHARGES: [(u64, u64); 3] = [(2_500, 2), (5_000, 4), (7_500, 8)];

/// The surcharge of an offset page that skips `skipped` rows (see
/// [`OFFSET_SURCHARGES`]); `None` past [`MAX_OFFSET`], where the page is refused.
pub fn offset_surcharge(skipped: u64) -> Option<u64> {
    (skipped <= MAX_OFFSET).then(|| {
        OFFSET_SURCHARGES
            .iter()
            .rev()
            .find(|(from, _)| skipped >= *from)
            .map_or(0, |(_, extra)| *extra)
    })
}

/// What a keyset list is ordered by (ascending).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SortKey {
    /// By id: creation order, since ids are UUIDv7.
    #[default]
    Id,
    /// By `(updated_at, id)`: the sync order. Every change moves a row strictly forwards,
    /// so a client that keeps walking sees each change.
    UpdatedAt,
}

/// Where a keyset page ended: the sort key of its last row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Position {
    /// After this id ([`SortKey::Id`]).
    Id(Uuid),
    /// After this `(updated_at, id)` ([`SortKey::UpdatedAt`]).
    UpdatedAt(DateTime<Utc>, Uuid),
    /// Before this `(occurred_at, id)`: the activity feed, newest first.
    OccurredAt(DateTime<Utc>, Uuid),
}

/// One keyset page to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// The order; the `after` position must be of the same kind.
    pub sort: SortKey,
    /// Continue after this position (`None`: from the start).
    pub after: Option<Position>,
    /// Rows wanted, 1..=[`MAX_LIMIT`].
    pub limit: u64,
    /// Include soft-deleted rows (tombstones), for sync clients.
    pub include_deleted: bool,
}

impl Default for PageRequest {
    fn default() -> Self {
        Self {
            sort: SortKey::Id,
            after: None,
            limit: DEFAULT_LIMIT,
            include_deleted: false,
        }
    }
}

impl PageRequest {
    /// A sync walk: by `(updated_at, id)`, tombstones included, after `after`.
    pub fn sync(after: Option<Position>) -> Self {
        Self {
            sort: SortKey::UpdatedAt,
            after,
            include_deleted: true,
            ..Self::default()
        }
    }

    /// The same request with `limit` rows.
    #[must_use]
    pub fn limit(self, limit: u64) -> Self {
        Self { limit, ..self }
    }

    pub(crate) fn check(&self) -> Result<()> {
        check_limit(self.limit)?;
        match (self.sort, self.after) {
            (_, None)
            | (SortKey::Id, Some(Position::Id(_)))
            | (SortKey::UpdatedAt, Some(Position::UpdatedAt(..))) => Ok(()),
            _ => Err(Error::invalid(
                "cursor",
                "cursor_mismatch",
                "the cursor belongs to a different sort order",
            )),
        }
    }
}

pub(crate) fn check_limit(limit: u64) -> Result<()> {
    if (1..=MAX_LIMIT).contains(&limit) {
        Ok(())
    } else {
        Err(Error::invalid(
            "limit",
            "out_of_range",
            format!("must be between 1 and {MAX_LIMIT}"),
        ))
    }
}

/// One keyset page.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The rows, at most the requested limit.
    pub items: Vec<T>,
    /// Where to continue: the last row's position, or — on an empty page — the
    /// position the request started after, so a sync client never loses its place.
    pub next: Option<Position>,
    /// Whether more rows followed when this page was read.
    pub has_more: bool,
}

impl<T> Page<T> {
    /// The same page with each item converted.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            next: self.next,
            has_more: self.has_more,
        }
    }

    /// The same page with each item converted by a conversion that may fail (a stored
    /// row that does not read back); the first failure is the page's.
    ///
    /// # Errors
    /// The first error of `f`.
    pub fn try_map<U>(self, f: impl FnMut(T) -> Result<U>) -> Result<Page<U>> {
        Ok(Page {
            items: self.items.into_iter().map(f).collect::<Result<_>>()?,
            next: self.next,
            has_more: self.has_more,
        })
    }
}

/// The sync safety window's default (`TENANTRY_SYNC_SAFETY_WINDOW_MS`): longer than any
/// write transaction of this API, which are short and bounded by the request timeout's
/// share spent in the database.
pub const DEFAULT_SYNC_SAFETY_WINDOW: std::time::Duration = std::time::Duration::from_secs(2);

/// Sync mode's safety window, applied to a page read in `(updated_at, id)` order: rows
/// changed after `cutoff` (now less the window) are held back, and the page ends at the
/// last row before them, with no more to read for now.
///
/// Why: `updated_at` is taken when a write runs, not when it commits. A transaction that
/// commits late can make visible a row older than rows a client already synced past; a
/// cursor that moved beyond it would never see it. Rows younger than the window may still
/// have such siblings in flight, so the walk stops before them and resumes from the last
/// settled row (or where it started, when none is settled). The window must exceed the
/// longest write transaction.
pub fn hold_back_unsettled<T>(
    page: &mut Page<T>,
    request: &PageRequest,
    cutoff: DateTime<Utc>,
    updated: impl Fn(&T) -> (DateTime<Utc>, Uuid),
) {
    let Some(first_unsettled) = page.items.iter().position(|row| updated(row).0 > cutoff) else {
        return;
    };
    page.items.truncate(first_unsettled);
    page.has_more = false;
    page.next = page
        .items
        .last()
        .map(|row| {
            let (at, id) = updated(row);
            Position::UpdatedAt(at, id)
        })
        .or(request.after);
}

/// One offset page to read, by id order. Deep pages cost more: prefer keyset pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetRequest {
    /// The page number, from 1.
    pub page: u64,
    /// Rows per page, 1..=[`MAX_LIMIT`].
    pub per_page: u64,
    /// Include soft-deleted rows.
    pub include_deleted: bool,
}

impl Default for OffsetRequest {
    fn default() -> Self {
        Self {
            page: 1,
            per_page: DEFAULT_LIMIT,
            include_deleted: false,
        }
    }
}

impl OffsetRequest {
    /// Rows to skip; refuses page 0 and pages starting beyond [`MAX_OFFSET`].
    pub(crate) fn offset(&self) -> Result<u64> {
        if let Err(Error::Validation(mut errors)) = check_limit(self.per_page) {
            errors[0].field = "per_page".into();
            return Err(Error::Validation(errors));
        }
        let offset = self
            .page
            .checked_sub(1)
            .and_then(|p| p.checked_mul(self.per_page));
        match offset {
            None if self.page == 0 => Err(Error::invalid(
                "page",
                "out_of_range",
                "pages are numbered from 1",
            )),
            Some(offset) if offset <= MAX_OFFSET => Ok(offset),
            _ => Err(Error::invalid(
                "page",
                "too_deep",
                format!("offset pages end at row {MAX_OFFSET}; use cursor pagination"),
            )),
        }
    }
}

/// One offset page.
#[derive(Debug, Clone, PartialEq)]
pub struct OffsetPage<T> {
    /// The rows.
    pub items: Vec<T>,
    /// The page number, from 1.
    pub page: u64,
    /// The requested page size.
    pub per_page: u64,
    /// Whether another page follows.
    pub has_more: bool,
}

impl<T> OffsetPage<T> {
    /// The same page with each item converted.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> OffsetPage<U> {
        OffsetPage {
            items: self.items.into_iter().map(f).collect(),
            page: self.page,
            per_page: self.per_page,
            has_more: self.has_more,
        }
    }

    /// [`Page::try_map`] for an offset page.
    ///
    /// # Errors
    /// The first error of `f`.
    pub fn try_map<U>(self, f: impl FnMut(T) -> Result<U>) -> Result<OffsetPage<U>> {
        Ok(OffsetPage {
            items: self.items.into_iter().map(f).collect::<Result<_>>()?,
            page: self.page,
            per_page: self.per_page,
            has_more: self.has_more,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_safety_window_holds_back_unsettled_rows_and_keeps_the_place() {
        let t = |s: i64| DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap_or_default();
        let rows = |ats: &[i64]| -> Vec<(DateTime<Utc>, Uuid)> {
            ats.iter()
                .map(|s| (t(*s), Uuid::from_u128(*s as u128)))
                .collect()
        };
        let request = PageRequest {
            after: Some(Position::UpdatedAt(t(0), Uuid::nil())),
            ..PageRequest::default()
        };
        // Two settled rows, then an unsettled one: the page ends at the second.
        let mut page = Page {
            items: rows(&[1, 2, 10]),
            next: None,
            has_more: true,
        };
        hold_back_unsettled(&mut page, &request, t(5), |r| *r);
        assert_eq!(page.items.len(), 2);
        assert!(!page.has_more);
        assert_eq!(
            page.next,
            Some(Position::UpdatedAt(t(2), Uuid::from_u128(2)))
        );
        // Nothing settled: the client stays where it was.
        let mut page = Page {
            items: rows(&[8, 9]),
            next: None,
            has_more: false,
        };
        hold_back_unsettled(&mut page, &request, t(5), |r| *r);
        assert!(page.items.is_empty());
        assert_eq!(page.next, request.after);
        // Everything settled: unchanged.
        let mut page = Page {
            items: rows(&[1, 2]),
            next: None,
            has_more: true,
        };
        hold_back_unsettled(&mut page, &request, t(5), |r| *r);
        assert_eq!((page.items.len(), page.has_more), (2, true));
    }

    #[test]
    fn a_page_request_checks_its_limit_and_that_the_cursor_matches_the_sort() {
        assert!(PageRequest::default().check().is_ok());
        assert!(PageRequest::default().limit(0).check().is_err());
        assert!(PageRequest::default().limit(MAX_LIMIT + 1).check().is_err());
        let mismatch = PageRequest {
            after: Some(Position::UpdatedAt(Utc::now(), Uuid::nil())),
            ..PageRequest::default()
        };
        assert!(
            matches!(mismatch.check(), Err(Error::Validation(e)) if e[0].code == "cursor_mismatch")
        );
        assert!(
            PageRequest::sync(Some(Position::UpdatedAt(Utc::now(), Uuid::nil())))
                .check()
                .is_ok()
        );
    }

    #[test]
    fn offset_pages_start_at_one_and_stop_at_the_maximum_depth() {
        let at = |page, per_page| {
            OffsetRequest {
                page,
                per_page,
                include_deleted: false,
            }
            .offset()
        };
        assert_eq!(at(1, 50).ok(), Some(0));
        assert_eq!(at(3, 20).ok(), Some(40));
        assert!(matches!(at(0, 50), Err(Error::Validation(e)) if e[0].field == "page"));
        assert!(matches!(at(1, 0), Err(Error::Validation(e)) if e[0].field == "per_page"));
        assert!(matches!(at(u64::MAX, 200), Err(Error::Validation(e)) if e[0].code == "too_deep"));
    }

    #[test]
    fn a_position_round_trips_through_json() {
        let position = Position::UpdatedAt(Utc::now(), Uuid::now_v7());
        let json = serde_json::to_string(&position).unwrap_or_default();
        assert_eq!(serde_json::from_str::<Position>(&json).ok(), Some(position));
    }
}
