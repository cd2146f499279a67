//! The leak check: every row a response returns must belong to the token's tenant.
//!
//! Rows do not carry their tenant id, so ownership is read from two independent marks:
//!
//! - a **marker** in the data: every row the tool checks is seeded (by `tenantry seed`,
//!   by bench.sh's SQL, or by this tool) with text ending in `@<tenant slug>.test` — a
//!   person's email, an account's name, an activity's subject (see [`marked_email`],
//!   [`marked_name`]); a row whose marker names another tenant is foreign;
//! - the **ids** each tenant owns: the ids listed with each tenant's token while the tool
//!   prepared the run, and the ids of the rows each tenant's token created during it; an
//!   id known to be another tenant's is foreign too (this also catches a leak of a row
//!   without a marker, such as a seeded account, whose name carries none).
//!
//! A row is checked as its kind (`person`, `account`, `activity`) and so is every row it
//! embeds: the account a joined read names (`person.account`: its id and
//! `account_name`), an activity's person (`activity.person`). A row with neither mark is
//! counted as `unmarked` (it cannot be judged); an embedded reference with neither mark
//! is skipped. Any foreign row fails the run; the first ones are kept as evidence.

use std::collections::{BTreeMap, HashMap};
use std::sync::{PoisonError, RwLock};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// How many foreign rows are kept as evidence (all are counted).
const MAX_EVIDENCE: usize = 20;

/// The tenant a marked text names: `person1@seed-ab12-0.test` → `seed-ab12-0`,
/// `LT account 3 @seed-ab12-0.test` → `seed-ab12-0`.
pub fn marker(text: Option<&str>) -> Option<&str> {
    let domain = text?.rsplit_once('@')?.1;
    domain.strip_suffix(".test").filter(|slug| !slug.is_empty())
}

/// The marked email for a new person of tenant `slug`.
pub fn marked_email(local: &str, slug: &str) -> String {
    format!("{local}@{slug}.test")
}

/// A marked name (account name, activity subject) for a new row of tenant `slug`.
pub fn marked_name(text: &str, slug: &str) -> String {
    format!("{text} @{slug}.test")
}

/// One row to check: its kind, id and marker text.
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    /// `person`, `account`, `activity`, or an embedded row (`person.account`, …).
    pub kind: &'static str,
    /// Its id.
    pub id: Uuid,
    /// The text carrying its marker (email, name, subject), if any.
    pub marker: Option<&'a str>,
    /// An embedded reference (not a row of its own): skipped when it has no mark.
    pub reference: bool,
}

/// Something a response returns that holds rows to check.
pub trait Marked {
    /// Calls `f` with each row this value is or embeds.
    fn rows(&self, f: &mut dyn FnMut(Row<'_>));
}

/// What the check knows: tenant slugs and which tenant each known id belongs to.
#[derive(Debug, Default)]
pub struct LeakCheck {
    slugs: Vec<String>,
    /// Ids listed with each tenant's token before the run.
    owners: HashMap<Uuid, usize>,
    /// Ids of rows each tenant's token created during the run.
    created: RwLock<HashMap<Uuid, usize>>,
}

/// One foreign row, with what identifies the request that returned it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// The operation (`list_people`, `get_person`, …).
    pub op: String,
    /// The request (method, path and query) that returned the row.
    pub request: String,
    /// The tenant whose token made the request.
    pub token_tenant: String,
    /// The row's kind (`person`, `account`, `activity`, `person.account`, …).
    #[serde(default)]
    pub kind: String,
    /// The foreign row's id.
    pub row_id: Uuid,
    /// The foreign row's marker text (email, name, subject).
    #[serde(alias = "row_email")]
    pub row_marker: Option<String>,
    /// The tenant the marker names, if any.
    pub marker_tenant: Option<String>,
    /// The tenant the id was listed under or created by, if known.
    pub known_owner: Option<String>,
}

/// The check's counters for a run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeakStats {
    /// Rows checked.
    pub checked_rows: u64,
    /// Rows with neither a marker nor a known id: not judged.
    pub unmarked_rows: u64,
    /// Rows of another tenant. Must be 0.
    pub foreign_rows: u64,
    /// Rows checked, by kind.
    #[serde(default)]
    pub by_kind: BTreeMap<String, u64>,
    /// The first foreign rows.
    pub evidence: Vec<Evidence>,
}

impl LeakStats {
    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: &Self) {
        self.checked_rows += other.checked_rows;
        self.unmarked_rows += other.unmarked_rows;
        self.foreign_rows += other.foreign_rows;
        for (kind, n) in &other.by_kind {
            *self.by_kind.entry(kind.clone()).or_default() += n;
        }
        for e in &other.evidence {
            if self.evidence.len() < MAX_EVIDENCE {
                self.evidence.push(e.clone());
            }
        }
    }
}

