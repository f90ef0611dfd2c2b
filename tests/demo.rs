//! The one-command demo runs to the end: exit 0 and a last line with zero failed requests, on
//! its built-in dev agent and on a real Consul named by `CONSUL_HTTP_ADDR`; and it draws what
//! happened as `target/demo/timeline.svg`: a lane per instance with its whole lifecycle, the
//! requests it printed, readable in a browser.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use discoverable_timeline::{Census, totals_text};

/// The instances the demo runs, in the order they start.
const LANES: [&str; 3] = ["monolith", "v2 a", "v2 b"];

#[test]
fn demo_replaces_an_instance_under_load_without_a_failed_request() {
    // The chart the demo writes by default: target/demo/timeline.svg.
    let chart = support::target_dir()
        .parent()
        .expect("target/debug sits in target")
        .join("demo")
        .join("timeline.svg");
    // Removed first, so the chart checked below is the one this run wrote.
    let _ = std::fs::remove_file(&chart);
    let mut cmd = Command::new(support::binary("example", "demo"));
    // The demo starts its own dev agent unless the environment names a Consul.
    cmd.env_remove("CONSUL_HTTP_ADDR")
        .env_remove("DEMO_TIMELINE_SVG")
        .env("RUST_LOG", "warn");
    let out = run_demo(cmd);
    let (ok, failed) = requests(&out);
    let written = check_chart(&out, &chart, "the built-in dev agent", ok, failed);
    look_at_chart(&chart, &written);
}

#[test]
fn demo_on_a_real_consul_replaces_an_instance_without_a_failed_request() {
    let Some(peers) = discoverable_testkit::peers::require("demo_on_a_real_consul") else {
        return;
    };
    let consul = discoverable_testkit::Consul::start(&peers, Default::default());
    // A chart of its own, so this test and the dev agent's can run at once.
    let chart = support::target_dir()
        .join("demo-real-consul")
        .join("timeline.svg");
    let _ = std::fs::remove_file(&chart);
    let mut cmd = Command::new(support::binary("example", "demo"));
    cmd.env("CONSUL_HTTP_ADDR", consul.url())
        .env("DEMO_TIMELINE_SVG", &chart)
        .env("RUST_LOG", "warn");
    let out = run_demo(cmd);
    assert!(
        out.contains(&consul.url()),
        "the demo names the Consul it used:\n{out}"
    );
    let (ok, failed) = requests(&out);
    let version = discoverable_testkit::peers::CONSUL_VERSION;
    check_chart(&out, &chart, &format!("Consul {version}"), ok, failed);
}

/// The demo's last line, `requests: N ok, M failed`, as (N, M).
fn requests(out: &str) -> (u64, u64) {
    let last = out.lines().last().unwrap_or_default();
    let (ok, failed) = last
        .strip_prefix("requests: ")
        .and_then(|rest| rest.split_once(" ok, "))
        .and_then(|(ok, failed)| {
            Some((
                ok.parse().ok()?,
                failed.strip_suffix(" failed")?.parse().ok()?,
            ))
        })
        .unwrap_or_else(|| panic!("unexpected last line {last:?}"));
    (ok, failed)
}

