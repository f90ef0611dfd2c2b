//! A Consul cluster across hosts, with Fabio, under faults.
//!
//! Each test builds its own topology of network namespaces standing in for machines: three
//! Consul servers (`s1`..`s3`), two client hosts (`c1`, `c2`) each with a Consul client agent
//! and a `cool_app` instance, and a router host (`fb`) with its own client agent and Fabio
//! reading it. Every host has one interface (`eth0`, 10.213.9.0/24) on a veth pair whose other
//! end is a port of a bridge inside a dedicated "switch" namespace; nothing is added to the
//! root namespace. A host is cut off by setting its switch port down (a pulled cable).
//!
//! The test reads Consul and Fabio, and sends load through Fabio, from helper processes it
//! starts inside the router host (this same test binary, running [`cluster_netns_helper`]),
//! so every packet stays on interfaces the test created. Namespace names carry the test's pid
//! and a per-topology number; they are deleted (with the veth pairs and the bridge) when the
//! topology drops, also when the test fails, after every process in them was killed.
//!
//! Ports: every agent uses serf LAN port 8301 (Consul's default, the same on every host, as in
//! a real deployment); that is safe because each namespace is new and holds nothing else. The
//! other ports (HTTP, server RPC, serf WAN, Fabio's) are picked at run time.
//!
//! The tests, each on a topology of its own, each printing its figures:
//!
//! - `cluster_routes_across_hosts`: requests through Fabio reach both hosts' instances, and
//!   every agent, Fabio and both instances run outside the root namespace.
//! - `cluster_leader_loss_under_load`: the leader server is killed (SIGKILL) under load
//!   through Fabio; `leader_failover_ms` until both survivors name a new leader,
//!   `leader_loss_requests_failed_count` (asserted 0); both instances stay passing and routed.
//!   A discovery watch in each consistency mode on a client agent, sampled across the loss:
//!   how long each was stale and how long it showed fewer instances
//!   (`leader_loss_watch_<mode>_stale_ms`, `_missing_ms`).
//! - `cluster_agent_restart_losing_state`: a client agent is killed and restarted with its
//!   data directory removed; `agent_restart_reregistered_ms` until the runtime registered the
//!   instance with it again (then the catalog and Fabio follow).
//! - `cluster_agent_restart_keeping_state`: the same, keeping the data directory; the
//!   instance is out of Fabio's table until the restored check's first run (printed, bounded
//!   by the check interval; see the test).
//! - `cluster_host_cut_off`: a client host's link goes down; its node's serfHealth turns
//!   critical and Fabio drops its instance (`partition_unroutable_ms`), and routes it again
//!   once the link is back (`partition_heal_routable_ms`).
//! - `cluster_sigterm_under_load`: SIGTERM to one instance under load through Fabio;
//!   `sigterm_requests_failed_count` (asserted 0); after its exit the other serves everything.
//! - `cluster_scale`: 1,000 services registered through the client agents
//!   (`cluster_register_1000_ms`) until Fabio routes them all (`fabio_routes_1000_ms`); one
//!   more route into Fabio's table of 1,000 (`fabio_route_update_p50_ms_1000`); 100 discovery
//!   watches over both client agents, from a registration on the router host until each
//!   shows it (`cluster_watch_propagation_p50_ms_100`, p99, max); then, Fabio frozen, the same
//!   in each consistency mode and with one watch per agent, three times each, with the CPU
//!   the servers and the client agents spent per change
//!   (`cluster_watch_<mode>_servers_cpu_ms_per_change_<M>`, `_clients_cpu_...`).
//! - `cluster_rolling_restart_of_100`: 100 instances over both client hosts restarted in ten
//!   rounds under load through Fabio (new ones routed first, then SIGTERM to old ones);
//!   `cluster_rolling_restart_100_failed_count` (asserted 0).
//!
//! The tests run one after another (a lock): each topology is seven Consul agents, Fabio and
//! two instances (a hundred in the rolling restart), which is all two cores should carry at
//! once. The figures go to
//! `target/bench-results/cluster.json`.
//!
//! Needs root, iproute2 (`ip`) and the real peers (Go); without them the tests print why and
//! pass as skipped, and with `CI=true` they fail instead.

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, mpsc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use discoverable_testkit::{Consul, ConsulOptions, Fabio, FabioOptions, peers};
use serde_json::{Value, json};
use support::netns::{self, Namespaces, ip};
use support::{Proc, binary, spawn};

/// Set in the helper's environment: [`cluster_netns_helper`] acts only when it is.
const HELPER_ENV: &str = "DISCOVERABLE_CLUSTER_HELPER";
/// The hosts' network, shared by every topology (each has its own bridge).
const NET: &str = "10.213.9";
const PREFIX_LEN: &str = "24";
/// Serf LAN port of every agent (see the module comment).
const SERF_LAN: u16 = 8301;
/// The hosts: short name (also the node name) and last octet of the address.
const SERVERS: [(&str, u8); 3] = [("s1", 11), ("s2", 12), ("s3", 13)];
const CLIENTS: [(&str, u8); 2] = [("c1", 21), ("c2", 22)];
const ROUTER: (&str, u8) = ("fb", 30);

/// Bound on forming the cluster and on each wait of a step.
const T: Duration = Duration::from_secs(60);

fn addr(octet: u8) -> IpAddr {
    format!("{NET}.{octet}").parse().unwrap()
}

// ---------------------------------------------------------------------------------------
// The network

/// The hosts' namespaces and the switch namespace with its bridge; deleted when dropped.
struct Net {
    tag: String,
    /// Namespaces made, in order (the switch first); deleted in reverse when dropped.
    created: Namespaces,
}

impl Net {
    /// `Err`: why the namespaces could not be made (not root, no iproute2, no netns support).
    fn create() -> Result<Net, String> {
        static N: AtomicUsize = AtomicUsize::new(0);
        let tag = format!(
            "dcl{}n{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let mut net = Net {
            tag,
            created: Namespaces::default(),
        };
        let sw = net.switch();
        net.created.add(&sw)?;
        ip(&["-n", &sw, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &sw, "link", "set", "br0", "up"])?;
        ip(&["-n", &sw, "link", "set", "lo", "up"])?;
        for (host, octet) in SERVERS.iter().chain(&CLIENTS).chain([&ROUTER]) {
            let ns = net.ns(host);
            net.created.add(&ns)?;
            // The pair is made inside the switch namespace with its host end moved straight
            // into the host's: it never appears in the root namespace. The switch port is
            // named after the host.
            let cidr = format!("{NET}.{octet}/{PREFIX_LEN}");
            let steps: [&[&str]; 6] = [
                &[
                    "-n", &sw, "link", "add", host, "type", "veth", "peer", "name", "eth0",
                    "netns", &ns,
                ],
                &["-n", &sw, "link", "set", host, "master", "br0"],
                &["-n", &sw, "link", "set", host, "up"],
                &["-n", &ns, "addr", "add", &cidr, "dev", "eth0"],
                &["-n", &ns, "link", "set", "eth0", "up"],
                &["-n", &ns, "link", "set", "lo", "up"],
            ];
            for step in steps {
                ip(step)?;
            }
        }
        Ok(net)
    }

    fn switch(&self) -> String {
        format!("{}sw", self.tag)
    }

    /// The namespace of `host`.
    fn ns(&self, host: &str) -> String {
        format!("{}{host}", self.tag)
    }

    /// Sets `host`'s port on the switch down (`false`) or up (`true`).
    fn link(&self, host: &str, up: bool) {
        let state = if up { "up" } else { "down" };
        ip(&["-n", &self.switch(), "link", "set", host, state]).unwrap();
    }

    /// `ip netns exec <ns of host> <program>`: the program runs in that namespace (same pid).
    fn exec(&self, host: &str, program: &std::path::Path) -> Command {
        netns::exec(&self.ns(host), program)
    }
}

