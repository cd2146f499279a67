//! The Redis backend: one Lua script (`gcra.lua`), one round trip per decision.
//!
//! The script reads both of a request's keys, decides for both policies, and writes both
//! or neither — atomically, because Redis runs a script alone. Its keys share a hash tag
//! (`rl:{t:tenant}:t`, `rl:{t:tenant}:c:<credential>`), so on Redis Cluster they live in
//! one slot and the script may touch both. Each key expires (`PX`) when its budget is full
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
//!
//! ## Redis Cluster
//! A URL with a comma in it lists cluster nodes (see [`crate::RedisConfig::new`]); the
//! redis crate's cluster client then sends each call to the master that owns its keys' slot,
//! follows `MOVED`/`ASK`, and reconnects to a node that comes back. A decision touches that
//! one master and no other: when it answers `NOSCRIPT` (a restarted or promoted node), the
//! call is repeated as `EVAL` with the script's body on the same slot — which also caches
//! it there — instead of `SCRIPT LOAD`, which the cluster client sends to every master and
//! which would fail, or wait, on any master that is down.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Client, Cmd, ErrorKind, RedisWrite, Script, ServerErrorKind, ToRedisArgs};

use crate::Error;
use crate::clock::{self, Clock};
use crate::decision::{Decision, Source};
use crate::gcra::{Limits, MAX_POLICIES, Mode, Outcome};
use crate::policy::{PolicySet, StorageKeys};

/// The script's source.
const SCRIPT: &str = include_str!("gcra.lua");

/// How long the client waits for a TCP connection to a Redis node, and for one reply. The
/// limiter's deadline cuts every decision much shorter; these bound the client's own
/// background work (connecting, reconnecting, refreshing a cluster's slot map).
const CONNECTION_TIMEOUT: Duration = Duration::from_millis(500);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(1);

/// Where the script runs.
enum Connection {
    /// One Redis server, through the reconnecting manager.
    Single(ConnectionManager),
    /// A Redis Cluster: each call goes to the master that owns its keys' slot.
    Cluster(ClusterConnection),
}

/// A connection to Redis and the loaded script.
pub(crate) struct RedisBackend {
    connection: Connection,
    script: Script,
    /// `None`: Redis' `TIME`; `Some`: the time is passed in.
    clock: Option<Arc<dyn Clock>>,
}

impl std::fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the URL: it may carry a password.
        f.debug_struct("RedisBackend")
            .field(
                "cluster",
                &matches!(self.connection, Connection::Cluster(_)),
            )
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

impl RedisBackend {
    /// Prepares a connection to `url` — one server, or a cluster when `url` lists nodes
    /// (see [`cluster_nodes`]) — without waiting for it: the API starts (and falls back)
    /// even when Redis is down. Needs a Tokio runtime.
    pub(crate) fn new(url: &str, clock: Option<Arc<dyn Clock>>) -> Result<RedisBackend, Error> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::InvalidConfig(
                "the Redis backend must be created inside a Tokio runtime".into(),
            ));
        }
        let connection = match cluster_nodes(url) {
            None => Connection::Single(single(url)?),
            Some(nodes) if nodes.is_empty() => {
                return Err(Error::InvalidConfig(
                    "the Redis URL lists no cluster node".into(),
                ));
            }
            Some(nodes) => Connection::Cluster(cluster(&nodes)?),
        };
        Ok(RedisBackend {
            connection,
            script: Script::new(SCRIPT),
            clock,
        })
    }

    /// Loads the script (also a connectivity check; on a cluster, of every master).
    pub(crate) async fn load(&self) -> Result<(), Error> {
        match &self.connection {
            Connection::Single(conn) => self.script.load_async(&mut conn.clone()).await?,
            Connection::Cluster(conn) => self.script.load_async(&mut conn.clone()).await?,
        };
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
        let args = ScriptArgs {
            mode,
            cost,
            now_us: self.clock.as_deref().map(clock::now_us),
            limits: set.limits(),
        };
        let reply: Vec<i64> = match &self.connection {
            Connection::Single(conn) => {
                let mut invocation = self.script.prepare_invoke();
                for key in keys.keys() {
                    invocation.key(key.as_str());
                }
                invocation.arg(&args);
                invocation.invoke_async(&mut conn.clone()).await?
            }
            Connection::Cluster(conn) => {
                let mut conn = conn.clone();
                let evalsha = script_cmd("EVALSHA", self.script.get_hash(), keys, &args);
                match evalsha.query_async(&mut conn).await {
                    Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                        script_cmd("EVAL", SCRIPT, keys, &args)
                            .query_async(&mut conn)
                            .await?
                    }
                    reply => reply?,
                }
            }
        };
        let out = parse(&reply, set.limits().len())?;
        Ok(Decision::from_outcome(set, &out, cost, Source::Redis))
    }
}

