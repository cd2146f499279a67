//! The leak check: every row a response returns must belong to the token's tenant.
//!
//! Rows do not carry their tenant id, so ownership is read from two independent marks:
//!
//! - a **marker** in the data: every person the tool checks is seeded (by
//!   `tenantry seed`, by bench.sh's SQL, or by this tool's writers) with an email at
//!   `@<tenant slug>.test`; a row whose marker names another tenant is foreign;
//! - the **ids seen** while the tool prepared the run: each tenant's ids were listed
//!   with that tenant's token, so an id known to be another tenant's is foreign too
//!   (this also catches a leak of a row without an email).
//!
//! A row with neither mark is counted as `unmarked` (it cannot be judged). Any foreign
//! row fails the run; the first ones are kept as evidence.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// How many foreign rows are kept as evidence (all are counted).
const MAX_EVIDENCE: usize = 20;

/// The tenant a marked email names: `person1@seed-ab12-0.test` → `seed-ab12-0`.
pub fn marker(email: Option<&str>) -> Option<&str> {
    let domain = email?.rsplit_once('@')?.1;
    domain.strip_suffix(".test").filter(|slug| !slug.is_empty())
}

/// The marked email for a new row of tenant `slug`.
pub fn marked_email(local: &str, slug: &str) -> String {
    format!("{local}@{slug}.test")
}

/// What the check knows: tenant slugs and which tenant each known id belongs to.
#[derive(Debug, Default, Clone)]
pub struct LeakCheck {
    slugs: Vec<String>,
    owners: HashMap<Uuid, usize>,
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
    /// The foreign row's id.
    pub row_id: Uuid,
    /// The foreign row's email (its marker).
    pub row_email: Option<String>,
    /// The tenant the marker names, if any.
    pub marker_tenant: Option<String>,
    /// The tenant the id was listed under while preparing, if known.
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
    /// The first foreign rows.
    pub evidence: Vec<Evidence>,
}

impl LeakStats {
    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: &Self) {
        self.checked_rows += other.checked_rows;
        self.unmarked_rows += other.unmarked_rows;
        self.foreign_rows += other.foreign_rows;
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
            owners: HashMap::new(),
        }
    }

    /// Records that `id` was listed with tenant `tenant`'s token.
    pub fn learn(&mut self, tenant: usize, id: Uuid) {
        self.owners.entry(id).or_insert(tenant);
    }

    /// The tenant slug of tenant `tenant`.
    pub fn slug(&self, tenant: usize) -> &str {
        self.slugs.get(tenant).map_or("?", String::as_str)
    }

    /// Checks one row returned to tenant `tenant`'s token; counts it in `stats`.
    /// Returns whether the row is foreign.
    pub fn check(
        &self,
        stats: &mut LeakStats,
        tenant: usize,
        row_id: Uuid,
        row_email: Option<&str>,
        origin: Origin<'_>,
    ) -> bool {
        stats.checked_rows += 1;
        let own = self.slug(tenant);
        let marker_tenant = marker(row_email);
        let known_owner = self.owners.get(&row_id).copied();
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
                row_id,
                row_email: row_email.map(str::to_owned),
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

    #[test]
    fn the_marker_is_the_email_domain_without_dot_test() {
        assert_eq!(marker(Some("person1@seed-a-0.test")), Some("seed-a-0"));
        assert_eq!(marker(Some("ada@acme.com")), None);
        assert_eq!(marker(Some("nobody")), None);
        assert_eq!(marker(Some("x@.test")), None);
        assert_eq!(marker(None), None);
        assert_eq!(
            marker(Some(&marked_email("lt-1", "seed-a-1"))),
            Some("seed-a-1")
        );
    }

    #[test]
    fn own_rows_pass_and_unmarked_rows_are_counted_apart() {
        let check = check();
        let mut stats = LeakStats::default();
        assert!(!check.check(
            &mut stats,
            0,
            Uuid::now_v7(),
            Some("p1@seed-a-0.test"),
            ORIGIN
        ));
        assert!(!check.check(&mut stats, 0, Uuid::now_v7(), None, ORIGIN));
        assert_eq!(stats.checked_rows, 2);
        assert_eq!(stats.unmarked_rows, 1);
        assert_eq!(stats.foreign_rows, 0);
    }

    #[test]
    fn a_row_marked_for_another_tenant_is_a_leak_with_evidence() {
        let check = check();
        let mut stats = LeakStats::default();
        let id = Uuid::now_v7();
        assert!(check.check(&mut stats, 0, id, Some("p9@seed-a-1.test"), ORIGIN));
        assert_eq!(stats.foreign_rows, 1);
        let e = &stats.evidence[0];
        assert_eq!(e.row_id, id);
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
        assert!(check.check(&mut stats, 0, id, None, ORIGIN));
        assert_eq!(stats.evidence[0].known_owner.as_deref(), Some("seed-a-1"));
        // The same id is fine for its owner.
        assert!(!check.check(&mut stats, 1, id, None, ORIGIN));
        assert_eq!(stats.foreign_rows, 1);
    }

    #[test]
    fn evidence_is_capped_but_every_leak_is_counted() {
        let check = check();
        let mut stats = LeakStats::default();
        for _ in 0..(MAX_EVIDENCE + 5) {
            check.check(&mut stats, 0, Uuid::now_v7(), Some("x@other.test"), ORIGIN);
        }
        assert_eq!(stats.foreign_rows, (MAX_EVIDENCE + 5) as u64);
        assert_eq!(stats.evidence.len(), MAX_EVIDENCE);
        let mut total = LeakStats::default();
        total.merge(&stats);
        total.merge(&stats);
        assert_eq!(total.foreign_rows, 2 * (MAX_EVIDENCE + 5) as u64);
        assert_eq!(total.evidence.len(), MAX_EVIDENCE);
    }
}
