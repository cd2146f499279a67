//! Time, injectable so tests drive it instead of sleeping.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of wall-clock time for the algorithm.
pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    /// Time since the Unix epoch.
    fn now(&self) -> Duration;
}

/// The system clock. A step backwards is harmless: a key's stored arrival time only grows,
/// so requests are judged against it until the clock catches up.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
    }
}

/// A clock that only moves when told to (tests). Share it with `Arc`.
#[derive(Debug)]
pub struct ManualClock {
    us: AtomicU64,
}

impl ManualClock {
    /// A clock reading `start` since the Unix epoch.
    pub fn new(start: Duration) -> ManualClock {
        ManualClock {
            us: AtomicU64::new(micros(start)),
        }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.us.fetch_add(micros(by), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        Duration::from_micros(self.us.load(Ordering::SeqCst))
    }
}

impl<C: Clock> Clock for std::sync::Arc<C> {
    fn now(&self) -> Duration {
        (**self).now()
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// `clock`'s reading in µs since the epoch, as the algorithm counts.
pub(crate) fn now_us(clock: &dyn Clock) -> i64 {
    i64::try_from(clock.now().as_micros()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_advanced() {
        let clock = ManualClock::new(Duration::from_secs(1_000));
        assert_eq!(clock.now(), Duration::from_secs(1_000));
        clock.advance(Duration::from_millis(1_500));
        assert_eq!(now_us(&clock), 1_001_500_000);
    }

    #[test]
    fn the_system_clock_is_past_2024() {
        assert!(SystemClock.now() > Duration::from_secs(1_704_067_200));
    }
}
