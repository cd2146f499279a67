//! What a limiter answers, and its response headers.

use std::sync::Arc;
use std::time::Duration;

use crate::gcra::{self, MAX_POLICIES, Outcome};
use crate::headers;
use crate::policy::{Policy, PolicySet};

/// Which backend produced a decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The in-process backend, because no Redis is configured.
    Memory,
    /// Redis.
    Redis,
    /// The in-process backend standing in for Redis, which failed or was too slow.
    Fallback,
}

/// One policy's state after a decision.
#[derive(Clone, Copy, Debug)]
pub struct PolicyStatus<'a> {
    /// The policy.
    pub policy: &'a Policy,
    /// Whole cost units still available.
    pub remaining: u64,
    /// How long until the policy's whole quota is available again.
    pub reset: Duration,
}

/// A limiter's answer for one request.
#[derive(Clone, Debug)]
pub struct Decision {
    /// The policies the request was held to.
    set: Arc<PolicySet>,
    allowed: bool,
    /// The cost charged (or, for a refund, given back); 0 when refused.
    cost: u64,
    /// The policy that refused, as an index into `set`.
    violated: Option<usize>,
    retry_after: Option<Duration>,
    remaining: [u64; MAX_POLICIES],
    reset: [Duration; MAX_POLICIES],
    source: Source,
}

fn duration_us(us: i64) -> Duration {
    Duration::from_micros(u64::try_from(us).unwrap_or(0))
}

impl Decision {
    /// Builds a decision from an evaluation's outcome (`out.debts` are the debts after it).
    pub(crate) fn from_outcome(
        set: &Arc<PolicySet>,
        out: &Outcome,
        cost: u64,
        source: Source,
    ) -> Decision {
        let mut remaining = [0; MAX_POLICIES];
        let mut reset = [Duration::ZERO; MAX_POLICIES];
        for (i, &limits) in set.limits().iter().enumerate() {
            remaining[i] = u64::try_from(gcra::remaining(out.debts[i], limits)).unwrap_or(0);
            reset[i] = duration_us(gcra::reset_us(out.debts[i], limits));
        }
        Decision {
            set: Arc::clone(set),
            allowed: out.allowed,
            cost: if out.allowed { cost } else { 0 },
            violated: out.violated,
            retry_after: (!out.allowed).then(|| duration_us(out.retry_after_us)),
            remaining,
            reset,
            source,
        }
    }

    /// A refusal that no wait can cure: `cost` exceeds policy `violated`'s whole quota.
    /// Nothing is charged or read; the headers show full budgets.
    pub(crate) fn too_costly(set: &Arc<PolicySet>, violated: usize, source: Source) -> Decision {
        let mut remaining = [0; MAX_POLICIES];
        for (slot, p) in remaining.iter_mut().zip(&set.policies) {
            *slot = p.quota();
        }
        Decision {
            set: Arc::clone(set),
            allowed: false,
            cost: 0,
            violated: Some(violated),
            retry_after: Some(set.policies[violated].window()),
            remaining,
            reset: [Duration::ZERO; MAX_POLICIES],
            source,
        }
    }

    /// Whether the request may proceed.
    pub fn allowed(&self) -> bool {
        self.allowed
    }

    /// The cost units charged: the request's cost when allowed, 0 when refused (a refused
    /// request consumes nothing); for a refund, the units given back.
    pub fn cost(&self) -> u64 {
        self.cost
    }

    /// When refused, how long until the same cost would be admitted (assuming nothing else
    /// spends the budget meanwhile). A cost above a policy's whole quota is never admitted;
    /// its retry-after is that policy's window.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// When refused, the policy that refused: of those that would not admit the cost, the
    /// one with the longest wait.
    pub fn violated(&self) -> Option<&Policy> {
        self.violated.map(|i| &self.set.policies[i])
    }

