//! The limiter on Redis Cluster: every test starts a three-master cluster of its own on
//! spare loopback ports and kills it when done (a `Drop` guard), so the tests run in
//! parallel and never touch the shared Redis of `REDIS_URL`.
//!
//! They need `redis-server` (7.0 or later, for `--cluster-port`) and `redis-cli` on the
//! `PATH`. Without them the tests return early with a note — except under `CI=true`, where
//! that fails the run. Waits are bounded polls (of `redis-cli cluster info`, of the
//! limiter), never a sleep standing in for a condition; their limits are generous, since CI
//! is a busy two-core machine.
//!
//! A node's logs and `nodes-<port>.conf` stay in its temporary directory when a test
//! fails; the directory is printed.

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ratelimit::{Key, Limiter, ManualClock, Policies, Policy, RedisConfig, Source};
use redis::cluster_routing::Slot;

const MINUTE: Duration = Duration::from_secs(60);

/// How long a bounded poll may wait for the cluster to reach a state, or the limiter to
/// come back to it.
const POLL_LIMIT: Duration = Duration::from_secs(60);
const POLL_EVERY: Duration = Duration::from_millis(50);

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Whether `program` runs; `false` (with a note) when it is missing outside CI.
fn available(program: &str) -> bool {
    match Command::new(program).arg("--version").output() {
        Ok(out) if out.status.success() => true,
        result if in_ci() => panic!("CI=true but `{program} --version` fails: {result:?}"),
        result => {
            eprintln!("{program} unavailable ({result:?}); skipping the cluster test");
            false
        }
    }
}

/// One cluster node: a `redis-server` child and the ports it listens on. Dropping it kills
/// the child, so no early return or panic leaves a server behind.
struct Node {
    port: u16,
    /// The cluster bus port, chosen apart from `port` (the default `port + 10000` may not
    /// exist for a high spare port).
    bus_port: u16,
    child: Option<Child>,
}

