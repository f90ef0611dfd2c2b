//! How the cost of being discoverable grows with the number of instances in one process and
//! with the number of watches, against the dev agent (the `devagent` binary, a child process)
//! and, where the real peers can be built, against a real Consul (a child process too), so
//! that the agent's CPU and memory are read apart from this process's.
//!
//! For N = 1, 10, 100 and 1 000 instances of one service, each its own `discoverable::serve`
//! call on its own `127.0.0.1:0` listener in this process (grace period 0, drain bound 100 ms):
//!
//! - bind → every instance registered and passing, seen by one `Discovery` watch of the
//!   service (`passing_only(false)`, counting instances whose checks all pass);
//! - resident memory of this process and of the agent before the binds and once all pass;
//! - CPU of this process and of the agent over an idle window (5 s, 10 s for 1 000), the
//!   agent running every instance's HTTP check every 10 s meanwhile (`schedstat` of every
//!   thread, to the nanosecond);
//! - 2 000 keep-alive requests to the first instance's listener: their time with N instances
//!   serving against the time with one;
//! - `Instance::shutdown()` of every instance at once (the path SIGTERM takes) → every
//!   instance gone from the agent, and → every serve call returned.
//!
//! Each blocking query holds one connection, and every watch keeps one open, so the agents'
//! limit of connections per client IP (`http_max_conns_per_client`, 200 by default) is raised
//! to 4 096 for these runs; a last run of 1 000 instances against a fresh agent with the
//! default limit shows that the instances alone stay under it (the instances of one service
//! in a process share one blocking read and one client).
//!
//! For M = 1, 10, 100 and 1 000 `Discovery` watches of one service in this process: a change
//! (an instance registered, or one deregistered, through `consul::Client`; alternately) is
//! timed from the start of the call until every watch has seen it, with the CPU the agent and
//! this process spent per change; then one watch cloned 1 000 times (one query). Against the
//! real Consul, 1 000 watches in each consistency mode (none, `?stale`, `?cached`), the three
//! in turn, twice.
//!
//! What explains the figures: the resident memory of one plain `axum::serve` and of one
//! `consul::Client` (1 000 of each made), the heap in use (`mallinfo2`) beside the resident
//! memory, and what a registration with an HTTP check costs each agent, on its own and while
//! 1 000 instances are registered.
//!
//! The cluster's figures (`cluster_...`, `fabio_...`, `leader_...`: 1 000 instances registered
//! across the client agents, 100 watchers on them, a rolling restart of 100 instances through
//! Fabio under load, Fabio's route-table update with 1 000 routes, and a watch in each
//! consistency mode while the leader server is lost) come from the cluster tests
//! `cluster_scale`, `cluster_rolling_restart_of_100` and `cluster_leader_loss_under_load`
//! (`tests/cluster.rs`, which build the test hosts in network namespaces), run as a child
//! `cargo test`; where they cannot run, the report says so.
//!
//! Writes `target/bench-results/scale.json` (figures named `dev_...`, `consul_...` and
//! `cluster_...`) and draws the curves as `target/bench-results/scale.svg`.

mod common;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::{Router, routing::get};
use common::{Conn, Proc, Report, ms, percentile};
use discoverable::consul::{
    CheckDefinition, CheckStatus, Client, Config as ConsulConfig, Consistency, Registration,
};
use discoverable::discovery::Watch;
use discoverable::{Discovery, Health, Instance, Service};
use tokio::task::JoinSet;

/// Instances per process.
const INSTANCES: [usize; 4] = [1, 10, 100, 1000];
/// Watches per process.
const WATCHES: [usize; 4] = [1, 10, 100, 1000];
/// Changes timed per watch count (half registrations, half deregistrations).
const CHANGES: usize = 40;
/// Rounds of the consistency modes' comparison, interleaved, and changes per mode and round.
const MODE_ROUNDS: usize = 2;
const MODE_CHANGES: usize = 20;
/// The agents' connection limit per client IP for the runs; Consul's default is 200.
const RAISED_CONN_LIMIT: usize = 4096;
const DEFAULT_CONN_LIMIT: usize = 200;
/// Bound on every wait for a condition.
const DEADLINE: Duration = Duration::from_secs(30);
/// Bound on the waits of the run at the default connection limit.
const DEFAULT_LIMIT_DEADLINE: Duration = Duration::from_secs(15);
/// Requests timed per round against one instance.
const REQUESTS: usize = 2000;
/// The instances' HTTP check interval (the default): the agent checks each once per interval.
const CHECK_INTERVAL: Duration = Duration::from_secs(10);

fn idle_window(n: usize) -> Duration {
    if n >= 1000 {
        Duration::from_secs(10)
    } else {
        Duration::from_secs(5)
    }
}

fn main() {
    common::print_machine();
    let started = Instant::now();
    raise_fd_limit();
    let warnings = Warnings::install();
    let devagent = common::release_bin("discoverable-devagent", "devagent");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");

    let mut report = Report::new("scale");
    let mut chart = Chart::default();
    report.add(
        "bare_serve_rss_kib",
        runtime.block_on(bare_serve_rss_kib()),
        "",
        "resident memory of one plain axum::serve on its own listener, 1 000 served",
    );
    report.add(
        "instance_consul_client_rss_kib",
        runtime.block_on(client_rss_kib()),
        "",
        "resident memory of one consul::Client (the instances of a service share one), 1 000 made",
    );

    println!("scale: the dev agent (`devagent` binary) ...");
    let dev = runtime.block_on(run_agent(
        &|limit| AgentProc::dev(&devagent, limit),
        &warnings,
    ));
    dev.report("dev", "the dev agent", &mut report, &mut chart);

    let peers = discoverable_testkit::peers::require("scale against a real Consul");
    match peers {
        Some(peers) => {
            println!(
                "scale: a real Consul {} ...",
                discoverable_testkit::peers::CONSUL_VERSION
            );
            let consul = runtime.block_on(run_agent(
                &|limit| AgentProc::consul(&peers, limit),
                &warnings,
            ));
            consul.report("consul", "the real Consul", &mut report, &mut chart);
            report.label(
                "consul_measured_on",
                format!(
                    "Consul {} (a real process on loopback)",
                    discoverable_testkit::peers::CONSUL_VERSION
                ),
            );
        }
        None => report.note("real Consul: skipped, the real peers cannot be built here"),
    }
    report.label(
        "dev_measured_on",
        "the devagent binary, release build, a child process on loopback",
    );
    report.label(
        "connection_limit",
        format!(
            "http_max_conns_per_client raised to {RAISED_CONN_LIMIT} on both agents, except in \
             the *_default_limit figures ({DEFAULT_CONN_LIMIT}, Consul's default)"
        ),
    );
    cluster(&mut report);
    report.add("bench_duration_s", started.elapsed().as_secs_f64(), "", "");

    let path = common::target_dir().join("bench-results").join("scale.svg");
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).expect("create target/bench-results");
    }
    std::fs::write(&path, chart.render()).expect("write the chart");
    report.note(format!("curves drawn in {}", path.display()));
    report.finish();
}

