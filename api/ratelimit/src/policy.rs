//! Policies (quota per window), the set a limiter enforces, and the keys requests are
//! counted under.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use crate::Error;
use crate::gcra::{Limits, MAX_POLICIES, MAX_SCALED};

/// One quota policy: `quota` cost units per `window`, refilled continuously (GCRA).
///
/// Cheap to clone (the name is shared).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// The name clients see in `RateLimit-Policy`, `RateLimit` and `violated-policies`.
    name: Arc<str>,
    /// Cost units admitted per window; also the largest burst.
    quota: u64,
    /// The window over which `quota` refills completely.
    window: Duration,
}

impl Policy {
    /// A policy named `name` admitting `quota` cost units per `window`.
    ///
    /// The name must be a short token (`[a-z0-9_-]`, 1–32 characters) so it reads the same
    /// in headers, problem bodies and logs. The quota must be at least 1, the window a
    /// whole number of seconds (the headers speak seconds), and `window_µs × quota` must
    /// stay below 2^61. Up to 2^53 (150 million units a minute) both backends compute
    /// exactly alike; above it Redis rounds by ~1e-16 of the quota.
    pub fn new(name: &str, quota: u64, window: Duration) -> Result<Policy, Error> {
        let valid_name = (1..=32).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !valid_name {
            return Err(Error::InvalidPolicy(format!(
                "name {name:?}: use 1-32 characters of [a-z0-9_-]"
            )));
        }
        if quota == 0 {
            return Err(Error::InvalidPolicy(format!(
                "{name}: the quota must be at least 1"
            )));
        }
        if window.as_secs() == 0 || window.subsec_nanos() != 0 {
            return Err(Error::InvalidPolicy(format!(
                "{name}: the window must be a whole number of seconds (the headers speak seconds)"
            )));
        }
        let scaled = u128::from(quota) * window.as_micros();
        if scaled > MAX_SCALED as u128 {
            return Err(Error::InvalidPolicy(format!(
                "{name}: quota × window is too large ({quota} per {window:?})"
            )));
        }
        Ok(Policy {
            name: name.into(),
            quota,
            window,
        })
    }

    /// The policy's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Cost units admitted per window.
    pub fn quota(&self) -> u64 {
        self.quota
    }

    /// The window over which the quota refills.
    pub fn window(&self) -> Duration {
        self.window
    }

    pub(crate) fn limits(&self) -> Limits {
        // Both fit: `new` bounds quota × window_µs by 2^61.
        Limits {
            quota: i64::try_from(self.quota).unwrap_or(i64::MAX),
            window_us: i64::try_from(self.window.as_micros()).unwrap_or(i64::MAX),
        }
    }
}

/// The policies a request is held to, in header order, with what their headers repeat on
/// every response formatted once.
#[derive(Debug)]
pub(crate) struct PolicySet {
    pub(crate) policies: Vec<Policy>,
    pub(crate) limits: [Limits; MAX_POLICIES],
    /// The `RateLimit-Policy` field value for this set.
    pub(crate) header: String,
    /// Per policy, the start of its `RateLimit` item: the quoted name and `;r=`.
    pub(crate) item_prefixes: Vec<String>,
    /// The largest cost every policy of the set can ever admit.
    pub(crate) max_cost: u64,
}

impl PolicySet {
    fn new(policies: Vec<Policy>) -> Arc<PolicySet> {
        debug_assert!(!policies.is_empty() && policies.len() <= MAX_POLICIES);
        let mut limits = [Limits {
            quota: 1,
            window_us: 1,
        }; MAX_POLICIES];
        for (slot, p) in limits.iter_mut().zip(&policies) {
            *slot = p.limits();
        }
        let header = crate::headers::policy_field(
            policies.iter().map(|p| (p.name(), p.quota(), p.window())),
        );
        let item_prefixes = policies
            .iter()
            .map(|p| crate::headers::ratelimit_item_prefix(p.name()))
            .collect();
        let max_cost = policies.iter().map(Policy::quota).min().unwrap_or(0);
        Arc::new(PolicySet {
            policies,
            limits,
            header,
            item_prefixes,
            max_cost,
        })
    }

