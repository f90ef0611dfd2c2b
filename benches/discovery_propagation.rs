//! How fast a registration change reaches a `Discovery` watch: register and deregister an
//! instance through `consul::Client` against an in-process dev agent, alternately, and time
//! each change from the start of the call until the watch shows it.

mod common;

use std::time::{Duration, Instant};

use common::{Report, ms, percentile};
use discoverable::Discovery;
use discoverable::consul::{
    CheckDefinition, CheckStatus, Client, Config as ConsulConfig, Registration,
};
use discoverable_devagent::{Config, DevAgent};

/// Register + deregister cycles; two samples each.
const CYCLES: usize = 150;
const SERVICE: &str = "propagation";

fn main() {
    common::print_machine();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (register, deregister) = runtime.block_on(run());
    let all: Vec<f64> = register.iter().chain(&deregister).copied().collect();

    let mut report = Report::new("discovery_propagation");
    report.add(
        "propagation_p50_ms",
        percentile(&all, 50.0),
        "< 10",
        "a client polling every 10 s: 5000 on average",
    );
    report.add("propagation_p99_ms", percentile(&all, 99.0), "", "");
    report.add("register_p50_ms", percentile(&register, 50.0), "", "");
    report.add("deregister_p50_ms", percentile(&deregister, 50.0), "", "");
    report.add("samples_count", all.len() as f64, ">= 200", "");
    report.finish();
}

async fn run() -> (Vec<f64>, Vec<f64>) {
    let agent = DevAgent::start(Config::default()).await.expect("dev agent");
    let client = Client::new(
        ConsulConfig::builder()
            .address(agent.url())
            .build()
            .expect("consul config"),
    )
    .expect("consul client");
    let discovery = Discovery::new(client.clone());
    let mut watch = discovery.watch(SERVICE).start();
    let _ = tokio::time::timeout(Duration::from_secs(5), watch.wait_for(|s| s.is_known())).await;
    println!("propagation: {CYCLES} register/deregister cycles ...");

    let mut registration = Registration::new(format!("{SERVICE}-1"), SERVICE);
    registration.address = "127.0.0.1".into();
    registration.port = 9;
    let mut check = CheckDefinition::ttl(Duration::from_secs(600));
    check.status = Some(CheckStatus::Passing);
    registration.checks.push(check);
    let within = Duration::from_secs(10);
    let mut register = Vec::new();
    let mut deregister = Vec::new();
    for _ in 0..CYCLES {
        let start = Instant::now();
        let (called, seen) = tokio::join!(client.register(&registration), async {
            tokio::time::timeout(within, watch.wait_for(|s| !s.is_empty()))
                .await
                .expect("registration seen");
            Instant::now()
        });
        called.expect("register");
        register.push(ms(seen - start));

        let start = Instant::now();
        let (called, seen) = tokio::join!(client.deregister(&registration.id), async {
            tokio::time::timeout(within, watch.wait_for(|s| s.is_empty()))
                .await
                .expect("deregistration seen");
            Instant::now()
        });
        called.expect("deregister");
        deregister.push(ms(seen - start));
    }
    drop(watch);
    agent.shutdown().await;
    (register, deregister)
}