// ---------------------------------------------------------------------------------------
// The helper: HTTP from inside the router host

/// A helper process inside a host's namespace, fed one JSON request per line.
struct Helper {
    child: Child,
    stdin: ChildStdin,
    answers: mpsc::Receiver<Value>,
}

impl Helper {
    fn start(net: &Net, host: &str) -> Helper {
        let exe = std::env::current_exe().unwrap();
        let mut child = net
            .exec(host, &exe)
            .args([
                "--ignored",
                "--exact",
                "cluster_netns_helper",
                "--nocapture",
            ])
            .args(["--test-threads", "1"])
            .env(HELPER_ENV, "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the helper");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, answers) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                // libtest may have started the line ("test cluster_netns_helper ... ").
                if let Some(at) = line.find("@@ ") {
                    let answer = serde_json::from_str(&line[at + 3..]).unwrap_or(Value::Null);
                    if tx.send(answer).is_err() {
                        break;
                    }
                }
            }
        });
        Helper {
            child,
            stdin,
            answers,
        }
    }

    fn send(&mut self, request: &Value) {
        writeln!(self.stdin, "{request}").expect("helper alive");
        self.stdin.flush().unwrap();
    }

    fn recv(&self, within: Duration) -> Value {
        self.answers
            .recv_timeout(within)
            .expect("the helper answers in time")
    }

    /// `GET url` (bounded by 2 s): the status and the body, or `None` when it failed.
    fn get(&mut self, url: &str) -> Option<(u16, String)> {
        self.send(&json!({ "op": "get", "url": url, "timeout_ms": 2000 }));
        let a = self.recv(Duration::from_secs(10));
        Some((a["status"].as_u64()? as u16, a["body"].as_str()?.to_owned()))
    }

    /// `GET url` answered 200 with a JSON body: the body.
    fn json(&mut self, url: &str) -> Option<Value> {
        match self.get(url)? {
            (200, body) => serde_json::from_str(&body).ok(),
            _ => None,
        }
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Not a test of its own: the helper [`Helper`] starts inside a host's namespace. Reads one
/// JSON request per line from stdin and answers one JSON line, `@@ {...}`:
///
/// - `{"op":"get","url":..,"timeout_ms":..}`: `{"status":..,"body":".."}` or `{"error":".."}`.
/// - `{"op":"load","url":..,"run":..,"ms":..,"workers":..,"pause_ms":..}`: `workers` loops
///   each sending `GET url?r=<run>&n=<seq>` over keep-alive connections, pausing `pause_ms`
///   between requests, for `ms`; answers the counts and the first failures. A request fails
///   unless it is answered 200 `home page` within 5 s.
/// - `{"op":"put_many","url":..,"bodies":[..]}`: `PUT url` with each body, 8 at a time;
///   answers `{"ok":..,"failed":..,"errors":[..]}`.
/// - `{"op":"watchers","url":..,"service":..,"count":..,"id":..,"timeout_ms":..,"mode":..}`:
///   `count` discovery watches of `service` through the agent at `url`, in consistency `mode`
///   (`default`, `stale`, `cached`; absent: the library's default); answers `{"ready":..}` once
///   every watch has Consul's first answer, then `{"seen_unix_ms":[..]}`: when each watch
///   first showed the instance `id` (a watch that did not within the timeout is left out).
/// - `{"op":"watch_modes","url":..,"service":..,"ms":..}`: a watch of `service` in each
///   consistency mode through the agent at `url`; answers `{"ready":..}` once each has
///   Consul's first answer, then, after `ms` sampled every 20 ms, per mode the time its set
///   was stale and the time it showed fewer instances than at the start.
///
/// Only addresses of the test's network and the namespace's own loopback may be asked.
#[test]
#[ignore = "helper process of the cluster tests, started by them inside a network namespace"]
fn cluster_netns_helper() {
    if std::env::var_os(HELPER_ENV).is_none() {
        return;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let allowed = [format!("http://{NET}."), "http://127.0.0.1:".to_owned()];
    let stdout = std::io::stdout();
    for line in std::io::stdin().lock().lines().map_while(Result::ok) {
        let Ok(request) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        let url = request["url"].as_str().unwrap_or_default().to_owned();
        let reply = if !allowed.iter().any(|a| url.starts_with(a.as_str())) {
            json!({ "error": format!("only {allowed:?} may be asked") })
        } else if request["op"] == "get" {
            let timeout = Duration::from_millis(request["timeout_ms"].as_u64().unwrap_or(2000));
            rt.block_on(async {
                let http = reqwest::Client::builder()
                    .no_proxy()
                    .timeout(timeout)
                    .build()
                    .unwrap();
                let r = http.get(&url).send().await?;
                let status = r.status().as_u16();
                Ok::<_, reqwest::Error>((status, r.text().await?))
            })
            .map_or_else(
                |e| json!({ "error": e.to_string() }),
                |(status, body)| json!({ "status": status, "body": body }),
            )
        } else if request["op"] == "load" {
            rt.block_on(load(&url, &request))
        } else if request["op"] == "put_many" {
            rt.block_on(put_many(&url, &request))
        } else if request["op"] == "watchers" {
            rt.block_on(watchers(&url, &request, &stdout))
        } else if request["op"] == "watch_modes" {
            rt.block_on(watch_modes(&url, &request, &stdout))
        } else {
            json!({ "error": "unknown op" })
        };
        answer(&stdout, &reply);
    }
}

/// The consistency modes a watch can read in, by the names the helper's requests and the
/// figures use.
const MODES: [(&str, discoverable::consul::Consistency); 3] = [
    ("default", discoverable::consul::Consistency::Default),
    ("stale", discoverable::consul::Consistency::Stale),
    ("cached", discoverable::consul::Consistency::Cached),
];

/// A discovery client of the agent at `url`, for the helper's watches.
fn discovery_at(url: &str) -> discoverable::Discovery {
    let config = discoverable::consul::Config::builder()
        .address(url)
        .build()
        .unwrap();
    discoverable::Discovery::new(discoverable::consul::Client::new(config).unwrap())
}

/// Writes one answer line of the helper, `@@ {...}`.
fn answer(stdout: &std::io::Stdout, answer: &Value) {
    let mut out = stdout.lock();
    let _ = writeln!(out, "@@ {answer}");
    let _ = out.flush();
}

/// The helper's `put_many` (see [`cluster_netns_helper`]).
async fn put_many(url: &str, request: &Value) -> Value {
    let bodies: Vec<Value> = request["bodies"].as_array().cloned().unwrap_or_default();
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let next = std::sync::Arc::new(AtomicUsize::new(0));
    let bodies = std::sync::Arc::new(bodies);
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (http, next, bodies, url) =
            (http.clone(), next.clone(), bodies.clone(), url.to_owned());
        workers.spawn(async move {
            let (mut ok, mut errors) = (0u64, Vec::new());
            while let Some(body) = bodies.get(next.fetch_add(1, Ordering::Relaxed)) {
                match http.put(&url).json(body).send().await {
                    Ok(r) if r.status().is_success() => ok += 1,
                    Ok(r) => errors.push(format!(
                        "{} {}",
                        r.status(),
                        r.text().await.unwrap_or_default()
                    )),
                    Err(e) => errors.push(e.to_string()),
                }
            }
            (ok, errors)
        });
    }
    let (mut ok, mut errors) = (0, Vec::new());
    while let Some(done) = workers.join_next().await {
        let (o, e) = done.unwrap();
        ok += o;
        errors.extend(e);
    }
    let failed = errors.len();
    errors.truncate(5);
    json!({ "ok": ok, "failed": failed, "errors": errors })
}

/// The helper's `watchers` (see [`cluster_netns_helper`]); the first answer goes out on
/// `stdout` itself.
async fn watchers(url: &str, request: &Value, stdout: &std::io::Stdout) -> Value {
    let service = request["service"].as_str().unwrap_or_default().to_owned();
    let id = request["id"].as_str().unwrap_or_default().to_owned();
    let count = request["count"].as_u64().unwrap_or(1);
    let within = Duration::from_millis(request["timeout_ms"].as_u64().unwrap_or(30_000));
    let discovery = discovery_at(url);
    let mode = MODES
        .iter()
        .find(|(name, _)| request["mode"].as_str() == Some(name))
        .map(|(_, mode)| *mode);
    let watches: Vec<_> = (0..count)
        .map(|_| {
            let watch = discovery.watch(service.as_str());
            match mode {
                Some(mode) => watch.consistency(mode).start(),
                None => watch.start(),
            }
        })
        .collect();
    let mut ready = 0;
    for watch in &watches {
        let mut watch = watch.clone();
        if tokio::time::timeout(within, watch.wait_for(|s| s.is_known()))
            .await
            .is_ok()
        {
            ready += 1;
        }
    }
    answer(stdout, &json!({ "ready": ready }));
    let mut seen = tokio::task::JoinSet::new();
    for mut watch in watches {
        let id = id.clone();
        seen.spawn(async move {
            tokio::time::timeout(
                within,
                watch.wait_for(|s| s.endpoints().iter().any(|e| e.id == id)),
            )
            .await
            .ok()
            .map(|_| unix_ms())
        });
    }
    let mut at = Vec::new();
    while let Some(done) = seen.join_next().await {
        at.extend(done.unwrap());
    }
    json!({ "seen_unix_ms": at })
}

/// The helper's `watch_modes` (see [`cluster_netns_helper`]); the first answer goes out on
/// `stdout` itself.
async fn watch_modes(url: &str, request: &Value, stdout: &std::io::Stdout) -> Value {
    let service = request["service"].as_str().unwrap_or_default().to_owned();
    let span = Duration::from_millis(request["ms"].as_u64().unwrap_or(5_000));
    let discovery = discovery_at(url);
    let mut watches = Vec::new();
    for (name, mode) in MODES {
        let mut watch = discovery.watch(service.as_str()).consistency(mode).start();
        let first = tokio::time::timeout(T, watch.wait_for(|s| s.is_known() && !s.is_empty()))
            .await
            .map(|set| set.len())
            .unwrap_or(0);
        watches.push((name, watch, first));
    }
    answer(stdout, &json!({ "ready": watches.len() }));
    let tick = Duration::from_millis(20);
    let started = Instant::now();
    let mut stale = [0u64; 3];
    let mut missing = [0u64; 3];
    while started.elapsed() < span {
        for (i, (_, watch, first)) in watches.iter().enumerate() {
            let set = watch.current();
            stale[i] += u64::from(set.is_stale()) * ms(tick);
            missing[i] += u64::from(set.len() < *first) * ms(tick);
        }
        tokio::time::sleep(tick).await;
    }
    let mut answer = serde_json::Map::new();
    for (i, (name, _, first)) in watches.iter().enumerate() {
        answer.insert(
            (*name).to_owned(),
            json!({ "instances": first, "stale_ms": stale[i], "missing_ms": missing[i] }),
        );
    }
    Value::Object(answer)
}

/// The helper's load loop (see [`cluster_netns_helper`]).
async fn load(url: &str, request: &Value) -> Value {
    let run = request["run"].as_u64().unwrap_or(0);
    let span = Duration::from_millis(request["ms"].as_u64().unwrap_or(1000));
    let workers = request["workers"].as_u64().unwrap_or(2);
    let pause = Duration::from_millis(request["pause_ms"].as_u64().unwrap_or(10));
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let started = Instant::now();
    let seq = std::sync::Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let (http, seq, url) = (http.clone(), seq.clone(), url.to_owned());
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut failures) = (0u64, Vec::new());
            while started.elapsed() < span {
                let n = seq.fetch_add(1, Ordering::Relaxed);
                let at = started.elapsed();
                let outcome = async {
                    let r = http.get(format!("{url}?r={run}&n={n}")).send().await?;
                    let status = r.status().as_u16();
                    Ok::<_, reqwest::Error>((status, r.text().await?))
                }
                .await;
                match outcome {
                    Ok((200, body)) if body == "home page" => ok += 1,
                    Ok((status, body)) => failures.push(json!({
                        "n": n, "at_ms": at.as_millis() as u64,
                        "what": format!("{status} {}", body.chars().take(80).collect::<String>()),
                    })),
                    Err(e) => failures.push(json!({
                        "n": n, "at_ms": at.as_millis() as u64, "what": e.to_string(),
                    })),
                }
                tokio::time::sleep(pause).await;
            }
            (ok, failures)
        }));
    }
    let (mut ok, mut failures) = (0, Vec::new());
    for task in tasks {
        let (o, f) = task.await.unwrap();
        ok += o;
        failures.extend(f);
    }
    let failed = failures.len();
    failures.truncate(20);
    json!({
        "sent": seq.load(Ordering::Relaxed),
        "ok": ok,
        "failed": failed,
        "failures": failures,
        "elapsed_ms": started.elapsed().as_millis() as u64,
    })
}