    pub(crate) fn limits(&self) -> &[Limits] {
        &self.limits[..self.policies.len()]
    }
}

/// The three policies a [`crate::Limiter`] enforces.
///
/// An authenticated request is held to `tenant` *and* `credential` together (keyed by its
/// tenant, and by its tenant + credential); an unauthenticated one to `anonymous`, keyed by
/// client IP.
#[derive(Clone, Debug)]
pub struct Policies {
    pub(crate) authenticated: Arc<PolicySet>,
    pub(crate) anonymous: Arc<PolicySet>,
}

impl Policies {
    /// The set: a per-tenant budget, a per-credential budget inside it (normally smaller,
    /// so one integration cannot exhaust its tenant), and a per-IP budget for unauthenticated
    /// requests. The three names must differ.
    pub fn new(tenant: Policy, credential: Policy, anonymous: Policy) -> Result<Policies, Error> {
        if tenant.name == credential.name
            || tenant.name == anonymous.name
            || credential.name == anonymous.name
        {
            return Err(Error::InvalidPolicy(
                "the three policy names must differ".into(),
            ));
        }
        Ok(Policies {
            authenticated: PolicySet::new(vec![tenant, credential]),
            anonymous: PolicySet::new(vec![anonymous]),
        })
    }

    /// The per-tenant policy.
    pub fn tenant(&self) -> &Policy {
        &self.authenticated.policies[0]
    }

    /// The per-credential policy.
    pub fn credential(&self) -> &Policy {
        &self.authenticated.policies[1]
    }

    /// The per-IP policy for unauthenticated requests.
    pub fn anonymous(&self) -> &Policy {
        &self.anonymous.policies[0]
    }

    /// The largest cost an authenticated request can ever be admitted with (the smaller of
    /// the tenant and credential quotas); a caller can check its costs against it at startup.
    pub fn max_cost(&self) -> u64 {
        self.authenticated.max_cost
    }

    /// The `RateLimit-Policy` value of every decision for a [`Key::Credential`] (what
    /// [`crate::Decision::policy_header`] returns for it), for a caller to prepare once.
    pub fn authenticated_header(&self) -> &str {
        &self.authenticated.header
    }

    /// The `RateLimit-Policy` value of every decision for a [`Key::Ip`].
    pub fn anonymous_header(&self) -> &str {
        &self.anonymous.header
    }

    pub(crate) fn set_for(&self, key: &Key<'_>) -> &Arc<PolicySet> {
        match key {
            Key::Credential { .. } => &self.authenticated,
            Key::Ip(_) => &self.anonymous,
        }
    }
}

/// Who a request is counted against.
///
/// Never put a secret here: the values end up in Redis key names. Use a credential's id
/// (an API key's public id, a token's client id), not the credential itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key<'a> {
    /// An authenticated caller: its tenant's budget and its own credential's budget.
    Credential {
        /// The tenant id.
        tenant: &'a str,
        /// The credential's id within the tenant.
        credential: &'a str,
    },
    /// An unauthenticated caller, by client address. IPv6 addresses count per /64, the
    /// block one subscriber usually holds, so rotating addresses inside it does not help;
    /// an IPv4-mapped IPv6 address (`::ffff:192.0.2.7`, as a dual-stack listener reports
    /// IPv4 peers) counts as its IPv4 address.
    Ip(IpAddr),
}

/// The address an [`Key::Ip`] budget is kept under: IPv4 as is, IPv6 cut to its /64.
pub(crate) fn ip_bucket(addr: IpAddr) -> IpAddr {
    match addr.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & (u128::MAX << 64))),
    }
}