    /// Each policy's state after the decision, in `RateLimit-Policy` order.
    pub fn policies(&self) -> impl ExactSizeIterator<Item = PolicyStatus<'_>> + '_ {
        self.set
            .policies
            .iter()
            .enumerate()
            .map(|(i, policy)| PolicyStatus {
                policy,
                remaining: self.remaining[i],
                reset: self.reset[i],
            })
    }

    /// Which backend decided.
    pub fn source(&self) -> Source {
        self.source
    }

    /// The `RateLimit-Policy` field value, e.g. `"tenant";q=600;w=60, "credential";q=120;w=60`.
    pub fn policy_header(&self) -> &str {
        &self.set.header
    }

    /// The `RateLimit` field value, e.g. `"tenant";r=583;t=2, "credential";r=17;t=41`: per
    /// policy, the whole units available (`r`) and the seconds until the whole quota is back
    /// (`t`). On a refusal every `t` is capped at `Retry-After`, which the draft says should
    /// not point earlier than the end of an effective window.
    pub fn ratelimit_header(&self) -> String {
        let cap = self.retry_after.unwrap_or(Duration::MAX);
        let mut out = String::with_capacity(64);
        for (i, prefix) in self.set.item_prefixes.iter().enumerate() {
            headers::push_ratelimit_item(
                &mut out,
                prefix,
                self.remaining[i],
                self.reset[i].min(cap),
            );
        }
        out
    }

    /// The `Retry-After` field value (delay-seconds, rounded up, at least 1) on a refusal.
    pub fn retry_after_header(&self) -> Option<String> {
        self.retry_after
            .map(|d| headers::ceil_secs(d).max(1).to_string())
    }

    /// The `X-RateLimit-Cost` field value.
    pub fn cost_header(&self) -> String {
        self.cost.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gcra::{Mode, evaluate};
    use crate::{Key, Policies, Policy};

    fn policies() -> Policies {
        let minute = Duration::from_secs(60);
        Policies::new(
            Policy::new("tenant", 600, minute).expect("valid"),
            Policy::new("credential", 120, minute).expect("valid"),
            Policy::new("ip", 60, minute).expect("valid"),
        )
        .expect("valid")
    }

    #[test]
    fn an_allowed_decision_reports_every_policy_and_no_retry() {
        let p = policies();
        let set = p.set_for(&Key::Credential {
            tenant: "t",
            credential: "c",
        });
        let out = evaluate(&[0, 0], set.limits(), 5, Mode::Check);
        let d = Decision::from_outcome(set, &out, 5, Source::Memory);
        assert!(d.allowed());
        assert_eq!(d.cost(), 5);
        assert_eq!(d.retry_after_header(), None);
        assert_eq!(
            d.policy_header(),
            r#""tenant";q=600;w=60, "credential";q=120;w=60"#
        );
        // 5 units are 0.5 s of the tenant's budget and 2.5 s of the credential's.
        assert_eq!(
            d.ratelimit_header(),
            r#""tenant";r=595;t=1, "credential";r=115;t=3"#
        );
    }

    #[test]
    fn a_refusal_names_the_policy_and_caps_every_window_at_retry_after() {
        let p = policies();
        let set = p.set_for(&Key::Credential {
            tenant: "t",
            credential: "c",
        });
        let l = set.limits();
        // The tenant has used 100 units, the credential all 120.
        let debts = [100 * l[0].window_us, 120 * l[1].window_us];
        let out = evaluate(&debts, l, 1, Mode::Check);
        let d = Decision::from_outcome(set, &out, 1, Source::Redis);
        assert!(!d.allowed());
        assert_eq!(d.cost(), 0);
        assert_eq!(d.violated().map(Policy::name), Some("credential"));
        assert_eq!(d.retry_after(), Some(Duration::from_millis(500)));
        assert_eq!(d.retry_after_header().as_deref(), Some("1"));
        assert_eq!(
            d.ratelimit_header(),
            r#""tenant";r=500;t=1, "credential";r=0;t=1"#
        );
    }
}
