//! The JSON shapes of Consul's answers, built from the state.
//!
//! Field names, nesting and empty values follow Consul's Go types as they marshal: lists are `[]`
//! and maps `{}` (never `null`), `omitempty` fields are left out when empty. The node is this
//! agent (address `127.0.0.1`), with the `serfHealth` check a real agent always has, and the
//! catalog holds the `consul` service a real server registers for itself.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::agent::Agent;
use crate::decode::{CheckDef, CheckForm, GoDuration, ServiceDef};
use crate::state::{Check, NODE_CREATE_INDEX, START_INDEX, Service, State, Status};

/// The address this agent advertises for its node.
pub(crate) const NODE_ADDRESS: &str = "127.0.0.1";
/// Consul's server RPC address, as `/v1/status/leader` reports it.
pub(crate) const SERVER_ADDRESS: &str = "127.0.0.1:8300";
/// The Consul version this agent answers as.
pub(crate) const VERSION: &str = "1.20.0";

#[derive(Serialize)]
pub(crate) struct Weights {
    #[serde(rename = "Passing")]
    passing: i64,
    #[serde(rename = "Warning")]
    warning: i64,
}

#[derive(Serialize)]
pub(crate) struct ServiceAddress {
    #[serde(rename = "Address")]
    address: String,
    #[serde(rename = "Port")]
    port: i64,
}

fn tagged(s: &Service) -> BTreeMap<String, ServiceAddress> {
    s.def
        .tagged_addresses
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                ServiceAddress {
                    address: v.address.clone(),
                    port: v.port,
                },
            )
        })
        .collect()
}

/// `GET /v1/agent/services` entry (`api.AgentService`).
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct AgentService {
    #[serde(skip_serializing_if = "String::is_empty")]
    kind: String,
    #[serde(rename = "ID")]
    id: String,
    service: String,
    tags: Vec<String>,
    meta: BTreeMap<String, String>,
    port: i64,
    address: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    socket_path: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    tagged_addresses: BTreeMap<String, ServiceAddress>,
    weights: Weights,
    enable_tag_override: bool,
    datacenter: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) content_hash: Option<String>,
}

pub(crate) fn agent_service(s: &Service, dc: &str) -> AgentService {
    AgentService {
        kind: s.def.kind.clone(),
        id: s.def.id.clone(),
        service: s.def.name.clone(),
        tags: s.def.tags.clone(),
        meta: s.def.meta.clone(),
        port: s.def.port,
        address: s.def.address.clone(),
        socket_path: s.def.socket_path.clone(),
        tagged_addresses: tagged(s),
        weights: Weights {
            passing: s.def.weights.0,
            warning: s.def.weights.1,
        },
        enable_tag_override: s.def.enable_tag_override,
        datacenter: dc.to_owned(),
        content_hash: None,
    }
}

/// A check (`structs.HealthCheck`) as every endpoint that lists checks writes it, agent-local
/// (`/v1/agent/checks`, without raft indexes: 0) or from the catalog.
///
/// `Definition` is empty (`{}`), as Consul leaves it for checks registered through the agent:
/// only `Interval` and `Timeout` carry the definition's durations, empty when zero for a check
/// registered with its service and Go's `0s` for one registered alone. What a registration
/// decoded to is at `GET /_devagent/checks` instead.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct HealthCheck {
    node: String,
    #[serde(rename = "CheckID")]
    check_id: String,
    name: String,
    pub(crate) status: &'static str,
    notes: String,
    output: String,
    #[serde(rename = "ServiceID")]
    service_id: String,
    service_name: String,
    service_tags: Vec<String>,
    #[serde(rename = "Type")]
    type_name: String,
    interval: String,
    timeout: String,
    exposed_port: u16,
    definition: Map<String, Value>,
    create_index: u64,
    modify_index: u64,
}

