//! The dev agent held to the real Consul: one scripted sequence of requests runs against a fresh
//! dev agent and a fresh real Consul (v1.14.11, `consul agent -dev` on loopback), and the
//! answers are compared request by request.
//!
//! Compared: the status code; the headers clients read (`X-Consul-Index` present and how it
//! moved since the previous answer to the same query, `X-Consul-KnownLeader`,
//! `X-Consul-Query-Backend`, `X-Consul-LastContact` present and parseable, `Content-Type`,
//! `Allow`, the ACL headers, `X-Consul-ContentHash` present); the JSON shape and values (field
//! names, JSON types, `null` versus empty, recursively) and plain-text error bodies, after
//! normalising what differs between any two agents: node name and ID, addresses' ports, raft
//! indexes and terms (only presence and whether `ModifyIndex` moved past `CreateIndex`),
//! timestamps, versions; and, argued in `devagent/README.md`, content hashes, the count of the
//! process's concurrent tasks and `agent/self`'s `DebugConfig` beyond `DNSDomain`.
//!
//! A difference either is listed, exactly by request kind and key, in [`EXPLAINED`] (and in the
//! "Differences from Consul" table of `devagent/README.md`, which must list exactly the same
//! entries) or fails the test with both answers. The test writes `target/fidelity/report.json`,
//! with `behavioural_differences_count`: the differences in anything but identity, addresses,
//! ports, indexes, timestamps and versions, which must be as many as the listed exceptions of
//! that kind.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use discoverable_devagent::{Config, DevAgent};
use discoverable_testkit::http::{self, Answer};
use discoverable_testkit::{Consul, ConsulOptions, free_port, peers, wait_until};
use serde_json::{Map, Value, json};

/// The management token of both ACL-enabled agents.
const ACL_TOKEN: &str = "6f1b2a3c-4d5e-4f60-8a7b-9c0d1e2f3a4b";

/// Differences that are known and explained in `devagent/README.md` ("Differences from
/// Consul"): each one difference of the report, exactly (request kind, difference key), with
/// a short reason. The README's table lists the same pairs. Any other difference fails the test,
/// and so does a listed one that no longer occurs.
const EXPLAINED: &[(&str, &str, &str)] = &[];

/// How long a blocking query that should time out waits.
const SHORT_WAIT: Duration = Duration::from_secs(1);
/// How long a blocking query that a change should wake would wait at most.
const LONG_WAIT: Duration = Duration::from_secs(8);

/// A request body.
#[derive(Clone)]
enum Body {
    None,
    Json(Value),
    Raw(String),
}

impl Body {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Body::None => Vec::new(),
            Body::Json(v) => serde_json::to_vec(v).expect("JSON encodes"),
            Body::Raw(s) => s.clone().into_bytes(),
        }
    }

    fn describe(&self) -> String {
        match self {
            Body::None => String::new(),
            Body::Json(v) => format!(" {v}"),
            Body::Raw(s) => format!(" {s:?}"),
        }
    }
}

/// One agent the script runs against.
struct Target {
    name: &'static str,
    addr: SocketAddr,
    node: String,
    /// The token sent by requests that must be allowed: the management token with ACLs on.
    admin: Option<String>,
    /// A token allowed to register services and read the catalog: on Consul one made with a
    /// policy; the dev agent knows only its management token.
    policy_token: Option<String>,
}

/// One request of the script and what the agent answered, normalised for comparison.
struct Record {
    kind: String,
    request: String,
    answer: Answer,
    view: Value,
}

/// The script's state against one target.
struct Run<'a> {
    target: &'a Target,
    closed_port: u16,
    records: Vec<Record>,
    last_index: HashMap<String, u64>,
}

/// A request's query key: its path without the blocking parameters, for index movement.
fn query_key(path: &str) -> String {
    let Some((base, query)) = path.split_once('?') else {
        return path.to_owned();
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|p| {
            let name = p.split('=').next().unwrap_or_default();
            !matches!(name, "index" | "wait" | "hash")
        })
        .collect();
    if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    }
}

impl<'a> Run<'a> {
    fn new(target: &'a Target, closed_port: u16) -> Run<'a> {
        Run {
            target,
            closed_port,
            records: Vec::new(),
            last_index: HashMap::new(),
        }
    }

    fn raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &Body,
        timeout: Duration,
    ) -> Answer {
        let headers: Vec<(&str, &str)> = token.map(|t| ("X-Consul-Token", t)).into_iter().collect();
        http::request(
            self.target.addr,
            method,
            path,
            &headers,
            &body.bytes(),
            timeout,
        )
        .unwrap_or_else(|e| panic!("{} {method} {path}: {e}", self.target.name))
    }

    /// Sends a request with the target's admin token and records it as `kind`.
    fn send(&mut self, kind: &str, method: &str, path: &str, body: Body) -> Answer {
        let token = self.target.admin.clone();
        self.send_as(kind, method, path, token.as_deref(), body)
    }

    /// Sends a request with `token` (none: anonymous) and records it as `kind`.
    fn send_as(
        &mut self,
        kind: &str,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Body,
    ) -> Answer {
        let answer = self.raw(method, path, token, &body, Duration::from_secs(10));
        self.record(kind, method, path, &body, answer.clone(), None);
        answer
    }

    fn get(&mut self, kind: &str, path: &str) -> Answer {
        self.send(kind, "GET", path, Body::None)
    }

    fn put(&mut self, kind: &str, path: &str, body: Value) -> Answer {
        self.send(kind, "PUT", path, Body::Json(body))
    }

    fn register(&mut self, kind: &str, body: Value) -> Answer {
        self.put(kind, "/v1/agent/service/register", body)
    }

    fn register_raw(&mut self, kind: &str, body: &str) -> Answer {
        self.send(
            kind,
            "PUT",
            "/v1/agent/service/register",
            Body::Raw(body.to_owned()),
        )
    }

    fn record(
        &mut self,
        kind: &str,
        method: &str,
        path: &str,
        body: &Body,
        answer: Answer,
        timing: Option<(Duration, Duration)>,
    ) {
        assert!(
            self.records.iter().all(|r| r.kind != kind),
            "request kind {kind} used twice"
        );
        let key = query_key(path);
        let index = answer.header("x-consul-index");
        let moved = match index {
            None => "absent".to_owned(),
            Some(i) => match i.parse::<u64>() {
                Err(_) => format!("unparseable {i:?}"),
                Ok(0) => "zero".to_owned(),
                Ok(i) => {
                    let moved = match self.last_index.get(&key) {
                        None => "present",
                        Some(prev) if i > *prev => "higher",
                        Some(prev) if i == *prev => "same",
                        Some(_) => "lower",
                    };
                    self.last_index.insert(key, i);
                    moved.to_owned()
                }
            },
        };
        let mut view = Map::new();
        view.insert("status".into(), json!(answer.status));
        let mut headers = Map::new();
        headers.insert("x-consul-index".into(), json!(moved));
        let lastcontact = match answer.header("x-consul-lastcontact") {
            None => "absent",
            Some(v) if v.parse::<u64>().is_ok() => "parseable",
            Some(_) => "unparseable",
        };
        headers.insert("x-consul-lastcontact".into(), json!(lastcontact));
        for name in [
            "x-consul-knownleader",
            "x-consul-query-backend",
            "content-type",
            "allow",
            "x-consul-default-acl-policy",
            "x-consul-results-filtered-by-acls",
            "x-consul-effective-consistency",
        ] {
            let value = answer.header(name).map_or(json!("<absent>"), |v| json!(v));
            headers.insert(name.into(), value);
        }
        let hash = answer
            .header("x-consul-contenthash")
            .map_or("<absent>", |_| "<present>");
        headers.insert("x-consul-contenthash".into(), json!(hash));
        view.insert("headers".into(), Value::Object(headers));
        view.insert("body".into(), self.normalise_body(kind, &answer));
        if let Some((elapsed, wait)) = timing {
            let timing = if elapsed >= wait.mul_f64(0.9) {
                "waited"
            } else if elapsed < wait / 2 {
                "returned early"
            } else {
                "in between"
            };
            view.insert("timing".into(), json!(timing));
        }
        self.records.push(Record {
            kind: kind.to_owned(),
            request: format!("{method} {path}{}", body.describe()),
            answer,
            view: Value::Object(view),
        });
    }

