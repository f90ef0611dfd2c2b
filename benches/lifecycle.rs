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
//!
//! Then, where the real peers can be built (`peers/`), the same through a real Fabio on a
//! real Consul: bind to the first request answered through Fabio, SIGTERM to Fabio no longer
//! sending it requests, failed requests in the 5 s after one of two instances got SIGTERM;
//! and the seed's Go recipe under the same pair (five instances started at once).
//!
//! Those two SIGTERMs, ours and the seed's, are drawn side by side as a timeline chart,
//! `target/bench-results/side_by_side.svg`: a lane per instance (SIGTERM, health 503,
//! deregistered, out of Fabio, listener closed, exited, as seen from outside the process) and
//! the requests through Fabio answered and failed, both from the SIGTERM on.

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
    let samples = runtime.block_on(run(cool_app.clone()));

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
    let chart = through_fabio::run(&cool_app, &mut report);
    report.finish();
    if let Some(chart) = chart {
        let path = common::target_dir()
            .join("bench-results")
            .join("side_by_side.svg");
        discoverable_timeline::write(&chart, &path).expect("write the chart");
        println!("  chart written to {}", path.display());
    }
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

/// The same lifecycle through a real Fabio on a real Consul, and the seed's Go recipe beside
/// it under the same pair. Skipped, with a note, where the real peers cannot be built.
mod through_fabio {
    use std::path::Path;
    use std::process::Command;
    use std::time::{Duration, Instant};

    use discoverable_testkit::{Consul, Fabio, free_port, peers};
    use discoverable_timeline::{EventKind, Lane, Recorder, Run, Section};

    use super::common::{Proc, Report, ms, percentile};
    use super::{REPETITIONS, SERVICE};

    const SEEDS: usize = 5;
    /// How long requests go through Fabio after a SIGTERM (or, for the seed, its exit).
    const WINDOW: Duration = Duration::from_secs(5);