/// Where the request came from, for the evidence.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    /// The operation.
    pub op: &'a str,
    /// The request line.
    pub request: &'a str,
}

impl LeakCheck {
    /// A check over tenants `slugs` (index = tenant number in the run).
    pub fn new(slugs: Vec<String>) -> Self {
        Self {
            slugs,
            ..Self::default()
        }
    }

    /// Records that `id` was listed with tenant `tenant`'s token.
    pub fn learn(&mut self, tenant: usize, id: Uuid) {
        self.owners.entry(id).or_insert(tenant);
    }

    /// Records that tenant `tenant`'s token created `id` (during the run, from any
    /// worker). Check the created row first: an id already known as another tenant's
    /// stays theirs.
    pub fn learn_created(&self, tenant: usize, id: Uuid) {
        if self.owners.contains_key(&id) {
            return;
        }
        self.created
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(id)
            .or_insert(tenant);
    }

    /// The tenant slug of tenant `tenant`.
    pub fn slug(&self, tenant: usize) -> &str {
        self.slugs.get(tenant).map_or("?", String::as_str)
    }

    fn owner(&self, id: Uuid) -> Option<usize> {
        self.owners.get(&id).copied().or_else(|| {
            self.created
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .get(&id)
                .copied()
        })
    }

    /// Checks every row `value` is or embeds, returned to tenant `tenant`'s token; counts
    /// them in `stats`. Returns how many were foreign.
    pub fn check_value(
        &self,
        stats: &mut LeakStats,
        tenant: usize,
        value: &dyn Marked,
        origin: Origin<'_>,
    ) -> u64 {
        let mut foreign = 0;
        value.rows(&mut |row| {
            if self.check(stats, tenant, row, origin) {
                foreign += 1;
            }
        });
        foreign
    }

    /// Checks one row returned to tenant `tenant`'s token; counts it in `stats`.
    /// Returns whether the row is foreign.
    pub fn check(
        &self,
        stats: &mut LeakStats,
        tenant: usize,
        row: Row<'_>,
        origin: Origin<'_>,
    ) -> bool {
        let own = self.slug(tenant);
        let marker_tenant = marker(row.marker);
        let known_owner = self.owner(row.id);
        if row.reference && marker_tenant.is_none() && known_owner.is_none() {
            return false;
        }
        stats.checked_rows += 1;
        *stats.by_kind.entry(row.kind.to_owned()).or_default() += 1;
        let foreign_marker = marker_tenant.is_some_and(|m| m != own);
        let foreign_id = known_owner.is_some_and(|o| o != tenant);
        if !(foreign_marker || foreign_id) {
            if marker_tenant.is_none() && known_owner.is_none() {
                stats.unmarked_rows += 1;
            }
            return false;
        }
        stats.foreign_rows += 1;
        if stats.evidence.len() < MAX_EVIDENCE {
            stats.evidence.push(Evidence {
                op: origin.op.to_owned(),
                request: origin.request.to_owned(),
                token_tenant: own.to_owned(),
                kind: row.kind.to_owned(),
                row_id: row.id,
                row_marker: row.marker.map(str::to_owned),
                marker_tenant: marker_tenant.map(str::to_owned),
                known_owner: known_owner.map(|o| self.slug(o).to_owned()),
            });
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGIN: Origin<'static> = Origin {
        op: "list_people",
        request: "GET /v1/people?limit=50",
    };

    fn check() -> LeakCheck {
        LeakCheck::new(vec!["seed-a-0".into(), "seed-a-1".into()])
    }

    fn person(id: Uuid, email: Option<&str>) -> Row<'_> {
        Row {
            kind: "person",
            id,
            marker: email,
            reference: false,
        }
    }

    #[test]
    fn the_marker_is_the_domain_without_dot_test_of_an_email_or_a_name() {
        assert_eq!(marker(Some("person1@seed-a-0.test")), Some("seed-a-0"));
        assert_eq!(marker(Some("ada@acme.com")), None);
        assert_eq!(marker(Some("nobody")), None);
        assert_eq!(marker(Some("x@.test")), None);
        assert_eq!(marker(Some("Account 3")), None);
        assert_eq!(marker(None), None);
        assert_eq!(
            marker(Some(&marked_email("lt-1", "seed-a-1"))),
            Some("seed-a-1")
        );
        assert_eq!(
            marker(Some(&marked_name("LT account 7", "seed-a-0"))),
            Some("seed-a-0")
        );
    }

    #[test]
    fn own_rows_pass_and_unmarked_rows_are_counted_apart() {
        let check = check();
        let mut stats = LeakStats::default();
        assert!(!check.check(
            &mut stats,
            0,
            person(Uuid::now_v7(), Some("p1@seed-a-0.test")),
            ORIGIN
        ));
        assert!(!check.check(&mut stats, 0, person(Uuid::now_v7(), None), ORIGIN));
        assert_eq!(stats.checked_rows, 2);
        assert_eq!(stats.unmarked_rows, 1);
        assert_eq!(stats.foreign_rows, 0);
        assert_eq!(stats.by_kind.get("person"), Some(&2));
    }