    /// The current `X-Consul-Index` of `path` (read now, not recorded), as a client's first
    /// read before a blocking loop.
    fn index_now(&mut self, path: &str) -> u64 {
        let token = self.target.admin.clone();
        let answer = self.raw("GET", path, token.as_deref(), &Body::None, SHORT_WAIT * 5);
        let index = answer
            .header("x-consul-index")
            .and_then(|i| i.parse().ok())
            .unwrap_or_else(|| panic!("{}: no index on {path}", self.target.name));
        self.last_index.insert(query_key(path), index);
        index
    }

    /// A blocking query expected to wait `wait`, recorded with how long it took.
    fn blocking(&mut self, kind: &str, path: &str, wait: Duration) -> Answer {
        let token = self.target.admin.clone();
        let started = Instant::now();
        let answer = self.raw("GET", path, token.as_deref(), &Body::None, wait * 3);
        let elapsed = started.elapsed();
        self.record(
            kind,
            "GET",
            path,
            &Body::None,
            answer.clone(),
            Some((elapsed, wait)),
        );
        answer
    }

    /// A blocking query sent while `change` runs: it returns early once `change` has raised
    /// the index (whether the change lands before or after the query arrives).
    fn blocking_woken(
        &mut self,
        kind: &str,
        path: &str,
        wait: Duration,
        change: impl FnOnce(&mut Run<'a>),
    ) -> Answer {
        let addr = self.target.addr;
        let token = self.target.admin.clone();
        let owned = path.to_owned();
        let query = std::thread::spawn(move || {
            let headers: Vec<(&str, &str)> = token
                .iter()
                .map(|t| ("X-Consul-Token", t.as_str()))
                .collect();
            let started = Instant::now();
            let answer = http::request(addr, "GET", &owned, &headers, b"", wait * 3);
            (answer, started.elapsed())
        });
        change(self);
        let (answer, elapsed) = query.join().expect("blocking query thread");
        let answer = answer.unwrap_or_else(|e| panic!("{} GET {path}: {e}", self.target.name));
        self.record(
            kind,
            "GET",
            path,
            &Body::None,
            answer.clone(),
            Some((elapsed, wait)),
        );
        answer
    }

    /// Waits until the catalog and health views reflect the agent's local services and checks
    /// (a real agent syncs them to its catalog right after each change, asynchronously).
    fn settle(&self) {
        let token = self.target.admin.clone();
        let get = |path: &str| -> Result<Value, String> {
            let a = self.raw("GET", path, token.as_deref(), &Body::None, SHORT_WAIT * 5);
            a.json().map_err(|e| format!("{path}: {e}"))
        };
        let node = self.target.node.clone();
        wait_until(Duration::from_secs(15), || {
            let local_checks = get("/v1/agent/checks")?;
            let mut local: BTreeSet<String> = BTreeSet::new();
            for (id, c) in local_checks.as_object().into_iter().flatten() {
                local.insert(format!("{id} {} {}", c["Status"], c["Output"]));
            }
            let state = get("/v1/health/state/any")?;
            let catalog: BTreeSet<String> = state
                .as_array()
                .into_iter()
                .flatten()
                .filter(|c| c["CheckID"] != "serfHealth")
                .map(|c| {
                    format!(
                        "{} {} {}",
                        c["CheckID"].as_str().unwrap_or_default(),
                        c["Status"],
                        c["Output"]
                    )
                })
                .collect();
            let local_services = get("/v1/agent/services")?;
            let local_svc: BTreeSet<String> = local_services
                .as_object()
                .into_iter()
                .flatten()
                .map(|(id, s)| format!("{id} {} {}", s["Port"].as_i64().unwrap_or(0), s["Tags"]))
                .collect();
            let node_view = get(&format!("/v1/catalog/node/{node}"))?;
            let catalog_svc: BTreeSet<String> = node_view["Services"]
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(id, _)| *id != "consul")
                .map(|(id, s)| format!("{id} {} {}", s["Port"].as_i64().unwrap_or(0), s["Tags"]))
                .collect();
            if local == catalog && local_svc == catalog_svc {
                Ok(())
            } else {
                Err(format!(
                    "checks {local:?} vs {catalog:?}, services {local_svc:?} vs {catalog_svc:?}"
                ))
            }
        })
        .unwrap_or_else(|e| panic!("{}: catalog never caught up: {e}", self.target.name));
    }

    fn content_hash(&self, path: &str) -> String {
        let token = self.target.admin.clone();
        let a = self.raw("GET", path, token.as_deref(), &Body::None, SHORT_WAIT * 5);
        a.header("x-consul-contenthash")
            .unwrap_or_else(|| panic!("{}: no content hash on {path}", self.target.name))
            .to_owned()
    }

    // ----- normalisation -----

    fn normalise_str(&self, s: &str) -> String {
        let s = s.replace(&self.target.node, "<node>");
        let s = replace_uuids(&s);
        let s = replace_ports(&s);
        s.replace(&self.closed_port.to_string(), "<closed-port>")
    }

    fn normalise(&self, v: &Value) -> Value {
        match v {
            Value::String(s) => Value::String(self.normalise_str(s)),
            Value::Array(items) => Value::Array(items.iter().map(|i| self.normalise(i)).collect()),
            Value::Object(map) => {
                let mut out = Map::new();
                for (k, v) in map {
                    let value = match (k.as_str(), v) {
                        // Agent-local views carry no raft index: 0.
                        ("CreateIndex" | "ModifyIndex", Value::Number(n))
                            if n.as_u64() == Some(0) =>
                        {
                            json!(0)
                        }
                        ("CreateIndex", Value::Number(_)) => json!("<index>"),
                        ("ModifyIndex", Value::Number(n)) => {
                            let create = map.get("CreateIndex").and_then(Value::as_u64);
                            match (create, n.as_u64()) {
                                (Some(c), Some(m)) if m > c => json!("<index, modified later>"),
                                (Some(c), Some(m)) if m == c => json!("<index, as created>"),
                                _ => json!("<index>"),
                            }
                        }
                        ("ContentHash", Value::String(_)) => json!("<hash>"),
                        // A raft server's last log index (operator/raft/configuration).
                        ("LastIndex", Value::Number(_)) => json!("<index>"),
                        _ => self.normalise(v),
                    };
                    out.insert(self.normalise_str(k), value);
                }
                Value::Object(out)
            }
            other => other.clone(),
        }
    }