// ---------------------------------------------------------------------------------------------
// The agents

enum Keep {
    Dev(#[allow(dead_code, reason = "killed on drop")] Proc),
    Consul(#[allow(dead_code, reason = "killed on drop")] Box<discoverable_testkit::Consul>),
}

/// An agent in a child process: its address, its pid (for CPU and memory), and the process.
struct AgentProc {
    url: String,
    pid: i32,
    _keep: Keep,
}

impl AgentProc {
    fn dev(binary: &std::path::Path, limit: usize) -> AgentProc {
        let mut cmd = Command::new(binary);
        cmd.args([
            "--addr",
            "127.0.0.1:0",
            "--http-max-conns-per-client",
            &limit.to_string(),
        ])
        .env("RUST_LOG", "warn");
        let proc = Proc::spawn_with_stderr("devagent", cmd, Stdio::null());
        let (_, url) = proc.wait_line("devagent listening on ", Duration::from_secs(20));
        AgentProc {
            url: url.trim_end_matches('/').to_owned(),
            pid: proc.pid(),
            _keep: Keep::Dev(proc),
        }
    }

    fn consul(peers: &discoverable_testkit::peers::Peers, limit: usize) -> AgentProc {
        let options = discoverable_testkit::ConsulOptions {
            extra_hcl: format!("limits {{\n  http_max_conns_per_client = {limit}\n}}\n"),
            ..Default::default()
        };
        let consul = discoverable_testkit::Consul::start(peers, options);
        AgentProc {
            url: consul.url(),
            pid: consul.pid(),
            _keep: Keep::Consul(Box::new(consul)),
        }
    }

    fn client(&self) -> Client {
        Client::new(
            ConsulConfig::builder()
                .address(&self.url)
                .build()
                .expect("consul config"),
        )
        .expect("consul client")
    }

    fn cpu(&self) -> Duration {
        common::process_cpu_precise(self.pid)
    }

    fn rss_kib(&self) -> f64 {
        common::process_rss_mib(self.pid) * 1024.0
    }
}

// ---------------------------------------------------------------------------------------------
// One agent's runs

#[derive(Default)]
struct AgentFigures {
    /// ms per registration with an HTTP check: one after another, and 50 at once.
    registration: (f64, f64),
    /// Heap per waiting query on a registration's hash, in this process.
    held_query_heap_kib: f64,
    churn_heap_before_kib: f64,
    churn_heap_after_kib: f64,
    instances: Vec<InstancesRun>,
    default_limit: Option<InstancesRun>,
    watches: Vec<WatchRun>,
    modes: Vec<WatchRun>,
    churn_rss_before_kib: f64,
    churn_rss_after_kib: f64,
    churn_rss_after_trimmed_kib: f64,
}

async fn run_agent(start: &dyn Fn(usize) -> AgentProc, warnings: &Warnings) -> AgentFigures {
    let mut figures = AgentFigures::default();
    let agent = tokio::task::block_in_place(|| start(RAISED_CONN_LIMIT));
    figures.held_query_heap_kib = held_query_heap_kib(&agent).await;
    for n in INSTANCES {
        if n == 1000 {
            trim();
            figures.churn_rss_before_kib = self_rss_kib();
            figures.churn_heap_before_kib = heap_in_use_kib();
        }
        let run = instances(&agent, n, DEADLINE, warnings, true).await;
        println!("  {n} instances: {}", run.summary());
        figures.instances.push(run);
        if n == 1000 {
            settle().await;
            figures.churn_rss_after_kib = self_rss_kib();
            figures.churn_heap_after_kib = heap_in_use_kib();
            trim();
            figures.churn_rss_after_trimmed_kib = self_rss_kib();
        }
    }
    figures.registration = registration_cost(&agent).await;
    println!(
        "  registrations with an HTTP check, none other registered: {:.2} ms each one after \
         another, {:.2} ms each 50 at once",
        figures.registration.0, figures.registration.1
    );
    for m in WATCHES {
        let run = watches(&agent, m, Consistency::Default, false, CHANGES).await;
        println!("  {m} watches: {}", run.summary());
        figures.watches.push(run);
    }
    let run = watches(&agent, 1000, Consistency::Default, true, CHANGES).await;
    println!("  one watch cloned 1000 times: {}", run.summary());
    figures.modes.push(run);
    if matches!(agent._keep, Keep::Consul(_)) {
        // The three modes in turn, so that a change of the machine's load falls on all three.
        let modes = [
            Consistency::Default,
            Consistency::Stale,
            Consistency::Cached,
        ];
        let mut runs: Vec<Option<WatchRun>> = vec![None, None, None];
        for _ in 0..MODE_ROUNDS {
            for (i, mode) in modes.into_iter().enumerate() {
                let run = watches(&agent, 1000, mode, false, MODE_CHANGES).await;
                runs[i] = Some(match runs[i].take() {
                    None => run,
                    Some(before) => before.merge(run),
                });
            }
        }
        for mut run in runs.into_iter().flatten() {
            run.interleaved = true;
            println!(
                "  1000 watches, {:?}, interleaved: {}",
                run.mode,
                run.summary()
            );
            figures.modes.push(run);
        }
    }
    drop(agent);

    let agent = tokio::task::block_in_place(|| start(DEFAULT_CONN_LIMIT));
    let run = instances(&agent, 1000, DEFAULT_LIMIT_DEADLINE, warnings, false).await;
    println!("  1000 instances at the default limit: {}", run.summary());
    figures.default_limit = Some(run);
    drop(agent);
    figures
}

/// What one registration with an HTTP check costs the agent: 200 one after another, then 200
/// more with 50 at a time (then all deregistered); ms per registration each way.
async fn registration_cost(agent: &AgentProc) -> (f64, f64) {
    const COUNT: usize = 200;
    let client = agent.client();
    let registration = |i: usize| {
        let mut r = Registration::new(format!("cost-{i}"), "cost");
        r.address = "127.0.0.1".into();
        r.port = 9;
        let mut check = CheckDefinition::http("http://127.0.0.1:9/health", CHECK_INTERVAL);
        check.status = Some(CheckStatus::Passing);
        r.checks.push(check);
        r
    };
    let start = Instant::now();
    for i in 0..COUNT {
        let _ = client.register(&registration(i)).await;
    }
    let one_by_one = ms(start.elapsed()) / COUNT as f64;
    let start = Instant::now();
    let mut calls = JoinSet::new();
    for batch in 0..COUNT / 50 {
        for i in 0..50 {
            let (client, r) = (client.clone(), registration(COUNT + batch * 50 + i));
            calls.spawn(async move { client.register(&r).await });
        }
        while calls.join_next().await.is_some() {}
    }
    let at_once = ms(start.elapsed()) / COUNT as f64;
    for i in 0..2 * COUNT {
        let _ = client.deregister(&format!("cost-{i}")).await;
    }
    (one_by_one, at_once)
}

/// The heap one waiting query on a registration's hash takes in this process (the running
/// instances of one service hold one between them): 1 000 held at once through a client of their own, read
/// once the agent holds their 1 000 connections open. NaN when the agent does not answer as
/// expected.
async fn held_query_heap_kib(agent: &AgentProc) -> f64 {
    const COUNT: usize = 1000;
    let client = agent.client();
    if client
        .register(&registration("held", "held-1"))
        .await
        .is_err()
    {
        return f64::NAN;
    }
    let Some(hash) = client
        .agent_service("held-1", None, None)
        .await
        .ok()
        .and_then(|s| s.hash)
    else {
        return f64::NAN;
    };
    let open = || std::fs::read_dir(format!("/proc/{}/fd", agent.pid)).map_or(0, |d| d.count());
    let fds_before = open();
    trim();
    let before = heap_in_use_kib();
    let holder = agent.client();
    let mut held = JoinSet::new();
    for _ in 0..COUNT {
        let (client, hash) = (holder.clone(), hash.clone());
        held.spawn(async move {
            client
                .agent_service("held-1", Some(&hash), Some(Duration::from_secs(60)))
                .await
        });
    }
    // Less one: the agent may close the idle connection of the calls above meanwhile.
    let all_open = fds_before + COUNT - 1;
    let deadline = Instant::now() + DEADLINE;
    while open() < all_open && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let per = if open() >= all_open {
        (heap_in_use_kib() - before) / COUNT as f64
    } else {
        f64::NAN
    };
    held.abort_all();
    while held.join_next().await.is_some() {}
    drop(holder);
    let _ = client.deregister("held-1").await;
    settle().await;
    per
}

/// Copies the cluster's figures into `report`: the cluster tests that measure them run as a
/// child `cargo test` (they build the test hosts in network namespaces, and skip, saying why,
/// where they cannot), and write them to `target/bench-results/cluster.json`.
fn cluster(report: &mut Report) {
    const TESTS: [&str; 3] = [
        "cluster_scale",
        "cluster_rolling_restart_of_100",
        "cluster_leader_loss_under_load",
    ];
    let ours = |key: &str| {
        ["cluster_", "fabio_route", "leader_"]
            .iter()
            .any(|prefix| key.starts_with(prefix))
    };
    let path = common::target_dir()
        .join("bench-results")
        .join("cluster.json");
    let read = || -> serde_json::Map<String, serde_json::Value> {
        std::fs::read_to_string(&path)
            .ok()
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or_default()
    };
    // Only what this run measures is copied: the file keeps the other cluster tests' figures.
    let mut before = read();
    before.retain(|key, _| !ours(key));
    if path.exists() {
        let text = serde_json::to_string_pretty(&before).expect("JSON") + "\n";
        std::fs::write(&path, text).expect("write cluster.json");
    }
    println!("scale: the cluster (cargo test --test cluster) ...");
    let cargo = std::env::var_os("CARGO")
        .or_else(|| option_env!("CARGO").map(Into::into))
        .unwrap_or_else(|| "cargo".into());
    let ran = Command::new(cargo)
        .args(["test", "-p", "discoverable", "--test", "cluster", "--"])
        .args(["--exact", "--test-threads=1", "--nocapture"])
        .args(TESTS)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status();
    let figures: Vec<(String, f64)> = read()
        .into_iter()
        .filter(|(key, _)| ours(key))
        .filter_map(|(key, value)| Some((key, value.as_f64()?)))
        .collect();
    match ran {
        Ok(status) if status.success() && !figures.is_empty() => {
            for (key, value) in figures {
                report.add(
                    &key,
                    value,
                    "",
                    "tests/cluster.rs: 3 servers, 2 client hosts, a router host",
                );
            }
            report.label(
                "cluster_measured_on",
                format!(
                    "Consul {} and Fabio {} in network namespaces on this machine",
                    discoverable_testkit::peers::CONSUL_VERSION,
                    discoverable_testkit::peers::FABIO_VERSION
                ),
            );
        }
        Ok(status) if status.success() => report.note(
            "cluster: skipped, the cluster tests could not build the test hosts here (their \
             output says why)",
        ),
        other => report.note(format!("cluster: the cluster tests failed ({other:?})")),
    }
}

/// Lets the tasks of what just ended finish and the sockets close.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(500)).await;
}

// ---------------------------------------------------------------------------------------------
// Instances

struct InstancesRun {
    n: usize,
    /// Bind → all passing; `None` when the deadline passed first.
    all_passing: Option<Duration>,
    /// The most instances seen passing at once.
    passing_seen: usize,
    /// Shutdown → none left in the agent.
    all_gone: Option<Duration>,
    /// Instances still registered at the end.
    left: usize,
    /// Shutdown → every serve call returned.
    all_returned: Option<Duration>,
    self_rss_growth_kib: f64,
    /// Of which allocated and not freed (`mallinfo2`).
    self_heap_growth_kib: f64,
    agent_rss_growth_kib: f64,
    idle: Duration,
    self_idle_cpu: Duration,
    agent_idle_cpu: Duration,
    /// CPU over the first check interval after all passed.
    self_first_cpu: Duration,
    agent_first_cpu: Duration,
    /// Seconds for `REQUESTS` keep-alive requests to the first instance, and the CPU seconds
    /// they took this process (each the best of 11 rounds).
    requests_s: (f64, f64),
    /// ms per registration with an HTTP check (one after another, 50 at once) while these
    /// instances are registered; measured at 1 000.
    registration_loaded: Option<(f64, f64)>,
    /// Warnings and errors the runtime logged during the run.
    warnings: usize,
    warning_kinds: Vec<(String, usize)>,
}

impl InstancesRun {
    fn summary(&self) -> String {
        let opt = |d: Option<Duration>| {
            d.map_or("not within the deadline".to_owned(), |d| {
                format!("{:.1} ms", ms(d))
            })
        };
        format!(
            "all passing {} ({} seen), all gone {} ({} left), serve calls returned {}, \
             +{:.0} KiB here, +{:.0} KiB agent, first check interval CPU here {:.1} ‰, agent \
             {:.1} ‰, idle CPU here {:.3} ‰, agent {:.3} ‰ of a core, {} runtime warnings",
            opt(self.all_passing),
            self.passing_seen,
            opt(self.all_gone),
            self.left,
            opt(self.all_returned),
            self.self_rss_growth_kib,
            self.agent_rss_growth_kib,
            permille(self.self_first_cpu, CHECK_INTERVAL),
            permille(self.agent_first_cpu, CHECK_INTERVAL),
            permille(self.self_idle_cpu, self.idle),
            permille(self.agent_idle_cpu, self.idle),
            self.warnings,
        )
    }
}

fn permille(cpu: Duration, window: Duration) -> f64 {
    cpu.as_secs_f64() / window.as_secs_f64() * 1000.0
}

async fn home() -> &'static str {
    "home page"
}

