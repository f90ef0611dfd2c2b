//! Checks really run: HTTP checks against a live service, TCP checks, TTL expiry, and the reaper
//! for DeregisterCriticalServiceAfter.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{Probe, closed_port, start, start_with};
use discoverable_devagent::Config;
use discoverable_testkit::until;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn http_check_follows_the_service_passing_warning_critical() {
    let env = start().await;
    let probe = Probe::start().await;
    env.register(json!({
        "Name": "web",
        "Check": {"HTTP": probe.url(), "Interval": "1s", "Timeout": "2s",
                  "Header": {"X-Probe": ["yes"]}}
    }))
    .await;
    // Critical until the first (staggered) run.
    let wait = Duration::from_secs(5);
    let status_is = |want: &'static str| {
        let env = &env;
        move || async move { env.check("service:web").await["Status"] == want }
    };
    until(wait, "passing after a 200", status_is("passing")).await;
    let c = env.check("service:web").await;
    assert_eq!(
        c["Output"],
        format!("HTTP GET {}: 200 OK Output: ok", probe.url())
    );
    assert_eq!(c["Type"], "http");
    assert_eq!(c["Interval"], "1s");
    assert_eq!(c["Timeout"], "2s");
    assert_eq!(c["Definition"], json!({}));
    assert_eq!(env.definition("service:web").await["HTTP"], probe.url());
    let headers = probe.last_headers.lock().unwrap().clone().unwrap();
    assert_eq!(headers["user-agent"], "Consul Health Check");
    assert_eq!(headers["accept"], "text/plain, text/*, */*");
    assert_eq!(headers["x-probe"], "yes");

    probe.set(429);
    until(wait, "warning after a 429", status_is("warning")).await;
    assert_eq!(
        env.check("service:web").await["Output"],
        format!("HTTP GET {}: 429 Too Many Requests Output: ok", probe.url())
    );
    probe.set(503);
    until(wait, "critical after a 503", status_is("critical")).await;
    probe.set(204);
    until(wait, "passing again after a 204", status_is("passing")).await;
}

#[tokio::test]
async fn http_check_transport_error_is_critical_with_gos_text() {
    let env = start().await;
    let port = closed_port().await;
    let url = format!("http://127.0.0.1:{port}/health");
    env.register(json!({
        "Name": "gone",
        "Check": {"HTTP": url, "Interval": "1s", "Status": "passing"}
    }))
    .await;
    until(
        Duration::from_secs(5),
        "critical after connection refused",
        || async { env.check("service:gone").await["Status"] == "critical" },
    )
    .await;
    assert_eq!(
        env.check("service:gone").await["Output"],
        format!("Get \"{url}\": dial tcp 127.0.0.1:{port}: connect: connection refused")
    );
}

#[tokio::test]
async fn tcp_check_connects() {
    let env = start().await;
    let probe = Probe::start().await;
    let port = closed_port().await;
    env.register(
        json!({"Name": "tcp-up", "Check": {"TCP": probe.addr.to_string(), "Interval": "1s"}}),
    )
    .await;
    env.register(
        json!({"Name": "tcp-down", "Check": {"TCP": format!("127.0.0.1:{port}"),
                                                      "Interval": "1s", "Status": "passing"}}),
    )
    .await;
    until(Duration::from_secs(5), "tcp checks ran", || async {
        let checks = env.checks().await;
        checks["service:tcp-up"]["Status"] == "passing"
            && checks["service:tcp-down"]["Status"] == "critical"
    })
    .await;
    let checks = env.checks().await;
    assert_eq!(
        checks["service:tcp-up"]["Output"],
        format!("TCP connect {}: Success", probe.addr)
    );
    assert_eq!(
        checks["service:tcp-down"]["Output"],
        format!("dial tcp 127.0.0.1:{port}: connect: connection refused")
    );
}

#[tokio::test]
async fn ttl_check_expires_with_consuls_output() {
    let env = start().await;
    env.register(json!({"Name": "ttl", "Check": {"TTL": "1s"}}))
        .await;
    env.send(
        Method::PUT,
        "/v1/agent/check/pass/service:ttl?note=alive",
        None,
    )
    .await;
    assert_eq!(env.check("service:ttl").await["Status"], "passing");
    until(Duration::from_secs(4), "critical after the TTL", || async {
        env.check("service:ttl").await["Status"] == "critical"
    })
    .await;
    assert_eq!(
        env.check("service:ttl").await["Output"],
        "TTL expired (last output before timeout follows): alive"
    );
    // An update re-arms the timer.
    env.send(Method::PUT, "/v1/agent/check/pass/service:ttl", None)
        .await;
    assert_eq!(env.check("service:ttl").await["Status"], "passing");
    until(Duration::from_secs(4), "critical again", || async {
        env.check("service:ttl").await["Status"] == "critical"
    })
    .await;
    assert_eq!(env.check("service:ttl").await["Output"], "TTL expired");
}