    fn normalise_body(&self, kind: &str, answer: &Answer) -> Value {
        let json = answer
            .header("content-type")
            .is_some_and(|t| t.contains("json"));
        let body = if json {
            match serde_json::from_str::<Value>(&answer.body) {
                Ok(v) => self.normalise(&v),
                Err(_) => json!({ "<unparseable JSON>": self.normalise_str(&answer.body) }),
            }
        } else {
            Value::String(self.normalise_str(&answer.body))
        };
        if kind.contains("agent-self") && body.is_object() {
            return reduce_self(&body);
        }
        let mut body = body;
        if kind.starts_with("catalog-services") || kind.starts_with("blocking-catalog") {
            // The tags of a service are a set: Consul lists them in map order.
            for tags in body
                .as_object_mut()
                .into_iter()
                .flat_map(|o| o.values_mut())
            {
                if let Value::Array(items) = tags {
                    items.sort_by_key(Value::to_string);
                }
            }
        }
        consul_service_port(&mut body);
        body
    }
}

/// The `consul` service's port is the server RPC port, picked at run time.
fn consul_service_port(v: &mut Value) {
    match v {
        Value::Object(o) => {
            let is_consul = o.get("Service").and_then(Value::as_str) == Some("consul")
                || o.get("ServiceName").and_then(Value::as_str) == Some("consul");
            for (k, v) in o.iter_mut() {
                if is_consul && (k == "Port" || k == "ServicePort") && v.is_number() {
                    *v = json!("<server port>");
                } else if is_consul && (k == "Meta" || k == "ServiceMeta") && v.is_object() {
                    if let Some(version) = v.get_mut("version") {
                        *version = json!("<version>");
                    }
                } else {
                    consul_service_port(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(consul_service_port),
        _ => {}
    }
}

/// `agent/self` as clients read it: `Config` (what `consul info` and the Go client read),
/// `Stats` (every section `consul info` prints), `Member`, `Coord`, `Meta`, the top-level keys
/// and `DebugConfig.DNSDomain`. Normalised (after node name, UUIDs and `127.0.0.1:` ports):
/// versions, revisions and build dates; raft indexes and terms; serf's Lamport clocks
/// (timestamps); the serf port; and the count of the process's concurrent tasks (goroutines),
/// which differs between any two runs of the same agent.
fn reduce_self(body: &Value) -> Value {
    let mut config = body["Config"].clone();
    for key in ["Revision", "Version", "BuildDate"] {
        config[key] = json!("<version>");
    }
    let mut stats = body["Stats"].clone();
    for (section, key, placeholder) in [
        ("build", "revision", "<version>"),
        ("build", "version", "<version>"),
        ("runtime", "version", "<version>"),
        ("runtime", "goroutines", "<task count>"),
        ("raft", "applied_index", "<index>"),
        ("raft", "commit_index", "<index>"),
        ("raft", "last_log_index", "<index>"),
        ("raft", "last_log_term", "<index>"),
        ("raft", "term", "<index>"),
        ("serf_lan", "event_time", "<timestamp>"),
        ("serf_lan", "member_time", "<timestamp>"),
        ("serf_lan", "query_time", "<timestamp>"),
        ("serf_wan", "event_time", "<timestamp>"),
        ("serf_wan", "member_time", "<timestamp>"),
        ("serf_wan", "query_time", "<timestamp>"),
    ] {
        if let Some(v) = stats.get_mut(section).and_then(|s| s.get_mut(key)) {
            let number = v.as_str().is_some_and(|n| n.parse::<u64>().is_ok());
            *v = if placeholder == "<version>" || number {
                json!(placeholder)
            } else {
                json!(format!("{placeholder}: not a number: {v}"))
            };
        }
    }
    let mut member = body["Member"].clone();
    member["Port"] = json!(type_name(&member["Port"]));
    if let Some(tags) = member.get_mut("Tags") {
        for (key, placeholder) in [
            ("port", "<port>"),
            ("wan_join_port", "<port>"),
            ("build", "<version>"),
        ] {
            if let Some(v) = tags.get_mut(key) {
                *v = json!(placeholder);
            }
        }
    }
    json!({
        "Config": config,
        "Stats": stats,
        "Member": member,
        "Coord": body["Coord"],
        "Meta": body["Meta"],
        "DebugConfig.DNSDomain": body["DebugConfig"]["DNSDomain"],
        "top-level keys": body.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()),
    })
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// `s` percent-encoded for a query parameter (unreserved characters kept).
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Replaces every UUID (8-4-4-4-12 hex digits) with `<uuid>`.
fn replace_uuids(s: &str) -> String {
    let bytes = s.as_bytes();
    let is_uuid = |w: &[u8]| {
        w.len() == 36
            && w.iter().enumerate().all(|(i, b)| match i {
                8 | 13 | 18 | 23 => *b == b'-',
                _ => b.is_ascii_hexdigit(),
            })
    };
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < bytes.len() {
        if i + 36 <= bytes.len() && is_uuid(&bytes[i..i + 36]) {
            out.push_str("<uuid>");
            i += 36;
        } else {
            let c = s[i..].chars().next().expect("char boundary");
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// Replaces the port of every `127.0.0.1:<port>` with `<port>`.
fn replace_ports(s: &str) -> String {
    const HOST: &str = "127.0.0.1:";
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find(HOST) {
        out.push_str(&rest[..at + HOST.len()]);
        rest = &rest[at + HOST.len()..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 {
            out.push_str("<port>");
            rest = &rest[digits..];
        }
    }
    out.push_str(rest);
    out
}

// ----- the script -----

/// The requests, run once against each agent without ACLs.
fn script(r: &mut Run<'_>) {
    let node = r.target.node.clone();
    let closed = r.closed_port;

    r.get("status-leader", "/v1/status/leader");
    r.get("status-peers", "/v1/status/peers");
    r.get("catalog-datacenters", "/v1/catalog/datacenters");
    r.get("catalog-nodes", "/v1/catalog/nodes");
    r.get("agent-self", "/v1/agent/self");
    // `consul operator raft list-peers`.
    r.get(
        "operator-raft-configuration",
        "/v1/operator/raft/configuration",
    );
    r.get(
        "operator-raft-configuration-stale",
        "/v1/operator/raft/configuration?stale",
    );
    r.get(
        "operator-raft-configuration-dc-unknown",
        "/v1/operator/raft/configuration?dc=nowhere",
    );
    r.get("catalog-services-empty", "/v1/catalog/services");
    r.get("health-service-unknown", "/v1/health/service/nothing");
    r.get("catalog-service-unknown", "/v1/catalog/service/nothing");

    // Registration in the forms clients send.
    r.register(
        "register-go-pascal-case",
        json!({
            "ID": "web-1", "Name": "web", "Tags": ["primary", "v1"], "Port": 8080,
            "Address": "127.0.0.1", "Meta": {"version": "1"},
            "Weights": {"Passing": 10, "Warning": 1}, "EnableTagOverride": false,
            "Check": {
                "CheckID": "web-1-ttl", "Name": "web ttl", "TTL": "10m", "Status": "passing",
                "Notes": "from go", "DeregisterCriticalServiceAfter": "90m"
            }
        }),
    );
    r.register(
        "register-python-lower-case",
        json!({
            "name": "api", "id": "api-1", "address": "127.0.0.1", "port": 9090,
            "tags": ["x"], "meta": {"team": "core"}, "weights": {"passing": 2, "warning": 1},
            "enabletagoverride": true,
            "checks": [{"ttl": "10m", "status": "warning", "DeregisterCriticalServiceAfter": "90m"}]
        }),
    );
    r.register(
        "register-snake-case",
        json!({
            "name": "snake", "id": "snake-1", "port": 81, "enable_tag_override": true,
            "tagged_addresses": {"lan": {"address": "127.0.0.1", "port": 81}},
            "check": {"checkid": "snake-ttl", "ttl": "10m", "status": "passing",
                      "deregister_critical_service_after": "90m", "tls_skip_verify": true}
        }),
    );
    r.register(
        "register-snake-case-check-id",
        json!({"name": "snake2", "check": {"check_id": "c", "ttl": "10m"}}),
    );
    r.register("register-unknown-field", json!({"Name": "x", "Bogus": 1}));
    r.register(
        "register-http-check",
        json!({
            "Name": "httpsvc", "Port": closed,
            "Check": {"HTTP": format!("http://127.0.0.1:{closed}/health"), "Interval": "24h",
                      "Timeout": "1s", "Status": "critical"}
        }),
    );
    r.register(
        "register-tcp-check",
        json!({
            "Name": "tcpsvc", "Port": closed,
            "Check": {"TCP": format!("127.0.0.1:{closed}"), "Interval": "24h", "Status": "critical"}
        }),
    );
    r.register(
        "register-grpc-check",
        json!({
            "Name": "grpcsvc", "Port": closed,
            "Check": {"GRPC": format!("127.0.0.1:{closed}/pkg.Svc"), "GRPCUseTLS": true,
                      "TLSServerName": "greeter.internal", "TLSSkipVerify": true,
                      "Interval": "24h", "Timeout": "1s", "Status": "critical"}
        }),
    );
    // A service without checks leaves the checks' index where it is.
    r.get("health-state-before-checkless", "/v1/health/state/any");
    r.get("catalog-nodes-before-checkless", "/v1/catalog/nodes");
    r.get(
        "catalog-node-before-checkless",
        &format!("/v1/catalog/node/{node}"),
    );
    r.register(
        "register-checkless",
        json!({"ID": "checkless-1", "Name": "checkless", "Port": 7001}),
    );
    r.get("health-state-after-checkless", "/v1/health/state/any");
    r.get("catalog-nodes-after-checkless", "/v1/catalog/nodes");
    r.get(
        "catalog-node-after-checkless",
        &format!("/v1/catalog/node/{node}"),
    );
    r.send(
        "deregister-checkless",
        "PUT",
        "/v1/agent/service/deregister/checkless-1",
        Body::None,
    );
    r.get("health-state-after-checkless-left", "/v1/health/state/any");

    r.register(
        "register-ttl-initial-critical",
        json!({"Name": "ttlsvc", "Check": {"TTL": "10m"}}),
    );
    // A registration over an existing check keeps that check's status (Consul restores it
    // "to avoid potential flapping"), with and without replace-existing-checks.
    r.register(
        "register-again-keeps-check-status",
        json!({"Name": "ttlsvc", "Check": {"TTL": "10m", "Status": "passing"}}),
    );
    r.put(
        "register-again-replace-keeps-check-status",
        "/v1/agent/service/register?replace-existing-checks",
        json!({"Name": "ttlsvc", "Check": {"TTL": "10m", "Status": "warning"}}),
    );
    r.get("agent-checks-after-registering-again", "/v1/agent/checks");
    // A status in the body only sets a new check's first state: registering again with
    // another one changes nothing in the catalog (the check's ModifyIndex stays).
    r.get(
        "health-state-after-registering-again",
        "/v1/health/state/any",
    );
    r.register(
        "register-several-checks",
        json!({
            "ID": "multi-1", "Name": "multi",
            "Checks": [{"TTL": "10m", "Status": "passing"},
                       {"TTL": "10m", "Status": "warning", "Name": "second"}]
        }),
    );
    r.register(
        "register-check-and-checks",
        json!({
            "ID": "both-1", "Name": "both",
            "Check": {"TTL": "10m", "Status": "passing"},
            "Checks": [{"TTL": "10m", "Status": "passing"}]
        }),
    );
    r.put(
        "register-replace-existing-checks",
        "/v1/agent/service/register?replace-existing-checks",
        json!({"ID": "multi-1", "Name": "multi", "Tags": ["replaced"],
               "Checks": [{"CheckID": "multi-only", "TTL": "10m", "Status": "passing"}]}),
    );

    // Invalid registrations.
    r.register_raw("register-bad-json", "{not json");
    r.register_raw("register-empty-body", "");
    r.register_raw("register-wrong-type", r#"{"Name": 5}"#);
    r.register("register-missing-name", json!({"Port": 80}));
    r.register(
        "register-address-any",
        json!({"Name": "x", "Address": "0.0.0.0"}),
    );
    r.register(
        "register-address-any-v6",
        json!({"Name": "x", "Address": "::"}),
    );
    r.register(
        "register-weights-passing-zero",
        json!({"Name": "x", "Weights": {"Passing": 0, "Warning": 1}}),
    );
    r.register(
        "register-weights-warning-negative",
        json!({"Name": "x", "Weights": {"Passing": 1, "Warning": -1}}),
    );
    r.register(
        "register-meta-bad-key",
        json!({"Name": "x", "Meta": {"bad key!": "v"}}),
    );
    r.register(
        "register-meta-reserved-key",
        json!({"Name": "x", "Meta": {"consul-x": "v"}}),
    );
    r.register(
        "register-interval-and-ttl",
        json!({"Name": "x", "Check": {"TTL": "10s", "Interval": "10s"}}),
    );
    r.register(
        "register-http-without-interval",
        json!({"Name": "x", "Check": {"HTTP": format!("http://127.0.0.1:{closed}/")}}),
    );
    r.register(
        "register-bad-check-status",
        json!({"Name": "x", "Check": {"TTL": "10s", "Status": "bogus"}}),
    );
    r.register("register-port-70000", json!({"Name": "x", "Port": 70000}));
    r.register("register-port-negative", json!({"Name": "x", "Port": -1}));
    r.register_raw(
        "register-port-huge",
        r#"{"Name": "x", "Port": 99999999999}"#,
    );
    r.get("agent-services", "/v1/agent/services");

    // Agent views.
    r.get("agent-service", "/v1/agent/service/web-1");
    r.get("agent-service-unknown", "/v1/agent/service/nothing");
    r.get("agent-checks", "/v1/agent/checks");
    r.get("agent-health-name", "/v1/agent/health/service/name/web");
    r.get(
        "agent-health-name-text",
        "/v1/agent/health/service/name/web?format=text",
    );
    r.get(
        "agent-health-name-warning",
        "/v1/agent/health/service/name/api",
    );
    r.get(
        "agent-health-name-critical-text",
        "/v1/agent/health/service/name/ttlsvc?format=text",
    );
    // A service registered without tags: its checks' ServiceTags in this view.
    r.get(
        "agent-health-name-critical",
        "/v1/agent/health/service/name/ttlsvc",
    );
    r.get(
        "agent-health-name-unknown",
        "/v1/agent/health/service/name/nothing",
    );
    r.get("agent-health-id", "/v1/agent/health/service/id/web-1");
    r.get(
        "agent-health-id-text",
        "/v1/agent/health/service/id/api-1?format=text",
    );
    r.get(
        "agent-health-id-unknown",
        "/v1/agent/health/service/id/nothing",
    );

    // TTL updates (the service list's index stays where it is through them).
    r.get("catalog-services-before-ttl", "/v1/catalog/services");
    r.send(
        "ttl-pass",
        "PUT",
        "/v1/agent/check/pass/service:ttlsvc?note=all%20good",
        Body::None,
    );
    r.send(
        "ttl-warn",
        "PUT",
        "/v1/agent/check/warn/service:multi-1?note=hmm",
        Body::None,
    );
    r.send(
        "ttl-fail",
        "PUT",
        "/v1/agent/check/fail/multi-only",
        Body::None,
    );
    r.put(
        "ttl-update",
        "/v1/agent/check/update/multi-only",
        json!({"Status": "passing", "Output": "fine again"}),
    );
    r.get("catalog-services-after-ttl", "/v1/catalog/services");
    r.put(
        "ttl-update-bad-status",
        "/v1/agent/check/update/multi-only",
        json!({"Status": "great"}),
    );
    r.send(
        "ttl-update-bad-json",
        "PUT",
        "/v1/agent/check/update/multi-only",
        Body::Raw("{".into()),
    );
    r.send(
        "ttl-pass-unknown",
        "PUT",
        "/v1/agent/check/pass/nothing",
        Body::None,
    );
    r.send(
        "ttl-pass-non-ttl",
        "PUT",
        "/v1/agent/check/pass/service:httpsvc",
        Body::None,
    );
    r.send(
        "ttl-pass-get",
        "GET",
        "/v1/agent/check/pass/web-1-ttl",
        Body::None,
    );

    // Check registration.
    r.put(
        "check-register-service",
        "/v1/agent/check/register",
        json!({"Name": "extra", "ID": "extra", "TTL": "10m", "ServiceID": "web-1",
               "Status": "passing"}),
    );
    r.put(
        "check-register-checkid-field",
        "/v1/agent/check/register",
        json!({"Name": "other", "CheckID": "other", "TTL": "10m"}),
    );
    r.put(
        "check-register-node",
        "/v1/agent/check/register",
        json!({"Name": "node check", "TTL": "10m", "Status": "passing"}),
    );
    r.put(
        "check-register-missing-name",
        "/v1/agent/check/register",
        json!({"TTL": "10m"}),
    );
    r.put(
        "check-register-unknown-service",
        "/v1/agent/check/register",
        json!({"Name": "orphan", "TTL": "10m", "ServiceID": "nothing"}),
    );
    r.put(
        "check-register-bad-status",
        "/v1/agent/check/register",
        json!({"Name": "bad", "TTL": "10m", "Status": "bogus"}),
    );
    // The node's own checks count in every instance's local health.
    r.get(
        "agent-health-id-with-node-check",
        "/v1/agent/health/service/id/web-1",
    );
    r.send(
        "check-deregister",
        "PUT",
        "/v1/agent/check/deregister/node%20check",
        Body::None,
    );
    r.send(
        "check-deregister-unknown",
        "PUT",
        "/v1/agent/check/deregister/nothing",
        Body::None,
    );
    r.get("agent-checks-after-updates", "/v1/agent/checks");
    // `consul info` with services and TTL checks registered.
    r.get("agent-self-with-services", "/v1/agent/self");

    // Health and catalog views, once the catalog has caught up.
    r.settle();
    r.get("health-service", "/v1/health/service/web");
    r.get("health-service-passing", "/v1/health/service/web?passing");
    r.get(
        "health-service-passing-false",
        "/v1/health/service/api?passing=false",
    );
    r.get(
        "health-service-passing-1",
        "/v1/health/service/api?passing=1",
    );
    r.get(
        "health-service-passing-bad",
        "/v1/health/service/web?passing=maybe",
    );
    r.get("health-service-tag", "/v1/health/service/web?tag=primary");
    r.get(
        "health-service-tag-missing",
        "/v1/health/service/web?tag=none",
    );
    r.get(
        "health-service-filter",
        "/v1/health/service/web?filter=Service.Port%20%3D%3D%208080",
    );
    r.get(
        "health-service-filter-bad",
        "/v1/health/service/web?filter=Service.Port%20%3D%3D%3D",
    );
    // Filters are checked against the fields of the type each endpoint filters.
    for (kind, path, expr) in [
        (
            "health-service-filter-unknown-field",
            "/v1/health/service/web",
            "Service.Nope == 1",
        ),
        (
            "health-service-filter-bad-value",
            "/v1/health/service/web",
            "Service.Port == abc",
        ),
        (
            "health-service-filter-wrong-operator",
            "/v1/health/service/web",
            "Service.Tags == v1",
        ),
        (
            "health-service-filter-unclosed",
            "/v1/health/service/web",
            "(Service.Port == 8080",
        ),
        (
            "health-service-filter-any-check",
            "/v1/health/service/web",
            "Checks.Status == passing and Service.Meta.version == \"1\"",
        ),
        (
            "blocking-health-filter-bad",
            "/v1/health/service/web?index=1&wait=1s",
            "Service.Port ===",
        ),
        (
            "agent-services-filter",
            "/v1/agent/services",
            "Port == 8080",
        ),
        (
            "agent-services-filter-unknown-field",
            "/v1/agent/services",
            "Service.Port == 8080",
        ),
        (
            "agent-checks-filter",
            "/v1/agent/checks",
            "Status == passing",
        ),
        (
            "agent-checks-filter-unknown-field",
            "/v1/agent/checks",
            "Service.Port == 8080",
        ),
        (
            "catalog-service-filter",
            "/v1/catalog/service/web",
            "ServiceMeta.version == \"1\" and \"v1\" in ServiceTags",
        ),
        (
            "catalog-nodes-filter-unknown-field",
            "/v1/catalog/nodes",
            "Service == x",
        ),
        (
            "health-state-filter",
            "/v1/health/state/any",
            "Status == critical",
        ),
    ] {
        let sep = if path.contains('?') { '&' } else { '?' };
        r.get(kind, &format!("{path}{sep}filter={}", encode(expr)));
    }
    r.get("health-service-dc", "/v1/health/service/web?dc=dc1");
    r.get(
        "health-service-dc-unknown",
        "/v1/health/service/web?dc=nowhere",
    );
    r.get("health-service-multi", "/v1/health/service/multi");
    r.get("health-checks", "/v1/health/checks/web");
    r.get("health-checks-unknown", "/v1/health/checks/nothing");
    r.get("health-state-any", "/v1/health/state/any");
    r.get("health-state-passing", "/v1/health/state/passing");
    r.get("health-state-warning", "/v1/health/state/warning");
    r.get("health-state-critical", "/v1/health/state/critical");
    r.get("health-state-bogus", "/v1/health/state/bogus");
    r.get("health-node", &format!("/v1/health/node/{node}"));
    r.get("health-node-unknown", "/v1/health/node/nowhere");
    r.get("catalog-services", "/v1/catalog/services");
    r.get("catalog-service", "/v1/catalog/service/web");
    r.get("catalog-service-tag", "/v1/catalog/service/web?tag=v1");
    r.get("catalog-node", &format!("/v1/catalog/node/{node}"));
    r.get("catalog-nodes-after", "/v1/catalog/nodes");

    // Blocking queries.
    let index = r.index_now("/v1/health/service/web");
    r.blocking(
        "blocking-health-timeout",
        &format!("/v1/health/service/web?index={index}&wait=1s"),
        SHORT_WAIT,
    );
    let index = r.index_now("/v1/health/service/web");
    r.blocking_woken(
        "blocking-health-woken",
        &format!("/v1/health/service/web?index={index}&wait=8s"),
        LONG_WAIT,
        |r| {
            r.register(
                "register-second-instance",
                json!({"ID": "web-2", "Name": "web", "Port": 8081,
                       "Check": {"TTL": "10m", "Status": "passing"}}),
            );
        },
    );
    let index = r.index_now("/v1/catalog/services");
    r.blocking(
        "blocking-catalog-timeout",
        &format!("/v1/catalog/services?index={index}&wait=1s"),
        SHORT_WAIT,
    );
    // An index above the agent's (a client that saw it before it lost its state) is held for
    // the whole wait, then answered with the current index.
    let index = r.index_now("/v1/health/service/web");
    r.blocking(
        "blocking-health-index-ahead",
        &format!("/v1/health/service/web?index={}&wait=1s", index + 1000),
        SHORT_WAIT,
    );
    let index = r.index_now("/v1/catalog/services");
    r.blocking(
        "blocking-catalog-index-ahead",
        &format!("/v1/catalog/services?index={}&wait=1s", index + 1000),
        SHORT_WAIT,
    );
    r.get(
        "blocking-wait-invalid",
        "/v1/health/service/web?index=1&wait=soon",
    );
    r.get("blocking-index-invalid", "/v1/health/service/web?index=abc");
    let hash = r.content_hash("/v1/agent/service/web-1");
    r.blocking(
        "blocking-hash-timeout",
        &format!("/v1/agent/service/web-1?hash={hash}&wait=1s"),
        SHORT_WAIT,
    );
    r.get(
        "blocking-hash-stale",
        "/v1/agent/service/web-1?hash=0123456789abcdef&wait=1s",
    );

    // KV.
    r.send(
        "kv-put",
        "PUT",
        "/v1/kv/app/config",
        Body::Raw("hello".into()),
    );
    r.send(
        "kv-put-flags",
        "PUT",
        "/v1/kv/app/flagged?flags=42",
        Body::Raw("flagged".into()),
    );
    r.get("kv-get", "/v1/kv/app/config");
    r.get("kv-get-raw", "/v1/kv/app/config?raw");
    r.get("kv-recurse", "/v1/kv/app?recurse");
    r.get("kv-keys", "/v1/kv/?keys");
    r.get("kv-keys-separator", "/v1/kv/?keys&separator=/");
    r.get("kv-get-missing", "/v1/kv/app/missing");
    let token = r.target.admin.clone();
    let modify = r
        .raw(
            "GET",
            "/v1/kv/app/config",
            token.as_deref(),
            &Body::None,
            SHORT_WAIT * 5,
        )
        .json()
        .ok()
        .and_then(|v| v[0]["ModifyIndex"].as_u64())
        .expect("ModifyIndex of app/config");
    r.send(
        "kv-cas-wrong",
        "PUT",
        &format!("/v1/kv/app/config?cas={}", modify + 1000),
        Body::Raw("nope".into()),
    );
    r.send(
        "kv-cas-right",
        "PUT",
        &format!("/v1/kv/app/config?cas={modify}"),
        Body::Raw("swapped".into()),
    );
    let index = r.index_now("/v1/kv/app/config");
    r.blocking(
        "kv-blocking-timeout",
        &format!("/v1/kv/app/config?index={index}&wait=1s"),
        SHORT_WAIT,
    );
    r.send("kv-delete", "DELETE", "/v1/kv/app/config", Body::None);
    r.get("kv-get-after-delete", "/v1/kv/app/config");
    r.send(
        "kv-delete-recurse",
        "DELETE",
        "/v1/kv/app?recurse",
        Body::None,
    );
    r.get("kv-recurse-after-delete", "/v1/kv/app?recurse");

    // Deregistration.
    r.send(
        "deregister",
        "PUT",
        "/v1/agent/service/deregister/web-2",
        Body::None,
    );
    r.send(
        "deregister-unknown",
        "PUT",
        "/v1/agent/service/deregister/nothing",
        Body::None,
    );
    r.get("agent-services-after-deregister", "/v1/agent/services");

    // Unknown paths and wrong methods.
    r.get("unknown-v1-path", "/v1/nothing/here");
    r.get("unknown-path", "/nothing");
    r.send(
        "wrong-method-services",
        "DELETE",
        "/v1/agent/services",
        Body::None,
    );
    r.send(
        "wrong-method-register",
        "GET",
        "/v1/agent/service/register",
        Body::None,
    );
    r.send(
        "wrong-method-health",
        "PUT",
        "/v1/health/service/web",
        Body::None,
    );
    r.send(
        "wrong-method-operator-raft",
        "PUT",
        "/v1/operator/raft/configuration",
        Body::None,
    );
    r.send("wrong-method-kv", "POST", "/v1/kv/app/config", Body::None);
}

/// The requests run against each agent with ACLs on (default deny).
fn acl_script(r: &mut Run<'_>) {
    let service = json!({"ID": "web-1", "Name": "web", "Port": 8080,
                         "Check": {"TTL": "10m", "Status": "passing"}});
    let register = "/v1/agent/service/register";
    r.send_as(
        "acl-register-anonymous",
        "PUT",
        register,
        None,
        Body::Json(service.clone()),
    );
    r.send_as(
        "acl-register-unknown-token",
        "PUT",
        register,
        Some("00000000-1111-2222-3333-444444444444"),
        Body::Json(service.clone()),
    );
    let policy = r.target.policy_token.clone();
    r.send_as(
        "acl-register-policy-token",
        "PUT",
        register,
        policy.as_deref(),
        Body::Json(service.clone()),
    );
    r.settle();
    r.send_as(
        "acl-agent-services-policy-token",
        "GET",
        "/v1/agent/services",
        policy.as_deref(),
        Body::None,
    );
    r.send_as(
        "acl-agent-services-anonymous",
        "GET",
        "/v1/agent/services",
        None,
        Body::None,
    );
    r.send_as(
        "acl-agent-services-named-anonymous",
        "GET",
        "/v1/agent/services",
        Some("anonymous"),
        Body::None,
    );
    r.send_as(
        "acl-agent-checks-anonymous",
        "GET",
        "/v1/agent/checks",
        None,
        Body::None,
    );
    r.send_as(
        "acl-catalog-services-anonymous",
        "GET",
        "/v1/catalog/services",
        None,
        Body::None,
    );
    r.send_as(
        "acl-health-service-anonymous",
        "GET",
        "/v1/health/service/web",
        None,
        Body::None,
    );
    r.send_as(
        "acl-health-service-policy-token",
        "GET",
        "/v1/health/service/web",
        policy.as_deref(),
        Body::None,
    );
    r.send_as(
        "acl-agent-services-unknown-token",
        "GET",
        "/v1/agent/services",
        Some("00000000-1111-2222-3333-444444444444"),
        Body::None,
    );
    r.send_as(
        "acl-agent-self-anonymous",
        "GET",
        "/v1/agent/self",
        None,
        Body::None,
    );
    r.get("acl-agent-self-management", "/v1/agent/self");
    r.send_as(
        "acl-operator-raft-anonymous",
        "GET",
        "/v1/operator/raft/configuration",
        None,
        Body::None,
    );
    r.get(
        "acl-operator-raft-management",
        "/v1/operator/raft/configuration",
    );
    r.send_as(
        "acl-deregister-anonymous",
        "PUT",
        "/v1/agent/service/deregister/web-1",
        None,
        Body::None,
    );
    r.send_as(
        "acl-ttl-pass-anonymous",
        "PUT",
        "/v1/agent/check/pass/service:web-1",
        None,
        Body::None,
    );
    r.send_as(
        "acl-deregister-policy-token",
        "PUT",
        "/v1/agent/service/deregister/web-1",
        policy.as_deref(),
        Body::None,
    );
}

// ----- comparison -----

/// One difference between the two answers to a request.
struct Difference {
    kind: String,
    key: String,
    dev: Value,
    consul: Value,
}

/// The identity of an array element, to match elements of both answers.
fn identity(v: &Value) -> Option<String> {
    let o = v.as_object()?;
    for field in ["CheckID", "ServiceID", "Key"] {
        if let Some(s) = o.get(field).and_then(Value::as_str) {
            return Some(format!("{field}={s}"));
        }
    }
    if let Some(s) = o
        .get("Service")
        .and_then(|s| s.get("ID"))
        .and_then(Value::as_str)
    {
        return Some(format!("Service.ID={s}"));
    }
    for field in ["Node", "ID", "Name"] {
        if let Some(s) = o.get(field).and_then(Value::as_str) {
            return Some(format!("{field}={s}"));
        }
    }
    None
}

fn compare(path: &str, dev: &Value, consul: &Value, out: &mut Vec<(String, Value, Value)>) {
    let absent = || json!("<absent>");
    match (dev, consul) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                let sub = format!("{path}.{k}");
                match (a.get(k), b.get(k)) {
                    (Some(x), Some(y)) => compare(&sub, x, y, out),
                    (Some(x), None) => out.push((sub, x.clone(), absent())),
                    (None, Some(y)) => out.push((sub, absent(), y.clone())),
                    (None, None) => {}
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            let ids_a: Option<Vec<String>> = a.iter().map(identity).collect();
            let ids_b: Option<Vec<String>> = b.iter().map(identity).collect();
            match (ids_a, ids_b) {
                (Some(ia), Some(ib)) if !a.is_empty() || !b.is_empty() => {
                    let ma: BTreeMap<&String, &Value> = ia.iter().zip(a).collect();
                    let mb: BTreeMap<&String, &Value> = ib.iter().zip(b).collect();
                    let keys: BTreeSet<&&String> = ma.keys().chain(mb.keys()).collect();
                    for k in keys {
                        let sub = format!("{path}[{k}]");
                        match (ma.get(*k), mb.get(*k)) {
                            (Some(x), Some(y)) => compare(&sub, x, y, out),
                            (Some(x), None) => out.push((sub, (*x).clone(), absent())),
                            (None, Some(y)) => out.push((sub, absent(), (*y).clone())),
                            (None, None) => {}
                        }
                    }
                }
                _ if a.len() == b.len() => {
                    for (x, y) in a.iter().zip(b) {
                        compare(&format!("{path}[]"), x, y, out);
                    }
                }
                _ => out.push((path.to_owned(), dev.clone(), consul.clone())),
            }
        }
        (x, y) if x != y => out.push((path.to_owned(), x.clone(), y.clone())),
        _ => {}
    }
}

/// The explanation of a difference, if it is listed.
fn explanation(
    kind: &str,
    key: &str,
) -> Option<&'static (&'static str, &'static str, &'static str)> {
    EXPLAINED
        .iter()
        .find(|(k, key_, _)| *k == kind && *key_ == key)
}

fn explained(kind: &str, key: &str) -> bool {
    explanation(kind, key).is_some()
}

/// What a difference is about when it is about what differs between any two agents: `identity`
/// (node name and ID), `address`, `port`, `index` (raft indexes and terms), `timestamp` or
/// `version`. `None`: the agents behave differently.
fn category(key: &str) -> Option<&'static str> {
    // The field names along the key, without the element identities in brackets.
    let mut path = String::new();
    let mut depth = 0;
    for c in key.chars() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            c if depth == 0 => path.push(c),
            _ => {}
        }
    }
    let names: Vec<&str> = path.split('.').collect();
    let last = names.last().copied().unwrap_or_default();
    let under = |n: &str| names.contains(&n);
    Some(match last {
        "CreateIndex"
        | "ModifyIndex"
        | "LastIndex"
        | "Index"
        | "x-consul-index"
        | "applied_index"
        | "commit_index"
        | "last_log_index"
        | "last_log_term"
        | "term"
        | "last_snapshot_index"
        | "last_snapshot_term"
        | "latest_configuration_index" => "index",
        "Node" | "NodeName" | "NodeID" | "id" => "identity",
        "ID" if under("Node") || under("Servers") || under("Config") => "identity",
        "Name" if under("Member") => "identity",
        "Address" | "Addr" | "ServiceAddress" | "leader_addr" | "latest_configuration" => "address",
        _ if under("TaggedAddresses") || under("ServiceTaggedAddresses") => "address",
        "Port" | "ServicePort" | "port" | "wan_join_port" => "port",
        "event_time" | "member_time" | "query_time" | "x-consul-lastcontact" => "timestamp",
        "Version" | "Revision" | "BuildDate" | "version" | "revision" | "build" => "version",
        _ => return None,
    })
}

fn differences(dev: &[Record], consul: &[Record]) -> Vec<Difference> {
    let dev_kinds: Vec<&str> = dev.iter().map(|r| r.kind.as_str()).collect();
    let consul_kinds: Vec<&str> = consul.iter().map(|r| r.kind.as_str()).collect();
    assert_eq!(dev_kinds, consul_kinds, "the script ran differently");
    let mut out = Vec::new();
    for (d, c) in dev.iter().zip(consul) {
        let mut found = Vec::new();
        compare("", &d.view, &c.view, &mut found);
        let mut seen = BTreeSet::new();
        for (key, dv, cv) in found {
            let key = key.trim_start_matches('.').to_owned();
            if seen.insert(key.clone()) {
                out.push(Difference {
                    kind: d.kind.clone(),
                    key,
                    dev: dv,
                    consul: cv,
                });
            }
        }
    }
    out
}

fn shown(r: &Record) -> String {
    let mut body = r.answer.body.clone();
    if body.len() > 1500 {
        body.truncate(1500);
        body.push_str("...");
    }
    let headers: Vec<String> = r
        .answer
        .headers
        .iter()
        .filter(|(n, _)| n.starts_with("x-consul") || n == "content-type" || n == "allow")
        .map(|(n, v)| format!("{n}: {v}"))
        .collect();
    format!("{} [{}] {body}", r.answer.status, headers.join(", "))
}

// ----- README table -----

/// The (kind, key) pairs of the "Differences from Consul" table in `devagent/README.md`.
fn readme_table() -> BTreeSet<(String, String)> {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("read devagent/README.md");
    let Some(section) = readme.split("## Differences from Consul").nth(1) else {
        return BTreeSet::new();
    };
    let section = section.split("\n## ").next().unwrap_or_default();
    section
        .lines()
        .filter(|l| l.starts_with('|'))
        .filter_map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split('|').map(str::trim).collect();
            let cell = |i: usize| {
                cells
                    .get(i)
                    .and_then(|c| c.strip_prefix('`'))
                    .and_then(|c| c.strip_suffix('`'))
                    .map(str::to_owned)
            };
            Some((cell(0)?, cell(1)?))
        })
        .collect()
}

fn target_dir() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("devagent sits in the workspace")
        .to_path_buf();
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|t| {
            if t.is_absolute() {
                t
            } else {
                workspace.join(t)
            }
        })
        .unwrap_or_else(|| workspace.join("target"))
}