/// The connection manager for one server at `url`.
fn single(url: &str) -> Result<ConnectionManager, Error> {
    let client = Client::open(url)?;
    // Reconnects are short and few: the limiter's own deadline and backoff decide when
    // to try Redis again, so the manager must not sit in long retry loops.
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECTION_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_number_of_retries(1)
        .set_min_delay(Duration::from_millis(20))
        .set_max_delay(Duration::from_millis(200));
    Ok(ConnectionManager::new_lazy_with_config(client, config)?)
}

/// A cluster connection seeded with `nodes`, made in the background (like the manager's
/// lazy connection): the client learns the slot map from whichever seed answers, and
/// retries reaching the cluster on later calls while none does.
fn cluster(nodes: &[&str]) -> Result<ClusterConnection, Error> {
    // As for one server: one quick retry (a MOVED after a resharding, a dropped connection)
    // and short waits, since the limiter's deadline and breaker decide the rest.
    let client = ClusterClient::builder(nodes.iter().copied())
        .connection_timeout(CONNECTION_TIMEOUT)
        .response_timeout(RESPONSE_TIMEOUT)
        .retries(1)
        .min_retry_wait(20)
        .max_retry_wait(200)
        .build()?;
    // The per-connection config replaces the builder's timeouts, so it repeats them.
    let config = ClusterConfig::new()
        .set_connection_timeout(CONNECTION_TIMEOUT)
        .set_response_timeout(RESPONSE_TIMEOUT);
    Ok(client.get_pending_async_connection_with_config(config))
}

/// The cluster node URLs in `url`, or `None` for a single server: a URL containing a comma
/// is a comma-separated list of node URLs (blank entries ignored, so `redis://host:port,`
/// is a cluster reached through one address).
fn cluster_nodes(url: &str) -> Option<Vec<&str>> {
    url.contains(',').then(|| {
        url.split(',')
            .map(str::trim)
            .filter(|node| !node.is_empty())
            .collect()
    })
}

/// The script's arguments after the keys (see `gcra.lua`).
struct ScriptArgs<'a> {
    mode: Mode,
    cost: u64,
    /// The injected clock's reading, or `None` for Redis' own `TIME`.
    now_us: Option<i64>,
    limits: &'a [Limits],
}

impl ToRedisArgs for ScriptArgs<'_> {
    fn write_redis_args<W>(&self, out: &mut W)
    where
        W: ?Sized + RedisWrite,
    {
        out.write_arg(match self.mode {
            Mode::Check => b"check",
            Mode::Refund => b"refund",
        });
        self.cost.write_redis_args(out);
        match self.now_us {
            Some(now) => now.write_redis_args(out),
            None => out.write_arg(b""),
        }
        for limits in self.limits {
            limits.quota.write_redis_args(out);
            limits.window_us.write_redis_args(out);
        }
    }
}

/// `EVALSHA <hash>` or `EVAL <script>` with the decision's keys and arguments.
fn script_cmd(verb: &str, script: &str, keys: &StorageKeys, args: &ScriptArgs<'_>) -> Cmd {
    let mut cmd = redis::cmd(verb);
    cmd.arg(script).arg(keys.keys().len());
    for key in keys.keys() {
        cmd.arg(key.as_str());
    }
    cmd.arg(args);
    cmd
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
    fn a_url_with_a_comma_lists_cluster_nodes() {
        assert_eq!(cluster_nodes("redis://127.0.0.1:6379"), None);
        assert_eq!(
            cluster_nodes("redis://10.0.0.1:7000, redis://10.0.0.2:7000"),
            Some(vec!["redis://10.0.0.1:7000", "redis://10.0.0.2:7000"])
        );
        assert_eq!(
            cluster_nodes("redis://10.0.0.1:7000,"),
            Some(vec!["redis://10.0.0.1:7000"])
        );
        assert_eq!(cluster_nodes(","), Some(vec![]));
    }

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
