//! The whole story in one command, no Consul needed:
//!
//! ```sh
//! cargo run --example demo
//! ```
//!
//! Starts the dev agent in-process on a free loopback port (or uses the Consul that
//! `CONSUL_HTTP_ADDR` names), the `monolith` (`/v1`) and `v2` (`/v2`) services, and a prefix
//! router that routes by the `urlprefix-` tags it reads from Consul, as Fabio does. Then it
//! sends requests through the router, and replaces the v2 instance under steady load: a new
//! instance starts, the old one is stopped through the same path a SIGTERM takes
//! (deregister, grace period, drain). Last, a gRPC greeter gets the same lifecycle: served,
//! registered with a `GRPC` check, greeted through a channel balanced over Consul's passing
//! instances, then deregistered and drained. It prints a timeline and ends with
//! `requests: N ok, M failed`; it exits non-zero if any request failed.
//!
//! It also draws that timeline: `target/demo/timeline.svg` (or the path in
//! `DEMO_TIMELINE_SVG`), a lane per instance with what happened to it when (bound,
//! registered, passing, health 503, deregistered, listener closed, drained, exited) and the
//! requests answered and failed per time bucket below.

#[path = "support/greeter.rs"]
mod greeter;
#[path = "support/lifecycle.rs"]
mod lifecycle;
#[path = "support/router.rs"]
mod router;

use std::future::IntoFuture;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use discoverable_timeline::{EventKind, Recorder, Run};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tracing::Instrument as _;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// The monolith: everything under `/v1`.
#[discoverable::discoverable(name = "monolith", prefix = "/v1")]
async fn monolith(listener: TcpListener, stop: oneshot::Receiver<()>) -> io::Result<()> {
    let app = Router::new()
        .fallback(|uri: axum::http::Uri| async move { format!("monolith: {}", uri.path()) });
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = stop.await;
        })
        .await
}

/// The rewrite: everything under `/v2`. `label` tells the instances apart.
#[discoverable::discoverable(name = "v2", prefix = "/v2")]
async fn v2(
    listener: TcpListener,
    label: &'static str,
    stop: oneshot::Receiver<()>,
) -> io::Result<()> {
    let app = Router::new()
        .fallback(move |uri: axum::http::Uri| async move { format!("v2 {label}: {}", uri.path()) });
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = stop.await;
        })
        .await
}

/// The printed timeline; its times are the chart's, counted from the recorder's origin.
struct Timeline {
    recorder: Arc<Recorder>,
}

impl Timeline {
    fn event(&self, what: &str, figure: Option<(&str, Duration)>) {
        let at = self.recorder.ms(Instant::now());
        match figure {
            Some((label, d)) => println!(
                "{at:>8.1} ms  {what:<52} {label:>22} {:>8.1} ms",
                d.as_secs_f64() * 1000.0
            ),
            None => println!("{at:>8.1} ms  {what}"),
        }
    }
}

/// A running service instance: its port and how to stop it.
struct Running {
    port: u16,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<io::Result<()>>,
}

/// Binds a listener and serves `f` on it as the instance `lane` of `service`. The chart gets
/// the instance's bound, passing (as a watch of Consul's health API first sees it) and exited;
/// its serve future runs in the lane's span, so the runtime's lifecycle events go to the lane.
async fn start<F, Fut>(
    lane: &'static str,
    service: &str,
    discovery: &discoverable::Discovery,
    recorder: &Arc<Recorder>,
    f: F,
) -> io::Result<(Running, Instant)>
where
    F: FnOnce(TcpListener, oneshot::Receiver<()>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = io::Result<()>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let bound = Instant::now();
    recorder.event_at(lane, EventKind::Bound, bound);
    let port = listener.local_addr()?.port();
    let mut watch = discovery.watch(service).start();
    let rec = recorder.clone();
    // `changed` rather than `wait_for`, whose future cannot move to another thread.
    tokio::spawn(async move {
        let mut set = watch.current();
        while !set.endpoints().iter().any(|e| e.port == port) {
            set = watch.changed().await;
        }
        rec.event(lane, EventKind::Passing);
    });
    let (stop, rx) = oneshot::channel();
    let rec = recorder.clone();
    let task = tokio::spawn(
        async move {
            let served = f(listener, rx).await;
            rec.event(lane, EventKind::Exited);
            served
        }
        .instrument(lifecycle::span(lane)),
    );
    Ok((Running { port, stop, task }, bound))
}

