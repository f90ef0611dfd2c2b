//! The cost of `DiscoveryLayer` and of the full `discoverable::serve` against a bare axum app
//! (a `Router` with one `GET /` route answering a short string).
//!
//! 1. Instructions per request under `valgrind --tool=callgrind` (deterministic, the deciding
//!    figures): this executable runs itself in a child mode, once with 0 and once with N
//!    requests after the same warm-up; per request = (I(N) − I(0)) / N.
//!    - in process: each stack driven with `ServiceExt::oneshot`, no HTTP;
//!    - over loopback ("wire"): each server under callgrind on a current-thread runtime, sent
//!      requests one at a time on one keep-alive connection by this process; the count is
//!      the server's whole cost of a request (HTTP parsing, routing, response, I/O calls).
//! 2. Thread CPU time per request in process, interleaved rounds, median ratio.
//! 3. Keep-alive requests per second and latency over loopback: three servers as child
//!    processes (bare `axum::serve`, `axum::serve` with the layer, `discoverable::serve`
//!    registered with an in-process dev agent), loaded in interleaved rounds by a separate
//!    load-generator process; and the server's CPU time (user + kernel, from
//!    `/proc/<pid>/task/*/schedstat`) per request served in those rounds.
//!
//! The stacks: `bare` is the app; `layer` is `app.layer(DiscoveryLayer::new(&service))`, as a
//! user writes it; `wrapped` is `DiscoveryLayer` around the whole `Router`, as
//! `discoverable::serve` applies it. Two no-op stacks separate what any layer costs from what
//! this one adds: `noop_layer` is `app.layer(Identity)` (axum's per-route wrapping alone) and
//! `noop_wrapped` a `MapResponse` that returns the response unchanged, around the `Router`
//! (a layer whose future wraps the router's).

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use axum::routing::get;
use common::{Conn, Proc, Report, median, percentile};
use discoverable::{DiscoveryLayer, Service};
use discoverable_devagent::{Config, DevAgent};
use tower::{Layer, ServiceExt};

/// Requests per stack in the measured callgrind run, in process.
const CALLGRIND_REQUESTS: usize = 20_000;
/// Requests per server in the measured callgrind run, over loopback.
const WIRE_REQUESTS: usize = 4_000;
/// Requests before counting starts, in both callgrind runs, so one-time set-up cancels out.
const WARMUP_REQUESTS: usize = 200;
/// Interleaved rounds of the in-process CPU-time measurement.
const CPU_ROUNDS: usize = 15;
/// Target CPU time of one stack in one CPU-time round.
const CPU_BLOCK: Duration = Duration::from_millis(80);
/// Interleaved rounds of the loopback load measurement; each stack is loaded once per round.
/// Many short rounds: load from other work on the machine then hits every stack alike.
const LOAD_ROUNDS: usize = 12;
/// Keep-alive connections of the load generator.
const LOAD_CONNECTIONS: usize = 8;
/// Length of one load run.
const LOAD_RUN: Duration = Duration::from_secs(1);

const TARGET_COST: &str = "<= 1.02";
const TARGET_THROUGHPUT: &str = ">= 0.98";

fn main() {
    let args = common::args();
    match args.first().map(String::as_str) {
        Some("--child-count") => child_count(&args[1], args[2].parse().expect("request count")),
        Some("--child-server") => child_server(&args[1], false),
        Some("--child-server-cg") => child_server(&args[1], true),
        Some("--child-load") => child_load(
            args[1].parse().expect("address"),
            args[2].parse().expect("connections"),
            Duration::from_millis(args[3].parse().expect("milliseconds")),
        ),
        _ => parent(),
    }
}

fn app() -> Router {
    Router::new().route("/", get(|| async { "hello, world" }))
}

fn service(name: &str) -> Service {
    Service::builder(name).build().expect("service")
}

const STACKS: [&str; 5] = ["bare", "layer", "wrapped", "noop_layer", "noop_wrapped"];

/// A response passed through unchanged: the least any layer that wraps the inner future does.
fn same(response: Response) -> Response {
    response
}

