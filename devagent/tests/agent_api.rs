//! Fidelity of the agent endpoints: shapes, defaults, validation texts, check naming, TTL
//! updates, maintenance, local health, routing errors. Expected values come from Consul's
//! documentation and source (see CONSUL_API.md), not from our own client.

mod common;

use common::{Env, start};
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test]
async fn register_round_trip_with_every_field() {
    let env = start().await;
    env.register(json!({
        "ID": "web-1",
        "Name": "web",
        "Tags": ["urlprefix-/web", "v1"],
        "Address": "10.0.0.5",
        "Port": 8080,
        "Meta": {"version": "1.2", "team_name": "core"},
        "TaggedAddresses": {"lan": {"Address": "10.0.0.5", "Port": 8080}},
        "Weights": {"Passing": 10, "Warning": 1},
        "EnableTagOverride": true,
        "Check": {"TTL": "30s", "Status": "passing", "Notes": "ttl note"}
    }))
    .await;

    let resp = env.get("/v1/agent/services").await;
    assert_eq!(resp.status(), 200);
    // Agent endpoints are not blocking.
    assert!(resp.headers().get("x-consul-index").is_none());
    assert_eq!(resp.headers()["content-type"], "application/json");
    let services: Value = resp.json().await.unwrap();
    let web = &services["web-1"];
    assert_eq!(web["ID"], "web-1");
    assert_eq!(web["Service"], "web");
    assert_eq!(web["Tags"], json!(["urlprefix-/web", "v1"]));
    assert_eq!(web["Address"], "10.0.0.5");
    assert_eq!(web["Port"], 8080);
    assert_eq!(web["Meta"], json!({"version": "1.2", "team_name": "core"}));
    assert_eq!(web["Weights"], json!({"Passing": 10, "Warning": 1}));
    assert_eq!(web["EnableTagOverride"], true);
    assert_eq!(web["Datacenter"], "dc1");
    // The agent adds lan_ipv4/wan_ipv4 for an IPv4 service address, as Consul does.
    assert_eq!(
        web["TaggedAddresses"],
        json!({
            "lan": {"Address": "10.0.0.5", "Port": 8080},
            "lan_ipv4": {"Address": "10.0.0.5", "Port": 8080},
            "wan_ipv4": {"Address": "10.0.0.5", "Port": 8080}
        })
    );

    // The single service view carries ContentHash, also as a header.
    let resp = env.get("/v1/agent/service/web-1").await;
    let header = resp.headers()["x-consul-contenthash"]
        .to_str()
        .unwrap()
        .to_owned();
    let one: Value = resp.json().await.unwrap();
    assert_eq!(one["ContentHash"], header.as_str());
    assert_eq!(one["Service"], "web");

    // The catalog has it at once, flat.
    let nodes = env.json("/v1/catalog/service/web").await;
    let n = &nodes[0];
    assert_eq!(n["Node"], "devagent");
    assert_eq!(n["Address"], "127.0.0.1");
    assert_eq!(n["Datacenter"], "dc1");
    assert_eq!(n["ServiceID"], "web-1");
    assert_eq!(n["ServiceName"], "web");
    assert_eq!(n["ServiceAddress"], "10.0.0.5");
    assert_eq!(n["ServicePort"], 8080);
    assert_eq!(n["ServiceTags"], json!(["urlprefix-/web", "v1"]));
    assert_eq!(n["ServiceMeta"]["version"], "1.2");
    assert_eq!(n["ServiceWeights"], json!({"Passing": 10, "Warning": 1}));
    assert_eq!(n["ServiceEnableTagOverride"], true);

    // Health: Node, Service, Checks with the node's serfHealth.
    let entries = env.json("/v1/health/service/web").await;
    let e = &entries[0];
    assert_eq!(e["Node"]["Node"], "devagent");
    assert_eq!(e["Node"]["Address"], "127.0.0.1");
    assert_eq!(e["Node"]["Datacenter"], "dc1");
    assert_eq!(e["Service"]["ID"], "web-1");
    assert_eq!(e["Service"]["Service"], "web");
    assert_eq!(e["Service"]["Port"], 8080);
    let checks = e["Checks"].as_array().unwrap();
    let serf = checks
        .iter()
        .find(|c| c["CheckID"] == "serfHealth")
        .unwrap();
    assert_eq!(serf["Name"], "Serf Health Status");
    assert_eq!(serf["Status"], "passing");
    assert_eq!(serf["ServiceID"], "");
    assert_eq!(serf["ServiceTags"], json!([]));
    let own = checks
        .iter()
        .find(|c| c["CheckID"] == "service:web-1")
        .unwrap();
    assert_eq!(own["Name"], "Service 'web' check");
    assert_eq!(own["Status"], "passing");
    assert_eq!(own["Notes"], "ttl note");
    assert_eq!(own["Type"], "ttl");
    assert_eq!(own["ServiceID"], "web-1");
    assert_eq!(own["ServiceName"], "web");
    assert_eq!(own["ServiceTags"], json!(["urlprefix-/web", "v1"]));
    // Consul leaves the definition empty; the agent's own path shows what it decoded.
    assert_eq!(own["Definition"], json!({}));
    assert_eq!(env.definition("service:web-1").await["TTL"], "30s");
}

