//! Fault switches, through the library handle and over HTTP.

mod common;

use std::time::{Duration, Instant};

use common::{index_of, start};
use discoverable_testkit::until;
use reqwest::Method;
use serde_json::json;

const INJECTED: &str = "rpc error making call: No cluster leader (injected by devagent)";

#[tokio::test]
async fn unavailable_refuses_connections_and_keeps_state_and_port() {
    let env = start().await;
    env.register(json!({"Name": "web"})).await;
    let addr = env.agent.addr();
    // A pooled keep-alive connection exists now; it must not keep working.
    assert_eq!(env.get("/v1/status/leader").await.status(), 200);
    let faults = env.agent.faults();
    faults.set_unavailable(true).await;
    let err = env
        .http
        .get(format!("{}/v1/status/leader", env.url))
        .send()
        .await
        .expect_err("agent is down");
    assert!(err.is_connect() || err.is_request(), "{err}");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "connection refused"
    );
    faults.set_unavailable(false).await;
    assert_eq!(env.agent.addr(), addr);
    assert!(
        env.json("/v1/agent/services").await.get("web").is_some(),
        "state kept"
    );
}

#[tokio::test]
async fn delay_slows_every_answer() {
    let env = start().await;
    let faults = env.agent.faults();
    faults.set_delay(Some(Duration::from_millis(1000)));
    let started = Instant::now();
    assert_eq!(env.get("/v1/status/leader").await.status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(1000));
    faults.set_delay(None);
    let started = Instant::now();
    env.get("/v1/status/leader").await;
    assert!(started.elapsed() < Duration::from_millis(800));
}

#[tokio::test]
async fn fail_next_answers_500_n_times() {
    let env = start().await;
    env.agent.faults().fail_next(2);
    for _ in 0..2 {
        let resp = env.get("/v1/agent/services").await;
        assert_eq!(resp.status(), 500);
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain")
        );
        assert_eq!(resp.text().await.unwrap(), INJECTED);
    }
    assert_eq!(env.get("/v1/agent/services").await.status(), 200);
}

#[tokio::test]
async fn restart_losing_state_forgets_everything() {
    let env = start().await;
    env.register(json!({"Name": "web", "Check": {"TTL": "30s"}}))
        .await;
    env.put_raw("/v1/kv/k", "v").await;
    let before = index_of(&env.get("/v1/catalog/services").await);
    env.agent.faults().restart_losing_state();
    assert_eq!(env.json("/v1/agent/services").await, json!({}));
    assert_eq!(env.json("/v1/agent/checks").await, json!({}));
    assert_eq!(env.get("/v1/kv/k").await.status(), 404);
    assert!(index_of(&env.get("/v1/catalog/services").await) < before);
    // Registering again works as on a fresh agent.
    env.register(json!({"Name": "web"})).await;
    assert!(env.json("/v1/agent/services").await.get("web").is_some());
}

#[tokio::test]
async fn http_fault_switches() {
    let env = start().await;
    env.register(json!({"Name": "web"})).await;

    let resp = env
        .send(Method::PUT, "/_devagent/fault/fail?n=1", None)
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(env.get("/v1/agent/services").await.status(), 500);
    assert_eq!(env.get("/v1/agent/services").await.status(), 200);

    env.send(Method::PUT, "/_devagent/fault/delay?d=200ms", None)
        .await;
    let started = Instant::now();
    env.get("/v1/status/leader").await;
    assert!(started.elapsed() >= Duration::from_millis(200));
    env.send(Method::PUT, "/_devagent/fault/delay?d=0", None)
        .await;

    let resp = env
        .send(Method::PUT, "/_devagent/fault/delay?d=soon", None)
        .await;
    assert_eq!(resp.status(), 400);
    let resp = env.send(Method::PUT, "/_devagent/fault/nope", None).await;
    assert_eq!(resp.status(), 404);
    let resp = env.get("/_devagent/fault/restart").await;
    assert_eq!(resp.status(), 405);

    env.send(Method::PUT, "/_devagent/fault/restart", None)
        .await;
    assert_eq!(env.json("/v1/agent/services").await, json!({}));

    env.register(json!({"Name": "web"})).await;
    let resp = env
        .send(Method::PUT, "/_devagent/fault/unavailable?for=1s", None)
        .await;
    assert_eq!(resp.status(), 200);
    let addr = env.agent.addr();
    until(Duration::from_secs(2), "the agent goes away", || async {
        tokio::net::TcpStream::connect(addr).await.is_err()
    })
    .await;
    until(Duration::from_secs(4), "the agent comes back", || async {
        tokio::net::TcpStream::connect(addr).await.is_ok()
    })
    .await;
    assert!(env.json("/v1/agent/services").await.get("web").is_some());
}

#[tokio::test]
async fn shutdown_and_drop_stop_listening() {
    let env = start().await;
    let addr = env.agent.addr();
    env.agent.shutdown().await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());

    let env = start().await;
    let addr = env.agent.addr();
    drop(env);
    until(
        Duration::from_secs(2),
        "dropped agent stops listening",
        || async { tokio::net::TcpStream::connect(addr).await.is_err() },
    )
    .await;
}
