//! The in-process backend: GCRA state in a sharded `Mutex<HashMap>`.
//!
//! Why not `governor`: its cells are single-policy and its `check_n` admits a batch against
//! one limiter. Coupling two policies so that a refusal by either charges neither would
//! mean check-then-undo across two limiters — racy — and its headers would need numbers
//! it does not expose. The algorithm here is a few lines (`gcra.rs`) shared with the Lua
//! script, so both backends answer alike.
//!
//! Sharding is by the request's hash tag (the tenant, or the client IP), so one lock covers
//! both of a request's keys, exactly as one Redis Cluster slot does. A shard forgets keys
//! whose budget is full again (their state carries no information) on a sweep every
//! [`SWEEP_EVERY`] writes, so idle keys do not accumulate; no background task is needed.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Mutex, PoisonError};

use crate::decision::{Decision, Source};
use crate::gcra::{self, MAX_POLICIES, Mode, Tat};
use crate::policy::{PolicySet, StorageKeys};
use std::sync::Arc;

/// Writes to a shard between two sweeps of its idle keys.
const SWEEP_EVERY: u32 = 4_096;

#[derive(Debug, Default)]
struct Shard {
    /// Storage key → its theoretical arrival time. A key absent has a full budget.
    tats: HashMap<String, Tat>,
    /// Writes since the last sweep.
    writes: u32,
}

impl Shard {
    fn sweep(&mut self, now_us: i64) {
        self.tats.retain(|_, tat| tat.us >= now_us);
        self.writes = 0;
    }
}

/// The in-process GCRA store.
#[derive(Debug)]
pub(crate) struct MemoryBackend {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
}

impl MemoryBackend {
    pub(crate) fn new() -> MemoryBackend {
        // A few shards per core keep lock contention negligible; a power of two for masking.
        let cores = std::thread::available_parallelism().map_or(4, usize::from);
        let n = (cores * 8).next_power_of_two().max(16);
        MemoryBackend {
            shards: (0..n).map(|_| Mutex::new(Shard::default())).collect(),
            hasher: RandomState::new(),
        }
    }

    /// Evaluates `cost` against `set` for the request whose keys are `keys`, at `now_us`.
    pub(crate) fn decide(
        &self,
        set: &Arc<PolicySet>,
        keys: &StorageKeys,
        cost: u64,
        mode: Mode,
        now_us: i64,
        source: Source,
    ) -> Decision {
        let limits = set.limits();
        let index =
            usize::try_from(self.hasher.hash_one(&keys.tag)).unwrap_or(0) & (self.shards.len() - 1);
        // A panic while holding the lock cannot leave a half-written state (each insert is
        // whole), so a poisoned shard is still consistent.
        let mut shard = self.shards[index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);

        let mut debts = [0; MAX_POLICIES];
        for (i, key) in keys.keys().iter().enumerate() {
            debts[i] = shard.tats.get(key).map_or(0, |t| t.debt(now_us, limits[i]));
        }
        let cost_i = i64::try_from(cost).unwrap_or(i64::MAX);
        let out = gcra::evaluate(&debts[..limits.len()], limits, cost_i, mode);
        if out.allowed && cost > 0 {
            for (i, key) in keys.keys().iter().enumerate() {
                match Tat::from_debt(out.debts[i], now_us, limits[i]) {
                    Some(tat) => match shard.tats.get_mut(key) {
                        Some(slot) => *slot = tat,
                        None => {
                            shard.tats.insert(key.clone(), tat);
                        }
                    },
                    None => {
                        shard.tats.remove(key);
                    }
                }
            }
            shard.writes += 1;
            if shard.writes >= SWEEP_EVERY {
                shard.sweep(now_us);
            }
        }
        drop(shard);
        Decision::from_outcome(set, &out, cost, source)
    }

    /// Keys currently held, across shards (tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).tats.len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Key, Policies, Policy};
    use std::time::Duration;

    fn policies() -> Policies {
        let minute = Duration::from_secs(60);
        Policies::new(
            Policy::new("tenant", 10, minute).expect("valid"),
            Policy::new("credential", 4, minute).expect("valid"),
            Policy::new("ip", 3, minute).expect("valid"),
        )
        .expect("valid")
    }

    #[test]
    fn a_refusal_by_the_credential_leaves_the_tenant_uncharged() {
        let backend = MemoryBackend::new();
        let p = policies();
        let key = Key::Credential {
            tenant: "t",
            credential: "c",
        };
        let set = p.set_for(&key);
        let keys = key.storage_keys("");
        let d = backend.decide(set, &keys, 4, Mode::Check, 0, Source::Memory);
        assert!(d.allowed());
        let d = backend.decide(set, &keys, 1, Mode::Check, 0, Source::Memory);
        assert!(!d.allowed());
        let remaining: Vec<u64> = d.policies().map(|s| s.remaining).collect();
        assert_eq!(remaining, [6, 0]);
    }

    #[test]
    fn full_keys_are_swept_away() {
        let backend = MemoryBackend::new();
        let minute = Duration::from_secs(60);
        let p = Policies::new(
            Policy::new("tenant", 100_000, minute).expect("valid"),
            Policy::new("credential", 4, minute).expect("valid"),
            Policy::new("ip", 3, minute).expect("valid"),
        )
        .expect("valid");
        // One tenant (so one shard), a new credential per request, and a minute passing
        // every 1000 requests: each credential's key is full again 15 s after its write.
        let writes = SWEEP_EVERY * 2;
        for i in 0..writes {
            let credential = i.to_string();
            let key = Key::Credential {
                tenant: "t",
                credential: &credential,
            };
            let now = i64::from(i / 1000) * 60_000_000;
            let d = backend.decide(
                p.set_for(&key),
                &key.storage_keys(""),
                1,
                Mode::Check,
                now,
                Source::Memory,
            );
            assert!(d.allowed());
        }
        // The sweep at the last write kept only the keys written in the current minute
        // (and the tenant's).
        assert_eq!(backend.len(), (writes % 1000) as usize + 1);
    }

    #[test]
    fn cost_zero_reads_without_writing() {
        let backend = MemoryBackend::new();
        let p = policies();
        let key = Key::Credential {
            tenant: "t",
            credential: "c",
        };
        let d = backend.decide(
            p.set_for(&key),
            &key.storage_keys(""),
            0,
            Mode::Check,
            0,
            Source::Memory,
        );
        assert!(d.allowed());
        assert_eq!(backend.len(), 0);
    }
}