#[test]
fn differences_are_sorted_into_what_differs_between_any_two_agents_and_behaviour() {
    for (key, want) in [
        ("body[Service.ID=web-1].Node.ModifyIndex", Some("index")),
        ("body[Node=<node>].ModifyIndex", Some("index")),
        ("headers.x-consul-index", Some("index")),
        ("body.Stats.raft.term", Some("index")),
        ("body.Member.Name", Some("identity")),
        ("body.Config.NodeID", Some("identity")),
        ("body[].Node.ID", Some("identity")),
        ("body.Checks[CheckID=c].Node", Some("identity")),
        ("body.Node.TaggedAddresses.lan", Some("address")),
        ("body.Services.consul.Port", Some("port")),
        ("body.Stats.serf_lan.event_time", Some("timestamp")),
        ("body.Config.Version", Some("version")),
        ("body", None),
        ("headers.x-consul-knownleader", None),
        ("body[CheckID=extra].Interval", None),
        ("body.Checks[CheckID=web-1-ttl].Type", None),
        (
            "body[Service.ID=web-1].Checks[CheckID=c].Definition.TTL",
            None,
        ),
        ("body[Service.ID=web-1].Service.ID", None),
        ("body.web-1.ID", None),
        ("status", None),
    ] {
        assert_eq!(category(key), want, "{key}");
    }
}