#[tokio::test]
async fn defaults_are_consuls_and_lists_are_never_null() {
    let env = start().await;
    env.register(json!({"Name": "api"})).await;
    let services = env.json("/v1/agent/services").await;
    let api = &services["api"];
    assert_eq!(api["ID"], "api", "ID defaults to Name");
    assert_eq!(api["Tags"], json!([]));
    assert_eq!(api["Meta"], json!({}));
    assert_eq!(api["Weights"], json!({"Passing": 1, "Warning": 1}));
    assert_eq!(api["Address"], "");
    assert_eq!(api["Port"], 0);
    assert!(api.get("TaggedAddresses").is_none(), "omitted when empty");
    let entries = env.json("/v1/health/service/api").await;
    assert_eq!(entries[0]["Service"]["Tags"], json!([]));
    // Consul 1.14 writes a service without meta as `"Meta": null` here, and leaves out port 0.
    assert_eq!(entries[0]["Service"]["Meta"], Value::Null);
    assert!(entries[0]["Service"].get("Port").is_none());
    assert_eq!(env.json("/v1/health/service/nope").await, json!([]));
    assert_eq!(env.json("/v1/catalog/service/nope").await, json!([]));
}

#[tokio::test]
async fn validation_errors_have_consuls_status_and_text() {
    let env = start().await;
    let cases: Vec<(&str, u16, &str)> = vec![
        ("", 400, "Request decode failed: EOF"),
        ("{\"Name\":", 400, "Request decode failed: unexpected EOF"),
        (
            r#"{"Name":"a","Port":"80"}"#,
            400,
            "Request decode failed: json: cannot unmarshal string into Go struct field .Alias.Port of type int",
        ),
        (
            r#"{"Name":"a","Check":{"TTL":"ten"}}"#,
            400,
            r#"Request decode failed: time: invalid duration "ten""#,
        ),
        (r#"{"Port":80}"#, 400, "Missing service name"),
        (
            r#"{"Name":"a","Address":"0.0.0.0"}"#,
            400,
            "Invalid service address",
        ),
        (
            r#"{"Name":"a","Address":"::"}"#,
            400,
            "Invalid service address",
        ),
        (
            r#"{"Name":"a","Weights":{"Passing":0,"Warning":1}}"#,
            400,
            "Invalid Weights: Passing must be greater than 0",
        ),
        (
            r#"{"Name":"a","Weights":{"Passing":1,"Warning":-1}}"#,
            400,
            "Invalid Weights: Warning must be greater or equal than 0",
        ),
        (
            r#"{"Name":"a","Weights":{"Passing":70000,"Warning":1}}"#,
            400,
            "Invalid Weights: DNS Weight must be between 0 and 65535",
        ),
        (
            r#"{"Name":"a","Meta":{"consul-x":"1"}}"#,
            400,
            "Invalid Service Meta: Couldn't load metadata pair ('consul-x', '1'): Key prefix 'consul-' is reserved for internal use",
        ),
        (
            r#"{"Name":"a","Meta":{"a.b":"1"}}"#,
            400,
            "Invalid Service Meta: Couldn't load metadata pair ('a.b', '1'): Key contains invalid characters",
        ),
        (
            r#"{"Name":"a","Check":{"TTL":"10s","Interval":"10s"}}"#,
            400,
            "Invalid check: Interval and TTL cannot both be specified",
        ),
        (
            r#"{"Name":"a","Check":{"HTTP":"http://127.0.0.1:1/"}}"#,
            400,
            "Invalid check: Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or OSService checks",
        ),
        (
            r#"{"Name":"a","Checks":[{"Name":"x"}]}"#,
            400,
            "Invalid check: TTL must be > 0 for TTL checks",
        ),
        (
            r#"{"Name":"a","Check":{"TTL":"10s","Status":"ok"}}"#,
            400,
            "Status for checks must 'passing', 'warning', 'critical'",
        ),
        (
            r#"{"Name":"a","Check":{"Args":[],"ScriptArgs":["true"],"Interval":"10s"}}"#,
            500,
            "Scripts are disabled on this agent from remote calls; to enable, configure 'enable_script_checks' to true",
        ),
    ];
    for (body, status, text) in cases {
        let resp = env.put_raw("/v1/agent/service/register", body).await;
        assert_eq!(resp.status().as_u16(), status, "{body}");
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain"),
            "{body}"
        );
        assert_eq!(resp.text().await.unwrap(), text, "{body}");
    }
    // Nothing was registered by the failed attempts; an empty Check is dropped silently.
    assert_eq!(env.json("/v1/agent/services").await, json!({}));
    env.register(json!({"Name": "a", "Check": {}})).await;
    assert_eq!(env.checks().await, json!({}));
}

