//! The lifecycle of the seed service as a real process: `cool_app` (release build) against
//! an in-process dev agent, started and stopped again and again.
//!
//! Per repetition, from the moment its `listening on` line is read:
//! - registered: the instance is in Consul in any state (a blocking query on
//!   `/v1/health/service/cool_app`, which the dev agent answers from the same store as
//!   `/v1/agent/services`);
//! - routable: the instance is in a `Discovery` watch (passing only, as Fabio routes);
//!
//! and from the moment SIGTERM is sent:
//! - unroutable: the instance has left that watch;
//! - exit: the process has exited (default grace period, 2 s, then drain).

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{Proc, Report, ms, percentile};
use discoverable::Discovery;
use discoverable::consul::{Client, Config as ConsulConfig};
use discoverable::discovery::{InstanceSet, Watch};
use discoverable_devagent::{Config, DevAgent};

const REPETITIONS: usize = 20;
const SERVICE: &str = "cool_app";

struct Sample {
    registered: Duration,
    routable: Duration,
    unroutable: Duration,
    exit: Duration,
}

fn main() {
    common::print_machine();
    let cool_app = common::release_example("cool_app");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let samples = runtime.block_on(run(cool_app));

    let figure = |f: fn(&Sample) -> Duration| samples.iter().map(|s| ms(f(s))).collect::<Vec<_>>();
    let registered = figure(|s| s.registered);
    let routable = figure(|s| s.routable);
    let unroutable = figure(|s| s.unroutable);
    let exit = figure(|s| s.exit);

    let mut report = Report::new("lifecycle");
    report.add("registered_p50_ms", percentile(&registered, 50.0), "", "");
    report.add("registered_p95_ms", percentile(&registered, 95.0), "", "");
    report.add(
        "routable_p50_ms",
        percentile(&routable, 50.0),
        "< 20",
        "Go seed: ~30000 (first check after a random delay within its 1 min interval)",
    );
    report.add(
        "routable_p95_ms",
        percentile(&routable, 95.0),
        "",
        "Spring Cloud Consul: up to 10000 (first check within its 10 s interval)",
    );
    report.add(
        "unroutable_p50_ms",
        percentile(&unroutable, 50.0),
        "< 20",
        "Go seed: never deregistered on SIGTERM; routed until its check fails, up to 60000",
    );
    report.add("unroutable_p95_ms", percentile(&unroutable, 95.0), "", "");
    report.add(
        "exit_p50_ms",
        percentile(&exit, 50.0),
        "~ 2000 + drain",
        "default grace period 2 s",
    );
    report.add("exit_p95_ms", percentile(&exit, 95.0), "", "");
    report.add("repetitions_count", samples.len() as f64, ">= 20", "");
    report.finish();
}

fn discovery_client(consul: &str) -> Client {
    Client::new(
        ConsulConfig::builder()
            .address(consul)
            .build()
            .expect("consul config"),
    )
    .expect("consul client")
}

async fn run(cool_app: std::path::PathBuf) -> Vec<Sample> {
    let agent = DevAgent::start(Config::default()).await.expect("dev agent");
    let consul = agent.url();
    let client = discovery_client(&consul);
    let discovery = Discovery::new(client.clone());
    let mut any_state = discovery.watch(SERVICE).passing_only(false).start();
    let mut passing = discovery.watch(SERVICE).start();
    let _ = tokio::time::timeout(
        Duration::from_secs(5),
        passing.wait_for(InstanceSet::is_known),
    )
    .await;
    println!("lifecycle: {REPETITIONS} repetitions of cool_app (release) ...");

    let mut samples = Vec::new();
    for _ in 0..REPETITIONS {
        samples.push(once(&cool_app, &consul, &client, &mut any_state, &mut passing).await);
    }
    agent.shutdown().await;
    samples
}

fn has_port(port: u16) -> impl FnMut(&InstanceSet) -> bool {
    move |s| s.endpoints().iter().any(|e| e.port == port)
}

async fn once(
    exe: &std::path::Path,
    consul: &str,
    client: &Client,
    any_state: &mut Watch,
    passing: &mut Watch,
) -> Sample {
    let mut cmd = Command::new(exe);
    cmd.env("BIND_ADDR", "127.0.0.1:0")
        .env("CONSUL_HTTP_ADDR", consul)
        .env("DISCOVERABLE_ADVERTISE_ADDR", "127.0.0.1")
        .env_remove("DISCOVERABLE_GRACE_PERIOD")
        .env("RUST_LOG", "warn");
    let proc = Proc::spawn("cool_app", cmd);
    let (bound, url) =
        tokio::task::block_in_place(|| proc.wait_line("listening on ", Duration::from_secs(20)));
    let port = common::parse_url_addr(&url).port();

    let within = Duration::from_secs(10);
    let (registered, routable) = tokio::join!(
        async {
            tokio::time::timeout(within, any_state.wait_for(has_port(port)))
                .await
                .expect("registered");
            Instant::now()
        },
        async {
            tokio::time::timeout(within, passing.wait_for(has_port(port)))
                .await
                .expect("routable");
            Instant::now()
        },
    );

    // The dev agent answers the health query and /v1/agent/services from one store; check
    // that the agent lists the instance too.
    let listed = client
        .agent_services()
        .await
        .expect("agent services")
        .values()
        .any(|s| s.port == port);
    assert!(listed, "instance on port {port} not in /v1/agent/services");

    let term = Instant::now();
    proc.signal(libc::SIGTERM);
    let exited = tokio::task::spawn_blocking(move || {
        let mut proc = proc;
        let (at, status) = proc.wait_exit(Duration::from_secs(20));
        assert!(status.success(), "cool_app exited with {status}");
        at
    });
    let mut not = has_port(port);
    tokio::time::timeout(within, passing.wait_for(|s| !not(s)))
        .await
        .expect("unroutable");
    let unroutable = Instant::now();
    let exited = exited.await.expect("exit waiter");

    Sample {
        registered: registered.saturating_duration_since(bound),
        routable: routable.saturating_duration_since(bound),
        unroutable: unroutable - term,
        exit: exited - term,
    }
}