    /// Polls `done` every millisecond (the figures' resolution) until it holds; panics with
    /// `what` after `within`.
    fn until(within: Duration, what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + within;
        while !done() {
            assert!(Instant::now() < deadline, "{what}: not within {within:?}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn answered(fabio: &Fabio) -> bool {
        fabio.get("/oops/").is_ok_and(|a| a.status == 200)
    }

    fn registered(consul: &Consul) -> usize {
        consul.registered(SERVICE)
    }

    /// Requests through Fabio, one after another 5 ms apart, for `window`: how many failed.
    /// Each goes to the chart's `recorder` too.
    fn failed_within(fabio: &Fabio, window: Duration, recorder: &Recorder) -> usize {
        let end = Instant::now() + window;
        let mut failed = 0;
        while Instant::now() < end {
            let answered = answered(fabio);
            recorder.request(answered);
            failed += usize::from(!answered);
            std::thread::sleep(Duration::from_millis(5));
        }
        failed
    }

    /// Watches the instance on `port` after its SIGTERM, from outside, until `within` has
    /// passed: records in lane `lane` when its health route first answers 503, when Consul
    /// lists fewer than `registered_before` instances, when Fabio stops routing to it, when
    /// its port refuses connections, and (given the process) when it exits.
    #[allow(clippy::too_many_arguments)]
    fn watch_stop(
        recorder: &Recorder,
        lane: &str,
        port: u16,
        mut proc: Option<&mut Proc>,
        fabio: &Fabio,
        consul: &Consul,
        registered_before: usize,
        within: Duration,
    ) {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + within;
        let (mut health, mut deregistered, mut unrouted, mut closed, mut exited) =
            (false, false, false, false, proc.is_none());
        while Instant::now() < deadline && !(health && deregistered && unrouted && closed && exited)
        {
            if !closed {
                match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)) {
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                        recorder.event(lane, EventKind::ListenerClosed);
                        closed = true;
                        // Nothing answers 503 any more.
                        health = true;
                    }
                    _ => {}
                }
            }
            if !health {
                let answer = discoverable_testkit::http::request(
                    addr,
                    "GET",
                    "/health",
                    &[],
                    b"",
                    Duration::from_millis(200),
                );
                if answer.is_ok_and(|a| a.status == 503) {
                    recorder.event(lane, EventKind::Health503);
                    health = true;
                }
            }
            if !deregistered && consul.registered(SERVICE) < registered_before {
                recorder.event(lane, EventKind::Deregistered);
                deregistered = true;
            }
            if !unrouted && !routes_to(fabio, port) {
                recorder.event(lane, EventKind::Other("out of Fabio".to_owned()));
                unrouted = true;
            }
            if let Some(p) = proc.as_deref_mut() {
                if !exited && p.try_exit().is_some() {
                    recorder.event(lane, EventKind::Exited);
                    exited = true;
                }
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// The section of one SIGTERM: the stopped instance's lane `stopped` as recorded, the
    /// others (`running`) routable throughout; every lane routable when the window began.
    fn section(
        recorder: &Recorder,
        name: &str,
        stopped: &str,
        running: impl IntoIterator<Item = String>,
    ) -> Section {
        let mut section = recorder.section(name);
        if !section.lanes.iter().any(|l| l.name == stopped) {
            section.lanes.insert(0, Lane::new(stopped));
        }
        section.lanes.extend(running.into_iter().map(Lane::new));
        let end = section.end_ms().max(ms(WINDOW));
        for lane in &mut section.lanes {
            lane.routable_from_ms = Some(0.0);
            lane.derive_bands(end);
        }
        section
    }

    fn cool_app(exe: &Path, consul: &Consul) -> (Proc, Instant, u16) {
        let mut cmd = Command::new(exe);
        cmd.env("BIND_ADDR", "127.0.0.1:0")
            .env("CONSUL_HTTP_ADDR", consul.url())
            .env_remove("DISCOVERABLE_GRACE_PERIOD")
            .env("RUST_LOG", "warn");
        let proc = Proc::spawn("cool_app", cmd);
        let (bound, url) = proc.wait_line("listening on ", Duration::from_secs(20));
        let port = super::common::parse_url_addr(&url).port();
        (proc, bound, port)
    }

    fn routes_to(fabio: &Fabio, port: u16) -> bool {
        fabio.routes_to("/oops", port)
    }

    /// Returns the chart of the two SIGTERMs, ours and the seed's, side by side.
    pub fn run(exe: &Path, report: &mut Report) -> Option<Run> {
        let Some(peers) = peers::require("lifecycle through Fabio") else {
            report.note("through Fabio: skipped, the real peers cannot be built here");
            return None;
        };
        report.label_real_peers();
        let consul = Consul::start(&peers, Default::default());
        let fabio = Fabio::start(&peers, consul.http_addr(), None);
        println!("lifecycle: {REPETITIONS} repetitions through Fabio on a real Consul ...");
        let (mut routable, mut unroutable) = (Vec::new(), Vec::new());
        let mut left = 0;
        for _ in 0..REPETITIONS {
            let (mut proc, bound, _) = cool_app(exe, &consul);
            until(Duration::from_secs(10), "routed through Fabio", || {
                answered(&fabio)
            });
            routable.push(ms(bound.elapsed()));
            let term = Instant::now();
            proc.signal(libc::SIGTERM);
            until(Duration::from_secs(10), "dropped by Fabio", || {
                !answered(&fabio)
            });
            unroutable.push(ms(term.elapsed()));
            let (_, status) = proc.wait_exit(Duration::from_secs(20));
            assert!(status.success(), "cool_app exited with {status}");
            left += registered(&consul);
        }
        report.add(
            "fabio_routable_p50_ms",
            percentile(&routable, 50.0),
            "< 20",
            "bind to the first request answered through Fabio",
        );
        report.add("fabio_routable_p95_ms", percentile(&routable, 95.0), "", "");
        report.add(
            "fabio_unroutable_p50_ms",
            percentile(&unroutable, 50.0),
            "< 20",
            "SIGTERM to Fabio no longer sending it requests",
        );
        report.add(
            "fabio_unroutable_p95_ms",
            percentile(&unroutable, 95.0),
            "",
            "",
        );

        // One of two instances gets SIGTERM: requests through Fabio in the next 5 s.
        let (mut first, _, p1) = cool_app(exe, &consul);
        let (second, _, p2) = cool_app(exe, &consul);
        until(Duration::from_secs(10), "both routed", || {
            routes_to(&fabio, p1) && routes_to(&fabio, p2)
        });
        let before = registered(&consul);
        let ours = Recorder::new();
        first.signal(libc::SIGTERM);
        ours.event_at("cool_app 1", EventKind::Sigterm, ours.origin());
        let failed = std::thread::scope(|s| {
            let (ours, fabio, consul, first) = (&ours, &fabio, &consul, &mut first);
            s.spawn(move || {
                let within = WINDOW + Duration::from_secs(5);
                watch_stop(
                    ours,
                    "cool_app 1",
                    p1,
                    Some(first),
                    fabio,
                    consul,
                    before,
                    within,
                )
            });
            failed_within(fabio, WINDOW, ours)
        });
        let ours = section(
            &ours,
            "discoverable's cool_app, one of 2 instances stopped",
            "cool_app 1",
            ["cool_app 2".to_owned()],
        );
        report.add("sigterm_requests_failed_count", failed as f64, "0", "");
        second.signal(libc::SIGTERM);
        for mut p in [first, second] {
            let (_, status) = p.wait_exit(Duration::from_secs(20));
            assert!(status.success(), "cool_app exited with {status}");
        }
        left += registered(&consul);
        report.add("left_registered_count", left as f64, "0", "");

        // The seed's recipe: SEEDS instances started at once on fixed ports.
        println!(
            "lifecycle: {SEEDS} instances of the seed's Go recipe (first check within 1 min) ..."
        );
        let started = Instant::now();
        let mut seeds: Vec<(Proc, u16)> = (0..SEEDS)
            .map(|_| {
                let port = free_port();
                let mut cmd = Command::new(&peers.seed);
                cmd.env("BIND_ADDR", format!("127.0.0.1:{port}"))
                    .env("CONSUL_HTTP_ADDR", consul.url());
                (Proc::spawn("seed", cmd), port)
            })
            .collect();
        let mut seed_routable: Vec<f64> = Vec::new();
        // Each time another instance appears in the table, its time is taken; which one
        // it was does not matter for the distribution.
        until(
            Duration::from_secs(75),
            "every seed instance routed within its check interval",
            || {
                let now_routed = seeds.iter().filter(|(_, p)| routes_to(&fabio, *p)).count();
                while seed_routable.len() < now_routed {
                    seed_routable.push(ms(started.elapsed()));
                }
                now_routed == SEEDS
            },
        );
        let (mut first, port) = seeds.remove(0);
        let before = registered(&consul);
        let seed = Recorder::new();
        first.signal(libc::SIGTERM);
        seed.event_at("seed 1", EventKind::Sigterm, seed.origin());
        let (exit, _) = first.wait_exit(Duration::from_secs(10));
        seed.event_at("seed 1", EventKind::Exited, exit);
        let seed_failed = std::thread::scope(|s| {
            let (seed, fabio, consul) = (&seed, &fabio, &consul);
            s.spawn(move || watch_stop(seed, "seed 1", port, None, fabio, consul, before, WINDOW));
            failed_within(fabio, WINDOW, seed)
        });
        let mut seed = section(
            &seed,
            &format!("the seed's Go recipe, one of {SEEDS} instances stopped"),
            "seed 1",
            (2..=SEEDS).map(|i| format!("seed {i}")),
        );
        seed.baseline = true;
        for (p, _) in &mut seeds {
            p.signal(libc::SIGTERM);
            p.wait_exit(Duration::from_secs(10));
        }
        let seed_left = registered(&consul);
        report.add(
            "seed_routable_p50_ms",
            percentile(&seed_routable, 50.0),
            "",
            "the seed's Go recipe, same Consul and Fabio: first check within its 1 min interval",
        );
        report.add(
            "seed_requests_failed_count",
            seed_failed as f64,
            "",
            "the seed's recipe, one of its instances stopped: Fabio routes to it until its check fails",
        );
        report.add(
            "seed_left_registered_count",
            seed_left as f64,
            "",
            "of the seed's instances stopped with SIGTERM, still registered after they exited",
        );
        Some(Run {
            title: "SIGTERM to one instance behind Fabio: discoverable beside the seed's recipe"
                .to_owned(),
            facts: vec![
                format!("agent: Consul {} (real process)", peers::CONSUL_VERSION),
                format!("router: Fabio {} (real process)", peers::FABIO_VERSION),
                format!("instances: 2 of cool_app, {SEEDS} of the seed's recipe"),
                format!(
                    "requests through Fabio one after another, 5 ms apart, for {WINDOW:?} from the SIGTERM (the seed's: from its exit)"
                ),
            ],
            sections: vec![ours, seed],
            axis_label: Some("time since the SIGTERM (ms)".to_owned()),
        })
    }
}