/// Sends `n` requests through `stack`, each on a clone of the service as a server connection
/// does.
///
/// Each `Router` is finalised with `with_state(())` first, as `axum::serve` does for every
/// connection: without it, axum turns each handler into a route again (and applies
/// `router.layer(..)` layers again) for every request.
async fn drive_stack(stack: &str, n: usize) {
    let s = service("bench");
    let app = || app().with_state(());
    match stack {
        "bare" => drive(app(), n).await,
        "layer" => drive(app().layer(DiscoveryLayer::new(&s)), n).await,
        "wrapped" => drive(DiscoveryLayer::new(&s).layer(app()), n).await,
        "noop_layer" => drive(app().layer(tower::layer::util::Identity::new()), n).await,
        "noop_wrapped" => {
            let noop = tower::util::MapResponseLayer::new(same as fn(Response) -> Response);
            drive(noop.layer(app()), n).await
        }
        other => panic!("unknown stack {other}"),
    }
}

async fn drive<S>(svc: S, n: usize)
where
    S: tower::Service<Request, Response = Response, Error = Infallible> + Clone,
{
    for _ in 0..n {
        let request = Request::get("/").body(Body::empty()).expect("request");
        let response = svc.clone().oneshot(request).await.expect("infallible");
        debug_assert!(response.status().is_success());
        std::hint::black_box(response);
    }
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Child mode run under callgrind: warm up, then `n` requests through `stack`.
fn child_count(stack: &str, n: usize) {
    current_thread().block_on(async {
        drive_stack(stack, WARMUP_REQUESTS).await;
        drive_stack(stack, n).await;
    });
}

/// Child mode: serves one stack on 127.0.0.1:0 until SIGTERM (then shuts down gracefully)
/// or until killed. Under callgrind (`counted`) on a current-thread runtime, so the count
/// does not depend on how work lands on worker threads.
fn child_server(stack: &str, counted: bool) {
    let runtime = if counted {
        current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("runtime")
    };
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        println!("listening on http://{}", listener.local_addr().unwrap());
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        let terminated = async move {
            term.recv().await;
        };
        match stack {
            "bare" => {
                axum::serve(listener, app())
                    .with_graceful_shutdown(terminated)
                    .await
            }
            "layer" => {
                let s = service("bench_layer");
                axum::serve(listener, app().layer(DiscoveryLayer::new(&s)))
                    .with_graceful_shutdown(terminated)
                    .await
            }
            // Handles SIGTERM itself: deregister, grace period, drain.
            "serve" => discoverable::serve(service("bench_serve"), listener, app()).await,
            other => panic!("unknown server {other}"),
        }
        .expect("serve");
    });
}

/// Child mode: `connections` keep-alive connections send GET / back to back for `length`;
/// prints `result {json}` with the count and latency percentiles.
fn child_load(addr: SocketAddr, connections: usize, length: Duration) {
    let result = current_thread().block_on(async move {
        let start = Instant::now();
        let end = start + length;
        let mut tasks = Vec::new();
        for _ in 0..connections {
            tasks.push(tokio::spawn(async move {
                let mut conn = Conn::connect(addr).await.expect("connect");
                let mut latencies = Vec::with_capacity(1 << 16);
                let mut errors = 0u64;
                while Instant::now() < end {
                    let t = Instant::now();
                    match conn.get("/").await {
                        Ok((status, _)) if status.is_success() => {
                            latencies.push(t.elapsed().as_secs_f64() * 1e6)
                        }
                        _ => errors += 1,
                    }
                }
                (latencies, errors)
            }));
        }
        let mut all = Vec::new();
        let mut errors = 0;
        for t in tasks {
            let (l, e) = t.await.expect("load task");
            all.extend(l);
            errors += e;
        }
        let elapsed = start.elapsed().as_secs_f64();
        serde_json::json!({
            "requests": all.len(),
            "errors": errors,
            "rps": all.len() as f64 / elapsed,
            "p50_us": percentile(&all, 50.0),
            "p99_us": percentile(&all, 99.0),
        })
    });
    println!("result {result}");
}