/// A check's definition as the agent decoded it from the registration, the fields that are not
/// zero: `GET /_devagent/checks`.
pub(crate) fn definition(d: &CheckDef) -> Map<String, Value> {
    let mut m = Map::new();
    let mut put = |k: &str, v: Value, keep: bool| {
        if keep {
            m.insert(k.to_owned(), v);
        }
    };
    put("HTTP", json!(d.http), !d.http.is_empty());
    put(
        "TLSServerName",
        json!(d.tls_server_name),
        !d.tls_server_name.is_empty(),
    );
    put("TLSSkipVerify", json!(true), d.tls_skip_verify);
    put("Header", json!(d.header), !d.header.is_empty());
    put("Method", json!(d.method), !d.method.is_empty());
    put("Body", json!(d.body), !d.body.is_empty());
    put("DisableRedirects", json!(true), d.disable_redirects);
    put("TCP", json!(d.tcp), !d.tcp.is_empty());
    put("UDP", json!(d.udp), !d.udp.is_empty());
    put("H2PING", json!(d.h2ping), !d.h2ping.is_empty());
    put("Interval", json!(d.interval.to_string()), d.interval.0 != 0);
    put(
        "OutputMaxSize",
        json!(d.output_max_size),
        d.output_max_size != 0,
    );
    put("Timeout", json!(d.timeout.to_string()), d.timeout.0 != 0);
    put(
        "DeregisterCriticalServiceAfter",
        json!(d.deregister_critical_service_after.to_string()),
        d.deregister_critical_service_after.0 != 0,
    );
    put(
        "ScriptArgs",
        json!(d.script_args),
        !d.script_args.is_empty(),
    );
    put(
        "DockerContainerID",
        json!(d.docker_container_id),
        !d.docker_container_id.is_empty(),
    );
    put("Shell", json!(d.shell), !d.shell.is_empty());
    put("GRPC", json!(d.grpc), !d.grpc.is_empty());
    put("GRPCUseTLS", json!(true), d.grpc_use_tls);
    put("AliasNode", json!(d.alias_node), !d.alias_node.is_empty());
    put(
        "AliasService",
        json!(d.alias_service),
        !d.alias_service.is_empty(),
    );
    put("TTL", json!(d.ttl.to_string()), d.ttl.0 != 0);
    m
}

/// A duration of a check's definition as its `Interval`/`Timeout` show it: Consul writes a
/// zero one as `""` for a check registered with its service and as `0s` for one registered
/// alone (`/v1/agent/check/register`).
fn shown_duration(form: CheckForm, d: GoDuration) -> String {
    match form {
        CheckForm::Registration => d.to_string(),
        CheckForm::ServiceCheck if d.0 != 0 => d.to_string(),
        CheckForm::ServiceCheck => String::new(),
    }
}

/// The tags of the check's service (none for a node check).
fn service_tags(c: &Check, st: &State) -> Vec<String> {
    st.services
        .get(&c.service_id)
        .map(|s| s.def.tags.clone())
        .unwrap_or_default()
}

/// The catalog's view of a check.
pub(crate) fn health_check(c: &Check, st: &State, node: &str) -> HealthCheck {
    HealthCheck {
        node: node.to_owned(),
        check_id: c.id.clone(),
        name: c.name.clone(),
        status: c.status.as_str(),
        notes: c.notes.clone(),
        output: c.output.clone(),
        service_id: c.service_id.clone(),
        service_name: c.service_name.clone(),
        service_tags: service_tags(c, st),
        type_name: c.type_name.clone(),
        interval: shown_duration(c.form, c.def.interval),
        timeout: shown_duration(c.form, c.def.timeout),
        exposed_port: 0,
        definition: Map::new(),
        create_index: c.create_index,
        modify_index: c.modify_index,
    }
}

/// The agent's own view of a check (`/v1/agent/checks`): no raft indexes.
pub(crate) fn local_check(c: &Check, st: &State, node: &str) -> HealthCheck {
    HealthCheck {
        create_index: 0,
        modify_index: 0,
        ..health_check(c, st, node)
    }
}