// ----- the test -----

#[test]
fn dev_agent_answers_as_real_consul_does() {
    let test = "dev_agent_answers_as_real_consul_does";
    let Some(peers) = peers::require(test) else {
        return;
    };
    // Both real agents start at once: each takes a few seconds to elect itself.
    let plain = {
        let peers = peers.clone();
        std::thread::spawn(move || Consul::start(&peers, ConsulOptions::default()))
    };
    let with_acl =
        std::thread::spawn(move || Consul::start(&peers, ConsulOptions::with_acl(ACL_TOKEN)));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let dev = runtime
        .block_on(DevAgent::start(Config::default()))
        .expect("dev agent starts");
    let dev_acl = runtime
        .block_on(DevAgent::start(Config {
            acl_token: Some(ACL_TOKEN.into()),
            ..Config::default()
        }))
        .expect("dev agent with ACLs starts");
    let consul = plain.join().expect("consul starts");
    let consul_acl = with_acl.join().expect("consul with ACLs starts");
    let policy_token = consul_acl.create_token(
        "registrar",
        "service_prefix \"\" { policy = \"write\" }\nnode_prefix \"\" { policy = \"read\" }\n",
    );

    let closed_port = free_port();
    let dev_target = Target {
        name: "devagent",
        addr: dev.addr(),
        node: "devagent".into(),
        admin: None,
        policy_token: None,
    };
    let consul_target = Target {
        name: "consul",
        addr: consul.http_addr(),
        node: consul.node().to_owned(),
        admin: None,
        policy_token: None,
    };
    let dev_acl_target = Target {
        name: "devagent (ACLs)",
        addr: dev_acl.addr(),
        node: "devagent".into(),
        admin: Some(ACL_TOKEN.into()),
        policy_token: Some(ACL_TOKEN.into()),
    };
    let consul_acl_target = Target {
        name: "consul (ACLs)",
        addr: consul_acl.http_addr(),
        node: consul_acl.node().to_owned(),
        admin: Some(ACL_TOKEN.into()),
        policy_token: Some(policy_token),
    };

    let started = Instant::now();
    let mut runs = Vec::new();
    for (target, acl) in [
        (&dev_target, false),
        (&consul_target, false),
        (&dev_acl_target, true),
        (&consul_acl_target, true),
    ] {
        let mut run = Run::new(target, closed_port);
        if acl {
            acl_script(&mut run);
        } else {
            script(&mut run);
        }
        runs.push(run.records);
    }
    eprintln!(
        "script ran against all four agents in {:.1?}",
        started.elapsed()
    );

    let mut diffs = differences(&runs[0], &runs[1]);
    diffs.extend(differences(&runs[2], &runs[3]));
    let records: Vec<(&Record, &Record)> = runs[0]
        .iter()
        .zip(&runs[1])
        .chain(runs[2].iter().zip(&runs[3]))
        .collect();
    let kinds: Vec<&str> = records.iter().map(|(d, _)| d.kind.as_str()).collect();

    let unexplained: Vec<&Difference> = diffs
        .iter()
        .filter(|d| !explained(&d.kind, &d.key))
        .collect();
    let explained_count = diffs.len() - unexplained.len();
    // Differences in anything but identity, addresses, ports, indexes, timestamps and versions.
    let behavioural = diffs.iter().filter(|d| category(&d.key).is_none()).count();
    // The listed differences that are such: each argued in the README.
    let argued = EXPLAINED
        .iter()
        .filter(|(_, key, _)| category(key).is_none())
        .count();
    let report = json!({
        "request_kinds_count": kinds.len(),
        "differences_count": diffs.len(),
        "explained_count": explained_count,
        "behavioural_differences_count": behavioural,
        "kinds": kinds,
        "differences": diffs.iter().map(|d| {
            let (dev_r, consul_r) = records.iter().find(|(r, _)| r.kind == d.kind).expect("record");
            json!({
                "kind": d.kind,
                "key": d.key,
                "category": category(&d.key).unwrap_or("behaviour"),
                "explained": explanation(&d.kind, &d.key).map(|(_, _, why)| *why),
                "request": dev_r.request,
                "devagent": d.dev,
                "consul": d.consul,
                "devagent_answer": shown(dev_r),
                "consul_answer": shown(consul_r),
            })
        }).collect::<Vec<_>>(),
    });
    let dir = target_dir().join("fidelity");
    std::fs::create_dir_all(&dir).expect("create target/fidelity");
    std::fs::write(
        dir.join("report.json"),
        serde_json::to_string_pretty(&report).expect("report encodes"),
    )
    .expect("write report.json");

    let mut failures = Vec::new();
    for d in &unexplained {
        let (dev_r, consul_r) = records
            .iter()
            .find(|(r, _)| r.kind == d.kind)
            .expect("record of the kind");
        failures.push(format!(
            "[{}] {}\n  request: {}\n  devagent: {}\n  consul:   {}\n  devagent answer: {}\n  consul answer:   {}",
            d.kind,
            d.key,
            dev_r.request,
            d.dev,
            d.consul,
            shown(dev_r),
            shown(consul_r),
        ));
    }
    for (k, key, _) in EXPLAINED {
        if !diffs.iter().any(|d| d.kind == *k && d.key == *key) {
            failures.push(format!(
                "explained difference [{k}] {key} no longer occurs: remove it from EXPLAINED and the README"
            ));
        }
    }
    let listed: BTreeSet<(String, String)> = EXPLAINED
        .iter()
        .map(|(k, key, _)| ((*k).to_owned(), (*key).to_owned()))
        .collect();
    let readme = readme_table();
    if listed != readme {
        failures.push(format!(
            "the README's \"Differences from Consul\" table and EXPLAINED disagree:\n  only in EXPLAINED: {:?}\n  only in README: {:?}",
            listed.difference(&readme).collect::<Vec<_>>(),
            readme.difference(&listed).collect::<Vec<_>>(),
        ));
    }
    assert!(
        failures.is_empty(),
        "{} unexplained difference(s) between the dev agent and Consul {} (report: {}):\n\n{}",
        unexplained.len(),
        peers::CONSUL_VERSION,
        dir.join("report.json").display(),
        failures.join("\n\n")
    );
    assert_eq!(diffs.len() - explained_count, 0);
    assert_eq!(
        behavioural, argued,
        "differences in behaviour (not identity, addresses, ports, indexes, timestamps or \
         versions) must each be an exception argued in the README"
    );
    assert!(kinds.len() >= 60, "only {} request kinds", kinds.len());
    drop(dev);
    drop(dev_acl);
}