/// The chart the demo said it wrote is `expected`, a well-formed SVG whose title names
/// `agent`, with one lane per instance, each with its whole lifecycle in order, and the
/// request totals the demo printed. Returns the SVG.
fn check_chart(out: &str, expected: &Path, agent: &str, ok: u64, failed: u64) -> String {
    let said = out
        .lines()
        .find_map(|l| l.strip_prefix("timeline chart: "))
        .unwrap_or_else(|| panic!("the demo names its chart:\n{out}"));
    assert_eq!(
        std::fs::canonicalize(said).ok(),
        std::fs::canonicalize(expected).ok(),
        "the demo wrote {said}, not {}",
        expected.display()
    );
    let svg = std::fs::read_to_string(expected)
        .unwrap_or_else(|e| panic!("this run wrote no chart at {}: {e}", expected.display()));
    let doc = roxmltree::Document::parse(&svg).expect("the chart is well-formed XML");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    let by_class = |class: &'static str| {
        root.descendants()
            .filter(move |n| n.attribute("class") == Some(class))
    };
    let title = by_class("facts")
        .filter_map(|n| n.text())
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        title.contains(agent),
        "the chart names the agent {agent:?}: {title}"
    );
    assert!(title.contains("prefix router"), "{title}");
    assert!(title.contains("3 instances"), "{title}");

    let lanes: Vec<_> = by_class("lane").collect();
    let names: Vec<&str> = lanes
        .iter()
        .filter_map(|l| l.attribute("data-lane"))
        .collect();
    assert_eq!(names, LANES, "one lane per instance the demo ran");
    let mut times = std::collections::HashMap::new();
    for lane in &lanes {
        let name = lane.attribute("data-lane").unwrap();
        let at = |kind: &str| -> f64 {
            lane.descendants()
                .filter(|n| n.attribute("class") == Some("event"))
                .find(|n| n.attribute("data-kind") == Some(kind))
                .and_then(|n| n.attribute("data-ms")?.parse().ok())
                .unwrap_or_else(|| panic!("{name}: no {kind} event in the chart"))
        };
        let life = [
            "bound",
            "passing",
            "health-503",
            "deregistered",
            "listener-closed",
            "drained",
            "exited",
        ]
        .map(|k| (k, at(k)));
        for pair in life.windows(2) {
            assert!(
                pair[0].1 <= pair[1].1,
                "{name}: {} at {} ms after {} at {} ms",
                pair[0].0,
                pair[0].1,
                pair[1].0,
                pair[1].1
            );
        }
        assert!(at("bound") <= at("registered") && at("registered") <= at("health-503"));
        times.insert(name, life);
        let bands: Vec<&str> = lane
            .descendants()
            .filter(|n| n.attribute("class") == Some("band"))
            .filter_map(|n| n.attribute("data-kind"))
            .collect();
        assert!(
            bands.contains(&"routable") && bands.contains(&"grace"),
            "{name}: bands {bands:?}"
        );
    }
    // The rolling restart: b in the router before a stopped answering (the demo stops a once
    // its router routes to b).
    let in_router = |name: &str| -> f64 {
        lanes
            .iter()
            .find(|l| l.attribute("data-lane") == Some(name))
            .and_then(|lane| {
                lane.descendants()
                    .find(|n| n.attribute("data-kind") == Some("in-router"))
            })
            .and_then(|n| n.attribute("data-ms")?.parse().ok())
            .unwrap_or_else(|| panic!("{name}: no in-router event in the chart"))
    };
    assert!(in_router("v2 b") <= times["v2 a"][2].1, "{times:?}");

    let totals: Vec<_> = by_class("totals").collect();
    assert_eq!(totals.len(), 1);
    assert_eq!(totals[0].text(), Some(totals_text(ok, failed).as_str()));
    assert_eq!(
        totals[0].attribute("data-answered"),
        Some(ok.to_string().as_str())
    );
    assert_eq!(
        totals[0].attribute("data-failed"),
        Some(failed.to_string().as_str())
    );
    let bucketed: u64 = by_class("answered")
        .flat_map(|g| g.children().filter(|c| c.is_element()))
        .count() as u64;
    assert!(bucketed > 0, "answered bars drawn");
    svg
}

/// Headless Chromium renders the chart: not blank, answered requests in their colour, and no
/// failed ones where the demo had none.
fn look_at_chart(chart: &Path, svg: &str) {
    let Some(browser) = discoverable_testkit::browser::Browser::require("demo chart in a browser")
    else {
        return;
    };
    let doc = roxmltree::Document::parse(svg).unwrap();
    let height: f64 = doc
        .root_element()
        .attribute("height")
        .unwrap()
        .parse()
        .unwrap();
    let png: PathBuf = chart.with_extension("png");
    browser
        .screenshot(
            &format!("file://{}", chart.canonicalize().unwrap().display()),
            &png,
            1200,
            height.ceil() as u32,
        )
        .expect("screenshot of the chart");
    let census = Census::of_png(&png).expect("decode the screenshot");
    assert!(census.drawn_share() > 0.05, "a blank chart: {census:?}");
    assert!(
        census.answered > 1000,
        "no answered bars to see: {census:?}"
    );
    assert_eq!(
        census.failed, 0,
        "failed colour with no failed request: {census:?}"
    );
}