impl Key<'_> {
    /// The Redis keys (one per policy of the set, same order).
    ///
    /// All keys of one request carry the same Redis Cluster hash tag — `{t:tenant}` or
    /// `{ip:addr}` — so the script's keys live in one slot. The tag is never empty (Redis
    /// would hash the whole key of `{}`, parting an empty tenant id from its credentials),
    /// and it opens in the part the keys share — the prefix has no braces — so a tenant id
    /// with braces in it cuts the tag short identically in both keys. (The in-process
    /// backend keys its maps by the [`Key`] itself and builds no strings.)
    pub(crate) fn storage_keys(&self, prefix: &str) -> StorageKeys {
        let mut keys = StorageKeys::default();
        match self {
            Key::Credential { tenant, credential } => {
                // Plain pushes, not `format!`: this runs on every Redis decision.
                let mut tenant_key = String::with_capacity(prefix.len() + tenant.len() + 9);
                tenant_key.push_str(prefix);
                tenant_key.push_str("rl:{t:");
                tenant_key.push_str(tenant);
                tenant_key.push('}');
                let mut credential_key =
                    String::with_capacity(tenant_key.len() + credential.len() + 3);
                credential_key.push_str(&tenant_key);
                credential_key.push_str(":c:");
                credential_key.push_str(credential);
                tenant_key.push_str(":t");
                keys.keys[0] = tenant_key;
                keys.keys[1] = credential_key;
                keys.len = 2;
            }
            Key::Ip(addr) => {
                let mut key = String::with_capacity(prefix.len() + 56);
                key.push_str(prefix);
                key.push_str("rl:{ip:");
                match ip_bucket(*addr) {
                    IpAddr::V4(v4) => {
                        let _ = write!(key, "{v4}");
                    }
                    IpAddr::V6(v6) => {
                        let s = v6.segments();
                        let _ = write!(key, "{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3]);
                    }
                }
                key.push('}');
                keys.keys[0] = key;
                keys.len = 1;
            }
        }
        keys
    }
}

/// The Redis keys of one request.
#[derive(Debug, Default)]
pub(crate) struct StorageKeys {
    pub(crate) keys: [String; MAX_POLICIES],
    pub(crate) len: usize,
}