/// A tonic greeter served as a discoverable instance, greeted through the balanced channel,
/// then stopped through the path SIGTERM takes.
async fn grpc(
    discovery: &discoverable::Discovery,
    t: &Timeline,
) -> Result<(), Box<dyn std::error::Error>> {
    let service = discoverable::Service::builder("greeter")
        .grace_period(Duration::from_millis(300))
        .build()?;
    let instance = service.new_instance();
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let bound = Instant::now();
    let routes = discoverable::grpc::Routes::new(greeter::Greeter {
        instance: "greeter".into(),
        serving: None,
    });
    let served =
        tokio::spawn(discoverable::grpc::serve(instance.clone(), listener, routes).into_future());
    t.event(
        "gRPC greeter bound (a GRPC check, route urlprefix-/helloworld.Greeter proto=grpc)",
        None,
    );
    // Calls made before Consul lists the instance wait for it.
    let mut client = greeter::GreeterClient::new(discovery.grpc_channel("greeter"));
    let reply = client.say_hello("demo").await?;
    t.event(
        &format!("gRPC through the balanced channel: {}", reply.message),
        Some(("after bind", bound.elapsed())),
    );
    let stopping = Instant::now();
    instance.shutdown();
    served.await??;
    t.event(
        "gRPC greeter deregistered, drained and stopped",
        Some(("after stop", stopping.elapsed())),
    );
    Ok(())
}

/// Requests answered under steady load before v2 a is replaced.
const STEADY_REQUESTS: u64 = 1000;

async fn until<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> Result<T, String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if Instant::now() > deadline {
            return Err(format!("timed out waiting for {what}"));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The dev agent's port is taken before any thread exists, so the services (which read
    // CONSUL_HTTP_ADDR like every Consul client) can be pointed at it.
    let agent_listener = match std::env::var_os("CONSUL_HTTP_ADDR") {
        Some(_) => None,
        None => {
            let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
            let url = format!("http://{}", listener.local_addr()?);
            // SAFETY: no other thread exists yet; nothing reads the environment concurrently.
            #[allow(unsafe_code)]
            unsafe {
                std::env::set_var("CONSUL_HTTP_ADDR", &url)
            };
            Some(listener)
        }
    };
    // The printed log as RUST_LOG says; the chart's recorder gets the runtime's lifecycle
    // events whatever RUST_LOG says.
    let recorder = Arc::new(Recorder::new());
    let printed = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        );
    let charted = lifecycle::LifecycleLayer::new(recorder.clone()).with_filter(
        tracing_subscriber::filter::filter_fn(lifecycle::LifecycleLayer::wants),
    );
    tracing_subscriber::registry()
        .with(printed)
        .with(charted)
        .init();
    let runtime = tokio::runtime::Runtime::new()?;
    let (ok, failed, agent, agent_kind) = runtime.block_on(story(agent_listener, &recorder))?;
    // The watches stop with the runtime, before the agent they watch.
    drop(runtime);
    drop(agent);
    let path = chart_path();
    discoverable_timeline::write(&chart(&recorder, &agent_kind), &path)?;
    println!("timeline chart: {}", path.display());
    println!("requests: {ok} ok, {failed} failed");
    if failed > 0 {
        std::process::exit(1);
    }
    Ok(())
}

/// Where the chart goes: `DEMO_TIMELINE_SVG`, or `demo/timeline.svg` in the target directory
/// this example was built into (`target/debug/examples/demo` → `target/demo/timeline.svg`).
fn chart_path() -> std::path::PathBuf {
    if let Some(path) = std::env::var_os("DEMO_TIMELINE_SVG") {
        return path.into();
    }
    let exe = std::env::current_exe().ok();
    let from_exe = exe.as_deref().and_then(|exe| {
        let examples = exe.parent()?;
        (examples.file_name()? == "examples").then_some(examples.parent()?.parent()?.to_owned())
    });
    let target = from_exe
        .or_else(|| std::env::var_os("CARGO_TARGET_DIR").map(Into::into))
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("demo").join("timeline.svg")
}