/// Runs the demo to its end; asserts success and zero failed requests; returns its output.
///
/// The zero is not taken on the demo's word: from the moment its steady load starts until v2 a
/// is deregistered, drained and stopped, this test sends requests of its own through the
/// demo's router and counts what it gets itself.
fn run_demo(cmd: Command) -> String {
    let mut demo = support::spawn("demo", cmd);
    let started = Instant::now();
    let mut lines: Vec<String> = Vec::new();
    let mut router: Option<SocketAddr> = None;
    let mut observer = None;
    let stop = Arc::new(AtomicBool::new(false));
    loop {
        let line = demo
            .lines
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("the demo stopped printing:\n{}", lines.join("\n")));
        if let Some((_, url)) = line.split_once("router listening on http://") {
            router = Some(url.trim().parse().expect("the router's address"));
        }
        // Both instances are routable once the demo's own load starts.
        if line.contains("steady load: 4 clients") {
            let router = router.expect("the demo names its router before its load starts");
            let stop = stop.clone();
            observer = Some(std::thread::spawn(move || observe(router, &stop)));
        }
        let replaced = line.contains("v2 a deregistered, drained and stopped");
        lines.push(line);
        if replaced {
            break;
        }
    }
    stop.store(true, Ordering::SeqCst);
    let seen = observer
        .expect("the demo's steady load started")
        .join()
        .expect("the observer did not panic");
    let code = demo.wait_exit(Duration::from_secs(60));
    // Everything it printed: the reader may still hold the last lines when it has exited.
    lines.extend(demo.rest_of_output(Duration::from_secs(10)));
    let out = lines.join("\n");
    assert_eq!(code, Some(0), "demo failed:\n{out}");
    eprintln!("through the demo's router during the replacement: {seen:?}");
    assert_eq!(seen.failed, Vec::<String>::new(), "{out}");
    assert!(
        seen.by_a > 0 && seen.by_b > 0,
        "both v2 instances answered the test's own requests: {seen:?}\n{out}"
    );
    let last = lines.last().expect("the demo printed nothing");
    let (ok, failed) = last
        .strip_prefix("requests: ")
        .and_then(|rest| rest.split_once(" ok, "))
        .unwrap_or_else(|| panic!("unexpected last line {last:?}"));
    assert_eq!(failed, "0 failed", "{out}");
    assert!(ok.parse::<u64>().unwrap() > 0, "{out}");
    assert!(out.contains("v2 a left the router"), "{out}");
    // The gRPC greeter: greeted through the balanced channel, then stopped cleanly.
    assert!(
        out.contains("gRPC through the balanced channel: hello demo from greeter"),
        "{out}"
    );
    assert!(
        out.contains("gRPC greeter deregistered, drained and stopped"),
        "{out}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the demo took {:?}",
        started.elapsed()
    );
    out
}

/// What the test's own requests through the demo's router got.
#[derive(Debug, Default)]
struct Observed {
    by_a: u64,
    by_b: u64,
    /// Every answer that was not v2's, or the error.
    failed: Vec<String>,
}

/// Sends `GET /v2/orders` through the router at `router`, one after the other, until `stop`.
fn observe(router: SocketAddr, stop: &AtomicBool) -> Observed {
    let mut seen = Observed::default();
    while !stop.load(Ordering::SeqCst) {
        match discoverable_testkit::http::get(router, "/v2/orders", None) {
            Ok(a) if a.status == 200 && a.body.starts_with("v2 a: ") => seen.by_a += 1,
            Ok(a) if a.status == 200 && a.body.starts_with("v2 b: ") => seen.by_b += 1,
            Ok(a) => seen.failed.push(format!("{} {}", a.status, a.body)),
            Err(e) => seen.failed.push(e),
        }
    }
    seen
}
