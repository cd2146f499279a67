//! The Redis backend: one Lua script (`gcra.lua`), one round trip per decision.
//!
//! The script reads both of a request's keys, decides for both policies, and writes both
//! or neither — atomically, because Redis runs a script alone. Its keys share a hash tag
//! (`rl:{tenant}:t`, `rl:{tenant}:c:<credential>`), so on Redis Cluster they live in one
//! slot and the script may touch both. Each key expires (`PX`) when its budget is full
//! again, so idle tenants and credentials leave nothing behind.
//!
//! ## Whose clock
//! By default the script reads Redis' own clock (`TIME`): every API instance then judges
//! against one clock, so skew between application hosts cannot hand out extra budget or
//! refuse early. A limiter built with an explicit [`crate::Clock`] passes its time in
//! instead, which is how tests drive refill on Redis exactly as on the in-process backend.
//!
//! The script is sent by hash (`EVALSHA`); after a Redis restart the first call loads it
//! again (one extra round trip, once).

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, Script};

use crate::Error;
use crate::clock::{self, Clock};
use crate::decision::{Decision, Source};
use crate::gcra::{MAX_POLICIES, Mode, Outcome};
use crate::policy::{PolicySet, StorageKeys};

/// The script's source.
const SCRIPT: &str = include_str!("gcra.lua");

/// A connection to Redis and the loaded script.
pub(crate) struct RedisBackend {
    connection: ConnectionManager,
    script: Script,
    /// `None`: Redis' `TIME`; `Some`: the time is passed in.
    clock: Option<Arc<dyn Clock>>,
}

impl std::fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the URL: it may carry a password.
        f.debug_struct("RedisBackend")
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

impl RedisBackend {
    /// Prepares a connection to `url` without waiting for it: the API starts (and falls
    /// back) even when Redis is down. Needs a Tokio runtime.
    pub(crate) fn new(url: &str, clock: Option<Arc<dyn Clock>>) -> Result<RedisBackend, Error> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::InvalidConfig(
                "the Redis backend must be created inside a Tokio runtime".into(),
            ));
        }
        let client = Client::open(url)?;
        // Reconnects are short and few: the limiter's own deadline and backoff decide when
        // to try Redis again, so the manager must not sit in long retry loops.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(500)))
            .set_response_timeout(Some(Duration::from_secs(1)))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(20))
            .set_max_delay(Duration::from_millis(200));
        let connection = ConnectionManager::new_lazy_with_config(client, config)?;
        Ok(RedisBackend {
            connection,
            script: Script::new(SCRIPT),
            clock,
        })
    }

    /// Loads the script (also a connectivity check).
    pub(crate) async fn load(&self) -> Result<(), Error> {
        let mut conn = self.connection.clone();
        self.script.load_async(&mut conn).await?;
        Ok(())
    }

    /// Runs the script for one request.
    pub(crate) async fn decide(
        &self,
        set: &Arc<PolicySet>,
        keys: &StorageKeys,
        cost: u64,
        mode: Mode,
    ) -> Result<Decision, Error> {
        let mut invocation = self.script.prepare_invoke();
        for key in keys.keys() {
            invocation.key(key.as_str());
        }
        invocation.arg(match mode {
            Mode::Check => "check",
            Mode::Refund => "refund",
        });
        invocation.arg(cost);
        match &self.clock {
            Some(clock) => invocation.arg(clock::now_us(clock.as_ref())),
            None => invocation.arg(""),
        };
        for limits in set.limits() {
            invocation.arg(limits.quota).arg(limits.window_us);
        }
        let mut conn = self.connection.clone();
        let reply: Vec<i64> = invocation.invoke_async(&mut conn).await?;
        let out = parse(&reply, set.limits().len())?;
        Ok(Decision::from_outcome(set, &out, cost, Source::Redis))
    }
}

/// The script's reply as an [`Outcome`].
fn parse(reply: &[i64], policies: usize) -> Result<Outcome, Error> {
    let [allowed, violated, _now, retry, debts @ ..] = reply else {
        return Err(Error::Protocol);
    };
    if debts.len() != policies || policies > MAX_POLICIES {
        return Err(Error::Protocol);
    }
    let mut out = Outcome {
        allowed: *allowed == 1,
        violated: usize::try_from(*violated)
            .ok()
            .and_then(|v| v.checked_sub(1)),
        retry_after_us: *retry,
        debts: [0; MAX_POLICIES],
    };
    out.debts[..policies].copy_from_slice(debts);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_of_the_wrong_shape_is_a_protocol_error() {
        assert!(matches!(parse(&[1, 0, 5], 1), Err(Error::Protocol)));
        assert!(matches!(parse(&[1, 0, 5, 0, 7], 2), Err(Error::Protocol)));
        let out = parse(&[0, 2, 5, 500, 7, 9], 2).expect("two policies");
        assert_eq!(
            (out.allowed, out.violated, out.retry_after_us),
            (false, Some(1), 500)
        );
        assert_eq!(out.debts, [7, 9]);
    }
}