fn parent() {
    common::print_machine();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let agent = runtime
        .block_on(DevAgent::start(Config::default()))
        .expect("dev agent");
    let consul = agent.url();

    let mut report = Report::new("layer_overhead");
    let phase = |name: &str, start: Instant| {
        println!("  {name} done in {:.1} s", start.elapsed().as_secs_f64());
    };
    let t = Instant::now();
    instructions(&mut report);
    phase("callgrind in process", t);
    let t = Instant::now();
    wire_instructions(&mut report, &consul);
    phase("callgrind over loopback", t);
    let t = Instant::now();
    cpu_time(&mut report);
    phase("cpu time", t);
    let t = Instant::now();
    load(&mut report, &runtime, &consul);
    phase("load", t);
    runtime.block_on(agent.shutdown());
    report.note(
        "layer = app.layer(DiscoveryLayer): axum boxes every route again (one more boxed service clone and boxed future per request)",
    );
    report.note(
        "wrapped = DiscoveryLayer around the whole Router, as discoverable::serve applies it",
    );
    report.note(
        "in-process figures exclude HTTP parsing and I/O, so their ratios overstate the layer's share of a real request",
    );
    report.note(
        "wire instruction counts are user space only; a request's kernel work (loopback TCP) is in server_cpu_us",
    );
    report.note(
        "wall-clock figures on a shared 2-core machine are noisy; the instruction count is the deciding figure",
    );
    report.finish();
}

// ---------------------------------------------------------------------------------------------
// 1. Instructions

fn instructions(report: &mut Report) {
    let exe = common::current_exe();
    let dir = common::target_dir().join("bench-results").join("callgrind");
    std::fs::create_dir_all(&dir).expect("callgrind directory");
    println!(
        "callgrind: {} stacks x {{0, {CALLGRIND_REQUESTS}}} requests ...",
        STACKS.len()
    );
    let per_request = instructions_per_request(&STACKS, CALLGRIND_REQUESTS, move |stack, n| {
        callgrind(&exe, &dir.join(format!("{stack}-{n}.out")), stack, n)
    });
    let bare = per_request("bare");
    let layer = per_request("layer");
    let wrapped = per_request("wrapped");
    let noop_layer = per_request("noop_layer");
    let noop_wrapped = per_request("noop_wrapped");
    report.add("bare_instructions_per_request", bare, "", "");
    report.add("layer_instructions_per_request", layer, "", "");
    report.add("wrapped_instructions_per_request", wrapped, "", "");
    report.add(
        "noop_layer_instructions_per_request",
        noop_layer,
        "",
        "router.layer(Identity): axum's per-route wrapping alone",
    );
    report.add(
        "noop_wrapped_instructions_per_request",
        noop_wrapped,
        "",
        "a no-op MapResponse around the Router: a layer that wraps the inner future",
    );
    report.add(
        "instructions_router_layer_vs_noop_ratio",
        layer / noop_layer,
        TARGET_COST,
        "what DiscoveryLayer adds to axum's per-route wrapping",
    );
    report.add(
        "instructions_wrapped_vs_noop_ratio",
        wrapped / noop_wrapped,
        "",
        "what DiscoveryLayer adds to a no-op layer around the Router",
    );
    report.add(
        "instructions_layer_ratio",
        layer / bare,
        TARGET_COST,
        "deciding figure",
    );
    report.add(
        "instructions_wrapped_ratio",
        wrapped / bare,
        TARGET_COST,
        "as serve wraps the Router",
    );
}