/// A check as `/v1/agent/health/service/*` writes it: Consul copies its local checks into the
/// Go API's `HealthCheck`, identity, status and service fields only. So `Type` is empty,
/// `Interval` and `Timeout` are absent, `Definition` holds every field at its zero value and
/// `ServiceTags` is `null` where the service has none (and for node checks).
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct AgentHealthCheck {
    node: String,
    #[serde(rename = "CheckID")]
    pub(crate) check_id: String,
    name: String,
    pub(crate) status: &'static str,
    notes: String,
    output: String,
    #[serde(rename = "ServiceID")]
    service_id: String,
    service_name: String,
    service_tags: Option<Vec<String>>,
    #[serde(rename = "Type")]
    type_name: &'static str,
    exposed_port: u16,
    definition: Value,
    create_index: u64,
    modify_index: u64,
}

pub(crate) fn agent_health_check(c: &Check, st: &State, node: &str) -> AgentHealthCheck {
    let tags = service_tags(c, st);
    AgentHealthCheck {
        node: node.to_owned(),
        check_id: c.id.clone(),
        name: c.name.clone(),
        status: c.status.as_str(),
        notes: c.notes.clone(),
        output: c.output.clone(),
        service_id: c.service_id.clone(),
        service_name: c.service_name.clone(),
        service_tags: (!tags.is_empty()).then_some(tags),
        type_name: "",
        exposed_port: 0,
        definition: json!({
            "Interval": "0s", "Timeout": "0s", "DeregisterCriticalServiceAfter": "0s",
            "HTTP": "", "Header": null, "Method": "", "Body": "", "TLSServerName": "",
            "TLSSkipVerify": false, "TCP": "", "UDP": "", "GRPC": "", "OSService": "",
            "GRPCUseTLS": false,
        }),
        create_index: 0,
        modify_index: 0,
    }
}

/// The node check every real agent has.
pub(crate) fn serf_health(node: &str) -> HealthCheck {
    HealthCheck {
        node: node.to_owned(),
        check_id: "serfHealth".into(),
        name: "Serf Health Status".into(),
        status: Status::Passing.as_str(),
        notes: String::new(),
        output: "Agent alive and reachable".into(),
        service_id: String::new(),
        service_name: String::new(),
        service_tags: Vec::new(),
        type_name: String::new(),
        interval: String::new(),
        timeout: String::new(),
        exposed_port: 0,
        definition: Map::new(),
        create_index: START_INDEX,
        modify_index: START_INDEX,
    }
}

/// `serfHealth` and the node's own checks (node maintenance).
pub(crate) fn node_checks(st: &State, node: &str) -> Vec<HealthCheck> {
    std::iter::once(serf_health(node))
        .chain(
            st.checks
                .values()
                .filter(|c| c.service_id.is_empty())
                .map(|c| health_check(c, st, node)),
        )
        .collect()
}

/// The checks of one service instance (without the node's).
pub(crate) fn instance_checks(st: &State, node: &str, service_id: &str) -> Vec<HealthCheck> {
    st.checks
        .values()
        .filter(|c| c.service_id == service_id)
        .map(|c| health_check(c, st, node))
        .collect()
}

/// The `consul` service a server registers for itself.
pub(crate) fn consul_service() -> Service {
    Service {
        def: ServiceDef {
            id: "consul".into(),
            name: "consul".into(),
            meta: BTreeMap::from([
                ("non_voter".into(), "false".into()),
                ("raft_version".into(), "3".into()),
                ("read_replica".into(), "false".into()),
                ("serf_protocol_current".into(), "2".into()),
                ("serf_protocol_max".into(), "5".into()),
                ("serf_protocol_min".into(), "1".into()),
                ("version".into(), VERSION.into()),
            ]),
            port: 8300,
            weights: (1, 1),
            ..ServiceDef::default()
        },
        create_index: START_INDEX,
        modify_index: START_INDEX,
    }
}

/// Every service in the catalog: `consul`, then the registered ones.
pub(crate) fn catalog_services(st: &State) -> Vec<Service> {
    std::iter::once(consul_service())
        .chain(st.services.values().cloned())
        .collect()
}