    #[test]
    fn a_row_marked_for_another_tenant_is_a_leak_with_evidence() {
        let check = check();
        let mut stats = LeakStats::default();
        let id = Uuid::now_v7();
        let row = Row {
            kind: "account",
            id,
            marker: Some("LT account 1 @seed-a-1.test"),
            reference: false,
        };
        assert!(check.check(&mut stats, 0, row, ORIGIN));
        assert_eq!(stats.foreign_rows, 1);
        let e = &stats.evidence[0];
        assert_eq!(e.row_id, id);
        assert_eq!(e.kind, "account");
        assert_eq!(e.token_tenant, "seed-a-0");
        assert_eq!(e.marker_tenant.as_deref(), Some("seed-a-1"));
        assert_eq!(e.request, ORIGIN.request);
    }

    #[test]
    fn an_unmarked_row_known_to_be_another_tenants_is_a_leak() {
        let mut check = check();
        let id = Uuid::now_v7();
        check.learn(1, id);
        let mut stats = LeakStats::default();
        assert!(check.check(&mut stats, 0, person(id, None), ORIGIN));
        assert_eq!(stats.evidence[0].known_owner.as_deref(), Some("seed-a-1"));
        // The same id is fine for its owner.
        assert!(!check.check(&mut stats, 1, person(id, None), ORIGIN));
        assert_eq!(stats.foreign_rows, 1);
    }

    #[test]
    fn ids_created_during_the_run_are_owned_by_their_creator() {
        let mut check = check();
        let listed = Uuid::now_v7();
        check.learn(0, listed);
        let created = Uuid::now_v7();
        check.learn_created(1, created);
        // A listed id keeps its owner even if another tenant claims to have created it.
        check.learn_created(1, listed);
        let mut stats = LeakStats::default();
        assert!(check.check(&mut stats, 0, person(created, None), ORIGIN));
        assert!(!check.check(&mut stats, 1, person(created, None), ORIGIN));
        assert!(check.check(&mut stats, 1, person(listed, None), ORIGIN));
        assert_eq!(stats.foreign_rows, 2);
    }

    #[test]
    fn an_embedded_reference_is_judged_only_when_it_carries_a_mark() {
        let mut check = check();
        let foreign_account = Uuid::now_v7();
        check.learn(1, foreign_account);
        let reference = |id, name| Row {
            kind: "person.account",
            id,
            marker: name,
            reference: true,
        };
        let mut stats = LeakStats::default();
        assert!(!check.check(&mut stats, 0, reference(Uuid::now_v7(), None), ORIGIN));
        assert_eq!((stats.checked_rows, stats.unmarked_rows), (0, 0));
        assert!(check.check(&mut stats, 0, reference(foreign_account, None), ORIGIN));
        assert!(check.check(
            &mut stats,
            0,
            reference(Uuid::now_v7(), Some("LT account @seed-a-1.test")),
            ORIGIN
        ));
        assert_eq!((stats.checked_rows, stats.foreign_rows), (2, 2));
    }

    #[test]
    fn evidence_is_capped_but_every_leak_is_counted() {
        let check = check();
        let mut stats = LeakStats::default();
        for _ in 0..(MAX_EVIDENCE + 5) {
            check.check(
                &mut stats,
                0,
                person(Uuid::now_v7(), Some("x@other.test")),
                ORIGIN,
            );
        }
        assert_eq!(stats.foreign_rows, (MAX_EVIDENCE + 5) as u64);
        assert_eq!(stats.evidence.len(), MAX_EVIDENCE);
        let mut total = LeakStats::default();
        total.merge(&stats);
        total.merge(&stats);
        assert_eq!(total.foreign_rows, 2 * (MAX_EVIDENCE + 5) as u64);
        assert_eq!(total.evidence.len(), MAX_EVIDENCE);
        assert_eq!(
            total.by_kind.get("person"),
            Some(&(2 * (MAX_EVIDENCE + 5) as u64))
        );
    }

    #[test]
    fn old_evidence_with_row_email_still_reads() {
        let json = r#"{"op":"get_person","request":"GET /v1/people/x","token_tenant":"a",
            "row_id":"00000000-0000-0000-0000-000000000000","row_email":"p@b.test",
            "marker_tenant":"b","known_owner":null}"#;
        let e: Result<Evidence, _> = serde_json::from_str(json);
        assert_eq!(
            e.ok().and_then(|e| e.row_marker).as_deref(),
            Some("p@b.test")
        );
    }
}