/// The chart of the run: title and facts, the instances' lanes, the load's requests.
fn chart(recorder: &Recorder, agent_kind: &str) -> Run {
    let section = recorder
        .section("v2 replaced under steady load: instance b started, then instance a stopped");
    let instances: Vec<&str> = section.lanes.iter().map(|l| l.name.as_str()).collect();
    Run {
        title: "cargo run --example demo: a rolling restart of v2 without a failed request"
            .to_owned(),
        facts: vec![
            format!("agent: {agent_kind}"),
            "router: the demo's in-process prefix router (urlprefix- tags, as Fabio)".to_owned(),
            format!("{} instances: {}", instances.len(), instances.join(", ")),
            "load: 4 clients, /v1 and /v2".to_owned(),
        ],
        sections: vec![section],
        axis_label: Some("time since the demo started (ms)".to_owned()),
    }
}

/// What the agent at `url` is: the dev agent (its `Revision` says so) or Consul and its
/// version, from `/v1/agent/self`.
async fn agent_kind(http: &reqwest::Client, url: &str) -> String {
    let info: Option<serde_json::Value> =
        match http.get(format!("{url}/v1/agent/self")).send().await {
            Ok(r) => r.json().await.ok(),
            Err(_) => None,
        };
    let config = info.as_ref().map(|i| &i["Config"]);
    let version = config
        .and_then(|c| c["Version"].as_str())
        .unwrap_or("unknown version");
    match config.and_then(|c| c["Revision"].as_str()) {
        Some("devagent") => format!("the built-in dev agent (Consul API {version})"),
        _ => format!("Consul v{version}"),
    }
}

type Agent = Option<discoverable_devagent::DevAgent>;