/// `n` instances served, all shut down; with `windows`, the CPU windows in between.
async fn instances(
    agent: &AgentProc,
    n: usize,
    deadline: Duration,
    warnings: &Warnings,
    windows: bool,
) -> InstancesRun {
    let name = format!("scale-{n}");
    let config = ConsulConfig::builder()
        .address(&agent.url)
        .build()
        .expect("consul config");
    let service = Service::builder(name.as_str())
        .consul(config)
        .advertise_address("127.0.0.1")
        .grace_period(Duration::ZERO)
        .drain_timeout(Duration::from_millis(100))
        .build()
        .expect("service");
    let app = Router::new().route("/", get(home));
    let mut watch = Discovery::new(agent.client())
        .watch(name.as_str())
        .passing_only(false)
        .start();
    let _ = tokio::time::timeout(DEADLINE, watch.wait_for(|s| s.is_known())).await;

    trim();
    let rss_before = self_rss_kib();
    let heap_before = heap_in_use_kib();
    let agent_rss_before = agent.rss_kib();
    let warnings_before = warnings.count();
    let _ = warnings.take();

    let start = Instant::now();
    let mut serving = JoinSet::new();
    let mut handles: Vec<Instance> = Vec::with_capacity(n);
    let mut addrs: Vec<SocketAddr> = Vec::with_capacity(n);
    for _ in 0..n {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        addrs.push(listener.local_addr().expect("local addr"));
        let instance = service.new_instance();
        handles.push(instance.clone());
        let serve = discoverable::serve(instance, listener, app.clone());
        serving.spawn(async move { serve.await });
    }
    let passing = |s: &discoverable::discovery::InstanceSet| {
        s.endpoints()
            .iter()
            .filter(|e| e.health == Health::Up)
            .count()
    };
    let all_passing = tokio::time::timeout(deadline, watch.wait_for(|s| passing(s) >= n))
        .await
        .ok()
        .map(|_| start.elapsed());
    let passing_seen = passing(&watch.current());
    let self_rss_growth_kib = self_rss_kib() - rss_before;
    let self_heap_growth_kib = heap_in_use_kib() - heap_before;
    let agent_rss_growth_kib = agent.rss_kib() - agent_rss_before;

    // The first check interval after the registrations: every check runs for the first time.
    let window = |d: Duration| if windows { d } else { Duration::ZERO };
    let (self_before, agent_before) = (self_cpu(), agent.cpu());
    tokio::time::sleep(window(CHECK_INTERVAL)).await;
    let (self_first_cpu, agent_first_cpu) = (self_cpu() - self_before, agent.cpu() - agent_before);

    // Idle: nothing but the agent's checks, the registrars' waiting queries and the watch.
    let idle = window(idle_window(n));
    let (self_before, agent_before) = (self_cpu(), agent.cpu());
    tokio::time::sleep(idle).await;
    let (self_idle_cpu, agent_idle_cpu) = (self_cpu() - self_before, agent.cpu() - agent_before);

    let requests_s = time_requests(addrs[0]).await;
    // Without the watch, whose answers (all the instances) the agent would compute again for
    // each registration.
    let registration_loaded = if windows && n == 1000 {
        drop(watch);
        let cost = registration_cost(agent).await;
        watch = Discovery::new(agent.client())
            .watch(name.as_str())
            .passing_only(false)
            .start();
        let _ = tokio::time::timeout(DEADLINE, watch.wait_for(|s| s.len() >= n)).await;
        Some(cost)
    } else {
        None
    };

    let start = Instant::now();
    for instance in &handles {
        instance.shutdown();
    }
    let (gone, returned) = tokio::join!(
        tokio::time::timeout(deadline, watch.wait_for(|s| s.is_empty())),
        tokio::time::timeout(deadline, async {
            while serving.join_next().await.is_some() {}
            start.elapsed()
        })
    );
    let all_gone = gone.ok().map(|_| start.elapsed());
    let left = watch.current().len();
    serving.abort_all();
    drop(watch);
    let warned = warnings.count() - warnings_before;
    InstancesRun {
        n,
        all_passing,
        passing_seen,
        all_gone,
        left,
        all_returned: returned.ok(),
        self_rss_growth_kib,
        self_heap_growth_kib,
        agent_rss_growth_kib,
        idle,
        self_idle_cpu,
        agent_idle_cpu,
        self_first_cpu,
        agent_first_cpu,
        requests_s,
        registration_loaded,
        warnings: warned,
        warning_kinds: warnings.take(),
    }
}