#[tokio::test]
async fn body_keys_are_case_insensitive_and_snake_case() {
    let env = start().await;
    // What py-consul sends (lower case), plus the snake_case aliases Consul declares (a check's
    // ID has none: `check_id` is refused, lower-case `checkid` is CheckID).
    env.register(json!({
        "name": "py", "id": "py-1", "address": "127.0.0.1", "port": 9000,
        "tags": ["a"], "meta": {"redis_version": "4.0"},
        "enable_tag_override": true,
        "tagged_addresses": {"wan": {"address": "1.2.3.4", "port": 9001}},
        "weights": {"passing": 3, "warning": 2},
        "checks": [{"ttl": "10s", "checkid": "py-ttl", "status": "warning",
                    "deregister_critical_service_after": "1m30s"}]
    }))
    .await;
    let py = &env.json("/v1/agent/services").await["py-1"];
    assert_eq!(py["Service"], "py");
    assert_eq!(py["Port"], 9000);
    assert_eq!(
        py["Meta"]["redis_version"], "4.0",
        "meta keys keep their case and underscores"
    );
    assert_eq!(py["EnableTagOverride"], true);
    assert_eq!(
        py["TaggedAddresses"]["wan"],
        json!({"Address": "1.2.3.4", "Port": 9001})
    );
    assert_eq!(py["Weights"], json!({"Passing": 3, "Warning": 2}));
    let check = env.check("py-ttl").await;
    assert_eq!(check["Status"], "warning");
    assert_eq!(check["Definition"], json!({}));
    assert_eq!(
        env.definition("py-ttl").await["DeregisterCriticalServiceAfter"],
        "1m30s"
    );
}

#[tokio::test]
async fn check_ids_names_and_initial_status_follow_consul() {
    let env = start().await;
    env.register(json!({"Name": "one", "Check": {"TTL": "10s"}}))
        .await;
    env.register(json!({
        "Name": "two", "ID": "two-a",
        "Check": {"TTL": "10s"},
        "Checks": [{"TTL": "10s", "Name": "named"}, {"TTL": "10s", "CheckID": "explicit"}]
    }))
    .await;
    let checks = env.checks().await;
    let ids: Vec<&str> = checks
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        ids,
        [
            "explicit",
            "service:one",
            "service:two-a:1",
            "service:two-a:2"
        ]
    );
    assert_eq!(checks["service:one"]["Name"], "Service 'one' check");
    assert_eq!(
        checks["service:one"]["Status"], "critical",
        "critical until told otherwise"
    );
    assert_eq!(checks["service:one"]["Node"], "devagent");
    assert_eq!(checks["service:two-a:2"]["Name"], "named");
    assert_eq!(checks["explicit"]["ServiceID"], "two-a");
}