#[tokio::test]
async fn ttl_updates_keep_the_check_alive() {
    let env = start().await;
    env.register(json!({"Name": "ttl", "Check": {"TTL": "1s", "Status": "passing"}}))
        .await;
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        env.send(Method::PUT, "/v1/agent/check/pass/service:ttl", None)
            .await;
        assert_eq!(env.check("service:ttl").await["Status"], "passing");
    }
}

#[tokio::test]
async fn reaper_deregisters_long_critical_services_only() {
    let env = start_with(Config {
        reap_interval: Duration::from_millis(100),
        deregister_critical_min: Duration::from_millis(500),
        ..Config::default()
    })
    .await;
    // 1ms is raised to the 500ms minimum, as Consul raises it to one minute.
    env.register(
        json!({"Name": "doomed", "Check": {"TTL": "30s", "DeregisterCriticalServiceAfter": "1ms"}}),
    )
    .await;
    env.register(
        json!({"Name": "healthy", "Check": {"TTL": "30s", "Status": "passing",
                                                     "DeregisterCriticalServiceAfter": "1ms"}}),
    )
    .await;
    let started = std::time::Instant::now();
    until(Duration::from_secs(5), "doomed is reaped", || async {
        env.json("/v1/agent/services").await.get("doomed").is_none()
    })
    .await;
    assert!(
        started.elapsed() >= Duration::from_millis(450),
        "not before the minimum"
    );
    let services = env.json("/v1/agent/services").await;
    assert!(services.get("healthy").is_some());
    assert!(
        env.checks().await.get("service:doomed").is_none(),
        "its checks go too"
    );
    assert_eq!(env.json("/v1/health/service/doomed").await, json!([]));
}

#[tokio::test]
async fn deregistering_stops_the_runner() {
    let env = start().await;
    let probe = Probe::start().await;
    env.register(json!({"Name": "web", "Check": {"HTTP": probe.url(), "Interval": "1s"}}))
        .await;
    until(Duration::from_secs(5), "the check ran", || async {
        probe.hits.load(Ordering::SeqCst) > 0
    })
    .await;
    env.send(Method::PUT, "/v1/agent/service/deregister/web", None)
        .await;
    let hits = probe.hits.load(Ordering::SeqCst);
    // The runner's task ends with the check, so nothing can send another request.
    until(Duration::from_secs(5), "the runner stopped", || async {
        env.agent.running_checks() == 0
    })
    .await;
    // At most the request that was on its way when the check went.
    assert!(probe.hits.load(Ordering::SeqCst) <= hits + 1);
}

/// A gRPC check calls `grpc.health.v1.Health/Check` over HTTP/2 and passes only on SERVING,
/// with Consul's outputs; an unknown service is grpc-go's NotFound error.
#[tokio::test]
async fn grpc_check_follows_the_health_service() {
    use tonic_health::ServingStatus;
    let env = start().await;
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", ServingStatus::Serving)
        .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let app = tonic::service::Routes::new(health).into_axum_router();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    env.register(json!({"Name": "g", "Check": {"GRPC": addr, "Interval": "1s"}}))
        .await;
    env.register(json!({
        "Name": "unknown",
        "Check": {"GRPC": format!("{addr}/other.Service"), "Interval": "1s"}
    }))
    .await;
    let output = |id: &'static str| {
        let env = &env;
        async move {
            let check = env.check(id).await;
            (
                check["Status"].as_str().unwrap_or_default().to_owned(),
                check["Output"].as_str().unwrap_or_default().to_owned(),
            )
        }
    };
    until(Duration::from_secs(5), "passing on SERVING", || async {
        output("service:g").await == ("passing".to_owned(), format!("gRPC check {addr}: success"))
    })
    .await;
    until(
        Duration::from_secs(5),
        "NotFound for an unknown service",
        || async {
            let (status, text) = output("service:unknown").await;
            status == "critical" && text.starts_with("rpc error: code = NotFound desc = ")
        },
    )
    .await;
    reporter
        .set_service_status("", ServingStatus::NotServing)
        .await;
    until(
        Duration::from_secs(5),
        "critical on NOT_SERVING",
        || async {
            output("service:g").await
                == (
                    "critical".to_owned(),
                    format!("gRPC {addr} serving status: NOT_SERVING"),
                )
        },
    )
    .await;
    server.abort();
}