impl StorageKeys {
    pub(crate) fn keys(&self) -> &[String] {
        &self.keys[..self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn policy_names_are_short_tokens() {
        let minute = Duration::from_secs(60);
        assert!(Policy::new("tenant", 600, minute).is_ok());
        for bad in ["", "Tenant", "a\"b", "a b", &"x".repeat(33)] {
            assert!(Policy::new(bad, 1, minute).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn policies_reject_zero_quotas_subsecond_windows_and_inexact_sizes() {
        assert!(Policy::new("p", 0, Duration::from_secs(1)).is_err());
        assert!(Policy::new("p", 1, Duration::from_millis(999)).is_err());
        assert!(Policy::new("p", 1, Duration::from_millis(1500)).is_err());
        let day = Duration::from_secs(86_400);
        assert!(Policy::new("p", 1_000_000_000, Duration::from_secs(60)).is_ok());
        assert!(Policy::new("p", 26_000_000, day).is_ok());
        assert!(Policy::new("p", 27_000_000, day).is_err());
    }

    #[test]
    fn the_three_policy_names_must_differ() {
        let p = |n: &str| Policy::new(n, 10, Duration::from_secs(60)).expect("valid");
        assert!(Policies::new(p("a"), p("a"), p("b")).is_err());
        assert!(Policies::new(p("a"), p("b"), p("c")).is_ok());
    }

    #[test]
    fn a_request_s_keys_share_one_hash_tag() {
        let key = Key::Credential {
            tenant: "t1",
            credential: "k9",
        };
        let keys = key.storage_keys("test:");
        assert_eq!(keys.keys(), ["test:rl:{t:t1}:t", "test:rl:{t:t1}:c:k9"]);

        let ip = Key::Ip(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)));
        assert_eq!(ip.storage_keys("").keys(), ["rl:{ip:192.0.2.7}"]);
    }

    /// CRC16-XMODEM, Redis Cluster's key hash (polynomial 0x1021, initial value 0), written
    /// out here so the test does not trust the client it checks.
    fn crc16(bytes: &[u8]) -> u16 {
        let mut crc: u16 = 0;
        for &byte in bytes {
            crc ^= u16::from(byte) << 8;
            for _ in 0..8 {
                crc = if crc & 0x8000 != 0 {
                    (crc << 1) ^ 0x1021
                } else {
                    crc << 1
                };
            }
        }
        crc
    }

    /// A key's Redis Cluster slot: CRC16 of its hash tag (the bytes between the first `{`
    /// and the first `}` after it, when not empty), else of the whole key, mod 16384.
    fn slot(key: &str) -> u16 {
        let key = key.as_bytes();
        let tag = key.iter().position(|&b| b == b'{').and_then(|open| {
            let close = key[open + 1..].iter().position(|&b| b == b'}')?;
            (close > 0).then(|| &key[open + 1..open + 1 + close])
        });
        crc16(tag.unwrap_or(key)) % 16_384
    }

    #[test]
    fn the_slot_function_matches_redis_and_the_redis_crate() {
        // The check value of the Redis Cluster specification, and what `CLUSTER KEYSLOT`
        // answers for two keys in its documentation.
        assert_eq!(crc16(b"123456789"), 0x31c3);
        assert_eq!(slot("somekey"), 11_058);
        assert_eq!(slot("foo{hash_tag}"), slot("hash_tag"));
        // An empty tag does not count: the whole key is hashed.
        assert_eq!(slot("{}x"), crc16(b"{}x") % 16_384);
        for key in [
            "foo",
            "{user1000}.following",
            "a{}b",
            "x{y",
            "rl:{t:t1}:t",
            "é{ü}",
        ] {
            assert_eq!(
                redis::cluster_routing::Slot::new(slot(key)),
                Some(redis::cluster_routing::Slot::for_key(key)),
                "{key}"
            );
        }
    }

    #[test]
    fn both_keys_of_any_decision_hash_to_one_cluster_slot() {
        let tenants = [
            "t1",
            "",
            "{",
            "}",
            "}{",
            "a}b",
            "{x}",
            "t:1",
            "ip:192.0.2.7",
            "ténant",
            "a b",
        ];
        let credentials = ["k9", "", "}", "{", "{c}", "key_01HZ"];
        for tenant in tenants {
            // One slot per tenant, whatever the prefix: its budget and every credential's.
            let tenant_slot = slot(&format!("{{t:{tenant}}}"));
            for prefix in ["", "prod:", "test:parity:42:"] {
                for credential in credentials {
                    let keys = Key::Credential { tenant, credential }.storage_keys(prefix);
                    assert_eq!(keys.keys().len(), 2);
                    for key in keys.keys() {
                        assert_eq!(slot(key), tenant_slot, "{key} of tenant {tenant:?}");
                    }
                }
            }
        }
        // Different tenants spread over the slots: the tag really is the tenant.
        let slots: std::collections::HashSet<u16> = (0..100)
            .map(|i| {
                let tenant = format!("tenant-{i}");
                let key = Key::Credential {
                    tenant: &tenant,
                    credential: "c",
                };
                slot(&key.storage_keys("prod:").keys()[1])
            })
            .collect();
        assert!(slots.len() > 90, "{} distinct slots", slots.len());
    }

    #[test]
    fn an_ipv4_mapped_address_counts_as_its_ipv4_address() {
        let mapped: Ipv6Addr = "::ffff:192.0.2.7".parse().expect("ip");
        let key = Key::Ip(IpAddr::V6(mapped)).storage_keys("");
        assert_eq!(key.keys(), ["rl:{ip:192.0.2.7}"]);
        assert_eq!(
            ip_bucket(IpAddr::V6(mapped)),
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7))
        );
    }

    #[test]
    fn ipv6_callers_count_per_64_block() {
        let a: Ipv6Addr = "2001:db8:1:2:aaaa::1".parse().expect("ip");
        let b: Ipv6Addr = "2001:db8:1:2:bbbb::9".parse().expect("ip");
        let ka = Key::Ip(IpAddr::V6(a)).storage_keys("");
        let kb = Key::Ip(IpAddr::V6(b)).storage_keys("");
        assert_eq!(ka.keys(), kb.keys());
        assert_eq!(ka.keys(), ["rl:{ip:2001:db8:1:2::/64}"]);
    }
}