#[tokio::test]
async fn deregister_removes_service_and_checks_and_unknown_is_404() {
    let env = start().await;
    env.register(json!({"Name": "web", "Check": {"TTL": "10s"}}))
        .await;
    let resp = env
        .send(Method::PUT, "/v1/agent/service/deregister/web", None)
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "");
    assert_eq!(env.json("/v1/agent/services").await, json!({}));
    assert_eq!(env.checks().await, json!({}));
    let resp = env
        .send(Method::PUT, "/v1/agent/service/deregister/nope", None)
        .await;
    assert_eq!(resp.status(), 404);
    assert_eq!(
        resp.text().await.unwrap(),
        r#"Unknown service ID "nope". Ensure that the service ID is passed, not the service name."#
    );
    let resp = env.get("/v1/agent/service/nope").await;
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.text().await.unwrap(), "unknown service ID: nope");
}

#[tokio::test]
async fn reregistering_replaces_and_keeps_check_state() {
    let env = start().await;
    let def = json!({"Name": "web", "Port": 1, "Checks": [{"TTL": "10s"}, {"TTL": "10s"}]});
    env.register(def).await;
    env.send(
        Method::PUT,
        "/v1/agent/check/pass/service:web:1?note=fine",
        None,
    )
    .await;
    env.register(json!({"Name": "web", "Port": 2, "Checks": [{"TTL": "10s"}, {"TTL": "10s"}]}))
        .await;
    assert_eq!(env.json("/v1/agent/services").await["web"]["Port"], 2);
    let c = env.check("service:web:1").await;
    assert_eq!(
        (c["Status"].as_str(), c["Output"].as_str()),
        (Some("passing"), Some("fine"))
    );
    // ?replace-existing-checks drops checks that are not in the new definition.
    let resp = env
        .put(
            "/v1/agent/service/register?replace-existing-checks",
            &json!({"Name": "web", "Port": 2, "Check": {"TTL": "10s", "CheckID": "only"}}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let checks = env.checks().await;
    let ids: Vec<&str> = checks
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(ids, ["only"]);
}

#[tokio::test]
async fn ttl_updates_and_their_errors() {
    let env = start().await;
    env.register(json!({"Name": "web", "Check": {"TTL": "30s"}}))
        .await;
    for (verb, status) in [
        ("pass", "passing"),
        ("warn", "warning"),
        ("fail", "critical"),
    ] {
        let path = format!("/v1/agent/check/{verb}/service:web?note=via%20{verb}");
        let resp = env.send(Method::PUT, &path, None).await;
        assert_eq!(resp.status(), 200);
        let c = env.check("service:web").await;
        assert_eq!(c["Status"], status);
        assert_eq!(c["Output"], format!("via {verb}"));
    }
    let resp = env
        .put(
            "/v1/agent/check/update/service:web",
            &json!({"Status": "passing", "Output": "all good"}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(env.check("service:web").await["Output"], "all good");
    // Long output is truncated the way Consul does.
    let long = "x".repeat(5000);
    env.put(
        "/v1/agent/check/update/service:web",
        &json!({"Status": "passing", "Output": long}),
    )
    .await;
    let out = env.check("service:web").await["Output"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        out.ends_with(" ... (captured 4096 of 5000 bytes)"),
        "{}",
        &out[4090..]
    );

    let resp = env
        .put(
            "/v1/agent/check/update/service:web",
            &json!({"Status": "fine"}),
        )
        .await;
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.text().await.unwrap(), "Invalid check status: 'fine'");
    let resp = env
        .send(Method::PUT, "/v1/agent/check/pass/web", None)
        .await;
    assert_eq!(resp.status(), 404);
    assert_eq!(
        resp.text().await.unwrap(),
        r#"Unknown check ID "web". Ensure that the check ID is passed, not the check name."#
    );
    // pass/warn/fail are PUT only in current Consul.
    let resp = env.get("/v1/agent/check/pass/service:web").await;
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["allow"], "OPTIONS,PUT");
    assert_eq!(resp.text().await.unwrap(), "method GET not allowed");

    // A check without a TTL cannot be updated.
    let probe = common::Probe::start().await;
    env.register(json!({"Name": "h", "Check": {"HTTP": probe.url(), "Interval": "10s"}}))
        .await;
    let resp = env
        .send(Method::PUT, "/v1/agent/check/pass/service:h", None)
        .await;
    assert_eq!(resp.status(), 500);
    assert_eq!(
        resp.text().await.unwrap(),
        r#"CheckID "service:h" does not have associated TTL"#
    );
}

#[tokio::test]
async fn check_register_and_deregister() {
    let env = start().await;
    env.register(json!({"Name": "web"})).await;
    let resp = env
        .put(
            "/v1/agent/check/register",
            &json!({"Name": "extra", "ServiceID": "web", "TTL": "10s"}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let c = env.check("extra").await;
    assert_eq!(
        (c["ServiceName"].as_str(), c["Type"].as_str()),
        (Some("web"), Some("ttl"))
    );
    // Registered alone, a check shows its zero interval and timeout as Go writes them; the
    // agent's own view carries no raft indexes.
    assert_eq!(
        (c["Interval"].as_str(), c["Timeout"].as_str()),
        (Some("0s"), Some("0s"))
    );
    assert_eq!(
        (c["CreateIndex"].as_u64(), c["ModifyIndex"].as_u64()),
        (Some(0), Some(0))
    );
    let in_catalog = env.json("/v1/health/checks/web").await;
    assert!(
        in_catalog[0]["CreateIndex"].as_u64().unwrap() > 0,
        "{in_catalog}"
    );
    let resp = env
        .put("/v1/agent/check/register", &json!({"TTL": "10s"}))
        .await;
    assert_eq!(
        (resp.status().as_u16(), resp.text().await.unwrap().as_str()),
        (400, "Missing check name")
    );
    let resp = env
        .put(
            "/v1/agent/check/register",
            &json!({"Name": "x", "TTL": "1s", "Status": "meh"}),
        )
        .await;
    assert_eq!(
        (resp.status().as_u16(), resp.text().await.unwrap().as_str()),
        (400, "Bad check status")
    );
    let resp = env
        .put(
            "/v1/agent/check/register",
            &json!({"Name": "x", "TTL": "1s", "ServiceID": "nope"}),
        )
        .await;
    assert_eq!(
        (resp.status().as_u16(), resp.text().await.unwrap().as_str()),
        (404, r#"ServiceID "nope" does not exist"#)
    );
    let resp = env
        .send(Method::PUT, "/v1/agent/check/deregister/extra", None)
        .await;
    assert_eq!(resp.status(), 200);
    assert!(env.checks().await.get("extra").is_none());
}

#[tokio::test]
async fn agent_self_values_are_all_objects() {
    let env = start().await;
    let me = env.json("/v1/agent/self").await;
    for (k, v) in me.as_object().unwrap() {
        assert!(v.is_object(), "{k} must be an object for Go's Agent.Self()");
    }
    for key in ["Config", "DebugConfig", "Member", "Stats", "Meta", "Coord"] {
        assert!(me.get(key).is_some(), "{key}");
    }
    assert_eq!(me["Config"]["Datacenter"], "dc1");
    assert_eq!(me["Config"]["NodeName"], "devagent");
    assert_eq!(me["Config"]["Server"], true);
    assert!(me["Config"]["Version"].is_string());
    assert!(me["Config"]["NodeID"].as_str().unwrap().len() == 36);
    assert_eq!(me["Member"]["Name"], "devagent");
    assert_eq!(me["DebugConfig"]["DNSDomain"], "consul.");
}

#[tokio::test]
async fn consul_info_and_raft_list_peers_read_a_single_server() {
    let env = start().await;
    env.register(json!({"Name": "web", "Check": {"TTL": "30s"}}))
        .await;
    env.put(
        "/v1/agent/check/register",
        &json!({"Name": "node", "HTTP": "http://127.0.0.1:1/", "Interval": "1h"}),
    )
    .await;
    // `consul info` prints every section of Stats, each a map of strings.
    let me = env.json("/v1/agent/self").await;
    let stats = me["Stats"].as_object().unwrap();
    let sections: Vec<&str> = stats.keys().map(String::as_str).collect();
    assert_eq!(
        sections,
        [
            "agent", "build", "consul", "raft", "runtime", "serf_lan", "serf_wan"
        ]
    );
    for (name, section) in stats {
        for (k, v) in section.as_object().unwrap() {
            assert!(v.is_string(), "Stats.{name}.{k}: {v}");
        }
    }
    assert_eq!(
        stats["agent"],
        json!({"check_monitors": "0", "check_ttls": "1", "checks": "2", "services": "1"})
    );
    assert_eq!(stats["consul"]["leader"], "true");
    assert_eq!(stats["consul"]["acl"], "disabled");
    assert_eq!(stats["raft"]["state"], "Leader");
    assert_eq!(stats["raft"]["num_peers"], "0");
    let node_id = me["Config"]["NodeID"].as_str().unwrap();
    assert_eq!(
        stats["raft"]["latest_configuration"],
        format!("[{{Suffrage:Voter ID:{node_id} Address:127.0.0.1:8300}}]")
    );
    assert_eq!(stats["serf_lan"]["members"], "1");
    // `consul operator raft list-peers`: one voter, the leader, its raft ID the node ID.
    let resp = env.get("/v1/operator/raft/configuration").await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("x-consul-index").is_none());
    let raft: Value = resp.json().await.unwrap();
    assert_eq!(
        raft["Servers"],
        json!([{"ID": node_id, "Node": "devagent", "Address": "127.0.0.1:8300", "Leader": true,
                "ProtocolVersion": "3", "Voter": true,
                "LastIndex": raft["Servers"][0]["LastIndex"]}])
    );
    assert!(raft["Servers"][0]["LastIndex"].as_u64().unwrap() > 0);
    assert_eq!(raft["Index"], 0);
    let resp = env
        .send(Method::PUT, "/v1/operator/raft/configuration", None)
        .await;
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["allow"], "OPTIONS,GET");
}

#[tokio::test]
async fn maintenance_mode_adds_and_removes_the_critical_check() {
    let env = start().await;
    env.register(json!({"Name": "web", "Check": {"TTL": "30s", "Status": "passing"}}))
        .await;
    let resp = env
        .send(
            Method::PUT,
            "/v1/agent/service/maintenance/web?enable=true&reason=deploy",
            None,
        )
        .await;
    assert_eq!(resp.status(), 200);
    let c = env.check("_service_maintenance:web").await;
    assert_eq!(c["Status"], "critical");
    assert_eq!(c["Name"], "Service Maintenance Mode");
    assert_eq!(c["Notes"], "deploy");
    assert_eq!(c["ServiceID"], "web");
    assert_eq!(env.json("/v1/health/service/web?passing").await, json!([]));
    let resp = env.get("/v1/agent/health/service/id/web?format=text").await;
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.text().await.unwrap(), "maintenance");

    env.send(
        Method::PUT,
        "/v1/agent/service/maintenance/web?enable=false",
        None,
    )
    .await;
    assert!(env.checks().await.get("_service_maintenance:web").is_none());
    assert_eq!(
        env.json("/v1/health/service/web?passing")
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );

    for (path, status, text) in [
        (
            "/v1/agent/service/maintenance/web",
            400,
            "Missing value for enable",
        ),
        (
            "/v1/agent/service/maintenance/web?enable=maybe",
            400,
            r#"Invalid value for enable: "maybe""#,
        ),
        (
            "/v1/agent/service/maintenance/nope?enable=true",
            404,
            r#"Unknown service ID "nope". Ensure that the service ID is passed, not the service name."#,
        ),
    ] {
        let resp = env.send(Method::PUT, path, None).await;
        assert_eq!(
            (resp.status().as_u16(), resp.text().await.unwrap().as_str()),
            (status, text),
            "{path}"
        );
    }
}

#[tokio::test]
async fn local_health_endpoints_map_status_to_codes() {
    let env = start().await;
    env.register(json!({"Name": "web", "ID": "web-1", "Check": {"TTL": "30s"}}))
        .await;
    env.register(json!({"Name": "web", "ID": "web-2", "Check": {"TTL": "30s"}}))
        .await;
    let set = |id: &'static str, verb: &'static str| {
        let env = &env;
        async move {
            env.send(
                Method::PUT,
                &format!("/v1/agent/check/{verb}/service:{id}"),
                None,
            )
            .await;
        }
    };
    set("web-1", "pass").await;
    set("web-2", "pass").await;
    let resp = env.get("/v1/agent/health/service/id/web-1").await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["AggregatedStatus"], "passing");
    assert_eq!(body["Service"]["ID"], "web-1");
    set("web-2", "warn").await;
    let resp = env
        .get("/v1/agent/health/service/name/web?format=text")
        .await;
    assert_eq!(
        (resp.status().as_u16(), resp.text().await.unwrap().as_str()),
        (429, "warning")
    );
    set("web-1", "fail").await;
    let resp = env.get("/v1/agent/health/service/name/web").await;
    assert_eq!(resp.status(), 503);
    assert_eq!(
        resp.json::<Value>()
            .await
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let resp = env
        .get("/v1/agent/health/service/id/nope?format=text")
        .await;
    assert_eq!(
        (resp.status().as_u16(), resp.text().await.unwrap().as_str()),
        (404, "ServiceId nope not found")
    );
    let resp = env.get("/v1/agent/health/service/name/nope").await;
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn health_service_filters_by_tag_passing_and_expression() {
    let env = start().await;
    env.register(
        json!({"Name": "web", "ID": "a", "Tags": ["v1", "blue"], "Meta": {"zone": "x"},
                        "Check": {"TTL": "30s", "Status": "passing"}}),
    )
    .await;
    env.register(
        json!({"Name": "web", "ID": "b", "Tags": ["v2"], "Meta": {"zone": "y"},
                        "Check": {"TTL": "30s", "Status": "warning"}}),
    )
    .await;
    let ids = |v: Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|e| e["Service"]["ID"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids(env.json("/v1/health/service/web").await), ["a", "b"]);
    assert_eq!(
        ids(env.json("/v1/health/service/web?tag=v1&tag=blue").await),
        ["a"]
    );
    assert_eq!(
        ids(env.json("/v1/health/service/web?tag=v1&tag=v2").await),
        Vec::<String>::new()
    );
    // Warning is not passing.
    assert_eq!(ids(env.json("/v1/health/service/web?passing").await), ["a"]);
    assert_eq!(
        ids(env.json("/v1/health/service/web?passing=1").await),
        ["a"]
    );
    assert_eq!(
        ids(env.json("/v1/health/service/web?passing=false").await),
        ["a", "b"]
    );
    let q = |f: &str| format!("/v1/health/service/web?filter={}", urlencode(f));
    assert_eq!(
        ids(env.json(&q(r#"Service.Tags contains "v2""#)).await),
        ["b"]
    );
    assert_eq!(
        ids(env.json(&q(r#"Service.Meta.zone == "x""#)).await),
        ["a"]
    );
    assert_eq!(ids(env.json(&q(r#"Service.ID == "b""#)).await), ["b"]);

    // Consul's server fails to compile the expression: 500, not 400.
    let resp = env.get(&q("Service.ID ==")).await;
    assert_eq!(resp.status(), 500);
    assert!(
        resp.text()
            .await
            .unwrap()
            .starts_with("Failed to create boolean expression evaluator")
    );
    let resp = env.get("/v1/health/service/web?passing=maybe").await;
    assert_eq!(
        (resp.status().as_u16(), resp.text().await.unwrap().as_str()),
        (400, "Invalid value for ?passing")
    );
    let resp = env.get("/v1/health/service/web?dc=elsewhere").await;
    assert_eq!(
        (resp.status().as_u16(), resp.text().await.unwrap().as_str()),
        (500, "No path to datacenter")
    );
    let resp = env.get("/v1/health/service/").await;
    assert_eq!(
        (resp.status().as_u16(), resp.text().await.unwrap().as_str()),
        (400, "Missing service name")
    );
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn health_state_checks_and_node() {
    let env = start().await;
    env.register(json!({"Name": "web", "Check": {"TTL": "30s"}}))
        .await;
    let any = env.json("/v1/health/state/any").await;
    let ids: Vec<&str> = any
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["CheckID"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["serfHealth", "service:web"]);
    assert_eq!(
        env.json("/v1/health/state/critical")
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        env.json("/v1/health/state/passing").await[0]["CheckID"],
        "serfHealth"
    );
    assert_eq!(
        env.json("/v1/health/checks/web").await[0]["CheckID"],
        "service:web"
    );
    assert_eq!(
        env.json("/v1/health/node/devagent")
            .await
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(env.json("/v1/health/node/other").await, json!([]));
    let resp = env.get("/v1/health/state/").await;
    assert_eq!(
        (resp.status().as_u16(), resp.text().await.unwrap().as_str()),
        (400, "Missing check state")
    );
}

#[tokio::test]
async fn catalog_and_status_endpoints() {
    let env = start().await;
    env.register(json!({"Name": "web", "ID": "w1", "Tags": ["b", "a"]}))
        .await;
    env.register(json!({"Name": "web", "ID": "w2", "Tags": ["c"]}))
        .await;
    let services = env.json("/v1/catalog/services").await;
    assert_eq!(services, json!({"consul": [], "web": ["a", "b", "c"]}));
    assert_eq!(env.json("/v1/catalog/datacenters").await, json!(["dc1"]));
    let nodes = env.json("/v1/catalog/nodes").await;
    assert_eq!(nodes[0]["Node"], "devagent");
    let node = env.json("/v1/catalog/node/devagent").await;
    assert_eq!(node["Node"]["Node"], "devagent");
    assert!(node["Services"]["w1"].is_object());
    assert_eq!(env.json("/v1/catalog/node/other").await, Value::Null);
    assert_eq!(
        env.json("/v1/catalog/service/web?tag=c").await[0]["ServiceID"],
        "w2"
    );
    assert_eq!(env.json("/v1/status/leader").await, json!("127.0.0.1:8300"));
    assert_eq!(
        env.json("/v1/status/peers").await,
        json!(["127.0.0.1:8300"])
    );
    // ?pretty indents with four spaces.
    let text = env
        .get("/v1/status/peers?pretty")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(text, "[\n    \"127.0.0.1:8300\"\n]\n");
}

#[tokio::test]
async fn unknown_paths_and_methods_answer_like_consul() {
    let env = start().await;
    let resp = env.get("/v1/agent/nope").await;
    assert_eq!(resp.status(), 404);
    assert_eq!(
        resp.text().await.unwrap(),
        "Invalid URL path: not a recognized HTTP API endpoint\n"
    );
    let resp = env.get("/nope").await;
    assert_eq!(resp.status(), 404);
    assert_eq!(
        resp.text().await.unwrap(),
        "Invalid URL path: if attempting to use the HTTP API, ensure the path starts with '/v1/'\n"
    );
    let resp = env
        .send(Method::POST, "/v1/agent/service/register", None)
        .await;
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["allow"], "OPTIONS,PUT");
    let resp = env.send(Method::OPTIONS, "/v1/kv/x", None).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["allow"], "OPTIONS,GET,PUT,DELETE");
}

#[tokio::test]
async fn kv_store_for_fabio() {
    let env: Env = start().await;
    let resp = env.get("/v1/kv/fabio/config?consistent=&recurse=").await;
    assert_eq!(resp.status(), 404);
    assert!(common::index_of(&resp) >= 1);
    assert_eq!(resp.headers()["x-consul-knownleader"], "true");
    assert_eq!(resp.headers()["x-consul-lastcontact"], "0");
    assert_eq!(resp.text().await.unwrap(), "");

    let resp = env
        .put_raw(
            "/v1/kv/fabio/config",
            "route add web /web http://127.0.0.1:1/",
        )
        .await;
    assert_eq!(resp.text().await.unwrap(), "true");
    let entries = env.json("/v1/kv/fabio/config?consistent=&recurse=").await;
    let e = &entries[0];
    assert_eq!(e["Key"], "fabio/config");
    assert_eq!(e["Flags"], 0);
    assert_eq!(e["LockIndex"], 0);
    assert_eq!(
        e["Value"],
        "cm91dGUgYWRkIHdlYiAvd2ViIGh0dHA6Ly8xMjcuMC4wLjE6MS8="
    );
    let modify = e["ModifyIndex"].as_u64().unwrap();
    let raw = env
        .get("/v1/kv/fabio/config?raw")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(raw, "route add web /web http://127.0.0.1:1/");
    env.put_raw("/v1/kv/fabio/noroute.html", "<p>none</p>")
        .await;
    assert_eq!(
        env.json("/v1/kv/fabio/?keys").await,
        json!(["fabio/config", "fabio/noroute.html"])
    );
    assert_eq!(
        env.json("/v1/kv/?keys&separator=/").await,
        json!(["fabio/"])
    );
    // CAS: 0 means "only if absent"; a stale index loses.
    assert_eq!(
        env.put_raw("/v1/kv/fabio/config?cas=0", "x")
            .await
            .text()
            .await
            .unwrap(),
        "false"
    );
    let path = format!("/v1/kv/fabio/config?cas={modify}");
    assert_eq!(env.put_raw(&path, "y").await.text().await.unwrap(), "true");
    let resp = env.send(Method::DELETE, "/v1/kv/fabio?recurse", None).await;
    assert_eq!(resp.text().await.unwrap(), "true");
    assert_eq!(env.get("/v1/kv/fabio/config").await.status(), 404);
    let resp = env.get("/v1/kv/").await;
    assert_eq!(
        (resp.status().as_u16(), resp.text().await.unwrap().as_str()),
        (400, "Missing key name")
    );
}