// ---------------------------------------------------------------------------------------
// The topology

/// One instance: its host, its process and its routed address.
struct App {
    host: &'static str,
    proc: Proc,
    /// Fabio's destination for it, `http://10.213.9.X:PORT/`.
    dst: String,
}

/// The running topology. Fields drop in order: helpers, instances, Fabio, agents, then the
/// namespaces.
struct Cluster {
    query: Helper,
    load: Option<Helper>,
    /// Helpers on other hosts, started when first asked for.
    locals: BTreeMap<&'static str, Helper>,
    apps: Vec<App>,
    fabio: Fabio,
    clients: BTreeMap<&'static str, Consul>,
    servers: Vec<Consul>,
    net: Net,
    /// Held while the topology runs: one topology at a time.
    _one_at_a_time: MutexGuard<'static, ()>,
}

/// Holds one topology at a time, also after a test failed while holding it.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// Starts a `cool_app` instance on client host `host`, registering with that host's agent,
/// and waits until it listens.
fn start_app(net: &Net, clients: &BTreeMap<&'static str, Consul>, host: &'static str) -> App {
    let octet = CLIENTS.iter().find(|(h, _)| *h == host).unwrap().1;
    let mut cmd = net.exec(host, &binary("example", "cool_app"));
    cmd.env("BIND_ADDR", "0.0.0.0:0")
        .env("CONSUL_HTTP_ADDR", clients[host].url())
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1");
    let proc = spawn(&format!("cool_app on {host}"), cmd);
    let bound = proc.wait_line("listening on ", T);
    let port = bound.rsplit(':').next().unwrap();
    App {
        host,
        proc,
        dst: format!("http://{}:{port}/", addr(octet)),
    }
}