async fn story(
    agent_listener: Option<std::net::TcpListener>,
    recorder: &Arc<Recorder>,
) -> Result<(u64, u64, Agent, String), Box<dyn std::error::Error>> {
    let t = Timeline {
        recorder: recorder.clone(),
    };
    let consul = std::env::var("CONSUL_HTTP_ADDR")?;
    let agent = match agent_listener {
        Some(listener) => {
            let agent =
                discoverable_devagent::DevAgent::from_listener(listener, Default::default())
                    .await?;
            t.event(&format!("dev agent listening on {}", agent.url()), None);
            Some(agent)
        }
        None => {
            t.event(&format!("using Consul at {consul}"), None);
            None
        }
    };
    let discovery = discoverable::Discovery::from_env()?;
    let router = router::PrefixRouter::new(discovery.clone());
    let router_listener = TcpListener::bind("127.0.0.1:0").await?;
    let router_url = format!("http://{}", router_listener.local_addr()?);
    tokio::spawn(axum::serve(router_listener, router.clone().app()).into_future());
    t.event(&format!("router listening on {router_url}"), None);

    let in_router = |port: u16| {
        let router = router.clone();
        move || {
            router
                .table()
                .iter()
                .any(|(_, e)| e.port == port)
                .then_some(())
        }
    };
    let mut v2_watch = discovery.watch("v2").start();
    let mut v1_watch = discovery.watch("monolith").start();

    // 1. Two services come up.
    let (mono, mono_bound) = start("monolith", "monolith", &discovery, recorder, monolith).await?;
    let (old, old_bound) = start("v2 a", "v2", &discovery, recorder, |l, s| v2(l, "a", s)).await?;
    t.event(&format!("monolith bound on 127.0.0.1:{}", mono.port), None);
    t.event(
        &format!("v2 instance a bound on 127.0.0.1:{}", old.port),
        None,
    );
    let port = mono.port;
    v1_watch
        .wait_for(|s| s.endpoints().iter().any(|e| e.port == port))
        .await;
    t.event(
        "monolith registered and passing",
        Some(("after bind", mono_bound.elapsed())),
    );
    let port = old.port;
    v2_watch
        .wait_for(|s| s.endpoints().iter().any(|e| e.port == port))
        .await;
    t.event(
        "v2 a registered and passing",
        Some(("after bind", old_bound.elapsed())),
    );
    until("monolith in the router", in_router(mono.port)).await?;
    recorder.event("monolith", EventKind::InRouter);
    until("v2 a in the router", in_router(old.port)).await?;
    recorder.event("v2 a", EventKind::InRouter);
    t.event(
        "both routable through the router",
        Some(("after bind", mono_bound.elapsed())),
    );

    // 2. Requests through the router.
    let http = reqwest::Client::new();
    let agent_kind = agent_kind(&http, &consul).await;
    for path in ["/v1/users", "/v2/users"] {
        let body = http
            .get(format!("{router_url}{path}"))
            .send()
            .await?
            .text()
            .await?;
        t.event(&format!("GET {path:<10} -> {body}"), None);
    }

    // 3. Rolling restart of v2 under steady load.
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let running = Arc::new(AtomicBool::new(true));
    let mut load = Vec::new();
    for client in 0..4 {
        let (http, url, ok, failed, running, recorder) = (
            http.clone(),
            router_url.clone(),
            ok.clone(),
            failed.clone(),
            running.clone(),
            recorder.clone(),
        );
        load.push(tokio::spawn(async move {
            let path = if client % 2 == 0 {
                "/v2/orders"
            } else {
                "/v1/orders"
            };
            while running.load(Ordering::Relaxed) {
                match http.get(format!("{url}{path}")).send().await {
                    Ok(r) if r.status().is_success() => {
                        ok.fetch_add(1, Ordering::Relaxed);
                        recorder.request(true);
                    }
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        recorder.request(false);
                    }
                };
            }
        }));
    }
    t.event("steady load: 4 clients through the router", None);
    // v2 a serves its share of the load for a while before it is replaced.
    let answered = ok.clone();
    until("1 000 requests answered under steady load", || {
        (answered.load(Ordering::Relaxed) >= STEADY_REQUESTS).then_some(())
    })
    .await?;
    t.event(
        &format!("{STEADY_REQUESTS} requests answered; replacing v2 a"),
        None,
    );
    let (new, new_bound) = start("v2 b", "v2", &discovery, recorder, |l, s| v2(l, "b", s)).await?;
    t.event(
        &format!("v2 instance b bound on 127.0.0.1:{}", new.port),
        None,
    );
    until("v2 b in the router", in_router(new.port)).await?;
    recorder.event("v2 b", EventKind::InRouter);
    t.event(
        "v2 b routable through the router",
        Some(("after bind", new_bound.elapsed())),
    );

    let stopping = Instant::now();
    let _ = old.stop.send(());
    t.event("v2 a stopping (the path SIGTERM takes)", None);
    let port = old.port;
    until("v2 a out of the router", move || {
        in_router(port)().is_none().then_some(())
    })
    .await?;
    t.event(
        "v2 a left the router",
        Some(("after stop", stopping.elapsed())),
    );
    old.task.await??;
    t.event(
        "v2 a deregistered, drained and stopped",
        Some(("after stop", stopping.elapsed())),
    );
    // A moment of load on the new instance alone.
    let before = ok.load(Ordering::Relaxed);
    until("requests served by v2 b alone", || {
        (ok.load(Ordering::Relaxed) >= before + 100).then_some(())
    })
    .await?;
    running.store(false, Ordering::Relaxed);
    for l in load {
        l.await?;
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    t.event(
        &format!("steady load stopped: {ok} ok, {failed} failed"),
        None,
    );

    // 4. Everything stops the same way.
    let _ = new.stop.send(());
    let _ = mono.stop.send(());
    new.task.await??;
    mono.task.await??;
    v2_watch.wait_for(|s| s.is_empty()).await;
    t.event("all instances deregistered and stopped", None);

    // 5. A gRPC service, the same way.
    grpc(&discovery, &t).await?;
    Ok((ok, failed, agent, agent_kind))
}