/// `REQUESTS` keep-alive requests to `addr`, in eleven rounds after a warm-up: the best
/// round's seconds, and the least CPU time of this process (client and server) a round took,
/// in seconds (other work on the machine only adds to a round); NaN when the instance does
/// not answer.
async fn time_requests(addr: SocketAddr) -> (f64, f64) {
    const FAILED: (f64, f64) = (f64::NAN, f64::NAN);
    let Ok(mut conn) = Conn::connect(addr).await else {
        return FAILED;
    };
    for _ in 0..200 {
        if conn.get("/").await.is_err() {
            return FAILED;
        }
    }
    let mut best = f64::INFINITY;
    let mut cpu = f64::INFINITY;
    for _ in 0..11 {
        let (start, cpu_before) = (Instant::now(), self_cpu());
        for _ in 0..REQUESTS {
            if conn.get("/").await.is_err() {
                return FAILED;
            }
        }
        best = best.min(start.elapsed().as_secs_f64());
        cpu = cpu.min((self_cpu() - cpu_before).as_secs_f64());
    }
    (best, cpu)
}

/// The resident memory one plain `axum::serve` on its own listener takes, from 1 000 served
/// at once (no request made).
async fn bare_serve_rss_kib() -> f64 {
    const COUNT: usize = 1000;
    let app = Router::new().route("/", get(home));
    trim();
    let before = self_rss_kib();
    let mut serving = JoinSet::new();
    for _ in 0..COUNT {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let app = app.clone();
        serving.spawn(async move { axum::serve(listener, app).await });
    }
    // Every task has run up to its first accept.
    tokio::task::yield_now().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    trim();
    let per = (self_rss_kib() - before) / COUNT as f64;
    serving.abort_all();
    while serving.join_next().await.is_some() {}
    trim();
    per
}

/// The resident memory one `consul::Client` takes, from 1 000 made and held (no request
/// sent): the running instances of one service in a process share one.
async fn client_rss_kib() -> f64 {
    let config = ConsulConfig::builder()
        .address("http://127.0.0.1:8500")
        .build()
        .expect("consul config");
    trim();
    let before = self_rss_kib();
    let clients: Vec<Client> = (0..1000)
        .map(|_| Client::new(config.clone()).expect("consul client"))
        .collect();
    trim();
    let per = (self_rss_kib() - before) / clients.len() as f64;
    drop(clients);
    trim();
    per
}

