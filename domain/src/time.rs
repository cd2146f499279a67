//! The server's clock, at the precision both databases store.

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};

/// Now, truncated to microseconds: PostgreSQL stores microseconds, so a value written
/// and read back compares equal on both backends, and cursors built from returned rows
/// match the stored keys exactly.
pub(crate) fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// The `updated_at` of a row's next change: `max(now, previous + 1µs)`.
///
/// A sync client walks `(updated_at, id)` upwards and remembers where it stopped. If a
/// row's `updated_at` could stay equal or go backwards on a change (two changes in the
/// same microsecond, or a clock step back between servers), the new version could sort
/// at or behind a cursor that already passed the row, and the client would never see
/// it. Taking the maximum with `previous + 1µs` makes every change move the row strictly
/// forwards. It is computed here rather than in SQL because the two backends store
/// timestamps differently (text on SQLite, `timestamptz` on PostgreSQL) and have no
/// portable "add an interval"; the read that supplies `previous` is tied to the write by
/// the version guard, so no other change can slip in between.
pub(crate) fn next_updated_at(previous: DateTime<Utc>) -> DateTime<Utc> {
    now().max(previous + TimeDelta::microseconds(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_updated_at_moves_forwards_even_when_the_clock_is_behind() {
        let future = now() + TimeDelta::hours(1);
        assert_eq!(next_updated_at(future), future + TimeDelta::microseconds(1));
        let past = now() - TimeDelta::hours(1);
        assert!(next_updated_at(past) > past + TimeDelta::minutes(59));
        assert_eq!(now().timestamp_subsec_nanos() % 1000, 0);
    }
}
