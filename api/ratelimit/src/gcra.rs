//! The algorithm: GCRA with the cost as the quantity, over several coupled policies.
//!
//! This module is pure arithmetic; the in-process backend runs it under a lock and
//! `gcra.lua` is the same arithmetic, line for line, inside Redis.
//!
//! ## Units
//! A policy admits `quota` units per `window` µs, so one unit's emission interval is
//! `window / quota` µs — rarely a whole number. To stay exact, the *debt* of a key (how
//! far its theoretical arrival time (TAT) lies ahead of now) is kept scaled by `quota`:
//! `debt = (tat - now) * quota` in "µs × quota". One unit then adds exactly `window`, and
//! the policy's burst limit is exactly `window * quota`. Every quantity is an integer, so
//! a fresh key admits exactly `quota` units and no rounding can leak an extra one. Lua's
//! doubles compute the same integers exactly while `window_µs × quota` stays below 2^53
//! (150 million units a minute, 104 000 a day — far above any real policy); beyond that
//! Redis' debt carries a relative rounding error of ~1e-16 of the quota (a millionth of a
//! unit at a billion units a minute), which only "effectively unlimited" settings reach. [`MAX_SCALED`] keeps this `i64`
//! code clear of overflow.
//!
//! The stored TAT is `us + frac / quota` (whole µs and a remainder), so absolute times
//! (~1.7e15 µs) are never multiplied by the quota.

/// The largest `window_µs × quota` a policy may have: a charged debt (at most twice it)
/// then still fits an `i64` with room to spare.
pub(crate) const MAX_SCALED: i64 = 1 << 61;

/// A policy as the algorithm sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Units per window.
    pub(crate) quota: i64,
    /// The window in µs.
    pub(crate) window_us: i64,
}

impl Limits {
    /// The burst limit, scaled: a debt above it is refused.
    fn limit(self) -> i64 {
        self.quota * self.window_us
    }
}

/// The stored state of one key: the theoretical arrival time `us + frac / quota` µs
/// since the Unix epoch (`0 <= frac < quota`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Tat {
    pub(crate) us: i64,
    pub(crate) frac: i64,
}

impl Tat {
    /// The key's debt at `now_us` (0 once the TAT has passed: the budget is full).
    pub(crate) fn debt(self, now_us: i64, limits: Limits) -> i64 {
        if self.us < now_us {
            0
        } else {
            (self.us - now_us) * limits.quota + self.frac
        }
    }

    /// The state that carries `debt` at `now_us`; `None` when nothing needs storing.
    pub(crate) fn from_debt(debt: i64, now_us: i64, limits: Limits) -> Option<Tat> {
        (debt > 0).then(|| Tat {
            us: now_us + debt / limits.quota,
            frac: debt % limits.quota,
        })
    }
}

/// What to do with the cost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Admit the cost if every policy can take it, and then charge all of them.
    Check,
    /// Give the cost back to every policy (never below a full budget).
    Refund,
}

/// The result of one evaluation over up to [`MAX_POLICIES`] policies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Outcome {
    /// Every policy admitted the cost (always true for a refund).
    pub(crate) allowed: bool,
    /// The index of the policy that refused, the one with the longest wait (ties go to
    /// the later, more specific policy).
    pub(crate) violated: Option<usize>,
    /// How long until the cost would be admitted, in µs (0 when allowed).
    pub(crate) retry_after_us: i64,
    /// Each policy's debt after the decision: charged if allowed, untouched if not.
    pub(crate) debts: [i64; MAX_POLICIES],
}

/// The most policies one decision couples (tenant + credential).
pub(crate) const MAX_POLICIES: usize = 2;

/// Evaluates `cost` against every policy at once. `debts[i]` is policy `i`'s current
/// debt (see [`Tat::debt`]). A refused cost charges nothing anywhere.
pub(crate) fn evaluate(debts: &[i64], limits: &[Limits], cost: i64, mode: Mode) -> Outcome {
    debug_assert_eq!(debts.len(), limits.len());
    debug_assert!(limits.len() <= MAX_POLICIES);
    let mut out = Outcome {
        allowed: true,
        violated: None,
        retry_after_us: 0,
        debts: [0; MAX_POLICIES],
    };
    let mut after = [0; MAX_POLICIES];
    for (i, (&debt, &l)) in debts.iter().zip(limits).enumerate() {
        out.debts[i] = debt;
        after[i] = match mode {
            Mode::Refund => (debt - cost * l.window_us).max(0),
            Mode::Check => {
                let charged = debt + cost * l.window_us;
                if charged > l.limit() {
                    out.allowed = false;
                    let wait = ceil_div(charged - l.limit(), l.quota);
                    if wait >= out.retry_after_us {
                        out.retry_after_us = wait;
                        out.violated = Some(i);
                    }
                }
                charged
            }
        };
    }
    if out.allowed {
        out.debts = after;
    }
    out
}

/// Whole units still available under a policy carrying `debt`.
pub(crate) fn remaining(debt: i64, limits: Limits) -> i64 {
    (limits.limit() - debt).max(0) / limits.window_us
}

/// µs until a policy carrying `debt` has its whole quota back.
pub(crate) fn reset_us(debt: i64, limits: Limits) -> i64 {
    ceil_div(debt, limits.quota)
}

