//! A rolling restart under steady load: keep-alive clients send `GET /roll` back to back
//! through the prefix router of `examples/support/router.rs` (routing by `urlprefix-` tags, as
//! Fabio does) to a service of two instances; each round replaces both instances one by one:
//! start a new instance, wait until the router routes to it, stop the old one through
//! `Instance::shutdown()` (the path SIGTERM takes: health 503, deregister, grace period,
//! drain). Everything runs in this process against an in-process dev agent; then, where the
//! real peers can be built, the same through a real Fabio on a real Consul.
//!
//! Every answer other than `200` with the instance's body counts as failed, as does every
//! connection error.
//!
//! Besides `target/bench-results/rolling_restart.json`, it draws each rolling restart as a
//! timeline chart, `target/bench-results/rolling_restart.svg`: a lane per instance (bound,
//! registered, in the router, health 503, deregistered, listener closed, drained, exited) and
//! the requests answered and failed per time bucket; the run through Fabio is a second section
//! of the chart when it runs.

mod common;
#[path = "../examples/support/lifecycle.rs"]
mod lifecycle;
#[allow(dead_code, clippy::unnecessary_sort_by)]
#[path = "../examples/support/router.rs"]
mod router;

use std::future::IntoFuture;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use common::{Conn, Report, median, ms};
use discoverable::consul::{Client, Config as ConsulConfig};
use discoverable::{Discovery, Instance, Service};
use discoverable_devagent::{Config, DevAgent};
use discoverable_timeline::{EventKind, Recorder, Run, Section};
use router::PrefixRouter;
use tokio::task::JoinHandle;
use tracing::Instrument as _;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

const ROUNDS: usize = 5;
const INSTANCES: usize = 2;
const CLIENTS: usize = 4;
const GRACE: Duration = Duration::from_millis(500);
const SERVICE: &str = "rolling";
const BODY: &str = "rolling page";

struct Running {
    port: u16,
    lane: String,
    instance: Instance,
    task: JoinHandle<std::io::Result<()>>,
}

/// Starts an instance; the chart's lane `lane` of `recorder` gets its bound and exited, and
/// (through its span) the runtime's lifecycle events.
async fn start_instance(consul: &ConsulConfig, lane: String, recorder: &Arc<Recorder>) -> Running {
    let service = Service::builder(SERVICE)
        .prefix("/roll")
        .grace_period(GRACE)
        .advertise_address("127.0.0.1")
        .consul(consul.clone())
        .build()
        .expect("service");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    recorder.event(&lane, EventKind::Bound);
    let port = listener.local_addr().expect("local addr").port();
    let app = Router::new().fallback(|| async { BODY });
    let serving = discoverable::serve(service, listener, app);
    let instance = serving.instance().clone();
    let (rec, name) = (recorder.clone(), lane.clone());
    let task = tokio::spawn(
        async move {
            let served = serving.await;
            rec.event(&name, EventKind::Exited);
            served
        }
        .instrument(lifecycle::span(&lane)),
    );
    Running {
        port,
        lane,
        instance,
        task,
    }
}

/// Waits until `routed(port)` holds; returns how long that took.
async fn routed(port: u16, routed: &(impl Fn(u16) -> bool + Sync)) -> Duration {
    let start = Instant::now();
    loop {
        if routed(port) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "instance on port {port} never became routable"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    failed: AtomicU64,
    stop: AtomicBool,
    first_failures: std::sync::Mutex<Vec<String>>,
}

impl Tally {
    fn fail(&self, why: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first_failures.lock().unwrap();
        if first.len() < 5 {
            first.push(why);
        }
    }
}

/// Sends requests until told to stop; returns when each ended and whether it was answered,
/// for the chart (kept here, not in a shared recorder, so charting costs the load nothing).
async fn client(
    addr: std::net::SocketAddr,
    path: String,
    tally: Arc<Tally>,
) -> Vec<(Instant, bool)> {
    let mut outcomes = Vec::with_capacity(1 << 16);
    let mut conn = None;
    while !tally.stop.load(Ordering::Relaxed) {
        let c = match &mut conn {
            Some(c) => c,
            None => match Conn::connect(addr).await {
                Ok(c) => conn.insert(c),
                Err(e) => {
                    tally.fail(format!("connect: {e}"));
                    outcomes.push((Instant::now(), false));
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    continue;
                }
            },
        };
        match c.get(&path).await {
            Ok((status, len)) if status.is_success() && len == BODY.len() => {
                tally.ok.fetch_add(1, Ordering::Relaxed);
                outcomes.push((Instant::now(), true));
            }
            Ok((status, len)) => {
                tally.fail(format!("{status}, {len} bytes"));
                outcomes.push((Instant::now(), false));
            }
            Err(e) => {
                tally.fail(e);
                outcomes.push((Instant::now(), false));
                conn = None;
            }
        }
    }
    outcomes
}

fn main() {
    common::print_machine();
    // No log output (as before); the chart's layer gets the runtime's lifecycle events.
    let into = lifecycle::RecordInto::default();
    tracing_subscriber::registry()
        .with(
            lifecycle::LifecycleLayer::recording_into(into.clone()).with_filter(
                tracing_subscriber::filter::filter_fn(lifecycle::LifecycleLayer::wants),
            ),
        )
        .init();
    CHART.set(into).ok();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run());
}