impl Cluster {
    /// Forms the whole topology and waits until Fabio routes both instances; `None` (after
    /// printing why) where it cannot run.
    fn up(test: &str) -> Option<Cluster> {
        let peers = peers::require(test)?;
        let guard = one_at_a_time();
        let started = Instant::now();
        let net = match Net::create() {
            Ok(net) => net,
            Err(why) => {
                return peers::skip(
                    test,
                    &format!(
                        "network namespaces unavailable ({why}); this test needs root and iproute2"
                    ),
                );
            }
        };
        // Built before the cluster starts.
        binary("example", "cool_app");
        let join: Vec<String> = SERVERS
            .iter()
            .map(|(_, o)| SocketAddr::new(addr(*o), SERF_LAN).to_string())
            .collect();
        // Joins are retried every second (the default is 30 s), so agents started together
        // find each other as soon as the first servers listen.
        //
        // Each node has a fixed node ID, standing in for the ID a real machine derives from
        // its host UUID and keeps across a wiped data directory (here every "host" shares one
        // machine, so the host-derived IDs would all be equal). With a random ID kept only in
        // the data directory, an agent wiped and restarted at once is refused by the servers
        // for good ("Node name c1 is reserved by node <old ID>"): serf never sees the node
        // fail, so the old ID's serfHealth stays passing and Consul will not rename it.
        let agent = |host: &str, octet: u8| ConsulOptions {
            bind: addr(octet),
            netns: Some(net.ns(host)),
            node: Some(host.to_owned()),
            serf_lan_port: Some(SERF_LAN),
            retry_join: join.clone(),
            extra_hcl: format!(
                "retry_interval = \"1s\"\nnode_id = \"0d15c0e1-0000-4000-8000-{octet:012}\"\n"
            ),
            wait_ready: false,
            ..ConsulOptions::default()
        };
        // Servers' HTTP APIs listen on their host's address (the helper reads them across the
        // switch); the client agents' on 127.0.0.1 of their own host, for the local instance
        // and Fabio.
        let servers: Vec<Consul> = SERVERS
            .iter()
            .map(|(host, octet)| {
                Consul::start(
                    &peers,
                    ConsulOptions {
                        persistent: true,
                        bootstrap_expect: 3,
                        client: addr(*octet),
                        ..agent(host, *octet)
                    },
                )
            })
            .collect();
        let clients: BTreeMap<&'static str, Consul> = CLIENTS
            .iter()
            .chain([&ROUTER])
            .map(|(host, octet)| {
                let consul = Consul::start(
                    &peers,
                    ConsulOptions {
                        client_only: true,
                        ..agent(host, *octet)
                    },
                );
                (*host, consul)
            })
            .collect();
        let mut query = Helper::start(&net, ROUTER.0);

        let fabio = Fabio::start_in(
            &peers,
            FabioOptions {
                netns: Some(net.ns(ROUTER.0)),
                proxy: addr(ROUTER.1),
                args: vec![
                    "-log.access.target=stdout".into(),
                    "-log.access.format=@@access $time_unix_ms $upstream_addr $response_status $request_uri".into(),
                ],
                wait_ready: false,
                ..FabioOptions::new(clients[ROUTER.0].http_addr())
            },
        );

        // The cluster: a leader, and every node's serfHealth passing in the catalog.
        let nodes: Vec<&str> = SERVERS
            .iter()
            .chain(&CLIENTS)
            .chain([&ROUTER])
            .map(|(h, _)| *h)
            .collect();
        let formed = wait(T, "the cluster formed", || {
            for s in &servers {
                let leader = query.json(&format!("{}/v1/status/leader", s.url()))?;
                if leader.as_str().is_none_or(str::is_empty) {
                    return None;
                }
            }
            let checks = query.json(&format!("{}/v1/health/state/passing", servers[0].url()))?;
            let passing: Vec<&str> = checks
                .as_array()?
                .iter()
                .filter(|c| c["CheckID"] == "serfHealth")
                .filter_map(|c| c["Node"].as_str())
                .collect();
            nodes.iter().all(|n| passing.contains(n)).then_some(())
        });
        if formed.is_none() {
            for s in &servers {
                eprintln!("{} log:\n{}", s.node(), s.log_tail(30));
            }
            for c in clients.values() {
                eprintln!("{} log:\n{}", c.node(), c.log_tail(30));
            }
            panic!("the cluster did not form within {T:?}");
        }
        let formed_in = started.elapsed();
        let ui = fabio.ui_addr();
        wait(T, "Fabio's UI answers", || {
            query.json(&format!("http://{ui}/api/routes"))
        })
        .unwrap_or_else(|| panic!("Fabio did not start; its log:\n{}", fabio.log()));

        let apps = CLIENTS
            .iter()
            .map(|(host, _)| start_app(&net, &clients, host))
            .collect();
        let mut cluster = Cluster {
            query,
            load: None,
            locals: BTreeMap::new(),
            apps,
            fabio,
            clients,
            servers,
            net,
            _one_at_a_time: guard,
        };
        let both = cluster.dsts_of_apps();
        cluster
            .wait_routes(T, "Fabio routes both instances", |d| d == both)
            .unwrap_or_else(|| cluster.fail("Fabio never routed both instances"));
        eprintln!(
            "{test}: cluster formed in {formed_in:.1?}, both instances routed {:.1?} after start",
            started.elapsed()
        );
        Some(cluster)
    }

    /// A helper on `host` (started on first use), to read that host's own agent.
    fn local(&mut self, host: &'static str) -> &mut Helper {
        let net = &self.net;
        self.locals
            .entry(host)
            .or_insert_with(|| Helper::start(net, host))
    }

    /// Fabio's destinations for both instances, sorted.
    fn dsts_of_apps(&self) -> Vec<String> {
        let mut d: Vec<String> = self.apps.iter().map(|a| a.dst.clone()).collect();
        d.sort();
        d
    }

    fn app(&self, host: &str) -> &App {
        self.apps.iter().find(|a| a.host == host).unwrap()
    }

    /// Fabio's destinations for `/oops` now (`None` when its UI did not answer).
    fn routes(&mut self) -> Option<Vec<String>> {
        let ui = self.fabio.ui_addr();
        let routes = self.query.json(&format!("http://{ui}/api/routes"))?;
        let mut dst: Vec<String> = routes
            .as_array()?
            .iter()
            .filter(|r| r["src"] == "/oops")
            .filter_map(|r| r["dst"].as_str().map(str::to_owned))
            .collect();
        dst.sort();
        Some(dst)
    }

    /// Waits until Fabio's destinations satisfy `ok`; `None` after `within`.
    fn wait_routes(
        &mut self,
        within: Duration,
        what: &str,
        ok: impl Fn(&[String]) -> bool,
    ) -> Option<Vec<String>> {
        wait(within, what, || self.routes().filter(|d| ok(d)))
    }

    /// The leader's server RPC address as a server sees it (`None`: none, or no answer).
    fn leader_seen_by(&mut self, server: usize) -> Option<String> {
        let url = format!("{}/v1/status/leader", self.servers[server].url());
        let leader = self.query.json(&url)?;
        leader.as_str().filter(|l| !l.is_empty()).map(str::to_owned)
    }

