//! The gRPC lifecycle against a real Consul and a real Fabio with a `proto=grpc` listener:
//! greeter instances served in this process with `discoverable::grpc::serve`.
//!
//! 1. Bind to routable, `REPETITIONS` times: from the listener bound until a call through
//!    Fabio, and (at the same time) one through `Discovery::grpc_channel`, is answered by the
//!    new instance.
//! 2. Shutdown to unroutable, the same times: from `Instance::shutdown` (what SIGTERM starts)
//!    until Fabio's table, and the channel's watch, no longer hold the instance.
//! 3. A rolling restart: two instances, `ROUNDS` times a new one started (and routed) before
//!    the oldest is shut down, under steady calls through Fabio and through the channel: how
//!    many failed.
//!
//! Results in `target/bench-results/grpc_lifecycle.json`.

mod common;
#[path = "../examples/support/greeter.rs"]
mod greeter;

use std::future::IntoFuture;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{Report, ms, percentile};
use discoverable::consul::{self, Client};
use discoverable::{Discovery, Instance, Service, grpc};
use discoverable_testkit::{Consul, Fabio, FabioOptions, peers};
use greeter::{Greeter, GreeterClient};

const REPETITIONS: usize = 10;
const ROUNDS: usize = 4;
const SERVICE: &str = "greeter";
const SRC: &str = "/helloworld.Greeter";
const WITHIN: Duration = Duration::from_secs(20);

fn main() {
    common::print_machine();
    let mut report = Report::new("grpc_lifecycle");
    let Some(peers) = peers::require("grpc_lifecycle") else {
        report.note("skipped: the real peers cannot be built here");
        report.finish();
        return;
    };
    report.label_real_peers();
    let consul = Consul::start(&peers, Default::default());
    let fabio = Fabio::start_in(
        &peers,
        FabioOptions {
            proxy_proto: Some("grpc".into()),
            ..FabioOptions::new(consul.http_addr())
        },
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run(&consul, &fabio, &mut report));
    report.finish();
}

fn config(consul: &Consul) -> consul::Config {
    consul::Config::builder()
        .address(consul.url())
        .build()
        .expect("config")
}

struct Running {
    instance: Instance,
    served: tokio::task::JoinHandle<std::io::Result<()>>,
    bound: Instant,
    port: u16,
    name: String,
}

async fn start(consul: &Consul, name: &str) -> Running {
    let service = Service::builder(SERVICE)
        .consul(config(consul))
        .build()
        .expect("service");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let bound = Instant::now();
    let port = listener.local_addr().expect("bound").port();
    let routes = grpc::Routes::new(Greeter {
        instance: name.to_owned(),
        serving: None,
    });
    let instance = service.new_instance();
    let served = tokio::spawn(grpc::serve(instance.clone(), listener, routes).into_future());
    Running {
        instance,
        served,
        bound,
        port,
        name: name.to_owned(),
    }
}