/// Where the runtime's lifecycle events go: set once in `main`, pointed at each roll's
/// recorder.
static CHART: std::sync::OnceLock<lifecycle::RecordInto> = std::sync::OnceLock::new();

/// What one rolling restart through one router measured.
struct Outcome {
    ok: u64,
    failed: u64,
    duration: Duration,
    ok_during: u64,
    to_routable: Vec<f64>,
    to_stopped: Vec<f64>,
    failures: Vec<String>,
    /// Its chart: every instance's lane, every request.
    chart: Section,
}

/// Serves INSTANCES instances, sends load through `router_addr`, and replaces every instance
/// ROUNDS times, each replacement routed (as `is_routed` says) before the old one stops.
async fn roll(
    consul: &ConsulConfig,
    router_addr: std::net::SocketAddr,
    path: &str,
    is_routed: impl Fn(u16) -> bool + Sync,
    section: &str,
) -> Outcome {
    let recorder = Arc::new(Recorder::new());
    if let Some(into) = CHART.get() {
        into.set(recorder.clone());
    }
    let mut lanes = 0;
    let mut next_lane = || {
        lanes += 1;
        format!("#{lanes}")
    };
    let mut running = Vec::new();
    for _ in 0..INSTANCES {
        let r = start_instance(consul, next_lane(), &recorder).await;
        routed(r.port, &is_routed).await;
        recorder.event(&r.lane, EventKind::InRouter);
        running.push(r);
    }

    let tally = Arc::new(Tally::default());
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| tokio::spawn(client(router_addr, path.to_owned(), tally.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let start = Instant::now();
    let ok_before = tally.ok.load(Ordering::Relaxed);
    let mut to_routable = Vec::new();
    let mut to_stopped = Vec::new();
    for _ in 0..ROUNDS {
        for slot in running.iter_mut() {
            let new = start_instance(consul, next_lane(), &recorder).await;
            to_routable.push(ms(routed(new.port, &is_routed).await));
            recorder.event(&new.lane, EventKind::InRouter);
            let old = std::mem::replace(slot, new);
            let t = Instant::now();
            old.instance.shutdown();
            tokio::time::timeout(Duration::from_secs(20), old.task)
                .await
                .expect("old instance stopped in time")
                .expect("serve task")
                .expect("serve");
            to_stopped.push(ms(t.elapsed()));
        }
    }
    let duration = start.elapsed();
    let ok_during = tally.ok.load(Ordering::Relaxed) - ok_before;
    tokio::time::sleep(Duration::from_millis(200)).await;
    tally.stop.store(true, Ordering::Relaxed);
    for c in clients {
        if let Ok(Ok(outcomes)) = tokio::time::timeout(Duration::from_secs(5), c).await {
            for (at, answered) in outcomes {
                recorder.request_at(at, answered);
            }
        }
    }
    for r in running {
        r.instance.shutdown();
        let _ = tokio::time::timeout(Duration::from_secs(5), r.task).await;
    }
    let failures = tally.first_failures.lock().unwrap().clone();
    let chart = recorder.section(section);
    Outcome {
        ok: tally.ok.load(Ordering::Relaxed),
        failed: tally.failed.load(Ordering::Relaxed),
        duration,
        ok_during,
        to_routable,
        to_stopped,
        failures,
        chart,
    }
}

async fn run() {
    let agent = DevAgent::start(Config::default()).await.expect("dev agent");
    let consul = ConsulConfig::builder()
        .address(agent.url())
        .build()
        .expect("consul config");
    let discovery = Discovery::new(Client::new(consul.clone()).expect("consul client"));
    let router = PrefixRouter::new(discovery);
    let router_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind router");
    let router_addr = router_listener.local_addr().unwrap();
    let router_task =
        tokio::spawn(axum::serve(router_listener, router.clone().app()).into_future());
    let agent_version = agent_version(&agent.url()).await;
    println!(
        "rolling restart: {ROUNDS} rounds x {INSTANCES} instances, {CLIENTS} keep-alive clients through the prefix router, grace {GRACE:?} ..."
    );
    let table = router.clone();
    let o = roll(
        &consul,
        router_addr,
        "/roll",
        move |port| table.table().iter().any(|(_, e)| e.port == port),
        "in-process dev agent, the examples' prefix router",
    )
    .await;
    router_task.abort();
    agent.shutdown().await;

    let mut report = Report::new("rolling_restart");
    report.add("requests_ok_count", o.ok as f64, "", "");
    report.add(
        "requests_failed_count",
        o.failed as f64,
        "0",
        "Go seed: instances stay registered after SIGTERM; requests fail until the check does",
    );
    report.add("rounds_count", ROUNDS as f64, ">= 5", "");
    report.add("replacements_count", o.to_routable.len() as f64, "", "");
    report.add("duration_s", o.duration.as_secs_f64(), "", "");
    report.add(
        "requests_per_s",
        o.ok_during as f64 / o.duration.as_secs_f64(),
        "",
        "during the restarts",
    );
    report.add(
        "new_routable_p50_ms",
        median(&o.to_routable),
        "",
        "new instance started to in the router's table",
    );
    report.add(
        "old_stopped_p50_ms",
        median(&o.to_stopped),
        "",
        "shutdown() to serve returned; grace 500 ms",
    );
    for why in &o.failures {
        report.note(format!("failure: {why}"));
    }
    let mut sections = vec![o.chart];
    let mut facts = vec![
        format!("agent: the in-process dev agent (Consul API {agent_version})"),
        "router: the examples' in-process prefix router".to_owned(),
    ];
    if let Some(fabio) = through_fabio(&mut report).await {
        use discoverable_testkit::peers::{CONSUL_VERSION, FABIO_VERSION};
        facts.push(format!(
            "then router: Fabio {FABIO_VERSION} on Consul {CONSUL_VERSION} (real processes)"
        ));
        sections.push(fabio);
    }
    let lanes: Vec<String> = sections.iter().map(|s| s.lanes.len().to_string()).collect();
    facts.push(format!(
        "instances per section: {} ({INSTANCES} at a time)",
        lanes.join(", ")
    ));
    facts.push(format!("{CLIENTS} keep-alive clients, grace {GRACE:?}"));
    let chart = Run {
        title: format!(
            "Rolling restart under load: {ROUNDS} rounds replacing {INSTANCES} instances"
        ),
        facts,
        sections,
        axis_label: Some("time since the section's first instance started (ms)".to_owned()),
    };
    report.finish();
    let path = common::target_dir()
        .join("bench-results")
        .join("rolling_restart.svg");
    discoverable_timeline::write(&chart, &path).expect("write the chart");
    println!("  chart written to {}", path.display());
}

/// The Consul API version the agent at `url` answers for (`/v1/agent/self`).
async fn agent_version(url: &str) -> String {
    let info: Option<serde_json::Value> = match reqwest::get(format!("{url}/v1/agent/self")).await {
        Ok(r) => r.json().await.ok(),
        Err(_) => None,
    };
    info.as_ref()
        .and_then(|i| i["Config"]["Version"].as_str())
        .unwrap_or("unknown")
        .to_owned()
}

/// The same rolling restart through a real Fabio on a real Consul, where the real peers can
/// be built; returns its chart section.
async fn through_fabio(report: &mut Report) -> Option<Section> {
    use discoverable_testkit::{Consul, Fabio, peers};
    let Some(peers) = peers::require("rolling_restart through Fabio") else {
        report.note("through Fabio: skipped, the real peers cannot be built here");
        return None;
    };
    let (consul_proc, fabio) = tokio::task::block_in_place(|| {
        let consul = Consul::start(&peers, Default::default());
        let fabio = Fabio::start(&peers, consul.http_addr(), None);
        (consul, fabio)
    });
    report.label_real_peers();
    let consul = ConsulConfig::builder()
        .address(consul_proc.url())
        .build()
        .expect("consul config");
    println!("rolling restart: the same through Fabio on a real Consul ...");
    let fabio = Arc::new(fabio);
    let table = fabio.clone();
    let o = roll(
        &consul,
        fabio.proxy_addr(),
        "/roll",
        move |port| table.routes_to("/roll", port),
        &format!(
            "Fabio {} on Consul {} (real processes on loopback)",
            peers::FABIO_VERSION,
            peers::CONSUL_VERSION
        ),
    )
    .await;
    report.add("fabio_requests_ok_count", o.ok as f64, "", "");
    report.add(
        "fabio_requests_failed_count",
        o.failed as f64,
        "0",
        "through Fabio on a real Consul",
    );
    report.add(
        "fabio_new_routable_p50_ms",
        median(&o.to_routable),
        "",
        "new instance started to in Fabio's table",
    );
    for why in &o.failures {
        report.note(format!("failure through Fabio: {why}"));
    }
    Some(o.chart)
}