    /// The passing `cool_app` instances in the catalog, as (node, service ID), read from a
    /// live server.
    fn passing_instances(&mut self, server: usize) -> Option<Vec<(String, String)>> {
        let url = format!(
            "{}/v1/health/service/cool_app?passing",
            self.servers[server].url()
        );
        let entries = self.query.json(&url)?;
        let mut found: Vec<(String, String)> = entries
            .as_array()?
            .iter()
            .map(|e| {
                (
                    e["Node"]["Node"].as_str().unwrap_or_default().to_owned(),
                    e["Service"]["ID"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        found.sort();
        Some(found)
    }

    /// The status of `node`'s serfHealth check in the catalog.
    fn serf_health(&mut self, server: usize, node: &str) -> Option<String> {
        let url = format!("{}/v1/health/node/{node}", self.servers[server].url());
        let checks = self.query.json(&url)?;
        checks
            .as_array()?
            .iter()
            .find(|c| c["CheckID"] == "serfHealth")
            .and_then(|c| c["Status"].as_str().map(str::to_owned))
    }

    /// Starts a load run through Fabio from the router host; [`Cluster::load_result`] waits
    /// for its answer.
    fn start_load(&mut self, run: u64, span: Duration) {
        let url = format!("http://{}/oops/", self.fabio.proxy_addr());
        let helper = self
            .load
            .get_or_insert_with(|| Helper::start(&self.net, ROUTER.0));
        helper.send(&json!({
            "op": "load", "url": url, "run": run, "ms": span.as_millis() as u64,
            "workers": 2, "pause_ms": 10,
        }));
    }

    fn load_result(&mut self, within: Duration) -> Value {
        self.load.as_ref().expect("a load run").recv(within)
    }

    /// Fabio's access log of load run `run`: (unix ms, upstream `host:port`, status).
    fn served(&self, run: u64) -> Vec<(u64, String, u16)> {
        let tag = format!("?r={run}&");
        self.fabio
            .log()
            .lines()
            .filter_map(|line| {
                let rest = &line[line.find("@@access ")? + 9..];
                let mut f = rest.split(' ');
                let (at, upstream, status, uri) = (f.next()?, f.next()?, f.next()?, f.next()?);
                uri.contains(&tag).then(|| {
                    (
                        at.parse().unwrap_or(0),
                        upstream.to_owned(),
                        status.parse().unwrap_or(0),
                    )
                })
            })
            .collect()
    }

    /// Waits until Fabio's access log shows load run `run` reaching every instance.
    fn wait_served_by_both(&mut self, run: u64) {
        let upstreams: Vec<String> = self
            .apps
            .iter()
            .map(|a| {
                a.dst
                    .trim_start_matches("http://")
                    .trim_end_matches('/')
                    .to_owned()
            })
            .collect();
        wait(T, "the load reaches both instances", || {
            let served = self.served(run);
            upstreams
                .iter()
                .all(|u| served.iter().any(|(_, s, _)| s == u))
                .then_some(())
        })
        .unwrap_or_else(|| self.fail("the load did not reach both instances"));
    }

    /// Panics with `why` and the ends of Fabio's and the agents' logs.
    fn fail(&self, why: &str) -> ! {
        let fabio_log = self.fabio.log();
        let tail: Vec<&str> = fabio_log
            .lines()
            .filter(|l| !l.contains("@@access"))
            .collect();
        eprintln!(
            "fabio log ends:\n{}",
            tail[tail.len().saturating_sub(20)..].join("\n")
        );
        for c in self.servers.iter().chain(self.clients.values()) {
            eprintln!("consul {} log ends:\n{}", c.node(), c.log_tail(15));
        }
        panic!("{why}");
    }
}

/// Polls `f` every 50 ms until it returns `Some`; `None` after `within`.
fn wait<T>(within: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            eprintln!("timed out after {within:?} waiting for {what}");
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Merges `figures` into `target/bench-results/cluster.json`, keeping other keys.
fn record(figures: &[(impl AsRef<str>, Value)]) {
    static FILE: Mutex<()> = Mutex::new(());
    let _one = FILE.lock().unwrap_or_else(|p| p.into_inner());
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|t| {
            if t.is_absolute() {
                t
            } else {
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(t)
            }
        })
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("bench-results");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("cluster.json");
    let mut all: serde_json::Map<String, Value> = std::fs::read_to_string(&path)
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default();
    for (key, value) in figures {
        let key = key.as_ref();
        println!("figure {key} = {value}");
        all.insert(key.to_owned(), value.clone());
    }
    std::fs::write(&path, serde_json::to_string_pretty(&all).unwrap() + "\n").unwrap();
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

// ---------------------------------------------------------------------------------------
// The tests

#[test]
fn cluster_routes_across_hosts() {
    let test = "cluster_routes_across_hosts";
    let Some(mut c) = Cluster::up(test) else {
        return;
    };
    // Requests through Fabio reach both hosts' instances.
    c.start_load(1, Duration::from_secs(3));
    let result = c.load_result(Duration::from_secs(20));
    assert_eq!(result["failed"], 0, "{result}");
    let served = c.served(1);
    assert!(served.iter().all(|(_, _, status)| *status == 200));
    let by = served_by(&served);
    eprintln!(
        "{test}: {} requests through Fabio served by {by:?}",
        served.len()
    );
    assert_eq!(by.len(), 2, "both instances serve: {by:?}");

    // Every Consul agent, Fabio and both instances run in the test's namespaces, none in
    // the test's own.
    let own = netns_of(std::process::id() as i32);
    let pids: Vec<(String, i32)> = c
        .servers
        .iter()
        .chain(c.clients.values())
        .map(|s| (format!("consul {}", s.node()), s.pid()))
        .chain([("fabio".to_owned(), c.fabio.pid())])
        .chain(c.apps.iter().map(|a| (a.proc.name.clone(), a.proc.pid())))
        .collect();
    for (name, pid) in pids {
        let ns = netns_of(pid);
        assert!(
            !ns.is_empty() && ns != own,
            "{name} runs in the root namespace"
        );
    }
}

/// The network namespace of process `pid` (`net:[inode]`).
fn netns_of(pid: i32) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/net"))
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

#[test]
fn cluster_leader_loss_under_load() {
    let test = "cluster_leader_loss_under_load";
    let Some(mut c) = Cluster::up(test) else {
        return;
    };
    let leader = wait(T, "a leader", || c.leader_seen_by(0)).unwrap();
    let dead = SERVERS
        .iter()
        .position(|(_, o)| leader.starts_with(&format!("{}:", addr(*o))))
        .unwrap_or_else(|| panic!("leader {leader} is none of the servers"));
    let alive: Vec<usize> = (0..SERVERS.len()).filter(|i| *i != dead).collect();

    // Load through Fabio for 12 s; the leader dies once it flows to both instances.
    let span = Duration::from_secs(12);
    c.start_load(2, span);
    let load_started = Instant::now();
    c.wait_served_by_both(2);
    wait(T, "300 requests served before the fault", || {
        (c.served(2).len() >= 300).then_some(())
    })
    .unwrap_or_else(|| c.fail("the load did not flow"));
    // A watch of the instances in each consistency mode on a client agent, sampled across
    // the loss.
    let agent = c.clients[CLIENTS[0].0].url();
    let watching = c.local(CLIENTS[0].0);
    watching
        .send(&json!({ "op": "watch_modes", "url": agent, "service": "cool_app", "ms": 8_000 }));
    assert_eq!(watching.recv(T)["ready"], 3);
    let killed_unix_ms = unix_ms();
    let killed_at = Instant::now();
    c.servers[dead].kill();
    // Elected: both surviving servers name the same new leader.
    let new_leader = wait(T, "a new leader", || {
        let seen: Vec<Option<String>> = alive.iter().map(|&i| c.leader_seen_by(i)).collect();
        let first = seen[0].clone().filter(|l| *l != leader)?;
        seen.iter()
            .all(|l| l.as_ref() == Some(&first))
            .then_some(first)
    })
    .unwrap_or_else(|| c.fail("no new leader"));
    let failover = killed_at.elapsed();
    eprintln!(
        "{test}: killed leader {} ({leader}) {:.1?} into the load; new leader {new_leader} after {failover:.1?}",
        SERVERS[dead].0,
        killed_at - load_started
    );

    // Both instances stay registered, passing, and routed.
    let nodes: Vec<String> = CLIENTS.iter().map(|(h, _)| (*h).to_owned()).collect();
    let registered = wait(T, "both instances passing after the failover", || {
        let found = c.passing_instances(alive[0])?;
        let on: Vec<String> = found.into_iter().map(|(n, _)| n).collect();
        (on == nodes).then_some(())
    });
    assert!(registered.is_some(), "instances lost after the failover");
    let both = c.dsts_of_apps();
    assert_eq!(c.routes().as_deref(), Some(both.as_slice()));

    let modes = c.local(CLIENTS[0].0).recv(T);
    eprintln!("{test}: watches across the leader loss, per consistency mode: {modes}");
    for (mode, _) in MODES {
        assert_eq!(modes[mode]["instances"], 2, "{mode}: {modes}");
    }
    let result = c.load_result(span + Duration::from_secs(20));
    let failed = result["failed"].as_u64().unwrap();
    eprintln!("{test}: load: {result}");
    let watched: Vec<(String, Value)> = MODES
        .into_iter()
        .flat_map(|(mode, _)| {
            ["stale_ms", "missing_ms"].map(|what| {
                (
                    format!("leader_loss_watch_{mode}_{what}"),
                    modes[mode][what].clone(),
                )
            })
        })
        .collect();
    record(&[
        ("leader_failover_ms", json!(ms(failover))),
        ("leader_loss_requests_failed_count", json!(failed)),
    ]);
    record(&watched);
    // Fabio keeps its routing table while its blocking queries fail for want of a leader,
    // and the instances, their agents and their checks never depend on the leader: no
    // request may fail.
    assert_eq!(
        failed, 0,
        "requests failed across the leader loss: {result}"
    );
    assert!(result["ok"].as_u64().unwrap() > 100, "{result}");
    // Both instances served after the kill too.
    let after: Vec<_> = c
        .served(2)
        .into_iter()
        .filter(|(t, _, _)| *t > killed_unix_ms)
        .collect();
    let by_upstream = served_by(&after);
    eprintln!("{test}: after the kill, served by {by_upstream:?}");
    assert_eq!(by_upstream.len(), 2, "{by_upstream:?}");
}

#[test]
fn cluster_agent_restart_losing_state() {
    let test = "cluster_agent_restart_losing_state";
    let Some(mut c) = Cluster::up(test) else {
        return;
    };
    let host = CLIENTS[0].0;
    let before = wait(T, "the instances in the catalog", || {
        c.passing_instances(0).filter(|f| f.len() == 2)
    })
    .unwrap();
    let id = before.iter().find(|(n, _)| n == host).unwrap().1.clone();

    // SIGKILL, the data directory removed, started again on the same address and ports: an
    // agent that comes back empty (a new node ID too, as its data directory held it).
    let agent_url = c.clients[host].url();
    let restarted = Instant::now();
    c.clients.get_mut(host).unwrap().restart(false);
    // The agent holds the instance again: the runtime, whose watch on its own registration
    // was cut, found it gone and registered it again. Read on the host itself.
    let local = c.local(host);
    wait(T, "the restarted agent holds the instance again", || {
        let (status, _) = local.get(&format!("{agent_url}/v1/agent/service/{id}"))?;
        (status == 200).then_some(())
    })
    .unwrap_or_else(|| c.fail("the instance did not register again with its restarted agent"));
    let reregistered = restarted.elapsed();
    // The catalog: the restarted agent synced its node (its empty state first, which drops
    // the instance from the catalog unless the runtime was quicker) and the instance, passing.
    wait(
        T,
        "the catalog shows the instance on the restarted node",
        || {
            c.passing_instances(0)?
                .iter()
                .any(|(n, i)| n == host && *i == id)
                .then_some(())
        },
    )
    .unwrap_or_else(|| c.fail("the catalog never showed the instance again"));
    let in_catalog = restarted.elapsed();
    let both = c.dsts_of_apps();
    c.wait_routes(T, "Fabio routes both again", |d| d == both)
        .unwrap_or_else(|| c.fail("Fabio did not route the instance again"));
    let routed = restarted.elapsed();
    eprintln!(
        "{test}: {host}'s agent restarted without its state; {id} registered with it again after {reregistered:.1?}, passing in the catalog after {in_catalog:.1?}, routed by Fabio after {routed:.1?}"
    );
    record(&[("agent_restart_reregistered_ms", json!(ms(reregistered)))]);
}

#[test]
fn cluster_host_cut_off() {
    let test = "cluster_host_cut_off";
    let Some(mut c) = Cluster::up(test) else {
        return;
    };
    let host = CLIENTS[0].0;
    let cut_dst = c.app(host).dst.clone();
    let other_dst = c.app(CLIENTS[1].0).dst.clone();

    let cut = Instant::now();
    c.net.link(host, false);
    wait(T, "serfHealth of the cut host critical", || {
        (c.serf_health(0, host)? == "critical").then_some(())
    })
    .unwrap_or_else(|| c.fail("the cut host never went critical"));
    let critical = cut.elapsed();
    let only_other = [other_dst.clone()];
    c.wait_routes(T, "Fabio stops routing to the cut host", |d| {
        d == only_other
    })
    .unwrap_or_else(|| c.fail("Fabio kept routing to the cut host"));
    let unroutable = cut.elapsed();
    eprintln!(
        "{test}: {host} cut off: serfHealth critical after {critical:.1?}, {cut_dst} out of Fabio's table after {unroutable:.1?}"
    );

    let healed = Instant::now();
    c.net.link(host, true);
    let both = c.dsts_of_apps();
    c.wait_routes(T, "Fabio routes the healed host again", |d| d == both)
        .unwrap_or_else(|| c.fail("Fabio never routed the healed host again"));
    let routable = healed.elapsed();
    assert_eq!(c.serf_health(0, host).as_deref(), Some("passing"));
    eprintln!("{test}: link back: {cut_dst} routed again after {routable:.1?}");
    record(&[
        ("partition_unroutable_ms", json!(ms(unroutable))),
        ("partition_heal_routable_ms", json!(ms(routable))),
    ]);
}

#[test]
fn cluster_sigterm_under_load() {
    let test = "cluster_sigterm_under_load";
    let Some(mut c) = Cluster::up(test) else {
        return;
    };
    let span = Duration::from_secs(8);
    c.start_load(5, span);
    c.wait_served_by_both(5);
    let host = CLIENTS[0].0;
    let stopped_dst = c.app(host).dst.clone();
    let sigterm_at = unix_ms();
    let signalled = Instant::now();
    let app = c.apps.iter_mut().find(|a| a.host == host).unwrap();
    app.proc.signal("TERM");
    assert_eq!(app.proc.wait_exit(T), Some(0));
    let exited_at = unix_ms();
    eprintln!(
        "{test}: {host}'s instance exited {:.1?} after SIGTERM",
        signalled.elapsed()
    );
    let other = [c.app(CLIENTS[1].0).dst.clone()];
    assert_eq!(c.routes().as_deref(), Some(other.as_slice()));

    let result = c.load_result(span + Duration::from_secs(20));
    let failed = result["failed"].as_u64().unwrap();
    eprintln!("{test}: load: {result}");
    record(&[("sigterm_requests_failed_count", json!(failed))]);
    assert_eq!(failed, 0, "requests failed across the SIGTERM: {result}");

    // After the exit, the other instance served everything.
    let served = c.served(5);
    let stopped = stopped_dst
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let after: Vec<&(u64, String, u16)> =
        served.iter().filter(|(t, _, _)| *t > exited_at).collect();
    let last_to_stopped = served
        .iter()
        .filter(|(_, u, _)| u == stopped)
        .map(|(t, _, _)| *t)
        .max()
        .unwrap_or(0);
    eprintln!(
        "{test}: {} requests after the exit, all to the other instance; last request to the stopped one {} ms after SIGTERM",
        after.len(),
        last_to_stopped.saturating_sub(sigterm_at)
    );
    assert!(after.len() > 50, "the load went on after the exit");
    assert!(after.iter().all(|(_, u, s)| u != stopped && *s == 200));
}

/// Requests per upstream.
fn served_by(served: &[(u64, String, u16)]) -> BTreeMap<String, usize> {
    let mut by = BTreeMap::new();
    for (_, upstream, _) in served {
        *by.entry(upstream.clone()).or_default() += 1;
    }
    by
}

/// A client agent restarted *keeping* its data directory: Consul restores the instance and its
/// check, but restores every check as critical ("to avoid placing potentially unhealthy
/// services into active rotation") until the check's first run, which it staggers at random
/// within the interval (10 s by default), and a new registration keeps that status. The
/// runtime sees its agent answer again with the check in another state than the instance's
/// and registers afresh, so the instance is routed again long before that first run.
#[test]
fn cluster_agent_restart_keeping_state() {
    let test = "cluster_agent_restart_keeping_state";
    let Some(mut c) = Cluster::up(test) else {
        return;
    };
    let host = CLIENTS[0].0;
    let restarted = Instant::now();
    c.clients.get_mut(host).unwrap().restart(true);
    let both = c.dsts_of_apps();
    let other = [c.app(CLIENTS[1].0).dst.clone()];
    // One window, measured from the restart: routed again within 5 s of it (well below the
    // 10 s interval, so the agent's own first run of the check does not decide), whether
    // Fabio dropped the instance meanwhile or not.
    let deadline = restarted + Duration::from_secs(5);
    let mut dropped_after = None;
    let routed = loop {
        let now = c.routes();
        let routes_both = now.as_deref() == Some(&both[..]);
        if dropped_after.is_none() && now.as_deref() == Some(&other[..]) {
            dropped_after = Some(restarted.elapsed());
        }
        if dropped_after.is_some() && routes_both {
            break Some(restarted.elapsed());
        }
        if Instant::now() >= deadline {
            if dropped_after.is_none() && routes_both {
                // Never seen out of the table in the whole window.
                break None;
            }
            c.fail(&format!(
                "the instance was not routed again within 5 s of the restart (left the table after {dropped_after:.1?}; routes now {now:?})"
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let Some(routed) = routed else {
        eprintln!(
            "{test}: {host}'s agent restarted keeping its state: the instance stayed routed for the 5 s after the restart"
        );
        return;
    };
    eprintln!(
        "{test}: {host}'s agent restarted keeping its state: the instance left Fabio's table after {:.1?} (check restored critical) and was routed again after {routed:.1?}",
        dropped_after.unwrap_or_default()
    );
    record(&[("agent_restart_kept_state_routable_ms", json!(ms(routed)))]);
}

/// Fabio's routes whose source starts with `prefix` (`None` when its UI did not answer).
fn fabio_routes(c: &mut Cluster, prefix: &str) -> Option<Vec<String>> {
    let ui = c.fabio.ui_addr();
    let routes = c.query.json(&format!("http://{ui}/api/routes"))?;
    Some(
        routes
            .as_array()?
            .iter()
            .filter_map(|r| r["src"].as_str())
            .filter(|src| src.starts_with(prefix))
            .map(str::to_owned)
            .collect(),
    )
}

/// A service registration for the agent API: one instance of its own service, routed by
/// Fabio at `/<name>`, passing by a TTL check, at `authority` (an instance that answers).
fn routed(name: &str, authority: &str) -> Value {
    let (address, port) = authority.rsplit_once(':').unwrap();
    json!({
        "ID": name, "Name": name, "Address": address, "Port": port.parse::<u16>().unwrap(),
        "Tags": [format!("urlprefix-/{name}")],
        "Check": { "TTL": "10m", "Status": "passing" },
    })
}

/// The `p`-th percentile of `sorted` (nearest rank below).
fn percentile(sorted: &[u64], p: usize) -> u64 {
    sorted[(sorted.len() - 1) * p / 100]
}

/// CPU time spent by the servers and by the client agents, in ms.
#[derive(Clone, Copy, Default)]
struct Cpu {
    servers_ms: f64,
    clients_ms: f64,
}

impl Cpu {
    fn now(c: &Cluster) -> Cpu {
        let ms = |ns: u64| ns as f64 / 1e6;
        Cpu {
            servers_ms: ms(c.servers.iter().map(|a| cpu_ns(a.pid())).sum()),
            clients_ms: ms(c.clients.values().map(|a| cpu_ns(a.pid())).sum()),
        }
    }

    fn add(self, other: Cpu) -> Cpu {
        Cpu {
            servers_ms: self.servers_ms + other.servers_ms,
            clients_ms: self.clients_ms + other.clients_ms,
        }
    }

    fn since(self, before: Cpu) -> Cpu {
        Cpu {
            servers_ms: self.servers_ms - before.servers_ms,
            clients_ms: self.clients_ms - before.clients_ms,
        }
    }
}

/// Nanoseconds a process's threads have run (`/proc/<pid>/task/*/schedstat`).
fn cpu_ns(pid: i32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .filter_map(Result::ok)
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// `per_host` watches of `service` on each client agent (in consistency `mode`, or the
/// library's default), then the instance `id` registered through the router host's agent: when each
/// watch showed it, in ms after the registration was sent, sorted, and the CPU the servers
/// and the client agents spent from the registration until every watch had shown it.
fn watched_change(
    c: &mut Cluster,
    (per_host, mode): (u64, Option<&str>),
    service: &str,
    id: &str,
    target: &str,
) -> (Vec<u64>, Cpu) {
    for (host, _) in CLIENTS {
        let url = c.clients[host].url();
        c.local(host).send(&json!({
            "op": "watchers", "url": url, "service": service, "count": per_host,
            "id": id, "timeout_ms": 30_000, "mode": mode,
        }));
    }
    for (host, _) in CLIENTS {
        let ready = c.local(host).recv(T);
        assert_eq!(ready["ready"], per_host, "{host}'s watches: {ready}");
    }
    let router_agent = format!("{}/v1/agent/service/register", c.clients[ROUTER.0].url());
    let mut instance = routed(id, target);
    instance["Name"] = json!(service);
    let before = Cpu::now(c);
    let changed_at = unix_ms();
    c.query
        .send(&json!({ "op": "put_many", "url": router_agent, "bodies": [instance] }));
    assert_eq!(c.query.recv(T)["ok"], 1);
    let mut propagation: Vec<u64> = Vec::new();
    for (host, _) in CLIENTS {
        let seen = c.local(host).recv(T);
        let at = seen["seen_unix_ms"].as_array().cloned().unwrap_or_default();
        assert_eq!(at.len() as u64, per_host, "{host}'s watches saw it: {seen}");
        propagation.extend(
            at.iter()
                .filter_map(Value::as_u64)
                .map(|t| t.saturating_sub(changed_at)),
        );
    }
    let cpu = Cpu::now(c).since(before);
    propagation.sort_unstable();
    (propagation, cpu)
}

/// The cost at scale across hosts, each figure in `cluster.json`: 1,000 services registered
/// through the two client agents (500 each) and how long until Fabio routes all of them; how
/// long one more route takes to reach Fabio's table with 1,000 routes in it; and 100
/// discovery watches spread over both client agents, timed from a registration made on a
/// third host until each watch shows it.
#[test]
fn cluster_scale() {
    let test = "cluster_scale";
    let Some(mut c) = Cluster::up(test) else {
        return;
    };
    const PER_HOST: usize = 500;
    let register = |host: &str| format!("{}/v1/agent/service/register", host);

    // 1,000 services through the client agents, routed to the instance on each host.
    let started = Instant::now();
    for (i, (host, _)) in CLIENTS.iter().enumerate() {
        let at = c
            .app(host)
            .dst
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        let bodies: Vec<Value> = (0..PER_HOST)
            .map(|n| routed(&format!("scale-{}", i * PER_HOST + n), &at))
            .collect();
        let url = register(&c.clients[host].url());
        c.local(host)
            .send(&json!({ "op": "put_many", "url": url, "bodies": bodies }));
    }
    for (host, _) in CLIENTS {
        let done = c.local(host).recv(T);
        assert_eq!(done["ok"], PER_HOST, "{host}'s registrations: {done}");
    }
    let registered = started.elapsed();
    let all = CLIENTS.len() * PER_HOST;
    wait(T, "Fabio routes every service", || {
        fabio_routes(&mut c, "/scale-").filter(|r| r.len() == all)
    })
    .unwrap_or_else(|| c.fail(&format!("Fabio did not route all {all} services")));
    let routed_all = started.elapsed();
    eprintln!(
        "{test}: {all} services registered through the client agents in {registered:.1?}, all routed by Fabio {routed_all:.1?} after the first"
    );

    // One more route, five times, with 1,000 in the table; registered through the router
    // host's agent.
    let router_agent = register(&c.clients[ROUTER.0].url());
    let target = c
        .app(CLIENTS[0].0)
        .dst
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let mut updates = Vec::new();
    for k in 0..5 {
        let name = format!("extra-{k}");
        let asked = Instant::now();
        c.query.send(
            &json!({ "op": "put_many", "url": router_agent, "bodies": [routed(&name, &target)] }),
        );
        assert_eq!(c.query.recv(T)["ok"], 1);
        let src = format!("/{name}");
        wait(T, "Fabio routes one more service", || {
            fabio_routes(&mut c, &src).filter(|r| !r.is_empty())
        })
        .unwrap_or_else(|| c.fail(&format!("Fabio did not route {src}")));
        updates.push(ms(asked.elapsed()));
    }
    updates.sort_unstable();
    eprintln!("{test}: one more route reached Fabio's table of {all} in {updates:?} ms");

    // 100 watches over both client agents; the change comes through the router host's agent.
    let (propagation, _) = watched_change(&mut c, (50, None), "watched", "watched-1", &target);
    let pct = |p: usize| percentile(&propagation, p);
    eprintln!(
        "{test}: a registration reached {} watches on two client agents: p50 {} ms, p99 {} ms, max {} ms",
        propagation.len(),
        pct(50),
        pct(99),
        pct(100)
    );
    // The same in each consistency mode, the three in turn, three times: the latency, and the
    // CPU the servers and the client agents spent on each change. Fabio is frozen meanwhile:
    // on every change it reads the catalog entry of each of its 1,000 routes again, which
    // would outweigh the watches' own cost.
    // SAFETY: a signal to a child process of this test.
    unsafe { libc::kill(c.fabio.pid(), libc::SIGSTOP) };
    // Beside them, one watch per client agent, for the cost of a change itself.
    let runs = [
        ("default", 50, "100"),
        ("stale", 50, "100"),
        ("cached", 50, "100"),
        ("stale", 1, "2"),
    ];
    let mut by_run: Vec<(Vec<u64>, Cpu)> = vec![(Vec::new(), Cpu::default()); runs.len()];
    for round in 0..3 {
        for (i, (mode, per_host, m)) in runs.iter().enumerate() {
            let id = format!("modes-{mode}-{m}-{round}");
            let (seen, cpu) =
                watched_change(&mut c, (*per_host, Some(mode)), "modes", &id, &target);
            by_run[i].0.extend(seen);
            by_run[i].1 = by_run[i].1.add(cpu);
        }
    }
    let mut figures = Vec::new();
    for ((mode, _, m), (mut seen, cpu)) in runs.iter().zip(by_run) {
        seen.sort_unstable();
        let (p50, p99) = (percentile(&seen, 50), percentile(&seen, 99));
        let (servers, clients) = (cpu.servers_ms / 3.0, cpu.clients_ms / 3.0);
        eprintln!(
            "{test}: {mode}: {m} watches saw a change in p50 {p50} ms, p99 {p99} ms; per change the servers spent {servers:.1} ms of CPU, the client agents {clients:.1} ms"
        );
        figures.push((
            format!("cluster_watch_{mode}_propagation_p50_ms_{m}"),
            json!(p50),
        ));
        figures.push((
            format!("cluster_watch_{mode}_propagation_p99_ms_{m}"),
            json!(p99),
        ));
        let round = |x: f64| (x * 10.0).round() / 10.0;
        figures.push((
            format!("cluster_watch_{mode}_servers_cpu_ms_per_change_{m}"),
            json!(round(servers)),
        ));
        figures.push((
            format!("cluster_watch_{mode}_clients_cpu_ms_per_change_{m}"),
            json!(round(clients)),
        ));
    }
    // SAFETY: as above.
    unsafe { libc::kill(c.fabio.pid(), libc::SIGCONT) };
    record(&figures);
    record(&[
        ("cluster_services_registered_count", json!(all)),
        ("cluster_register_1000_ms", json!(ms(registered))),
        ("fabio_routes_1000_ms", json!(ms(routed_all))),
        (
            "fabio_route_update_p50_ms_1000",
            json!(updates[updates.len() / 2]),
        ),
        (
            "fabio_route_update_max_ms_1000",
            json!(updates[updates.len() - 1]),
        ),
        ("cluster_watchers_count", json!(propagation.len())),
        ("cluster_watch_propagation_p50_ms_100", json!(pct(50))),
        ("cluster_watch_propagation_p99_ms_100", json!(pct(99))),
        ("cluster_watch_propagation_max_ms_100", json!(pct(100))),
    ]);
}

/// One rolling restart of 100 instances across both client hosts, under load through Fabio:
/// ten rounds, each starting ten new instances, waiting until Fabio routes them, then sending
/// SIGTERM to ten old ones. No request fails (`cluster_rolling_restart_100_failed_count`).
#[test]
fn cluster_rolling_restart_of_100() {
    let test = "cluster_rolling_restart_of_100";
    let Some(mut c) = Cluster::up(test) else {
        return;
    };
    const INSTANCES: usize = 100;
    const ROUND: usize = 10;
    let hosts = || CLIENTS.iter().map(|(h, _)| *h).cycle();
    for host in hosts().take(INSTANCES - c.apps.len()) {
        let app = start_app(&c.net, &c.clients, host);
        c.apps.push(app);
    }
    let all = c.dsts_of_apps();
    c.wait_routes(T, "Fabio routes every instance", |d| d == all)
        .unwrap_or_else(|| c.fail("Fabio did not route all 100 instances"));

    let span = Duration::from_secs(20);
    c.start_load(7, span);
    let started = Instant::now();
    let mut old = std::mem::take(&mut c.apps);
    for round in old.chunks(ROUND) {
        let new: Vec<App> = hosts()
            .take(round.len())
            .map(|host| start_app(&c.net, &c.clients, host))
            .collect();
        let wanted: Vec<String> = new.iter().map(|a| a.dst.clone()).collect();
        c.wait_routes(T, "Fabio routes the new instances", |d| {
            wanted.iter().all(|w| d.contains(w))
        })
        .unwrap_or_else(|| c.fail("Fabio did not route the new instances"));
        c.apps.extend(new);
        for app in round {
            app.proc.signal("TERM");
        }
    }
    for app in &mut old {
        assert_eq!(app.proc.wait_exit(T), Some(0), "{} exits cleanly", app.dst);
    }
    let restarted = started.elapsed();
    let all = c.dsts_of_apps();
    c.wait_routes(T, "Fabio routes only the new instances", |d| d == all)
        .unwrap_or_else(|| c.fail("Fabio still routes stopped instances"));
    assert!(
        restarted < span,
        "the rolling restart ({restarted:.1?}) ended within the load's {span:?}"
    );
    let result = c.load_result(span + Duration::from_secs(20));
    let failed = result["failed"].as_u64().unwrap();
    let ok = result["ok"].as_u64().unwrap();
    eprintln!("{test}: {INSTANCES} instances restarted in {restarted:.1?} under load: {result}");
    record(&[
        ("cluster_rolling_restart_100_ms", json!(ms(restarted))),
        ("cluster_rolling_restart_100_ok_count", json!(ok)),
        ("cluster_rolling_restart_100_failed_count", json!(failed)),
    ]);
    assert_eq!(
        failed, 0,
        "requests failed across the rolling restart: {result}"
    );
}