/// `ceil(a / b)` for `a >= 0`, `b > 0`.
pub(crate) fn ceil_div(a: i64, b: i64) -> i64 {
    (a + b - 1) / b
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE_US: i64 = 60_000_000;

    fn limits(quota: i64, window_us: i64) -> Limits {
        Limits { quota, window_us }
    }

    /// Runs a check on one policy, storing the result, like a backend does.
    fn check(state: &mut Option<Tat>, now: i64, l: Limits, cost: i64) -> Outcome {
        let debt = state.map_or(0, |t| t.debt(now, l));
        let out = evaluate(&[debt], &[l], cost, Mode::Check);
        if out.allowed {
            *state = Tat::from_debt(out.debts[0], now, l);
        }
        out
    }

    #[test]
    fn a_fresh_key_admits_exactly_the_quota_even_when_the_interval_is_fractional() {
        for quota in [1, 3, 7, 600, 9_999, 100_000] {
            let l = limits(quota, MINUTE_US);
            let mut state = None;
            for n in 0..quota {
                assert!(
                    check(&mut state, 0, l, 1).allowed,
                    "quota {quota}, unit {n}"
                );
            }
            let denied = check(&mut state, 0, l, 1);
            assert!(!denied.allowed, "quota {quota}: one unit too many");
            // The next unit frees up one emission interval later, rounded up to a µs.
            assert_eq!(denied.retry_after_us, ceil_div(MINUTE_US, quota));
        }
    }

    #[test]
    fn the_retry_after_is_exact_to_the_microsecond() {
        let l = limits(7, MINUTE_US);
        let mut state = None;
        assert!(check(&mut state, 0, l, 7).allowed);
        let wait = check(&mut state, 0, l, 1).retry_after_us;
        assert!(!check(&mut state, wait - 1, l, 1).allowed);
        assert!(check(&mut state, wait, l, 1).allowed);
    }

    #[test]
    fn a_cost_uses_that_many_units() {
        let l = limits(10, MINUTE_US);
        let mut state = None;
        assert!(check(&mut state, 0, l, 5).allowed);
        let debt = state.map_or(0, |t| t.debt(0, l));
        assert_eq!(remaining(debt, l), 5);
        assert!(check(&mut state, 0, l, 5).allowed);
        assert!(!check(&mut state, 0, l, 1).allowed);
    }

    #[test]
    fn a_refused_cost_charges_no_policy() {
        let a = limits(10, MINUTE_US);
        let b = limits(3, MINUTE_US);
        let out = evaluate(&[0, 0], &[a, b], 4, Mode::Check);
        assert!(!out.allowed);
        assert_eq!(out.violated, Some(1));
        assert_eq!(out.debts, [0, 0]);
    }

    #[test]
    fn the_violated_policy_is_the_one_with_the_longest_wait() {
        // One unit is 6 s of the tenant's budget and 12 s of the credential's.
        let tenant = limits(10, MINUTE_US);
        let credential = limits(5, MINUTE_US);
        let used = |units: i64, l: Limits| units * l.window_us;

        // Only the tenant is short (by 1 unit): it is the violated one, 6 s.
        let out = evaluate(
            &[used(9, tenant), used(3, credential)],
            &[tenant, credential],
            2,
            Mode::Check,
        );
        assert_eq!(
            (out.allowed, out.violated, out.retry_after_us),
            (false, Some(0), 6_000_000)
        );

        // Both are short; the credential (2 units, 24 s) binds longer than the tenant (6 s).
        let out = evaluate(
            &[used(9, tenant), used(5, credential)],
            &[tenant, credential],
            2,
            Mode::Check,
        );
        assert_eq!(
            (out.allowed, out.violated, out.retry_after_us),
            (false, Some(1), 24_000_000)
        );
    }

    #[test]
    fn the_budget_refills_continuously() {
        let l = limits(60, MINUTE_US);
        let mut state = None;
        assert!(check(&mut state, 0, l, 60).allowed);
        assert!(!check(&mut state, 0, l, 1).allowed);
        // One unit per second comes back; 30 s give 30 units, not 31.
        assert!(check(&mut state, 30_000_000, l, 30).allowed);
        assert!(!check(&mut state, 30_000_000, l, 1).allowed);
        // A full window later the key is full again and needs no state.
        let debt = state.map_or(0, |t| t.debt(30_000_000 + MINUTE_US, l));
        assert_eq!(debt, 0);
        assert_eq!(remaining(debt, l), 60);
    }

    #[test]
    fn a_refund_gives_units_back_but_never_more_than_the_quota() {
        let l = limits(10, MINUTE_US);
        let out = evaluate(&[4 * l.window_us], &[l], 3, Mode::Refund);
        assert!(out.allowed);
        assert_eq!(remaining(out.debts[0], l), 9);
        let out = evaluate(&[l.window_us], &[l], 3, Mode::Refund);
        assert_eq!(out.debts[0], 0);
    }

    #[test]
    fn the_state_round_trips_through_tat_without_loss() {
        let l = limits(7, MINUTE_US);
        for debt in [1, 6, 7, 8, 12_345_678, l.limit()] {
            let now = 1_733_000_000_000_000;
            let tat = Tat::from_debt(debt, now, l).expect("debt > 0");
            assert!(tat.frac < l.quota);
            assert_eq!(tat.debt(now, l), debt);
        }
        assert_eq!(Tat::from_debt(0, 5, l), None);
    }

    #[test]
    fn reset_is_the_time_until_the_budget_is_full() {
        let l = limits(7, MINUTE_US);
        assert_eq!(reset_us(0, l), 0);
        assert_eq!(reset_us(l.window_us, l), ceil_div(MINUTE_US, 7));
        assert_eq!(reset_us(l.limit(), l), MINUTE_US);
    }
}