// ---------------------------------------------------------------------------------------------
// Watches

struct WatchRun {
    m: usize,
    mode: Consistency,
    /// One watch cloned `m` times.
    shared: bool,
    /// Rounds interleaved with the other consistency modes.
    interleaved: bool,
    /// Per change: from the start of the call until every watch had seen it, in ms.
    samples: Vec<f64>,
    /// Changes some watch had not seen within the deadline.
    missed: usize,
    /// Watches that never got a first answer.
    not_started: usize,
    agent_cpu_per_change: Duration,
    self_cpu_per_change: Duration,
}

impl WatchRun {
    /// The samples of two runs of the same kind together.
    fn merge(mut self, other: WatchRun) -> WatchRun {
        self.samples.extend(other.samples);
        self.missed += other.missed;
        self.not_started += other.not_started;
        self.agent_cpu_per_change = (self.agent_cpu_per_change + other.agent_cpu_per_change) / 2;
        self.self_cpu_per_change = (self.self_cpu_per_change + other.self_cpu_per_change) / 2;
        self
    }

    fn p(&self, p: f64) -> f64 {
        percentile(&self.samples, p)
    }

    fn max(&self) -> f64 {
        self.samples.iter().copied().fold(f64::NAN, f64::max)
    }

    fn summary(&self) -> String {
        format!(
            "propagation p50 {:.2} / p99 {:.2} / max {:.2} ms over {} changes ({} missed, {} \
             watches without an answer), CPU per change: agent {:.2} ms, here {:.2} ms",
            self.p(50.0),
            self.p(99.0),
            self.max(),
            self.samples.len(),
            self.missed,
            self.not_started,
            ms(self.agent_cpu_per_change),
            ms(self.self_cpu_per_change)
        )
    }
}

fn registration(name: &str, id: &str) -> Registration {
    let mut registration = Registration::new(id, name);
    registration.address = "127.0.0.1".into();
    registration.port = 9;
    let mut check = CheckDefinition::ttl(Duration::from_secs(600));
    check.status = Some(CheckStatus::Passing);
    registration.checks.push(check);
    registration
}

/// `m` watches of one service, each its own query, or with `shared` one watch cloned `m`
/// times (one query, its answers handed to every clone).
async fn watches(
    agent: &AgentProc,
    m: usize,
    mode: Consistency,
    shared: bool,
    changes: usize,
) -> WatchRun {
    let name = format!("watched-{m}-{mode:?}-{shared}").to_lowercase();
    let client = agent.client();
    let discovery = Discovery::new(client.clone());
    let mut ids = vec![format!("{name}-0")];
    if let Err(e) = client.register(&registration(&name, &ids[0])).await {
        println!("  {m} watches: the first registration failed: {e}");
    }
    let watchers: Vec<Watch> = if shared {
        vec![discovery.watch(name.as_str()).consistency(mode).start(); m]
    } else {
        (0..m)
            .map(|_| discovery.watch(name.as_str()).consistency(mode).start())
            .collect()
    };
    let expected = Arc::new(ids.clone());
    let started = all_seen(&watchers, &expected, DEADLINE).await;
    let not_started = m - started.seen;

    let mut samples = Vec::new();
    let mut missed = 0;
    let (agent_before, self_before) = (agent.cpu(), self_cpu());
    for k in 1..=changes {
        // Odd changes register a new instance, even ones deregister the oldest.
        let register = k % 2 == 1;
        let removed = if register {
            ids.push(format!("{name}-{k}"));
            None
        } else {
            Some(ids.remove(0))
        };
        let mut sorted = ids.clone();
        sorted.sort();
        let expected = Arc::new(sorted);
        let waiting = spawn_waits(&watchers, &expected);
        let start = Instant::now();
        let called = match &removed {
            None => {
                client
                    .register(&registration(&name, ids.last().expect("an id")))
                    .await
            }
            Some(id) => client.deregister(id).await,
        };
        if let Err(e) = called {
            println!("  {m} watches: change {k} failed: {e}");
        }
        let seen = collect(waiting, start, DEADLINE).await;
        if seen.seen == m {
            samples.push(ms(seen.last));
        } else {
            missed += 1;
        }
    }
    let (agent_cpu, self_cpu) = (agent.cpu() - agent_before, self_cpu() - self_before);
    for id in &ids {
        let _ = client.deregister(id).await;
    }
    drop(watchers);
    settle().await;
    WatchRun {
        m,
        mode,
        shared,
        interleaved: false,
        samples,
        missed,
        not_started,
        agent_cpu_per_change: agent_cpu / changes as u32,
        self_cpu_per_change: self_cpu / changes as u32,
    }
}

struct Seen {
    seen: usize,
    /// When the last watch saw it, from the start.
    last: Duration,
}

/// One task per watch, each waiting until its set holds exactly `expected`.
fn spawn_waits(watchers: &[Watch], expected: &Arc<Vec<String>>) -> JoinSet<Instant> {
    let mut waiting = JoinSet::new();
    for watch in watchers {
        let (mut watch, expected) = (watch.clone(), expected.clone());
        waiting.spawn(async move {
            watch
                .wait_for(|s| {
                    s.is_known()
                        && s.len() == expected.len()
                        && s.endpoints()
                            .iter()
                            .zip(expected.iter())
                            .all(|(e, id)| e.id == *id)
                })
                .await;
            Instant::now()
        });
    }
    waiting
}

async fn collect(mut waiting: JoinSet<Instant>, start: Instant, deadline: Duration) -> Seen {
    let mut seen = Seen {
        seen: 0,
        last: Duration::ZERO,
    };
    let _ = tokio::time::timeout(deadline, async {
        while let Some(at) = waiting.join_next().await {
            if let Ok(at) = at {
                seen.seen += 1;
                seen.last = seen.last.max(at.saturating_duration_since(start));
            }
        }
    })
    .await;
    waiting.abort_all();
    seen
}

async fn all_seen(watchers: &[Watch], expected: &Arc<Vec<String>>, deadline: Duration) -> Seen {
    let start = Instant::now();
    collect(spawn_waits(watchers, expected), start, deadline).await
}

// ---------------------------------------------------------------------------------------------
// Figures