/// Calls `client` every millisecond until `name` answers; panics after `WITHIN`.
async fn answered_by(client: &mut GreeterClient, name: &str) {
    let deadline = Instant::now() + WITHIN;
    loop {
        if let Ok(reply) = client.say_hello("bench").await {
            if reply.message.ends_with(&format!("from {name}")) {
                return;
            }
        }
        assert!(Instant::now() < deadline, "{name} not answering");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn routed(fabio: &Fabio, port: u16) -> bool {
    tokio::task::block_in_place(|| fabio.routes_to(SRC, port))
}

async fn run(consul: &Consul, fabio: &Fabio, report: &mut Report) {
    let discovery = Discovery::new(Client::new(config(consul)).expect("client"));
    let through_fabio = || {
        let endpoint =
            tonic::transport::Endpoint::from_shared(format!("http://{}", fabio.proxy_addr()))
                .expect("Fabio's address");
        GreeterClient::new(endpoint.connect_lazy())
    };
    let mut fabio_client = through_fabio();
    let mut channel_client = GreeterClient::new(discovery.grpc_channel(SERVICE));
    let mut watch = discovery.watch(SERVICE).start();

    println!("grpc_lifecycle: {REPETITIONS} repetitions ...");
    let (mut fabio_routable, mut channel_routable) = (Vec::new(), Vec::new());
    let (mut fabio_unroutable, mut channel_unroutable) = (Vec::new(), Vec::new());
    let mut watch_routable = Vec::new();
    for i in 0..REPETITIONS {
        let running = start(consul, &format!("once-{i}")).await;
        // Both clients at once, each timed from the bind.
        let through_fabio = async {
            answered_by(&mut fabio_client, &running.name).await;
            ms(running.bound.elapsed())
        };
        let through_channel = async {
            answered_by(&mut channel_client, &running.name).await;
            ms(running.bound.elapsed())
        };
        let id = running.instance.id().to_owned();
        let mut seen = watch.clone();
        let in_watch = async {
            tokio::time::timeout(WITHIN, seen.wait_for(|set| set.get(&id).is_some()))
                .await
                .expect("the watch sees the instance");
            ms(running.bound.elapsed())
        };
        let (by_fabio, by_channel, by_watch) =
            tokio::join!(through_fabio, through_channel, in_watch);
        fabio_routable.push(by_fabio);
        channel_routable.push(by_channel);
        watch_routable.push(by_watch);

        let asked = Instant::now();
        running.instance.shutdown();
        let deadline = asked + WITHIN;
        while routed(fabio, running.port) {
            assert!(Instant::now() < deadline, "still routed by Fabio");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        fabio_unroutable.push(ms(asked.elapsed()));
        tokio::time::timeout(WITHIN, watch.wait_for(|set| set.get(&id).is_none()))
            .await
            .expect("the watch drops the instance");
        channel_unroutable.push(ms(asked.elapsed()));
        running.served.await.expect("serve task").expect("serve");
    }

    println!("grpc_lifecycle: a rolling restart, {ROUNDS} rounds under calls ...");
    let mut instances = vec![start(consul, "roll-a").await, start(consul, "roll-b").await];
    for running in &instances {
        answered_by(&mut channel_client, &running.name).await;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut load = Vec::new();
    for client in [through_fabio(), channel_client.clone()] {
        for _ in 0..2 {
            let (mut client, stop, ok, failed) =
                (client.clone(), stop.clone(), ok.clone(), failed.clone());
            load.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    match client.say_hello("roll").await {
                        Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                        Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            }));
        }
    }
    for round in 0..ROUNDS {
        let new = start(consul, &format!("roll-{round}")).await;
        let deadline = Instant::now() + WITHIN;
        while !routed(fabio, new.port) {
            assert!(Instant::now() < deadline, "the new instance not routed");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let new_id = new.instance.id().to_owned();
        tokio::time::timeout(WITHIN, watch.wait_for(|set| set.get(&new_id).is_some()))
            .await
            .expect("the watch sees the new instance");
        instances.push(new);
        let old = instances.remove(0);
        old.instance.shutdown();
        old.served.await.expect("serve task").expect("serve");
    }
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.expect("load task");
    }
    for running in instances {
        running.instance.shutdown();
        running.served.await.expect("serve task").expect("serve");
    }

    report.add(
        "grpc_routable_p50_ms",
        percentile(&fabio_routable, 50.0),
        "< 20",
        "bind → a call through Fabio answered",
    );
    report.add(
        "grpc_routable_p95_ms",
        percentile(&fabio_routable, 95.0),
        "",
        "",
    );
    report.add(
        "grpc_channel_routable_p50_ms",
        percentile(&channel_routable, 50.0),
        "< 20",
        "bind → a call through the balanced channel answered",
    );
    report.add(
        "grpc_channel_routable_p95_ms",
        percentile(&channel_routable, 95.0),
        "",
        "",
    );
    report.add(
        "grpc_watch_routable_p50_ms",
        percentile(&watch_routable, 50.0),
        "",
        "bind → in the channel's watch (the rest is the channel's own)",
    );
    report.add(
        "grpc_unroutable_p50_ms",
        percentile(&fabio_unroutable, 50.0),
        "< 20",
        "shutdown → out of Fabio's table",
    );
    report.add(
        "grpc_unroutable_p95_ms",
        percentile(&fabio_unroutable, 95.0),
        "",
        "",
    );
    report.add(
        "grpc_channel_unroutable_p50_ms",
        percentile(&channel_unroutable, 50.0),
        "< 20",
        "shutdown → out of the channel's watch",
    );
    report.add(
        "grpc_rolling_requests_ok_count",
        ok.load(Ordering::Relaxed) as f64,
        "",
        "calls through Fabio and the channel",
    );
    report.add(
        "grpc_rolling_requests_failed_count",
        failed.load(Ordering::Relaxed) as f64,
        "0",
        "",
    );
    report.add("repetitions_count", REPETITIONS as f64, "", "");
}
