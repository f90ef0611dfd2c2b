//! The real peers start on loopback and answer as the tests expect.

use std::time::Duration;

use discoverable_testkit::{Consul, ConsulOptions, Fabio, peers, wait_until};
use serde_json::json;

#[test]
fn real_consul_starts_on_loopback_and_registers_a_service() {
    let Some(peers) = peers::require("real_consul_starts_on_loopback_and_registers_a_service")
    else {
        return;
    };
    let consul = Consul::start(&peers, ConsulOptions::default());
    let self_info = consul.get("/v1/agent/self").unwrap().json().unwrap();
    assert_eq!(self_info["Config"]["Version"], "1.14.11");
    let a = consul
        .put(
            "/v1/agent/service/register",
            &json!({"Name": "web", "ID": "web-1", "Port": 1}),
        )
        .unwrap();
    assert_eq!((a.status, a.body.as_str()), (200, ""));
    let services = consul.get("/v1/agent/services").unwrap().json().unwrap();
    assert_eq!(services["web-1"]["Service"], "web");
}

#[test]
fn real_consul_with_acls_denies_the_anonymous_token() {
    let Some(peers) = peers::require("real_consul_with_acls_denies_the_anonymous_token") else {
        return;
    };
    let token = "b1d6f4a2-39a1-4c2e-9d67-1f5d3c6a7e01";
    let consul = Consul::start(&peers, ConsulOptions::with_acl(token));
    let anon = discoverable_testkit::http::put(
        consul.http_addr(),
        "/v1/agent/service/register",
        &json!({"Name": "web"}),
        None,
    )
    .unwrap();
    assert_eq!(anon.status, 403, "{}", anon.body);
    assert!(anon.body.contains("Permission denied"), "{}", anon.body);
    let secret = consul.create_token("web-writer", r#"service "web" { policy = "write" }"#);
    let ok = discoverable_testkit::http::put(
        consul.http_addr(),
        "/v1/agent/service/register",
        &json!({"Name": "web"}),
        Some(&secret),
    )
    .unwrap();
    assert_eq!(ok.status, 200, "{}", ok.body);
}

#[test]
fn real_fabio_routes_a_real_consul_service() {
    let Some(peers) = peers::require("real_fabio_routes_a_real_consul_service") else {
        return;
    };
    let consul = Consul::start(&peers, ConsulOptions::default());
    let fabio = Fabio::start(&peers, consul.http_addr(), None);
    // A TTL check set passing: Fabio needs a passing check to route.
    let a = consul
        .put(
            "/v1/agent/service/register",
            &json!({"Name": "web", "ID": "web-1", "Address": "127.0.0.1", "Port": 1,
                    "Tags": ["urlprefix-/web"], "Check": {"TTL": "30s", "Status": "passing"}}),
        )
        .unwrap();
    assert_eq!(a.status, 200, "{}", a.body);
    let dst = wait_until(Duration::from_secs(20), || {
        let d = fabio.destinations("/web");
        if d.is_empty() {
            Err(format!("routes: {:?}", fabio.routes()))
        } else {
            Ok(d)
        }
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", fabio.log_tail(20)));
    assert_eq!(dst, vec!["http://127.0.0.1:1/".to_owned()]);
}