impl AgentFigures {
    fn report(&self, prefix: &str, who: &str, report: &mut Report, chart: &mut Chart) {
        let nan_ms = |d: Option<Duration>| d.map_or(f64::NAN, ms);
        for run in &self.instances {
            let n = run.n;
            report.add(
                &format!("{prefix}_instances_all_passing_ms_{n}"),
                nan_ms(run.all_passing),
                if n == 1000 { "< 2000" } else { "" },
                &format!("bind → all {n} passing in {who}"),
            );
            report.add(
                &format!("{prefix}_instances_all_gone_ms_{n}"),
                nan_ms(run.all_gone),
                if n == 1000 { "< 2000" } else { "" },
                "shutdown of all → none registered",
            );
            report.add(
                &format!("{prefix}_instances_all_returned_ms_{n}"),
                nan_ms(run.all_returned),
                "",
                "shutdown of all → every serve call returned",
            );
            report.add(
                &format!("{prefix}_process_rss_growth_kib_{n}"),
                run.self_rss_growth_kib,
                "",
                "this process, before the binds → all passing",
            );
            report.add(
                &format!("{prefix}_agent_rss_growth_kib_{n}"),
                run.agent_rss_growth_kib,
                "",
                "the agent, the same",
            );
            report.add(
                &format!("{prefix}_process_idle_cpu_permille_{n}"),
                permille(run.self_idle_cpu, run.idle),
                "",
                &format!("this process, ‰ of a core over {:?}", run.idle),
            );
            report.add(
                &format!("{prefix}_agent_idle_cpu_permille_{n}"),
                permille(run.agent_idle_cpu, run.idle),
                "",
                "the agent, the same window",
            );
            report.add(
                &format!("{prefix}_process_first_interval_cpu_permille_{n}"),
                permille(run.self_first_cpu, CHECK_INTERVAL),
                "",
                "this process, the 10 s after all passed (every check's first run)",
            );
            report.add(
                &format!("{prefix}_agent_first_interval_cpu_permille_{n}"),
                permille(run.agent_first_cpu, CHECK_INTERVAL),
                "",
                "the agent, the same window",
            );
            if run.warnings > 0 {
                report.add(
                    &format!("{prefix}_instances_runtime_warnings_count_{n}"),
                    run.warnings as f64,
                    "0",
                    "",
                );
                for (w, count) in &run.warning_kinds {
                    report.note(format!("{who}, {n} instances: {count} × {w}"));
                }
            }
        }
        // Per instance: the slope from one instance to the most that all passed.
        let first = &self.instances[0];
        let last = self
            .instances
            .iter()
            .rev()
            .find(|r| r.all_passing.is_some())
            .unwrap_or(first);
        let span = (last.n - first.n).max(1) as f64;
        let slope = |f: &dyn Fn(&InstancesRun) -> f64| (f(last) - f(first)) / span;
        report.add(
            &format!("{prefix}_instance_rss_kib"),
            last.self_rss_growth_kib / last.n as f64,
            "≤ 64",
            &format!(
                "resident memory per instance, this process's growth / {}",
                last.n
            ),
        );
        report.add(
            &format!("{prefix}_instance_heap_kib"),
            last.self_heap_growth_kib / last.n as f64,
            "",
            "of which allocated and not freed (mallinfo2)",
        );
        report.add(
            &format!("{prefix}_held_query_heap_kib"),
            self.held_query_heap_kib,
            "",
            "one waiting query on a registration (1 000 held through one client); a service's instances hold one",
        );
        report.add(
            &format!("{prefix}_instance_idle_cpu_permille"),
            slope(&|r| permille(r.self_idle_cpu, r.idle)),
            "≤ 0.1",
            &format!("‰ of a core per instance, slope {} → {}", first.n, last.n),
        );
        report.add(
            &format!("{prefix}_agent_rss_kib_per_instance"),
            last.agent_rss_growth_kib / last.n as f64,
            "",
            "the agent's resident memory per instance",
        );
        report.add(
            &format!("{prefix}_agent_idle_cpu_permille_per_instance"),
            slope(&|r| permille(r.agent_idle_cpu, r.idle)),
            "",
            "the agent's ‰ of a core per instance (its HTTP checks, the held queries)",
        );
        report.add(
            &format!("{prefix}_request_cost_ratio_{}_vs_1", last.n),
            last.requests_s.1 / first.requests_s.1,
            "≤ 1.1",
            &format!(
                "CPU of {REQUESTS} keep-alive requests to one instance (client and server), {} \
                 serving vs 1",
                last.n
            ),
        );
        report.add(
            &format!("{prefix}_request_time_ratio_{}_vs_1", last.n),
            last.requests_s.0 / first.requests_s.0,
            "",
            "their wall-clock time, best round",
        );
        report.add(
            &format!("{prefix}_request_cpu_us_1"),
            first.requests_s.1 / REQUESTS as f64 * 1e6,
            "",
            "CPU per request, client and server, one instance serving",
        );
        report.add(
            &format!("{prefix}_request_us_1"),
            first.requests_s.0 / REQUESTS as f64 * 1e6,
            "",
            "wall-clock time per request, one instance serving",
        );
        report.add(
            &format!("{prefix}_rss_before_churn_kib"),
            self.churn_rss_before_kib,
            "",
            "this process, before 1 000 instances (after malloc_trim(0))",
        );
        report.add(
            &format!("{prefix}_rss_after_churn_kib"),
            self.churn_rss_after_kib,
            "",
            "after they came and went",
        );
        report.add(
            &format!("{prefix}_rss_after_churn_ratio"),
            self.churn_rss_after_kib / self.churn_rss_before_kib,
            "≤ 1.1",
            "",
        );
        report.add(
            &format!("{prefix}_heap_in_use_before_churn_kib"),
            self.churn_heap_before_kib,
            "",
            "allocated and not freed (mallinfo2), before 1 000 instances",
        );
        report.add(
            &format!("{prefix}_heap_in_use_after_churn_kib"),
            self.churn_heap_after_kib,
            "",
            "after they came and went",
        );
        report.add(
            &format!("{prefix}_heap_in_use_after_churn_ratio"),
            self.churn_heap_after_kib / self.churn_heap_before_kib,
            "≤ 1.1",
            "",
        );
        report.add(
            &format!("{prefix}_registration_ms"),
            self.registration.0,
            "",
            "one registration with an HTTP check, 200 one after another, none other registered",
        );
        report.add(
            &format!("{prefix}_registration_concurrent_ms"),
            self.registration.1,
            "",
            "per registration, 200 made 50 at a time",
        );
        if let Some((one_by_one, at_once)) = last.registration_loaded {
            report.add(
                &format!("{prefix}_registration_ms_with_{}_registered", last.n),
                one_by_one,
                "",
                "the same while the instances are registered",
            );
            report.add(
                &format!(
                    "{prefix}_registration_concurrent_ms_with_{}_registered",
                    last.n
                ),
                at_once,
                "",
                "",
            );
        }
        report.add(
            &format!("{prefix}_rss_after_churn_trimmed_ratio"),
            self.churn_rss_after_trimmed_kib / self.churn_rss_before_kib,
            "",
            "the same after malloc_trim(0): what is still held",
        );
        if let Some(run) = &self.default_limit {
            report.add(
                &format!("{prefix}_instances_all_passing_ms_1000_default_limit"),
                nan_ms(run.all_passing),
                "",
                &format!("{DEFAULT_CONN_LIMIT} connections per client IP"),
            );
            report.add(
                &format!("{prefix}_instances_passing_count_1000_default_limit"),
                run.passing_seen as f64,
                "",
                &format!("passing when the {DEFAULT_LIMIT_DEADLINE:?} ran out or all were"),
            );
            report.add(
                &format!("{prefix}_instances_all_gone_ms_1000_default_limit"),
                nan_ms(run.all_gone),
                "",
                "",
            );
            report.add(
                &format!("{prefix}_instances_left_count_1000_default_limit"),
                run.left as f64,
                "",
                "still registered after the deadline",
            );
            report.add(
                &format!("{prefix}_instances_runtime_warnings_count_1000_default_limit"),
                run.warnings as f64,
                "",
                "warnings and errors the runtime logged",
            );
            for (w, count) in &run.warning_kinds {
                report.note(format!("{who}, default limit: {count} × {w}"));
            }
        }
        for run in self.watches.iter().chain(&self.modes) {
            let mode = match (run.shared, run.interleaved, run.mode) {
                (true, _, _) => "shared_",
                (_, true, Consistency::Stale) => "stale_",
                (_, true, Consistency::Cached) => "cached_",
                (_, true, _) => "default_",
                _ => "",
            };
            let m = run.m;
            report.add(
                &format!("{prefix}_watch_{mode}propagation_p50_ms_{m}"),
                run.p(50.0),
                "",
                &if run.shared {
                    format!("change → seen by all {m} clones of one watch")
                } else {
                    format!("change → seen by all {m} watches")
                },
            );
            report.add(
                &format!("{prefix}_watch_{mode}propagation_p99_ms_{m}"),
                run.p(99.0),
                if m == 1000 { "≤ 50" } else { "" },
                "",
            );
            report.add(
                &format!("{prefix}_watch_{mode}propagation_max_ms_{m}"),
                run.max(),
                "",
                "",
            );
            report.add(
                &format!("{prefix}_watch_{mode}agent_cpu_ms_per_change_{m}"),
                ms(run.agent_cpu_per_change),
                "",
                "the agent's CPU per change",
            );
            report.add(
                &format!("{prefix}_watch_{mode}process_cpu_ms_per_change_{m}"),
                ms(run.self_cpu_per_change),
                "",
                "this process's CPU per change (the watches' answers)",
            );
            if run.missed > 0 || run.not_started > 0 {
                report.add(
                    &format!("{prefix}_watch_{mode}missed_count_{m}"),
                    (run.missed + run.not_started) as f64,
                    "0",
                    "changes not seen by all, or watches without an answer",
                );
            }
        }

        let color = if prefix == "dev" {
            "#1f5fa8"
        } else {
            "#c0392b"
        };
        let points = |f: &dyn Fn(&InstancesRun) -> Option<f64>| {
            self.instances
                .iter()
                .filter_map(|r| f(r).map(|v| (r.n as f64, v)))
                .collect::<Vec<_>>()
        };
        chart.add(
            0,
            Series {
                label: format!("{who}: bind → all passing"),
                color,
                dashed: false,
                points: points(&|r| r.all_passing.map(ms)),
            },
        );
        chart.add(
            0,
            Series {
                label: format!("{who}: shutdown → all gone"),
                color,
                dashed: true,
                points: points(&|r| r.all_gone.map(ms)),
            },
        );
        chart.add(
            1,
            Series {
                label: format!("{who}: this process"),
                color,
                dashed: false,
                points: points(&|r| Some(permille(r.self_idle_cpu, r.idle))),
            },
        );
        chart.add(
            1,
            Series {
                label: format!("{who}: the agent"),
                color,
                dashed: true,
                points: points(&|r| Some(permille(r.agent_idle_cpu, r.idle))),
            },
        );
        chart.add(
            2,
            Series {
                label: format!("{who}: this process"),
                color,
                dashed: false,
                points: points(&|r| Some(r.self_rss_growth_kib)),
            },
        );
        chart.add(
            2,
            Series {
                label: format!("{who}: the agent"),
                color,
                dashed: true,
                points: points(&|r| Some(r.agent_rss_growth_kib)),
            },
        );
        let watch_points = |p: f64| {
            self.watches
                .iter()
                .filter(|r| !r.samples.is_empty())
                .map(|r| (r.m as f64, r.p(p)))
                .collect::<Vec<_>>()
        };
        chart.add(
            3,
            Series {
                label: format!("{who}: p50"),
                color,
                dashed: false,
                points: watch_points(50.0),
            },
        );
        chart.add(
            3,
            Series {
                label: format!("{who}: p99"),
                color,
                dashed: true,
                points: watch_points(99.0),
            },
        );
    }
}

