//! Bookkeeping for the `sync` and `write` scenarios.
//!
//! [`SyncLedger`] holds what writers were told (the last acknowledged version of each
//! row they changed) and what a sync reader received; at the end it says which
//! acknowledged changes the reader never saw (missed) and which `(id, version)` pairs it
//! received more than once (duplicated). A row changed twice between two polls is
//! legitimately seen only at its later version: a change counts as missed only when the
//! reader's last view of the row is older than the writer's last acknowledgement.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The state of one row as a writer last had it acknowledged, or as the reader last saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RowState {
    version: i64,
    deleted: bool,
}

/// Acknowledged writes against received sync rows.
#[derive(Debug, Default)]
pub struct SyncLedger {
    acked: HashMap<Uuid, RowState>,
    seen: HashMap<Uuid, RowState>,
    pairs: HashSet<(Uuid, i64, bool)>,
    received: u64,
    duplicates: u64,
    duplicate_examples: Vec<(Uuid, i64)>,
}

/// The sync scenario's verdict.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncOutcome {
    /// Rows whose change a writer had acknowledged.
    pub acknowledged_rows: u64,
    /// Rows (with versions) the reader received.
    pub received_rows: u64,
    /// Acknowledged changes the reader never received. Must be 0.
    pub missed: u64,
    /// `(id, version)` pairs received more than once. Must be 0.
    pub duplicated: u64,
    /// A few missed rows: id, acknowledged version, last version seen (if any).
    pub missed_examples: Vec<(Uuid, i64, Option<i64>)>,
    /// A few duplicated `(id, version)` pairs.
    pub duplicate_examples: Vec<(Uuid, i64)>,
    /// Whether the reader caught up (a poll after the last write's safety window
    /// returned nothing more) before its time cap.
    pub caught_up: bool,
}

const EXAMPLES: usize = 10;

impl SyncLedger {
    /// A writer was told row `id` is now at `version` (`deleted`: by a delete).
    pub fn ack(&mut self, id: Uuid, version: i64, deleted: bool) {
        let new = RowState { version, deleted };
        self.acked
            .entry(id)
            .and_modify(|s| {
                if version > s.version || (version == s.version && deleted) {
                    *s = new;
                }
            })
            .or_insert(new);
    }

    /// The reader received row `id` at `version` (`deleted`: a tombstone).
    pub fn see(&mut self, id: Uuid, version: i64, deleted: bool) {
        self.received += 1;
        if !self.pairs.insert((id, version, deleted)) {
            self.duplicates += 1;
            if self.duplicate_examples.len() < EXAMPLES {
                self.duplicate_examples.push((id, version));
            }
        }
        let new = RowState { version, deleted };
        self.seen
            .entry(id)
            .and_modify(|s| {
                if version > s.version || (version == s.version && deleted) {
                    *s = new;
                }
            })
            .or_insert(new);
    }

    /// Compares the two sides.
    pub fn outcome(&self, caught_up: bool) -> SyncOutcome {
        let mut missed = 0;
        let mut missed_examples = Vec::new();
        for (id, acked) in &self.acked {
            let seen = self.seen.get(id);
            // A delete is acknowledged without a version (204): its tombstone is any
            // version at or after the last one the writer knew, with `deleted_at` set.
            let ok =
                seen.is_some_and(|s| s.version >= acked.version && (s.deleted || !acked.deleted));
            if !ok {
                missed += 1;
                if missed_examples.len() < EXAMPLES {
                    missed_examples.push((*id, acked.version, seen.map(|s| s.version)));
                }
            }
        }
        SyncOutcome {
            acknowledged_rows: self.acked.len() as u64,
            received_rows: self.received,
            missed,
            duplicated: self.duplicates,
            missed_examples,
            duplicate_examples: self.duplicate_examples.clone(),
            caught_up,
        }
    }
}

/// The write scenario's idempotency checks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyOutcome {
    /// First POSTs with a fresh key that created a row.
    pub created: u64,
    /// Retries after a failed attempt (transport error, 5xx, 429, 503), same key and body.
    pub retries: u64,
    /// Deliberate replays (same key, same body) answered with the first response.
    pub replays_ok: u64,
    /// Replays answered with a different row or without `Idempotent-Replayed`. Must be 0.
    pub replays_wrong: u64,
    /// Same key with a different body, answered 422 as specified.
    pub conflicts_ok: u64,
    /// Same key with a different body answered otherwise. Must be 0.
    pub conflicts_wrong: u64,
}

impl IdempotencyOutcome {
    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: &Self) {
        self.created += other.created;
        self.retries += other.retries;
        self.replays_ok += other.replays_ok;
        self.replays_wrong += other.replays_wrong;
        self.conflicts_ok += other.conflicts_ok;
        self.conflicts_wrong += other.conflicts_wrong;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_seen_at_its_last_acknowledged_version_is_not_missed() {
        let mut ledger = SyncLedger::default();
        let id = Uuid::now_v7();
        ledger.ack(id, 2, false);
        ledger.ack(id, 3, false);
        // Versions 2 and 3 landed between two polls: the reader sees only 3.
        ledger.see(id, 3, false);
        let out = ledger.outcome(true);
        assert_eq!((out.missed, out.duplicated), (0, 0));
        assert_eq!(out.acknowledged_rows, 1);
    }

    #[test]
    fn a_change_never_received_is_missed() {
        let mut ledger = SyncLedger::default();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        ledger.ack(a, 5, false);
        ledger.see(a, 4, false);
        ledger.ack(b, 1, false);
        let out = ledger.outcome(true);
        assert_eq!(out.missed, 2);
        assert!(out.missed_examples.contains(&(a, 5, Some(4))));
        assert!(out.missed_examples.contains(&(b, 1, None)));
    }

    #[test]
    fn the_same_version_received_twice_is_a_duplicate() {
        let mut ledger = SyncLedger::default();
        let id = Uuid::now_v7();
        ledger.ack(id, 1, false);
        ledger.see(id, 1, false);
        ledger.see(id, 1, false);
        let out = ledger.outcome(true);
        assert_eq!(out.duplicated, 1);
        assert_eq!(out.duplicate_examples, vec![(id, 1)]);
        assert_eq!(out.received_rows, 2);
    }

    #[test]
    fn a_delete_needs_its_tombstone() {
        let mut ledger = SyncLedger::default();
        let id = Uuid::now_v7();
        ledger.ack(id, 1, false);
        ledger.ack(id, 1, true);
        ledger.see(id, 1, false);
        assert_eq!(ledger.outcome(true).missed, 1);
        ledger.see(id, 2, true);
        assert_eq!(ledger.outcome(true).missed, 0);
    }

    #[test]
    fn idempotency_outcomes_add_up() {
        let mut a = IdempotencyOutcome {
            created: 2,
            replays_ok: 1,
            ..Default::default()
        };
        a.merge(&IdempotencyOutcome {
            created: 1,
            conflicts_wrong: 1,
            ..Default::default()
        });
        assert_eq!((a.created, a.replays_ok, a.conflicts_wrong), (3, 1, 1));
    }
}
