//! The verdict of the `limits` scenario: the policies read from `RateLimit-Policy`, the
//! units each credential and the tenant were admitted per phase against what a policy
//! can admit, what every 429 carried, and why the run fails. Plain data, shared by the
//! scenario that fills it (`limits`), the run's `Outcome` (`run_state`) that carries
//! it, and the report that judges it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::stats::Refusals;

/// One policy of a `RateLimit-Policy` field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyQuota {
    /// The policy's name (`tenant`, `credential`).
    pub name: String,
    /// Units per window.
    pub quota: u64,
    /// The window, seconds.
    pub window_s: u64,
}

impl PolicyQuota {
    /// The most this policy admits over `elapsed_s` seconds: a full bucket, then refill.
    pub fn bound(&self, elapsed_s: f64) -> f64 {
        let q = self.quota as f64;
        q + q * elapsed_s / (self.window_s.max(1) as f64)
    }

    /// Units refilled per second.
    pub fn rate(&self) -> f64 {
        self.quota as f64 / self.window_s.max(1) as f64
    }
}

/// Units admitted against the most a policy admits over the same time.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Admission {
    /// `X-RateLimit-Cost` summed over the 2xx responses.
    pub units_ok: u64,
    /// `quota + quota × elapsed / window`.
    pub bound: f64,
    /// `units_ok / bound`: at most 1 when the limiter holds.
    pub ratio: f64,
}

impl Admission {
    /// `units_ok` against what `policy` admits over `elapsed_s` seconds.
    pub fn new(units_ok: u64, policy: &PolicyQuota, elapsed_s: f64) -> Self {
        let bound = policy.bound(elapsed_s);
        Self {
            units_ok,
            bound,
            ratio: if bound > 0.0 {
                units_ok as f64 / bound
            } else {
                0.0
            },
        }
    }
}

/// One credential in one phase.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Lane {
    /// The key's name in the run (`A`, `B`, …) and prefix.
    pub name: String,
    /// `greedy` or `polite`.
    pub role: String,
    /// Workers on this credential.
    pub workers: usize,
    /// Requests sent.
    pub requests: u64,
    /// 2xx responses.
    pub ok: u64,
    /// 429 responses.
    pub refused: u64,
    /// Other responses and failures (neither 2xx nor 429).
    pub other: u64,
    /// The policies its 429s named.
    pub policies: BTreeMap<String, u64>,
    /// Units admitted against the credential policy's bound.
    pub admission: Admission,
}

/// One phase.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Phase {
    /// `credential` or `tenant`.
    pub name: String,
    /// What it does.
    pub description: String,
    /// From the first request sent to the last response received, seconds.
    pub elapsed_s: f64,
    /// Per credential.
    pub lanes: Vec<Lane>,
    /// All credentials together against the tenant policy's bound.
    pub tenant: Admission,
}

/// The `limits` verdict.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LimitsOutcome {
    /// The `RateLimit-Policy` the server sent.
    pub policy_header: String,
    /// The tenant policy read from it.
    pub tenant: Option<PolicyQuota>,
    /// The credential policy read from it.
    pub credential: Option<PolicyQuota>,
    /// The phases.
    pub phases: Vec<Phase>,
    /// Both phases together (from the first request of phase 1 to the last response of
    /// phase 2), all credentials against the tenant policy's bound.
    #[serde(default)]
    pub run_tenant: Admission,
    /// That span, seconds.
    #[serde(default)]
    pub run_elapsed_s: f64,
    /// What every 429 of the run carried.
    pub refusals: Refusals,
    /// Phase 1: `held` (the greedy credential was refused, the polite one never),
    /// `violated` (the polite one was refused), `not exercised` (the greedy one never
    /// reached its limit) or `not applicable` (the credential quota is not below the
    /// tenant's).
    pub isolation: String,
}

impl LimitsOutcome {
    /// Why the run fails, if it does: a malformed 429, a refused polite credential, or no
    /// 429 at all (the quotas were never reached: nothing was tested).
    pub fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        let r = &self.refusals;
        if r.count == 0 {
            out.push(
                "limits: no 429 at all: the quotas were never reached (is the server's quota small?)"
                    .to_owned(),
            );
        }
        let named: u64 = r.policies.values().sum();
        if !r.all_well_formed(true) || named < r.count {
            out.push(format!(
                "limits: of {} 429s, {} had Retry-After, {} were application/problem+json, {} had \
                 RateLimit and RateLimit-Policy, {} named a violated policy",
                r.count, r.retry_after, r.problem_json, r.ratelimit, named
            ));
        }
        if self.isolation == "violated" {
            out.push(
                "limits: a credential within its budget was refused while another credential of \
                 its tenant was over its own"
                    .to_owned(),
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_is_a_full_bucket_plus_refill() {
        let p = PolicyQuota {
            name: "credential".into(),
            quota: 200,
            window_s: 10,
        };
        assert!((p.bound(0.0) - 200.0).abs() < 1e-9);
        assert!((p.bound(10.0) - 400.0).abs() < 1e-9);
        assert!((p.rate() - 20.0).abs() < 1e-9);
        let a = Admission::new(300, &p, 5.0);
        assert!((a.ratio - 1.0).abs() < 1e-9, "{a:?}");
    }

    #[test]
    fn a_malformed_429_a_refused_polite_credential_or_no_429_fails() {
        let well_formed = Refusals {
            count: 2,
            retry_after: 2,
            problem_json: 2,
            ratelimit: 2,
            policies: [("credential".to_owned(), 2)].into(),
        };
        let ok = LimitsOutcome {
            refusals: well_formed.clone(),
            isolation: "held".into(),
            ..LimitsOutcome::default()
        };
        assert!(ok.failures().is_empty(), "{:?}", ok.failures());
        let no_retry = LimitsOutcome {
            refusals: Refusals {
                retry_after: 1,
                ..well_formed.clone()
            },
            ..ok.clone()
        };
        assert_eq!(no_retry.failures().len(), 1);
        let violated = LimitsOutcome {
            isolation: "violated".into(),
            ..ok.clone()
        };
        assert_eq!(violated.failures().len(), 1);
        assert_eq!(LimitsOutcome::default().failures().len(), 1);
    }
}