/// The node (`structs.Node`).
pub(crate) fn node(agent: &Agent, st: &State) -> Value {
    json!({
        "ID": st.node_id,
        "Node": agent.node,
        "Address": NODE_ADDRESS,
        "Datacenter": agent.datacenter,
        "TaggedAddresses": {
            "lan": NODE_ADDRESS, "lan_ipv4": NODE_ADDRESS,
            "wan": NODE_ADDRESS, "wan_ipv4": NODE_ADDRESS,
        },
        "Meta": {"consul-network-segment": ""},
        "CreateIndex": NODE_CREATE_INDEX,
        "ModifyIndex": START_INDEX,
    })
}

fn proxy() -> Value {
    json!({"Mode": "", "MeshGateway": {}, "Expose": {}})
}

/// A service as the health and catalog-node endpoints write it (`structs.NodeService`).
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct NodeService {
    #[serde(skip_serializing_if = "String::is_empty")]
    kind: String,
    #[serde(rename = "ID")]
    id: String,
    service: String,
    tags: Vec<String>,
    address: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    tagged_addresses: BTreeMap<String, ServiceAddress>,
    /// `null` when none was registered, as Consul's nil map marshals.
    meta: Option<BTreeMap<String, String>>,
    /// Left out when 0 (`omitempty` in Consul's type).
    #[serde(skip_serializing_if = "is_zero")]
    port: i64,
    #[serde(skip_serializing_if = "String::is_empty")]
    socket_path: String,
    weights: Weights,
    enable_tag_override: bool,
    proxy: Value,
    connect: Value,
    peer_name: String,
    create_index: u64,
    modify_index: u64,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

pub(crate) fn node_service(s: &Service) -> NodeService {
    NodeService {
        kind: s.def.kind.clone(),
        id: s.def.id.clone(),
        service: s.def.name.clone(),
        tags: s.def.tags.clone(),
        address: s.def.address.clone(),
        tagged_addresses: tagged(s),
        meta: (!s.def.meta.is_empty()).then(|| s.def.meta.clone()),
        port: s.def.port,
        socket_path: s.def.socket_path.clone(),
        weights: Weights {
            passing: s.def.weights.0,
            warning: s.def.weights.1,
        },
        enable_tag_override: s.def.enable_tag_override,
        proxy: proxy(),
        connect: json!({}),
        peer_name: String::new(),
        create_index: s.create_index,
        modify_index: s.modify_index,
    }
}

/// `GET /v1/catalog/service/:name` entry (`structs.ServiceNode`).
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ServiceNode {
    #[serde(rename = "ID")]
    id: String,
    node: String,
    address: String,
    datacenter: String,
    tagged_addresses: Value,
    node_meta: Value,
    service_kind: String,
    #[serde(rename = "ServiceID")]
    service_id: String,
    service_name: String,
    service_tags: Vec<String>,
    service_address: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    service_tagged_addresses: BTreeMap<String, ServiceAddress>,
    service_weights: Weights,
    service_meta: BTreeMap<String, String>,
    service_port: i64,
    service_socket_path: String,
    service_enable_tag_override: bool,
    service_proxy: Value,
    service_connect: Value,
    create_index: u64,
    modify_index: u64,
}

pub(crate) fn service_node(agent: &Agent, st: &State, s: &Service) -> ServiceNode {
    let node = node(agent, st);
    ServiceNode {
        id: st.node_id.clone(),
        node: agent.node.clone(),
        address: NODE_ADDRESS.into(),
        datacenter: agent.datacenter.clone(),
        tagged_addresses: node["TaggedAddresses"].clone(),
        node_meta: node["Meta"].clone(),
        service_kind: s.def.kind.clone(),
        service_id: s.def.id.clone(),
        service_name: s.def.name.clone(),
        service_tags: s.def.tags.clone(),
        service_address: s.def.address.clone(),
        service_tagged_addresses: tagged(s),
        service_weights: Weights {
            passing: s.def.weights.0,
            warning: s.def.weights.1,
        },
        service_meta: s.def.meta.clone(),
        service_port: s.def.port,
        service_socket_path: s.def.socket_path.clone(),
        service_enable_tag_override: s.def.enable_tag_override,
        service_proxy: proxy(),
        service_connect: json!({}),
        create_index: s.create_index,
        modify_index: s.modify_index,
    }
}
