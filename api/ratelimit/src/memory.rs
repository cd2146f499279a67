//! The in-process backend: GCRA state in sharded `Mutex<HashMap>`s.
//!
//! Why not `governor`: its cells are single-policy and its `check_n` admits a batch against
//! one limiter. Coupling two policies so that a refusal by either charges neither would
//! mean check-then-undo across two limiters — racy — and its headers would need numbers
//! it does not expose. The algorithm here is a few lines (`gcra.rs`) shared with the Lua
//! script, so both backends answer alike.
//!
//! Sharding is by the request's tenant (or client address), so one lock covers both of a
//! request's budgets, exactly as one Redis Cluster slot does. The maps are keyed by the
//! [`Key`]'s own parts — tenant, then credential within it; the address — so a decision
//! looks its state up without building a string (only a new key allocates, once). A shard
//! forgets budgets that are full again (their state carries no information) on a sweep
//! every [`SWEEP_EVERY`] writes, so idle keys do not accumulate; no background task is
//! needed.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use crate::decision::{Decision, Source};
use crate::gcra::{self, Mode, Tat};
use crate::policy::{Key, PolicySet, ip_bucket};

/// Writes to a shard between two sweeps of its idle keys.
const SWEEP_EVERY: u32 = 4_096;

#[derive(Debug, Default)]
struct Shard {
    /// Tenant id → its budget and its credentials'. A budget absent is full.
    tenants: HashMap<Box<str>, TenantState>,
    /// Client address (IPv6: its /64, see [`ip_bucket`]) → its budget.
    ips: HashMap<IpAddr, Tat>,
    /// Writes since the last sweep.
    writes: u32,
}

/// One tenant's budgets: its own, and each of its credentials'.
#[derive(Debug, Default)]
struct TenantState {
    tenant: Option<Tat>,
    credentials: HashMap<Box<str>, Tat>,
}

impl TenantState {
    fn is_empty(&self) -> bool {
        self.tenant.is_none() && self.credentials.is_empty()
    }
}

impl Shard {
    fn sweep(&mut self, now_us: i64) {
        let live = |tat: &Tat| tat.us >= now_us;
        self.tenants.retain(|_, state| {
            state.tenant = state.tenant.filter(live);
            state.credentials.retain(|_, tat| live(tat));
            !state.is_empty()
        });
        self.ips.retain(|_, tat| live(tat));
        self.writes = 0;
    }

    /// Counts a write; sweeps every [`SWEEP_EVERY`].
    fn wrote(&mut self, now_us: i64) {
        self.writes += 1;
        if self.writes >= SWEEP_EVERY {
            self.sweep(now_us);
        }
    }
}