// ---------------------------------------------------------------------------------------------
// This process

fn self_cpu() -> Duration {
    common::process_cpu_precise(std::process::id() as i32)
}

fn self_rss_kib() -> f64 {
    common::process_rss_mib(std::process::id() as i32) * 1024.0
}

/// Bytes allocated and not freed (glibc's `mallinfo2`), in KiB; NaN elsewhere.
fn heap_in_use_kib() -> f64 {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallinfo2 only reads the allocator's counters.
        let info = unsafe { libc::mallinfo2() };
        (info.uordblks + info.hblkhd) as f64 / 1024.0
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        f64::NAN
    }
}

/// Hands memory glibc's malloc keeps after it was freed back to the system, so that a
/// reading's growth is memory in use.
fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Raises the soft limit of open files to the hard one: 1 000 listeners, their connections,
/// and the connections to the agent.
fn raise_fd_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return;
    }
    limit.rlim_cur = limit.rlim_max;
    // SAFETY: setrlimit reads the struct it is given.
    let _ = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
    println!("open files: up to {}", limit.rlim_cur);
}

/// Counts the runtime's warnings and errors (a global `tracing` subscriber), by message.
#[derive(Clone)]
struct Warnings {
    count: Arc<AtomicUsize>,
    by_message: Arc<Mutex<std::collections::BTreeMap<String, usize>>>,
}

impl Warnings {
    fn install() -> Warnings {
        use tracing_subscriber::layer::SubscriberExt as _;
        let warnings = Warnings {
            count: Arc::default(),
            by_message: Arc::default(),
        };
        let subscriber = tracing_subscriber::registry().with(warnings.clone());
        tracing::subscriber::set_global_default(subscriber).expect("a global subscriber");
        warnings
    }

