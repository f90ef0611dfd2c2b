//! A rolling restart under steady load: keep-alive clients send `GET /roll` back to back
//! through the prefix router of `examples/support/router.rs` (routing by `urlprefix-` tags, as
//! Fabio does) to a service of two instances; each round replaces both instances one by one:
//! start a new instance, wait until the router routes to it, stop the old one through
//! `Instance::shutdown()` (the path SIGTERM takes: health 503, deregister, grace period,
//! drain). Everything runs in this process against an in-process dev agent.
//!
//! Every answer other than `200` with the instance's body counts as failed, as does every
//! connection error.

mod common;
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
use router::PrefixRouter;
use tokio::task::JoinHandle;

const ROUNDS: usize = 5;
const INSTANCES: usize = 2;
const CLIENTS: usize = 4;
const GRACE: Duration = Duration::from_millis(500);
const SERVICE: &str = "rolling";
const BODY: &str = "rolling page";

struct Running {
    id: String,
    instance: Instance,
    task: JoinHandle<std::io::Result<()>>,
}

async fn start_instance(consul: &ConsulConfig) -> Running {
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
    let app = Router::new().fallback(|| async { BODY });
    let instance = service.instance();
    let id = service.id().to_owned();
    let task = tokio::spawn(discoverable::serve(service, listener, app).into_future());
    Running { id, instance, task }
}

/// Waits until the router's table holds `id`; returns how long that took.
async fn routed(router: &PrefixRouter, id: &str) -> Duration {
    let start = Instant::now();
    loop {
        if router.table().iter().any(|(_, e)| e.id == id) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "instance {id} never became routable"
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

async fn client(addr: std::net::SocketAddr, tally: Arc<Tally>) {
    let mut conn = None;
    while !tally.stop.load(Ordering::Relaxed) {
        let c = match &mut conn {
            Some(c) => c,
            None => match Conn::connect(addr).await {
                Ok(c) => conn.insert(c),
                Err(e) => {
                    tally.fail(format!("connect: {e}"));
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    continue;
                }
            },
        };
        match c.get("/roll").await {
            Ok((status, len)) if status.is_success() && len == BODY.len() => {
                tally.ok.fetch_add(1, Ordering::Relaxed);
            }
            Ok((status, len)) => tally.fail(format!("{status}, {len} bytes")),
            Err(e) => {
                tally.fail(e);
                conn = None;
            }
        }
    }
}

fn main() {
    common::print_machine();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run());
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

    let mut running = Vec::new();
    for _ in 0..INSTANCES {
        let r = start_instance(&consul).await;
        routed(&router, &r.id).await;
        running.push(r);
    }

    let tally = Arc::new(Tally::default());
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| tokio::spawn(client(router_addr, tally.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    println!(
        "rolling restart: {ROUNDS} rounds x {INSTANCES} instances, {CLIENTS} keep-alive clients through the prefix router, grace {GRACE:?} ..."
    );

    let start = Instant::now();
    let ok_before = tally.ok.load(Ordering::Relaxed);
    let mut to_routable = Vec::new();
    let mut to_stopped = Vec::new();
    for _ in 0..ROUNDS {
        for slot in running.iter_mut() {
            let new = start_instance(&consul).await;
            to_routable.push(ms(routed(&router, &new.id).await));
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
        let _ = tokio::time::timeout(Duration::from_secs(5), c).await;
    }

    let ok = tally.ok.load(Ordering::Relaxed);
    let failed = tally.failed.load(Ordering::Relaxed);
    let mut report = Report::new("rolling_restart");
    report.add("requests_ok_count", ok as f64, "", "");
    report.add(
        "requests_failed_count",
        failed as f64,
        "0",
        "Go seed: instances stay registered after SIGTERM; requests fail until the check does",
    );
    report.add("rounds_count", ROUNDS as f64, ">= 5", "");
    report.add("replacements_count", to_routable.len() as f64, "", "");
    report.add("duration_s", duration.as_secs_f64(), "", "");
    report.add(
        "requests_per_s",
        ok_during as f64 / duration.as_secs_f64(),
        "",
        "during the restarts",
    );
    report.add(
        "new_routable_p50_ms",
        median(&to_routable),
        "",
        "new instance started to in the router's table",
    );
    report.add(
        "old_stopped_p50_ms",
        median(&to_stopped),
        "",
        "shutdown() to serve returned; grace 500 ms",
    );
    for why in tally.first_failures.lock().unwrap().iter() {
        report.note(format!("failure: {why}"));
    }
    report.finish();

    for r in running {
        r.instance.shutdown();
        let _ = tokio::time::timeout(Duration::from_secs(5), r.task).await;
    }
    router_task.abort();
    agent.shutdown().await;
}