/// Counts each stack with 0 and with `n` requests, two runs at a time (the counts are
/// deterministic, the machine has two cores), and returns a stack's instructions per
/// request: `(I(n) - I(0)) / n`.
fn instructions_per_request(
    stacks: &[&'static str],
    n: usize,
    count: impl Fn(&'static str, usize) -> u64 + Clone + Send + 'static,
) -> impl Fn(&str) -> f64 {
    let runs: Vec<(&'static str, usize)> = stacks.iter().flat_map(|s| [(*s, 0), (*s, n)]).collect();
    let mut counts = Vec::new();
    for pair in runs.chunks(2) {
        let handles: Vec<_> = pair
            .iter()
            .map(|&(stack, k)| {
                let count = count.clone();
                std::thread::spawn(move || (stack, k, count(stack, k)))
            })
            .collect();
        counts.extend(
            handles
                .into_iter()
                .map(|h| h.join().expect("callgrind run")),
        );
    }
    move |stack: &str| {
        let at = |k| {
            counts
                .iter()
                .find(|(s, c, _)| *s == stack && *c == k)
                .map(|(_, _, c)| *c as f64)
                .expect("count")
        };
        (at(n) - at(0)) / n as f64
    }
}

/// Runs this executable in `--child-count` mode under callgrind; returns the instructions
/// executed.
fn callgrind(exe: &std::path::Path, out: &std::path::Path, stack: &str, n: usize) -> u64 {
    let output = Command::new("valgrind")
        .args(["--tool=callgrind", "-q"])
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg(exe)
        .args(["--child-count", stack, &n.to_string()])
        .output()
        .expect("run valgrind (is it installed?)");
    assert!(
        output.status.success(),
        "callgrind run {stack} {n} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    parse_callgrind(out)
}

fn parse_callgrind(out: &std::path::Path) -> u64 {
    let text = std::fs::read_to_string(out).expect("callgrind output");
    text.lines()
        .find_map(|l| {
            l.strip_prefix("summary:")
                .or_else(|| l.strip_prefix("totals:"))
        })
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("summary line in callgrind output")
}

const SERVERS: [&str; 3] = ["bare", "layer", "serve"];

/// The servers under callgrind, each with 0 and with `WIRE_REQUESTS` requests.
fn wire_instructions(report: &mut Report, consul: &str) {
    let dir = common::target_dir().join("bench-results").join("callgrind");
    println!(
        "callgrind over loopback: {} servers x {{0, {WIRE_REQUESTS}}} requests ...",
        SERVERS.len()
    );
    let consul = consul.to_owned();
    let per_request = instructions_per_request(&SERVERS, WIRE_REQUESTS, move |stack, n| {
        wire_callgrind(
            &dir.join(format!("wire-{stack}-{n}.out")),
            &consul,
            stack,
            n,
        )
    });
    let bare = per_request("bare");
    let layer = per_request("layer");
    let serve = per_request("serve");
    report.add("wire_bare_instructions_per_request", bare, "", "");
    report.add("wire_layer_instructions_per_request", layer, "", "");
    report.add("wire_serve_instructions_per_request", serve, "", "");
    report.add(
        "wire_instructions_layer_ratio",
        layer / bare,
        TARGET_COST,
        "server's whole request",
    );
    report.add(
        "wire_instructions_serve_ratio",
        serve / bare,
        TARGET_COST,
        "server's whole request",
    );
}

/// One server under callgrind: warm-up, `n` requests on one keep-alive connection, SIGTERM;
/// returns the instructions the server executed.
fn wire_callgrind(out: &std::path::Path, consul: &str, stack: &str, n: usize) -> u64 {
    let mut cmd = Command::new("valgrind");
    cmd.args(["--tool=callgrind", "-q"])
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg(common::current_exe())
        .args(["--child-server-cg", stack])
        .env("CONSUL_HTTP_ADDR", consul)
        .env("DISCOVERABLE_ADVERTISE_ADDR", "127.0.0.1")
        .env("DISCOVERABLE_GRACE_PERIOD", "0s");
    let mut server = Proc::spawn(&format!("{stack} under callgrind"), cmd);
    let (_, url) = server.wait_line("listening on ", Duration::from_secs(60));
    let addr = common::parse_url_addr(&url);
    current_thread().block_on(async {
        let mut conn = Conn::connect(addr).await.expect("connect");
        for _ in 0..WARMUP_REQUESTS + n {
            let (status, _) = conn.get("/").await.expect("request");
            assert!(status.is_success());
        }
    });
    server.signal(libc::SIGTERM);
    let (_, status) = server.wait_exit(Duration::from_secs(60));
    assert!(
        status.success(),
        "{stack} under callgrind exited with {status}"
    );
    parse_callgrind(out)
}

// ---------------------------------------------------------------------------------------------
// 2. CPU time

fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec it is given.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn cpu_time(report: &mut Report) {
    let runtime = current_thread();
    let timed = |stack: &str, n: usize| {
        runtime.block_on(async {
            let t = thread_cpu();
            drive_stack(stack, n).await;
            (thread_cpu() - t).as_secs_f64() * 1e9 / n as f64
        })
    };
    // Warm up every stack, then size a block to about CPU_BLOCK.
    for stack in &STACKS[..3] {
        timed(stack, 20_000);
    }
    let ns = timed("bare", 50_000);
    let n = ((CPU_BLOCK.as_secs_f64() * 1e9 / ns) as usize).max(10_000);
    println!("cpu time: {CPU_ROUNDS} rounds x {n} requests per stack ...");
    let mut per = [Vec::new(), Vec::new(), Vec::new()];
    let mut layer_ratios = Vec::new();
    let mut wrapped_ratios = Vec::new();
    // The CPU-time rounds compare the three stacks users run; the no-op ones are for the
    // instruction counts only.
    let stacks = &STACKS[..3];
    for round in 0..CPU_ROUNDS {
        let mut this = [0.0; 3];
        for k in 0..stacks.len() {
            // Rotate the order so no stack always runs first.
            let i = (k + round) % stacks.len();
            this[i] = timed(stacks[i], n);
        }
        for i in 0..3 {
            per[i].push(this[i]);
        }
        layer_ratios.push(this[1] / this[0]);
        wrapped_ratios.push(this[2] / this[0]);
    }
    report.add("cpu_bare_ns", median(&per[0]), "", "per request");
    report.add("cpu_layer_ns", median(&per[1]), "", "per request");
    report.add("cpu_wrapped_ns", median(&per[2]), "", "per request");
    report.add(
        "cpu_layer_ratio",
        median(&layer_ratios),
        TARGET_COST,
        "median of rounds",
    );
    report.add(
        "cpu_wrapped_ratio",
        median(&wrapped_ratios),
        TARGET_COST,
        "median of rounds",
    );
}

// ---------------------------------------------------------------------------------------------
// 3. Load over loopback

struct LoadResult {
    rps: f64,
    p50_us: f64,
    p99_us: f64,
    errors: u64,
    server_cpu_us: f64,
}

/// Loads the server at `addr` (process `pid`) for `length`.
fn run_load(pid: i32, addr: SocketAddr, length: Duration) -> LoadResult {
    let cpu = common::process_cpu_precise(pid);
    let mut cmd = Command::new(common::current_exe());
    cmd.args([
        "--child-load",
        &addr.to_string(),
        &LOAD_CONNECTIONS.to_string(),
        &length.as_millis().to_string(),
    ]);
    let mut load = Proc::spawn("load generator", cmd);
    let (_, line) = load.wait_line("result ", length + Duration::from_secs(20));
    load.wait_exit(Duration::from_secs(10));
    let cpu = common::process_cpu_precise(pid) - cpu;
    let v: serde_json::Value = serde_json::from_str(&line).expect("load result");
    let requests = v["requests"].as_f64().unwrap_or(0.0);
    LoadResult {
        rps: v["rps"].as_f64().unwrap_or(0.0),
        p50_us: v["p50_us"].as_f64().unwrap_or(f64::NAN),
        p99_us: v["p99_us"].as_f64().unwrap_or(f64::NAN),
        errors: v["errors"].as_u64().unwrap_or(0),
        server_cpu_us: cpu.as_secs_f64() * 1e6 / requests,
    }
}

fn load(report: &mut Report, runtime: &tokio::runtime::Runtime, consul: &str) {
    let servers: Vec<(Proc, SocketAddr)> = SERVERS
        .iter()
        .map(|stack| {
            let mut cmd = Command::new(common::current_exe());
            cmd.args(["--child-server", stack])
                .env("CONSUL_HTTP_ADDR", consul)
                .env("DISCOVERABLE_ADVERTISE_ADDR", "127.0.0.1");
            let p = Proc::spawn(stack, cmd);
            let (_, url) = p.wait_line("listening on ", Duration::from_secs(20));
            let addr = common::parse_url_addr(&url);
            (p, addr)
        })
        .collect();
    // The full stack is measured registered and passing, as it runs in production.
    runtime.block_on(async {
        let discovery = discoverable::Discovery::new(
            discoverable::consul::Client::new(
                discoverable::consul::Config::builder()
                    .address(consul)
                    .build()
                    .expect("consul config"),
            )
            .expect("consul client"),
        );
        let mut watch = discovery.watch("bench_serve").start();
        tokio::time::timeout(Duration::from_secs(10), watch.wait_for(|s| !s.is_empty()))
            .await
            .expect("bench_serve registered and passing");
    });

    println!(
        "load: {LOAD_ROUNDS} rounds x {} servers x {LOAD_RUN:?}, {LOAD_CONNECTIONS} keep-alive connections ...",
        SERVERS.len()
    );
    for (p, addr) in &servers {
        run_load(p.pid(), *addr, Duration::from_millis(500));
    }
    let mut results: [Vec<LoadResult>; 3] = [Vec::new(), Vec::new(), Vec::new()];
    for round in 0..LOAD_ROUNDS {
        for k in 0..SERVERS.len() {
            let i = (k + round) % SERVERS.len();
            results[i].push(run_load(servers[i].0.pid(), servers[i].1, LOAD_RUN));
        }
    }
    let errors: u64 = results.iter().flatten().map(|r| r.errors).sum();
    let rps = |i: usize| results[i].iter().map(|r| r.rps).collect::<Vec<_>>();
    let p50 = |i: usize| results[i].iter().map(|r| r.p50_us).collect::<Vec<_>>();
    let p99 = |i: usize| results[i].iter().map(|r| r.p99_us).collect::<Vec<_>>();
    let cpu = |i: usize| {
        results[i]
            .iter()
            .map(|r| r.server_cpu_us)
            .collect::<Vec<_>>()
    };
    let ratio =
        |a: &[f64], b: &[f64]| median(&a.iter().zip(b).map(|(x, y)| x / y).collect::<Vec<_>>());
    let (bare, layer, serve) = (0, 1, 2);
    report.add(
        "throughput_layer_ratio",
        ratio(&rps(layer), &rps(bare)),
        TARGET_THROUGHPUT,
        "median of rounds",
    );
    report.add(
        "throughput_serve_ratio",
        ratio(&rps(serve), &rps(bare)),
        TARGET_THROUGHPUT,
        "median of rounds",
    );
    report.add(
        "server_cpu_layer_ratio",
        ratio(&cpu(layer), &cpu(bare)),
        TARGET_COST,
        "server CPU per request, user + kernel",
    );
    report.add(
        "server_cpu_serve_ratio",
        ratio(&cpu(serve), &cpu(bare)),
        TARGET_COST,
        "server CPU per request, user + kernel",
    );
    report.add(
        "p99_layer_ratio",
        ratio(&p99(layer), &p99(bare)),
        "",
        "median of rounds",
    );
    report.add(
        "p99_serve_ratio",
        ratio(&p99(serve), &p99(bare)),
        "",
        "median of rounds",
    );
    for (i, name) in SERVERS.iter().enumerate() {
        report.add(&format!("{name}_rps"), median(&rps(i)), "", "");
        report.add(&format!("{name}_p50_us"), median(&p50(i)), "", "");
        report.add(&format!("{name}_p99_us"), median(&p99(i)), "", "");
        report.add(
            &format!("{name}_server_cpu_us"),
            median(&cpu(i)),
            "",
            "per request",
        );
    }
    report.add("load_errors_count", errors as f64, "0", "");
    let range = |v: &[f64], w: &[f64]| {
        let r: Vec<f64> = v.iter().zip(w).map(|(x, y)| x / y).collect();
        format!("{:.3}..{:.3}", percentile(&r, 0.0), percentile(&r, 100.0))
    };
    report.note(format!(
        "throughput ratio per round: layer {}, serve {}",
        range(&rps(layer), &rps(bare)),
        range(&rps(serve), &rps(bare))
    ));

    drop(servers);
}