    fn count(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// The messages logged so far, with how often each was, and forgets them.
    fn take(&self) -> Vec<(String, usize)> {
        let taken = std::mem::take(&mut *self.by_message.lock().expect("lock"));
        taken.into_iter().collect()
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Warnings {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let meta = event.metadata();
        if *meta.level() > tracing::Level::WARN || !meta.target().starts_with("discoverable") {
            return;
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        // The message and the error's kind, without what differs per instance.
        let mut text = String::new();
        event.record(
            &mut |field: &tracing::field::Field, value: &dyn std::fmt::Debug| {
                if field.name() == "message" {
                    let _ = write!(text, "{value:?}");
                } else if field.name() == "error" {
                    let shown = format!("{value:?}");
                    let short: String = shown.chars().take(90).collect();
                    let _ = write!(text, " ({short}...)");
                }
            },
        );
        *self
            .by_message
            .lock()
            .expect("lock")
            .entry(text)
            .or_default() += 1;
    }
}

// ---------------------------------------------------------------------------------------------
// The chart: four panels, logarithmic axes

struct Series {
    label: String,
    color: &'static str,
    dashed: bool,
    points: Vec<(f64, f64)>,
}

/// Panels: title, unit, the goal drawn as a grey line (value, label), the curves.
type Panel = (
    &'static str,
    &'static str,
    Option<(f64, &'static str)>,
    Vec<Series>,
);

struct Chart {
    panels: Vec<Panel>,
}

impl Default for Chart {
    fn default() -> Self {
        Chart {
            panels: vec![
                (
                    "instances in one process: bind → all passing, shutdown → all gone",
                    "ms",
                    Some((2000.0, "goal at 1 000: 2 s")),
                    Vec::new(),
                ),
                (
                    "idle CPU, ‰ of one core (the agent checks each instance every 10 s)",
                    "‰",
                    Some((100.0, "goal at 1 000: 0.1 ‰ each")),
                    Vec::new(),
                ),
                (
                    "resident memory growth with the instances serving",
                    "KiB",
                    Some((64_000.0, "goal at 1 000: 64 KiB each")),
                    Vec::new(),
                ),
                (
                    "watches of one service: change → seen by every watch",
                    "ms",
                    Some((50.0, "goal for p99 at 1 000")),
                    Vec::new(),
                ),
            ],
        }
    }
}

impl Chart {
    fn add(&mut self, panel: usize, series: Series) {
        self.panels[panel].3.push(series);
    }

    fn render(&self) -> String {
        const W: f64 = 600.0;
        const H: f64 = 300.0;
        const PAD_L: f64 = 84.0;
        const PAD_T: f64 = 34.0;
        const PAD_B: f64 = 40.0;
        const PLOT_W: f64 = 300.0;
        let width = 2.0 * W;
        let height = 2.0 * H + 30.0;
        let mut svg = String::new();
        let _ = write!(
            svg,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">"#
        );
        let _ = write!(
            svg,
            r##"<rect width="100%" height="100%" fill="#ffffff"/><text x="10" y="18" font-size="13" font-weight="bold">scale: blue = dev agent, red = real Consul; x: instances or watches (log), y: log</text>"##
        );
        for (i, (title, unit, goal, series)) in self.panels.iter().enumerate() {
            let (ox, oy) = ((i % 2) as f64 * W, 30.0 + (i / 2) as f64 * H);
            let plot_h = H - PAD_T - PAD_B;
            let values: Vec<f64> = series
                .iter()
                .flat_map(|s| s.points.iter().map(|p| p.1))
                .chain(goal.map(|g| g.0))
                .filter(|v| v.is_finite() && *v > 0.0)
                .collect();
            let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let (lo, hi) = if values.is_empty() {
                (0.0, 1.0)
            } else {
                (
                    lo.log10().floor(),
                    hi.log10().ceil().max(lo.log10().floor() + 1.0),
                )
            };
            let x = |n: f64| ox + PAD_L + n.max(1.0).log10() / 3.0 * PLOT_W;
            let y = |v: f64| {
                let v = v.max(10f64.powf(lo));
                oy + PAD_T + plot_h - (v.log10() - lo) / (hi - lo) * plot_h
            };
            let _ = write!(
                svg,
                r#"<text x="{}" y="{}" font-weight="bold">{}</text>"#,
                ox + 10.0,
                oy + 20.0,
                escape(title)
            );
            let _ = write!(
                svg,
                r##"<rect x="{}" y="{}" width="{PLOT_W}" height="{plot_h}" fill="none" stroke="#999"/>"##,
                ox + PAD_L,
                oy + PAD_T
            );
            for n in [1.0, 10.0, 100.0, 1000.0] {
                let _ = write!(
                    svg,
                    r##"<line x1="{0}" x2="{0}" y1="{1}" y2="{2}" stroke="#eee"/><text x="{0}" y="{3}" text-anchor="middle">{4}</text>"##,
                    x(n),
                    oy + PAD_T,
                    oy + PAD_T + plot_h,
                    oy + PAD_T + plot_h + 14.0,
                    n
                );
            }
            let mut e = lo;
            while e <= hi {
                let v = 10f64.powf(e);
                let _ = write!(
                    svg,
                    r##"<line x1="{0}" x2="{1}" y1="{2}" y2="{2}" stroke="#eee"/><text x="{3}" y="{4}" text-anchor="end">{5} {6}</text>"##,
                    ox + PAD_L,
                    ox + PAD_L + PLOT_W,
                    y(v),
                    ox + PAD_L - 4.0,
                    y(v) + 4.0,
                    format_tick(v),
                    unit
                );
                e += 1.0;
            }
            if let Some((value, label)) = goal {
                let _ = write!(
                    svg,
                    r##"<line x1="{0}" x2="{1}" y1="{2}" y2="{2}" stroke="#777" stroke-dasharray="2,3"/><text x="{1}" y="{3}" text-anchor="end" fill="#555">{4}</text>"##,
                    ox + PAD_L,
                    ox + PAD_L + PLOT_W,
                    y(*value),
                    y(*value) - 3.0,
                    escape(label)
                );
            }
            for (k, s) in series.iter().enumerate() {
                let points: Vec<String> = s
                    .points
                    .iter()
                    .filter(|p| p.1.is_finite())
                    .map(|&(n, v)| format!("{:.1},{:.1}", x(n), y(v)))
                    .collect();
                let dash = if s.dashed {
                    r#" stroke-dasharray="5,4""#
                } else {
                    ""
                };
                let _ = write!(
                    svg,
                    r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="2"{dash}/>"#,
                    points.join(" "),
                    s.color
                );
                for p in &points {
                    let (px, py) = p.split_once(',').expect("a point");
                    let _ = write!(
                        svg,
                        r#"<circle cx="{px}" cy="{py}" r="2.5" fill="{}"/>"#,
                        s.color
                    );
                }
                let ly = oy + PAD_T + 6.0 + k as f64 * 16.0;
                let lx = ox + PAD_L + PLOT_W + 12.0;
                let _ = write!(
                    svg,
                    r#"<line x1="{lx}" x2="{}" y1="{ly}" y2="{ly}" stroke="{}" stroke-width="2"{dash}/><text x="{}" y="{}">{}</text>"#,
                    lx + 18.0,
                    s.color,
                    lx + 22.0,
                    ly + 4.0,
                    escape(&s.label)
                );
            }
        }
        svg.push_str("</svg>\n");
        svg
    }
}

fn format_tick(v: f64) -> String {
    if v >= 1.0 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
