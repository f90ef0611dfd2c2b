//! What being discoverable costs an idle service: `cool_app` (release build), registered with
//! an in-process dev agent that runs its HTTP check every 10 s, next to the same app without
//! discoverable (this executable in a child mode: the same routes, the same log subscriber,
//! plain `axum::serve`). Both serve the same 200 requests first, then are left idle for 10 s
//! side by side: CPU time over the 10 s from `/proc/<pid>/stat` (utime + stime, in clock
//! ticks) and, to the nanosecond, from `/proc/<pid>/task/*/schedstat`; resident memory
//! (`VmRSS`) at the end.

mod common;

use std::process::Command;
use std::time::Duration;

use axum::{Router, routing::get};
use common::{Conn, Proc, Report};
use discoverable::Discovery;
use discoverable::consul::{Client, Config as ConsulConfig};
use discoverable_devagent::{Config, DevAgent};

const IDLE: Duration = Duration::from_secs(10);
const WARMUP_REQUESTS: usize = 200;

fn main() {
    let args = common::args();
    if args.first().map(String::as_str) == Some("--child-bare-app") {
        bare_app();
        return;
    }
    common::print_machine();
    let cool_app = common::release_example("cool_app");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run(cool_app));
}

// The bare app: cool_app's routes and log set-up, without discoverable.

async fn home() -> &'static str {
    "home page"
}

#[derive(serde::Deserialize)]
struct Slow {
    ms: Option<u64>,
}

async fn slow(axum::extract::Query(q): axum::extract::Query<Slow>) -> &'static str {
    tokio::time::sleep(Duration::from_millis(q.ms.unwrap_or(1000))).await;
    "slow page"
}

#[tokio::main]
async fn bare_app() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let app = Router::new()
        .route("/", get(home))
        .route("/slow", get(slow))
        .fallback(home);
    let addr = std::env::var("BIND_ADDR").unwrap_or_else(|_| "0.0.0.0:3000".into());
    let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
    println!("listening on http://{}", listener.local_addr().unwrap());
    axum::serve(listener, app).await.expect("serve");
}

async fn run(cool_app: std::path::PathBuf) {
    let agent = DevAgent::start(Config::default()).await.expect("dev agent");
    let consul = agent.url();
    let discovery = Discovery::new(
        Client::new(
            ConsulConfig::builder()
                .address(&consul)
                .build()
                .expect("consul config"),
        )
        .expect("consul client"),
    );

    let spawn = |name: &str, mut cmd: Command| {
        cmd.env("BIND_ADDR", "127.0.0.1:0")
            .env("CONSUL_HTTP_ADDR", &consul)
            .env("DISCOVERABLE_ADVERTISE_ADDR", "127.0.0.1")
            .env("RUST_LOG", "info");
        let p = Proc::spawn_with_stderr(name, cmd, std::process::Stdio::null());
        let (_, url) = p.wait_line("listening on ", Duration::from_secs(20));
        (p, common::parse_url_addr(&url))
    };
    let (app, app_addr) =
        tokio::task::block_in_place(|| spawn("cool_app", Command::new(&cool_app)));
    let mut bare_cmd = Command::new(common::current_exe());
    bare_cmd.arg("--child-bare-app");
    let (bare, bare_addr) = tokio::task::block_in_place(|| spawn("bare app", bare_cmd));

    let mut watch = discovery.watch("cool_app").start();
    tokio::time::timeout(Duration::from_secs(10), watch.wait_for(|s| !s.is_empty()))
        .await
        .expect("cool_app registered and passing");
    for addr in [app_addr, bare_addr] {
        let mut conn = Conn::connect(addr).await.expect("connect");
        for _ in 0..WARMUP_REQUESTS {
            conn.get("/").await.expect("warm-up request");
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    println!("idle: both apps idle for {IDLE:?} ...");

    let cpu = |pid: i32| (common::process_cpu(pid), common::process_cpu_precise(pid));
    let (app_before, bare_before) = (cpu(app.pid()), cpu(bare.pid()));
    tokio::time::sleep(IDLE).await;
    let (app_after, bare_after) = (cpu(app.pid()), cpu(bare.pid()));
    let app_rss = common::process_rss_mib(app.pid());
    let bare_rss = common::process_rss_mib(bare.pid());
    let anon = |pid| common::process_status_mib(pid, "RssAnon");
    let file = |pid| common::process_status_mib(pid, "RssFile");
    let anon_extra = anon(app.pid()) - anon(bare.pid());
    let file_extra = file(app.pid()) - file(bare.pid());
    let still_registered = !watch.current().is_empty();

    let percent = |cpu: Duration| cpu.as_secs_f64() / IDLE.as_secs_f64() * 100.0;
    let mut report = Report::new("idle");
    report.add(
        "cpu_core_percent",
        percent(app_after.0 - app_before.0),
        "< 1",
        "cool_app, discoverable, registered",
    );
    report.add(
        "cpu_core_percent_bare",
        percent(bare_after.0 - bare_before.0),
        "",
        "same app without discoverable",
    );
    report.add(
        "cpu_schedstat_core_percent",
        percent(app_after.1 - app_before.1),
        "< 1",
        "cool_app, to the nanosecond",
    );
    report.add(
        "cpu_schedstat_bare_core_percent",
        percent(bare_after.1 - bare_before.1),
        "",
        "same app without discoverable",
    );
    report.add("rss_mib", app_rss, "", "cool_app");
    report.add(
        "rss_bare_mib",
        bare_rss,
        "",
        "same app without discoverable",
    );
    report.add("rss_extra_mib", app_rss - bare_rss, "< 2", "");
    report.add(
        "rss_anon_extra_mib",
        anon_extra,
        "",
        "of which heap and stacks (RssAnon)",
    );
    report.add(
        "rss_file_extra_mib",
        file_extra,
        "",
        "of which code and data pages of the binary (RssFile)",
    );
    report.note(format!(
        "/proc/<pid>/stat resolution: one clock tick, {:.2} % of a core over {IDLE:?}",
        common::clock_tick().as_secs_f64() / IDLE.as_secs_f64() * 100.0
    ));
    report.note(format!(
        "cool_app still registered at the end: {still_registered}"
    ));
    report.finish();

    drop(watch);
    drop((app, bare));
    agent.shutdown().await;
}