impl Node {
    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A three-master Redis Cluster of this test's own. Dropping it kills every node and
/// removes its directory (kept when the test failed).
struct Cluster {
    dir: PathBuf,
    nodes: Vec<Node>,
}

impl Cluster {
    /// Starts three masters and joins them; `None` when there is no Redis here (outside CI).
    async fn start(test: &str) -> Option<Cluster> {
        if !available("redis-server") || !available("redis-cli") {
            return None;
        }
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_nanos();
        let dir = std::env::temp_dir().join(format!(
            "ratelimit-cluster-{test}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).expect("cluster directory");
        let mut cluster = Cluster {
            dir,
            nodes: Vec::new(),
        };
        // A spare port can be taken between choosing it and the server binding it: a
        // node that exits at once is started again on other ports.
        for _ in 0..3 {
            let mut attempts = 0;
            loop {
                attempts += 1;
                let [port, bus_port] = spare_ports();
                let mut node = Node {
                    port,
                    bus_port,
                    child: None,
                };
                cluster.spawn(&mut node);
                if cluster.wait_until_answering(&mut node).await {
                    cluster.nodes.push(node);
                    break;
                }
                assert!(attempts < 5, "no node would start; see {:?}", cluster.dir);
            }
        }
        let mut create = tokio::process::Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        create.args(cluster.nodes.iter().map(Node::address));
        create.args(["--cluster-replicas", "0", "--cluster-yes"]);
        let out = create.output().await.expect("redis-cli --cluster create");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        cluster.wait_until_ok().await;
        Some(cluster)
    }

    /// Starts `node`'s server (again, after a kill: same ports, same node config file, so
    /// it rejoins with its identity and slots).
    fn spawn(&self, node: &mut Node) {
        let child = Command::new("redis-server")
            .args(["--port", &node.port.to_string()])
            .args(["--cluster-port", &node.bus_port.to_string()])
            .args(["--bind", "127.0.0.1", "--cluster-enabled", "yes"])
            .args([
                "--cluster-config-file",
                &format!("nodes-{}.conf", node.port),
            ])
            // Short, so a dead master fails the cluster within a test's patience.
            .args(["--cluster-node-timeout", "2000"])
            .arg("--dir")
            .arg(&self.dir)
            .args(["--save", "", "--appendonly", "no"])
            .args(["--logfile", &format!("node-{}.log", node.port)])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        node.child = Some(child);
    }

    /// Polls `node` until it answers (`true`) or its process exits (`false`). The answer
    /// must come from this process, not from a server that took the port first.
    async fn wait_until_answering(&self, node: &mut Node) -> bool {
        let started = Instant::now();
        let child = node.child.as_mut().expect("node was spawned");
        let own_pid = format!("process_id:{}", child.id());
        loop {
            if child.try_wait().expect("child status").is_some() {
                node.child = None;
                return false;
            }
            let info = redis_cli(node.port, &["info", "server"]).await;
            if info.is_some_and(|i| i.lines().any(|l| l.trim() == own_pid)) {
                return true;
            }
            assert!(
                started.elapsed() < POLL_LIMIT,
                "node {} never answered; see {:?}",
                node.port,
                self.dir
            );
            tokio::time::sleep(POLL_EVERY).await;
        }
    }

    /// Polls `redis-cli cluster info` on every node until each reports `cluster_state:ok`.
    async fn wait_until_ok(&self) {
        let started = Instant::now();
        loop {
            let mut all = true;
            for node in &self.nodes {
                let info = redis_cli(node.port, &["cluster", "info"]).await;
                all &= info.is_some_and(|i| i.lines().any(|l| l.trim() == "cluster_state:ok"));
            }
            if all {
                return;
            }
            assert!(
                started.elapsed() < POLL_LIMIT,
                "the cluster never reached cluster_state:ok; see {:?}",
                self.dir
            );
            tokio::time::sleep(POLL_EVERY).await;
        }
    }

    /// The comma-separated node list the limiter takes.
    fn url(&self) -> String {
        self.nodes
            .iter()
            .map(Node::url)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `kill -9` of node `i`.
    fn kill(&mut self, i: usize) {
        let mut child = self.nodes[i].child.take().expect("node is running");
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
    }

    /// Starts node `i` again after [`Cluster::kill`].
    async fn restart(&mut self, i: usize) {
        let mut node = Node {
            port: self.nodes[i].port,
            bus_port: self.nodes[i].bus_port,
            child: None,
        };
        self.spawn(&mut node);
        assert!(
            self.wait_until_answering(&mut node).await,
            "node {} did not restart on its port; see {:?}",
            node.port,
            self.dir
        );
        self.nodes[i] = node;
    }

    /// Every key under `prefix` on each node (`KEYS` is node-local on a cluster), with the
    /// slot the node itself assigns it (`CLUSTER KEYSLOT`).
    async fn keys_by_node(&self, prefix: &str) -> Vec<Vec<(String, u16)>> {
        let mut out = Vec::new();
        for node in &self.nodes {
            let client = redis::Client::open(node.url()).expect("client");
            let mut conn = client
                .get_multiplexed_async_connection()
                .await
                .expect("connection to a node");
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{prefix}*"))
                .query_async(&mut conn)
                .await
                .expect("KEYS");
            let mut with_slots = Vec::new();
            for key in keys {
                let slot: u16 = redis::cmd("CLUSTER")
                    .arg("KEYSLOT")
                    .arg(&key)
                    .query_async(&mut conn)
                    .await
                    .expect("CLUSTER KEYSLOT");
                with_slots.push((key, slot));
            }
            out.push(with_slots);
        }
        out
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.nodes.clear();
        if std::thread::panicking() {
            eprintln!("cluster logs kept in {:?}", self.dir);
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Two ports free right now (both listeners are held until both are chosen).
fn spare_ports() -> [u16; 2] {
    let a = TcpListener::bind("127.0.0.1:0").expect("a spare port");
    let b = TcpListener::bind("127.0.0.1:0").expect("a spare port");
    [a, b].map(|l| l.local_addr().expect("address").port())
}

/// `redis-cli -p <port> <args>`'s output, or `None` when it fails (node down or loading).
async fn redis_cli(port: u16, args: &[&str]) -> Option<String> {
    let out = tokio::process::Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    (out.status.success() && !text.starts_with("Could not connect") && !text.is_empty())
        .then_some(text)
}

/// A key prefix no other test (or earlier run) uses.
fn unique_prefix(test: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos();
    format!("test:{test}:{}:{nanos}:", std::process::id())
}

fn policies(tenant: u64, credential: u64) -> Policies {
    Policies::new(
        Policy::new("tenant", tenant, MINUTE).expect("tenant policy"),
        Policy::new("credential", credential, MINUTE).expect("credential policy"),
        Policy::new("ip", 60, MINUTE).expect("ip policy"),
    )
    .expect("policies")
}

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(Duration::from_secs(1_800_000_000)))
}

/// A limiter ("an API instance") on the cluster, on `clock`.
fn instance(
    policies: &Policies,
    clock: &Arc<ManualClock>,
    url: &str,
    prefix: &str,
    timeout: Duration,
) -> Limiter {
    Limiter::builder(policies.clone())
        .clock(clock.clone())
        .redis(
            RedisConfig::new(url)
                .key_prefix(prefix)
                .timeout(timeout)
                .backoff(Duration::from_millis(20), Duration::from_millis(200)),
        )
        .build()
        .expect("cluster limiter")
}

fn credential<'a>(tenant: &'a str, credential: &'a str) -> Key<'a> {
    Key::Credential { tenant, credential }
}

/// Tenants whose slots spread over all three masters (their names fix their slots).
fn tenants() -> Vec<String> {
    (0..24).map(|i| format!("tenant-{i}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limiter_started_while_the_cluster_is_down_falls_back_then_uses_it_once_up() {
    let Some(mut cluster) = Cluster::start("late").await else {
        return;
    };
    for i in 0..3 {
        cluster.kill(i);
    }
    // The limiter is built all the same (the connection is made in the background), and
    // answers from the fallback within its deadline.
    let prefix = unique_prefix("late");
    let deadline = Duration::from_millis(100);
    let limiter = instance(
        &policies(100, 5),
        &clock(),
        &cluster.url(),
        &prefix,
        deadline,
    );
    assert!(limiter.connect().await.is_err());
    let key = credential("t1", "k1");
    for _ in 0..5 {
        let begun = Instant::now();
        let d = limiter.check(&key, 1).await;
        assert!(
            begun.elapsed() < Duration::from_secs(1),
            "a decision waited {:?} (deadline {deadline:?})",
            begun.elapsed()
        );
        assert_eq!(d.source(), Source::Fallback);
        assert!(d.allowed());
    }
    assert!(!limiter.stats().redis_healthy);

    // The whole cluster comes back from its node configs.
    for i in 0..3 {
        cluster.restart(i).await;
    }
    let polls = POLL_LIMIT.as_millis() / POLL_EVERY.as_millis();
    let mut back = false;
    for _ in 0..polls {
        if limiter.check(&key, 0).await.source() == Source::Redis {
            back = true;
            break;
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
    assert!(back, "the limiter never reached the cluster");
    assert!(limiter.connect().await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_every_tenant_s_budget_through_the_cluster() {
    let Some(cluster) = Cluster::start("share").await else {
        return;
    };
    let prefix = unique_prefix("share");
    let p = policies(100, 5);
    let clock = clock();
    // Generous deadlines: this test is about sharing, not about the fallback.
    let a = instance(&p, &clock, &cluster.url(), &prefix, Duration::from_secs(2));
    let b = instance(&p, &clock, &cluster.url(), &prefix, Duration::from_secs(2));
    a.connect().await.expect("every master is up");

    for (i, tenant) in tenants().iter().enumerate() {
        // Instances take turns spending, so both directions are shown.
        let (spender, other) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
        let key = credential(tenant, "k1");
        let d = spender.check(&key, 5).await;
        assert_eq!(d.source(), Source::Redis, "{tenant}");
        assert!(d.allowed(), "{tenant}");

        let d = other.check(&key, 1).await;
        assert_eq!(d.source(), Source::Redis, "{tenant}");
        assert!(
            !d.allowed(),
            "{tenant}: the other instance's spending must bind"
        );
        assert_eq!(d.violated().map(Policy::name), Some("credential"));

        // The tenant budget is shared too: another credential sees what k1 spent.
        let d = other.check(&credential(tenant, "k2"), 2).await;
        assert!(d.allowed());
        let remaining: Vec<u64> = d.policies().map(|s| s.remaining).collect();
        assert_eq!(remaining, [93, 3], "{tenant}");
    }
    assert_eq!(a.stats().redis_failures + b.stats().redis_failures, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keys_of_a_decision_are_written_to_one_slot_on_one_master() {
    let Some(cluster) = Cluster::start("slots").await else {
        return;
    };
    let prefix = unique_prefix("slots");
    let p = policies(100, 10);
    let clock = clock();
    let limiter = instance(&p, &clock, &cluster.url(), &prefix, Duration::from_secs(2));
    let tenants = tenants();
    for tenant in &tenants {
        for k in ["k1", "k2"] {
            let d = limiter.check(&credential(tenant, k), 1).await;
            assert_eq!(d.source(), Source::Redis);
            assert!(d.allowed());
        }
    }

    // Where each tenant's keys ended up: (node, slot) per key, as the nodes tell it.
    let mut placement: BTreeMap<&str, BTreeSet<(usize, u16)>> = BTreeMap::new();
    let mut found = 0;
    for (node, keys) in cluster.keys_by_node(&prefix).await.into_iter().enumerate() {
        for (key, slot) in keys {
            // The client computes the same slot as the server.
            assert_eq!(Some(Slot::for_key(&key)), Slot::new(slot), "{key}");
            let tenant = tenants
                .iter()
                .find(|t| key.starts_with(&format!("{prefix}rl:{{t:{t}}}:")))
                .unwrap_or_else(|| panic!("a key of no tenant: {key}"));
            placement.entry(tenant).or_default().insert((node, slot));
            found += 1;
        }
    }
    // Each tenant: its budget and two credentials', all in one slot on one master.
    assert_eq!(found, tenants.len() * 3);
    assert_eq!(placement.len(), tenants.len());
    for (tenant, places) in &placement {
        assert_eq!(places.len(), 1, "{tenant}'s keys are split: {places:?}");
    }
    // And the cluster really is used: the tenants spread over all three masters.
    let masters: BTreeSet<usize> = placement.values().flatten().map(|&(n, _)| n).collect();
    assert_eq!(masters.len(), 3, "{placement:?}");

    // The owning master counts exactly those keys in the slot (no other tenant here
    // shares it, or the count includes theirs).
    for (tenant, places) in &placement {
        let &(node, slot) = places.iter().next().expect("one place");
        let sharing = placement
            .values()
            .filter(|p| p.iter().any(|&(_, s)| s == slot))
            .count();
        let count = redis_cli(
            cluster.nodes[node].port,
            &["cluster", "countkeysinslot", &slot.to_string()],
        )
        .await
        .expect("CLUSTER COUNTKEYSINSLOT");
        assert_eq!(count, (3 * sharing).to_string(), "{tenant}, slot {slot}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_a_master_is_killed_decisions_fall_back_and_return_to_the_cluster_once_it_rejoins() {
    let Some(mut cluster) = Cluster::start("failover").await else {
        return;
    };
    let prefix = unique_prefix("failover");
    // Budgets the fallback cannot exhaust while the test polls.
    let p = policies(100_000, 10_000);
    let clock = clock();
    let deadline = Duration::from_millis(100);
    let limiter = instance(&p, &clock, &cluster.url(), &prefix, deadline);
    limiter.connect().await.expect("every master is up");

    // One decision per tenant, to see which master holds whose keys.
    let tenants = tenants();
    for tenant in &tenants {
        let d = limiter.check(&credential(tenant, "k1"), 1).await;
        assert_eq!(d.source(), Source::Redis, "{tenant}");
    }
    let keys = cluster.keys_by_node(&prefix).await;
    let on = |node: usize| {
        tenants
            .iter()
            .find(|t| {
                keys[node]
                    .iter()
                    .any(|(k, _)| k.starts_with(&format!("{prefix}rl:{{t:{t}}}:")))
            })
            .expect("every master holds some tenant")
            .as_str()
    };
    let victim = 1;
    let (doomed, spared) = (on(victim), on(0));

    cluster.kill(victim);
    // Decisions go on — from the fallback for the dead master's tenant, never an error or a
    // wait much past the deadline — until the survivors declare the cluster failed (after
    // the node timeout), and while it stays so.
    let started = Instant::now();
    let mut decisions = 0;
    let mut failed_seen = false;
    while !failed_seen || decisions < 20 {
        for tenant in [doomed, spared] {
            let begun = Instant::now();
            let d = limiter.check(&credential(tenant, "k1"), 1).await;
            assert!(
                begun.elapsed() < Duration::from_secs(1),
                "a decision waited {:?} (deadline {deadline:?})",
                begun.elapsed()
            );
            assert!(d.allowed(), "the fallback starts with a full budget");
            if tenant == doomed {
                assert_eq!(
                    d.source(),
                    Source::Fallback,
                    "{tenant} lives on the dead master"
                );
            }
            decisions += 1;
        }
        if !failed_seen {
            let info = redis_cli(cluster.nodes[0].port, &["cluster", "info"]).await;
            failed_seen = info.is_some_and(|i| i.contains("cluster_state:fail"));
        }
        assert!(
            started.elapsed() < POLL_LIMIT,
            "the survivors never noticed the dead master"
        );
        tokio::time::sleep(POLL_EVERY).await;
    }
    eprintln!(
        "cluster failed {:?} after the kill; {decisions} decisions meanwhile",
        started.elapsed()
    );
    let stats = limiter.stats();
    assert!(
        !stats.redis_healthy && stats.redis_failures >= 1,
        "{stats:?}"
    );
    assert!(stats.fallbacks >= 10, "{stats:?}");

    // The master comes back (empty: no persistence) with its node config, and rejoins;
    // the survivors clear its failure. Until they all have, a decision may still fall back.
    cluster.restart(victim).await;
    let restarted = Instant::now();
    let polls = POLL_LIMIT.as_millis() / POLL_EVERY.as_millis();
    let mut back = false;
    for _ in 0..polls {
        let doomed_source = limiter.check(&credential(doomed, "k1"), 0).await.source();
        let spared_source = limiter.check(&credential(spared, "k1"), 0).await.source();
        if (doomed_source, spared_source) == (Source::Redis, Source::Redis) {
            eprintln!(
                "back on the cluster {:?} after the restart",
                restarted.elapsed()
            );
            back = true;
            break;
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
    assert!(back, "the limiter never went back to the cluster");
    assert!(limiter.stats().redis_healthy);

    // Shared again: what this instance spends on the restarted master, a fresh one sees.
    let key = credential(doomed, "k2");
    let d = limiter.check(&key, 10_000).await;
    assert_eq!(d.source(), Source::Redis);
    assert!(d.allowed());
    let other = instance(&p, &clock, &cluster.url(), &prefix, Duration::from_secs(2));
    let d = other.check(&key, 1).await;
    assert_eq!(d.source(), Source::Redis);
    assert!(
        !d.allowed(),
        "the budget spent through one instance must bind the other"
    );
    assert_eq!(d.violated().map(Policy::name), Some("credential"));
    // The restarted master had lost the script: the decision ran it with EVAL there, and
    // loaded nothing on the other masters.
    let stats = redis_cli(cluster.nodes[victim].port, &["info", "commandstats"])
        .await
        .expect("INFO commandstats");
    assert!(stats.contains("cmdstat_eval:"), "{stats}");
    let written = cluster.keys_by_node(&prefix).await;
    assert!(
        written[victim]
            .iter()
            .any(|(k, _)| k.starts_with(&format!("{prefix}rl:{{t:{doomed}}}:"))),
        "{doomed}'s keys are back on the restarted master"
    );
}
