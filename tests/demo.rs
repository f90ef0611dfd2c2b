//! The one-command demo runs to the end: exit 0 and a last line with zero failed requests, on
//! its built-in dev agent and on a real Consul named by `CONSUL_HTTP_ADDR`.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn demo_replaces_an_instance_under_load_without_a_failed_request() {
    let mut cmd = Command::new(support::binary("example", "demo"));
    // The demo starts its own dev agent unless the environment names a Consul.
    cmd.env_remove("CONSUL_HTTP_ADDR").env("RUST_LOG", "warn");
    run_demo(cmd);
}

#[test]
fn demo_on_a_real_consul_replaces_an_instance_without_a_failed_request() {
    let Some(peers) = discoverable_testkit::peers::require("demo_on_a_real_consul") else {
        return;
    };
    let consul = discoverable_testkit::Consul::start(&peers, Default::default());
    let mut cmd = Command::new(support::binary("example", "demo"));
    cmd.env("CONSUL_HTTP_ADDR", consul.url())
        .env("RUST_LOG", "warn");
    let out = run_demo(cmd);
    assert!(
        out.contains(&consul.url()),
        "the demo names the Consul it used:\n{out}"
    );
}

/// Runs the demo to its end; asserts success and zero failed requests; returns its output.
fn run_demo(cmd: Command) -> String {
    let mut demo = support::spawn("demo", cmd);
    let started = Instant::now();
    let code = demo.wait_exit(Duration::from_secs(60));
    let lines: Vec<String> = demo.lines.try_iter().collect();
    let out = lines.join("\n");
    assert_eq!(code, Some(0), "demo failed:\n{out}");
    let last = lines.last().expect("the demo printed nothing");
    let (ok, failed) = last
        .strip_prefix("requests: ")
        .and_then(|rest| rest.split_once(" ok, "))
        .unwrap_or_else(|| panic!("unexpected last line {last:?}"));
    assert_eq!(failed, "0 failed", "{out}");
    assert!(ok.parse::<u64>().unwrap() > 0, "{out}");
    assert!(out.contains("v2 a left the router"), "{out}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the demo took {:?}",
        started.elapsed()
    );
    out
}