/// Stores `tat` under `key` (`None`: the budget is full, nothing to keep). The key is
/// copied only when it is new.
fn store(map: &mut HashMap<Box<str>, Tat>, key: &str, tat: Option<Tat>) {
    match tat {
        Some(tat) => match map.get_mut(key) {
            Some(slot) => *slot = tat,
            None => {
                map.insert(key.into(), tat);
            }
        },
        None => {
            map.remove(key);
        }
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

    fn shard(&self, tag: impl Hash) -> std::sync::MutexGuard<'_, Shard> {
        let index =
            usize::try_from(self.hasher.hash_one(tag)).unwrap_or(0) & (self.shards.len() - 1);
        // A panic while holding the lock cannot leave a half-written state (each insert is
        // whole), so a poisoned shard is still consistent.
        self.shards[index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Evaluates `cost` against `set` (the policies of `key`) at `now_us`.
    pub(crate) fn decide(
        &self,
        set: &Arc<PolicySet>,
        key: &Key<'_>,
        cost: u64,
        mode: Mode,
        now_us: i64,
        source: Source,
    ) -> Decision {
        let limits = set.limits();
        let cost_i = i64::try_from(cost).unwrap_or(i64::MAX);
        let writes = cost > 0;
        let out = match *key {
            Key::Credential { tenant, credential } => {
                let mut shard = self.shard(tenant);
                let shard = &mut *shard;
                match shard.tenants.get_mut(tenant) {
                    Some(state) => {
                        let slot = state.credentials.get_mut(credential);
                        let debts = [
                            state.tenant.map_or(0, |t| t.debt(now_us, limits[0])),
                            slot.as_ref().map_or(0, |t| t.debt(now_us, limits[1])),
                        ];
                        let out = gcra::evaluate(&debts, limits, cost_i, mode);
                        if out.allowed && writes {
                            state.tenant = Tat::from_debt(out.debts[0], now_us, limits[0]);
                            match (slot, Tat::from_debt(out.debts[1], now_us, limits[1])) {
                                // The common case: one lookup for the read and the write.
                                (Some(slot), Some(tat)) => *slot = tat,
                                (_, tat) => store(&mut state.credentials, credential, tat),
                            }
                            if state.is_empty() {
                                shard.tenants.remove(tenant);
                            }
                            shard.wrote(now_us);
                        }
                        out
                    }
                    None => {
                        let out = gcra::evaluate(&[0, 0], limits, cost_i, mode);
                        if out.allowed && writes {
                            let mut state = TenantState {
                                tenant: Tat::from_debt(out.debts[0], now_us, limits[0]),
                                credentials: HashMap::new(),
                            };
                            let tat = Tat::from_debt(out.debts[1], now_us, limits[1]);
                            store(&mut state.credentials, credential, tat);
                            if !state.is_empty() {
                                shard.tenants.insert(tenant.into(), state);
                            }
                            shard.wrote(now_us);
                        }
                        out
                    }
                }
            }
            Key::Ip(addr) => {
                let addr = ip_bucket(addr);
                let mut shard = self.shard(addr);
                let debt = shard
                    .ips
                    .get(&addr)
                    .map_or(0, |t| t.debt(now_us, limits[0]));
                let out = gcra::evaluate(&[debt], limits, cost_i, mode);
                if out.allowed && writes {
                    match Tat::from_debt(out.debts[0], now_us, limits[0]) {
                        Some(tat) => shard.ips.insert(addr, tat),
                        None => shard.ips.remove(&addr),
                    };
                    shard.wrote(now_us);
                }
                out
            }
        };
        Decision::from_outcome(set, &out, cost, source)
    }

    /// Budgets currently held, across shards (tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                let shard = s.lock().unwrap_or_else(PoisonError::into_inner);
                let tenants: usize = shard
                    .tenants
                    .values()
                    .map(|t| usize::from(t.tenant.is_some()) + t.credentials.len())
                    .sum();
                tenants + shard.ips.len()
            })
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
        let d = backend.decide(set, &key, 4, Mode::Check, 0, Source::Memory);
        assert!(d.allowed());
        let d = backend.decide(set, &key, 1, Mode::Check, 0, Source::Memory);
        assert!(!d.allowed());
        let remaining: Vec<u64> = d.policies().map(|s| s.remaining).collect();
        assert_eq!(remaining, [6, 0]);
        // Another credential of the tenant has its own budget inside the tenant's 6.
        let other = Key::Credential {
            tenant: "t",
            credential: "d",
        };
        let d = backend.decide(set, &other, 4, Mode::Check, 0, Source::Memory);
        let remaining: Vec<u64> = d.policies().map(|s| s.remaining).collect();
        assert_eq!(remaining, [2, 0]);
        assert_eq!(backend.len(), 3);
    }

    #[test]
    fn a_budget_refunded_to_full_is_forgotten() {
        let backend = MemoryBackend::new();
        let p = policies();
        let key = Key::Credential {
            tenant: "t",
            credential: "c",
        };
        let set = p.set_for(&key);
        assert!(
            backend
                .decide(set, &key, 2, Mode::Check, 0, Source::Memory)
                .allowed()
        );
        assert_eq!(backend.len(), 2);
        backend.decide(set, &key, 2, Mode::Refund, 0, Source::Memory);
        assert_eq!(backend.len(), 0);
        let ip = Key::Ip("192.0.2.7".parse().expect("ip"));
        let set = p.set_for(&ip);
        assert!(
            backend
                .decide(set, &ip, 1, Mode::Check, 0, Source::Memory)
                .allowed()
        );
        assert_eq!(backend.len(), 1);
        backend.decide(set, &ip, 1, Mode::Refund, 0, Source::Memory);
        assert_eq!(backend.len(), 0);
    }

    #[test]
    fn ipv6_callers_share_their_64_and_mapped_ipv4_callers_their_address() {
        let backend = MemoryBackend::new();
        let p = policies();
        let spend = |addr: &str| {
            let key = Key::Ip(addr.parse().expect("ip"));
            let d = backend.decide(p.set_for(&key), &key, 1, Mode::Check, 0, Source::Memory);
            d.policies().map(|s| s.remaining).next()
        };
        assert_eq!(spend("2001:db8:1:2::1"), Some(2));
        assert_eq!(spend("2001:db8:1:2:ffff::9"), Some(1));
        assert_eq!(spend("2001:db8:1:3::1"), Some(2));
        assert_eq!(spend("192.0.2.7"), Some(2));
        assert_eq!(spend("::ffff:192.0.2.7"), Some(1));
        assert_eq!(spend("192.0.2.8"), Some(2));
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
            let d = backend.decide(p.set_for(&key), &key, 1, Mode::Check, now, Source::Memory);
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
        let d = backend.decide(p.set_for(&key), &key, 0, Mode::Check, 0, Source::Memory);
        assert!(d.allowed());
        assert_eq!(backend.len(), 0);
    }
}
