//! The answers the client decodes: services, nodes, health entries and checks, the agent's
//! description of itself.
//!
//! Every field may be missing or `null` and then takes its default, and unknown fields are
//! ignored, so answers from older or newer agents decode.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::{CheckStatus, lenient_go_duration, lenient_status, null_default};

/// A service as the agent (`/v1/agent/services`, `/v1/agent/service/:id`) and the health
/// endpoints (`Service` of each entry) describe it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
#[non_exhaustive]
pub struct AgentService {
    /// Instance id (`ID`).
    #[serde(rename = "ID", deserialize_with = "null_default")]
    pub id: String,
    /// Service name (`Service`).
    #[serde(deserialize_with = "null_default")]
    pub service: String,
    /// Tags (`Tags`).
    #[serde(deserialize_with = "null_default")]
    pub tags: Vec<String>,
    /// Metadata (`Meta`).
    #[serde(deserialize_with = "null_default")]
    pub meta: BTreeMap<String, String>,
    /// Port (`Port`).
    #[serde(deserialize_with = "null_default")]
    pub port: u16,
    /// Address (`Address`); `""` means "the node's address", see [`ServiceEntry::address`].
    #[serde(deserialize_with = "null_default")]
    pub address: String,
    /// Named extra addresses (`TaggedAddresses`), e.g. `lan_ipv4`.
    #[serde(deserialize_with = "null_default")]
    pub tagged_addresses: BTreeMap<String, ServiceAddress>,
    /// DNS SRV weights (`Weights`), `{1, 1}` when absent.
    #[serde(deserialize_with = "null_default")]
    pub weights: Weights,
    /// Whether anti-entropy leaves tags changed in the catalog alone (`EnableTagOverride`).
    #[serde(deserialize_with = "null_default")]
    pub enable_tag_override: bool,
    /// Kind (`Kind`): `""` for a typical service, or `connect-proxy`, `mesh-gateway`, ...
    #[serde(deserialize_with = "null_default")]
    pub kind: String,
    /// Datacenter (`Datacenter`), set by the agent endpoints.
    #[serde(deserialize_with = "null_default")]
    pub datacenter: String,
    /// Namespace (`Namespace`, Consul Enterprise).
    #[serde(deserialize_with = "null_default")]
    pub namespace: String,
    /// Admin partition (`Partition`, Consul Enterprise).
    #[serde(deserialize_with = "null_default")]
    pub partition: String,
    /// Hash of the definition (`ContentHash`), set by `/v1/agent/service/:id`.
    #[serde(deserialize_with = "null_default")]
    pub content_hash: String,
    /// Raft index of creation (`CreateIndex`), set by the catalog and health endpoints.
    #[serde(deserialize_with = "null_default")]
    pub create_index: u64,
    /// Raft index of the last change (`ModifyIndex`).
    #[serde(deserialize_with = "null_default")]
    pub modify_index: u64,
}

/// A named service address (`TaggedAddresses` values of a service).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
#[non_exhaustive]
pub struct ServiceAddress {
    /// The address (`Address`; older docs spell it `address`).
    #[serde(alias = "address", deserialize_with = "null_default")]
    pub address: String,
    /// The port (`Port`; older docs spell it `port`).
    #[serde(alias = "port", deserialize_with = "null_default")]
    pub port: u16,
}

/// DNS SRV weights of a service (`Weights`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
#[non_exhaustive]
pub struct Weights {
    /// Weight while all checks pass (`Passing`).
    #[serde(deserialize_with = "null_default")]
    pub passing: u32,
    /// Weight while a check warns (`Warning`).
    #[serde(deserialize_with = "null_default")]
    pub warning: u32,
}

/// Consul's default weights: `{"Passing": 1, "Warning": 1}`.
impl Default for Weights {
    fn default() -> Self {
        Weights {
            passing: 1,
            warning: 1,
        }
    }
}

/// A node of the catalog (`Node` of each health entry).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
#[non_exhaustive]
pub struct Node {
    /// Node id, a UUID (`ID`).
    #[serde(rename = "ID", deserialize_with = "null_default")]
    pub id: String,
    /// Node name (`Node`).
    #[serde(deserialize_with = "null_default")]
    pub node: String,
    /// Node address (`Address`).
    #[serde(deserialize_with = "null_default")]
    pub address: String,
    /// Datacenter (`Datacenter`).
    #[serde(deserialize_with = "null_default")]
    pub datacenter: String,
    /// Named addresses (`TaggedAddresses`: `lan`, `wan`, `lan_ipv4`, ...).
    #[serde(deserialize_with = "null_default")]
    pub tagged_addresses: BTreeMap<String, String>,
    /// Node metadata (`Meta`).
    #[serde(deserialize_with = "null_default")]
    pub meta: BTreeMap<String, String>,
    /// Raft index of creation (`CreateIndex`).
    #[serde(deserialize_with = "null_default")]
    pub create_index: u64,
    /// Raft index of the last change (`ModifyIndex`).
    #[serde(deserialize_with = "null_default")]
    pub modify_index: u64,
}

/// One instance of `GET /v1/health/service/:service`: its node, the service, and its checks
/// (service checks and node checks such as `serfHealth`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
#[non_exhaustive]
pub struct ServiceEntry {
    /// The node the instance runs on (`Node`).
    #[serde(deserialize_with = "null_default")]
    pub node: Node,
    /// The instance (`Service`).
    #[serde(deserialize_with = "null_default")]
    pub service: AgentService,
    /// Its checks and its node's checks (`Checks`).
    #[serde(deserialize_with = "null_default")]
    pub checks: Vec<HealthCheck>,
}

impl ServiceEntry {
    /// The address to reach the instance at: the service's address, or the node's when the
    /// service registered none (`""`), as Consul's DNS interface and Fabio do.
    pub fn address(&self) -> &str {
        if self.service.address.is_empty() {
            &self.node.address
        } else {
            &self.service.address
        }
    }

    /// The worst status of all checks of the entry; `Passing` when it has none.
    pub fn status(&self) -> CheckStatus {
        self.checks
            .iter()
            .map(|c| c.status)
            .max_by_key(|s| s.severity())
            .unwrap_or(CheckStatus::Passing)
    }
}

/// A health check as `/v1/agent/checks` and the health endpoints describe it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
#[non_exhaustive]
pub struct HealthCheck {
    /// Node name (`Node`).
    #[serde(deserialize_with = "null_default")]
    pub node: String,
    /// Check id (`CheckID`), e.g. `service:web-1` or `serfHealth`.
    #[serde(rename = "CheckID", deserialize_with = "null_default")]
    pub check_id: String,
    /// Check name (`Name`).
    #[serde(deserialize_with = "null_default")]
    pub name: String,
    /// Status (`Status`). A missing or unknown status decodes as `Critical`: a check whose
    /// state cannot be read is not treated as healthy.
    #[serde(deserialize_with = "lenient_status")]
    pub status: CheckStatus,
    /// Notes given at registration (`Notes`).
    #[serde(deserialize_with = "null_default")]
    pub notes: String,
    /// Output of the last run, or the note of the last TTL update (`Output`).
    #[serde(deserialize_with = "null_default")]
    pub output: String,
    /// Id of the service the check belongs to, `""` for node checks (`ServiceID`).
    #[serde(rename = "ServiceID", deserialize_with = "null_default")]
    pub service_id: String,
    /// Name of that service (`ServiceName`).
    #[serde(deserialize_with = "null_default")]
    pub service_name: String,
    /// Tags of that service (`ServiceTags`).
    #[serde(deserialize_with = "null_default")]
    pub service_tags: Vec<String>,
    /// Kind of check (`Type`): `http`, `ttl`, `tcp`, ...; `""` for `serfHealth`.
    #[serde(deserialize_with = "null_default")]
    pub r#type: String,
    /// Run interval (`Interval`), where the endpoint reports it.
    #[serde(deserialize_with = "lenient_go_duration")]
    pub interval: Option<Duration>,
    /// Run bound (`Timeout`), where the endpoint reports it.
    #[serde(deserialize_with = "lenient_go_duration")]
    pub timeout: Option<Duration>,
    /// How the check was defined (`Definition`).
    #[serde(deserialize_with = "null_default")]
    pub definition: HealthCheckDefinition,
    /// Namespace (`Namespace`, Consul Enterprise).
    #[serde(deserialize_with = "null_default")]
    pub namespace: String,
    /// Admin partition (`Partition`, Consul Enterprise).
    #[serde(deserialize_with = "null_default")]
    pub partition: String,
    /// Raft index of creation (`CreateIndex`).
    #[serde(deserialize_with = "null_default")]
    pub create_index: u64,
    /// Raft index of the last change (`ModifyIndex`).
    #[serde(deserialize_with = "null_default")]
    pub modify_index: u64,
}

/// The definition part of a [`HealthCheck`] (`Definition`). Durations decode from Go duration
/// strings (`"10s"`) or nanosecond numbers; anything else decodes as `None`.
///
/// Consul 1.14 leaves `Definition` empty in its agent and health views for checks registered
/// over HTTP, so every field here is then empty; read [`HealthCheck::interval`] and
/// [`HealthCheck::timeout`] instead, which it does fill in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
#[non_exhaustive]
pub struct HealthCheckDefinition {
    /// URL of an HTTP check (`HTTP`).
    #[serde(rename = "HTTP", deserialize_with = "null_default")]
    pub http: String,
    /// HTTP method (`Method`).
    #[serde(deserialize_with = "null_default")]
    pub method: String,
    /// Extra headers (`Header`).
    #[serde(deserialize_with = "null_default")]
    pub header: BTreeMap<String, Vec<String>>,
    /// Whether the certificate of an HTTPS check is not verified (`TLSSkipVerify`).
    #[serde(rename = "TLSSkipVerify", deserialize_with = "null_default")]
    pub tls_skip_verify: bool,
    /// Address of a TCP check (`TCP`).
    #[serde(rename = "TCP", deserialize_with = "null_default")]
    pub tcp: String,
    /// Run interval (`Interval`).
    #[serde(deserialize_with = "lenient_go_duration")]
    pub interval: Option<Duration>,
    /// Run bound (`Timeout`).
    #[serde(deserialize_with = "lenient_go_duration")]
    pub timeout: Option<Duration>,
    /// Critical time after which the service is reaped (`DeregisterCriticalServiceAfter`).
    #[serde(deserialize_with = "lenient_go_duration")]
    pub deregister_critical_service_after: Option<Duration>,
    /// Time to live of a TTL check (`TTL`).
    #[serde(rename = "TTL", deserialize_with = "lenient_go_duration")]
    pub ttl: Option<Duration>,
}

/// What `GET /v1/agent/self` says about the agent (a typed subset).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AgentSelf {
    /// Datacenter of the agent (`Config.Datacenter`).
    pub datacenter: String,
    /// Primary datacenter (`Config.PrimaryDatacenter`).
    pub primary_datacenter: String,
    /// Node name (`Config.NodeName`).
    pub node_name: String,
    /// Node id (`Config.NodeID`).
    pub node_id: String,
    /// Consul version (`Config.Version`), e.g. `1.20.1`.
    pub version: String,
    /// Git revision (`Config.Revision`).
    pub revision: String,
    /// Whether the agent is a server (`Config.Server`).
    pub server: bool,
    /// The agent's gossip membership (`Member`), when present.
    pub member: Option<AgentMember>,
}

/// The gossip membership of an agent (`Member` of `/v1/agent/self`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
#[non_exhaustive]
pub struct AgentMember {
    /// Member name (`Name`), the node name.
    #[serde(deserialize_with = "null_default")]
    pub name: String,
    /// Advertised address (`Addr`).
    #[serde(deserialize_with = "null_default")]
    pub addr: String,
    /// Gossip port (`Port`).
    #[serde(deserialize_with = "null_default")]
    pub port: u16,
    /// Serf status (`Status`): 1 alive, 2 leaving, 3 left, 4 failed.
    #[serde(deserialize_with = "null_default")]
    pub status: i64,
    /// Serf tags (`Tags`).
    #[serde(deserialize_with = "null_default")]
    pub tags: BTreeMap<String, String>,
}

/// The wire shape of `/v1/agent/self`, decoded into [`AgentSelf`].
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub(crate) struct AgentSelfWire {
    #[serde(deserialize_with = "null_default")]
    config: AgentSelfConfigWire,
    #[serde(deserialize_with = "null_default")]
    member: Option<AgentMember>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct AgentSelfConfigWire {
    #[serde(deserialize_with = "null_default")]
    datacenter: String,
    #[serde(deserialize_with = "null_default")]
    primary_datacenter: String,
    #[serde(deserialize_with = "null_default")]
    node_name: String,
    #[serde(rename = "NodeID", deserialize_with = "null_default")]
    node_id: String,
    #[serde(deserialize_with = "null_default")]
    version: String,
    #[serde(deserialize_with = "null_default")]
    revision: String,
    #[serde(deserialize_with = "null_default")]
    server: bool,
}

impl From<AgentSelfWire> for AgentSelf {
    fn from(w: AgentSelfWire) -> Self {
        AgentSelf {
            datacenter: w.config.datacenter,
            primary_datacenter: w.config.primary_datacenter,
            node_name: w.config.node_name,
            node_id: w.config.node_id,
            version: w.config.version,
            revision: w.config.revision,
            server: w.config.server,
            member: w.member,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // Doc sample of `GET /v1/agent/services` (api-docs/agent/service.mdx).
    #[test]
    fn consul_decodes_agent_services_sample() {
        let body = json!({
            "redis": {
                "ID": "redis", "Service": "redis", "Tags": [],
                "TaggedAddresses": {
                    "lan": {"address": "127.0.0.1", "port": 8000},
                    "wan": {"address": "198.18.0.53", "port": 80}
                },
                "Meta": {"redis_version": "4.0"}, "Namespace": "default", "Port": 8000,
                "Address": "", "EnableTagOverride": false, "Datacenter": "dc1",
                "Weights": {"Passing": 10, "Warning": 1}
            }
        });
        let services: std::collections::HashMap<String, AgentService> =
            serde_json::from_value(body).unwrap();
        let redis = &services["redis"];
        assert_eq!(redis.id, "redis");
        assert_eq!(redis.service, "redis");
        assert!(redis.tags.is_empty());
        assert_eq!(redis.meta["redis_version"], "4.0");
        assert_eq!(redis.port, 8000);
        assert_eq!(redis.address, "");
        assert_eq!(redis.datacenter, "dc1");
        assert_eq!(redis.namespace, "default");
        assert_eq!(
            redis.weights,
            Weights {
                passing: 10,
                warning: 1
            }
        );
        assert_eq!(redis.tagged_addresses["wan"].address, "198.18.0.53");
        assert_eq!(redis.tagged_addresses["wan"].port, 80);
    }

    // Doc sample of `GET /v1/health/service/:service` (api-docs/health.mdx).
    #[test]
    fn consul_decodes_health_service_sample() {
        let body = json!([{
            "Node": {
                "ID": "40e4a748-2192-161a-0510-9bf59fe950b5", "Node": "foobar",
                "Address": "10.1.10.12", "Datacenter": "dc1",
                "TaggedAddresses": {"lan": "10.1.10.12", "wan": "10.1.10.12"},
                "Meta": {"instance_type": "t2.medium"},
                "CreateIndex": 5, "ModifyIndex": 6
            },
            "Service": {
                "ID": "redis", "Service": "redis", "Tags": ["primary"], "Address": "10.1.10.12",
                "TaggedAddresses": {
                    "lan": {"address": "10.1.10.12", "port": 8000},
                    "wan": {"address": "198.18.1.2", "port": 80}
                },
                "Meta": {"redis_version": "4.0"}, "Port": 8000,
                "Weights": {"Passing": 10, "Warning": 1}, "EnableTagOverride": false,
                "Proxy": {}, "Connect": {}, "CreateIndex": 7, "ModifyIndex": 8
            },
            "Checks": [
                {
                    "Node": "foobar", "CheckID": "service:redis",
                    "Name": "Service 'redis' check", "Status": "passing", "Notes": "",
                    "Output": "", "ServiceID": "redis", "ServiceName": "redis",
                    "ServiceTags": ["primary"], "Type": "ttl",
                    "Definition": {"Interval": "10s", "Timeout": 5000000000u64, "HTTP": "http://x",
                                   "TTL": "1m30s", "DeregisterCriticalServiceAfter": "1m0s"},
                    "CreateIndex": 9, "ModifyIndex": 10
                },
                {
                    "Node": "foobar", "CheckID": "serfHealth", "Name": "Serf Health Status",
                    "Status": "passing", "Notes": "", "Output": "", "ServiceID": "",
                    "ServiceName": "", "ServiceTags": [], "Type": "",
                    "Definition": {}, "CreateIndex": 11, "ModifyIndex": 12
                }
            ]
        }]);
        let entries: Vec<ServiceEntry> = serde_json::from_value(body).unwrap();
        let e = &entries[0];
        assert_eq!(e.node.node, "foobar");
        assert_eq!(e.node.tagged_addresses["wan"], "10.1.10.12");
        assert_eq!(e.node.meta["instance_type"], "t2.medium");
        assert_eq!(e.service.id, "redis");
        assert_eq!(e.service.tags, ["primary"]);
        assert_eq!(e.service.create_index, 7);
        assert_eq!(e.address(), "10.1.10.12");
        assert_eq!(e.checks.len(), 2);
        assert_eq!(e.checks[0].check_id, "service:redis");
        assert_eq!(e.checks[0].r#type, "ttl");
        assert_eq!(
            e.checks[0].definition.interval,
            Some(Duration::from_secs(10))
        );
        assert_eq!(e.checks[0].definition.timeout, Some(Duration::from_secs(5)));
        assert_eq!(e.checks[0].definition.http, "http://x");
        assert_eq!(e.checks[0].definition.ttl, Some(Duration::from_secs(90)));
        assert_eq!(
            e.checks[0].definition.deregister_critical_service_after,
            Some(Duration::from_secs(60))
        );
        assert_eq!(e.checks[1].check_id, "serfHealth");
        assert_eq!(e.status(), CheckStatus::Passing);
    }

    #[test]
    fn consul_decodes_missing_and_null_fields() {
        let entries: Vec<ServiceEntry> = serde_json::from_value(json!([
            {},
            {"Node": null, "Service": null, "Checks": null},
            {
                "Node": {"Node": "n1", "Address": "10.0.0.1", "TaggedAddresses": null, "Meta": null},
                "Service": {"ID": "a", "Service": "a", "Tags": null, "Meta": null,
                            "Address": "", "Port": null, "Weights": null, "TaggedAddresses": null},
                "Checks": [{"CheckID": "c", "Status": null, "ServiceTags": null,
                            "Definition": null, "Interval": "bogus"},
                           {"CheckID": "d", "Status": "maintenance"},
                           {"CheckID": "e", "Status": "warning", "Unknown": {"x": 1}}]
            }
        ]))
        .unwrap();
        assert_eq!(entries[0], ServiceEntry::default());
        assert_eq!(entries[1], ServiceEntry::default());
        let e = &entries[2];
        assert_eq!(e.address(), "10.0.0.1", "falls back to the node address");
        assert!(e.service.tags.is_empty());
        assert_eq!(e.service.weights, Weights::default());
        assert_eq!(e.checks[0].status, CheckStatus::Critical);
        assert_eq!(e.checks[0].interval, None);
        assert_eq!(e.checks[1].status, CheckStatus::Critical);
        assert_eq!(e.checks[2].status, CheckStatus::Warning);
        assert_eq!(e.status(), CheckStatus::Critical);
        assert_eq!(ServiceEntry::default().status(), CheckStatus::Passing);
    }

    #[test]
    fn consul_decodes_agent_checks_sample() {
        let body = json!({
            "service:redis": {
                "Node": "foobar", "CheckID": "service:redis", "Name": "Service 'redis' check",
                "Status": "critical", "Notes": "", "Output": "TTL expired",
                "ServiceID": "redis", "ServiceName": "redis", "ServiceTags": null,
                "Type": "ttl", "Interval": "", "Timeout": "", "ExposedPort": 0,
                "Definition": {}, "CreateIndex": 0, "ModifyIndex": 0
            }
        });
        let checks: std::collections::HashMap<String, HealthCheck> =
            serde_json::from_value(body).unwrap();
        let c = &checks["service:redis"];
        assert_eq!(c.status, CheckStatus::Critical);
        assert_eq!(c.output, "TTL expired");
        assert_eq!(c.service_id, "redis");
        assert!(c.service_tags.is_empty());
        assert_eq!(c.interval, None);
    }

    #[test]
    fn consul_decodes_agent_self() {
        let wire: AgentSelfWire = serde_json::from_value(json!({
            "Config": {"Datacenter": "dc1", "PrimaryDatacenter": "dc1", "NodeName": "foobar",
                       "NodeID": "9d754d17", "Revision": "deadbeef", "Server": true,
                       "Version": "1.20.1", "BuildDate": "2024-01-01T00:00:00Z"},
            "DebugConfig": {"DNSDomain": "consul."},
            "Coord": null,
            "Member": {"Name": "foobar", "Addr": "10.1.10.12", "Port": 8301,
                       "Tags": {"role": "consul"}, "Status": 1},
            "Stats": {}, "Meta": {}, "xDS": null
        }))
        .unwrap();
        let me = AgentSelf::from(wire);
        assert_eq!(me.datacenter, "dc1");
        assert_eq!(me.node_name, "foobar");
        assert_eq!(me.version, "1.20.1");
        assert!(me.server);
        let member = me.member.unwrap();
        assert_eq!(member.addr, "10.1.10.12");
        assert_eq!(member.port, 8301);

        let bare = AgentSelf::from(serde_json::from_value::<AgentSelfWire>(json!({})).unwrap());
        assert_eq!(bare, AgentSelf::default());
    }

    /// Every field decodes from the key Consul names it with (a field whose key were wrong
    /// would keep its default here).
    #[test]
    fn consul_every_field_decodes_from_its_consul_key() {
        let service: AgentService = serde_json::from_value(json!({
            "ID": "web-1", "Service": "web", "Tags": ["t"], "Meta": {"k": "v"}, "Port": 8080,
            "Address": "10.0.0.7", "TaggedAddresses": {"lan": {"Address": "10.0.0.8", "Port": 81}},
            "Weights": {"Passing": 3, "Warning": 2}, "EnableTagOverride": true,
            "Kind": "connect-proxy", "Datacenter": "dc2", "Namespace": "ns", "Partition": "p",
            "ContentHash": "h", "CreateIndex": 5, "ModifyIndex": 6
        }))
        .unwrap();
        assert_eq!(
            service,
            AgentService {
                id: "web-1".into(),
                service: "web".into(),
                tags: vec!["t".into()],
                meta: BTreeMap::from([("k".into(), "v".into())]),
                port: 8080,
                address: "10.0.0.7".into(),
                tagged_addresses: BTreeMap::from([(
                    "lan".into(),
                    ServiceAddress {
                        address: "10.0.0.8".into(),
                        port: 81
                    }
                )]),
                weights: Weights {
                    passing: 3,
                    warning: 2
                },
                enable_tag_override: true,
                kind: "connect-proxy".into(),
                datacenter: "dc2".into(),
                namespace: "ns".into(),
                partition: "p".into(),
                content_hash: "h".into(),
                create_index: 5,
                modify_index: 6,
            }
        );
        let node: Node = serde_json::from_value(json!({
            "ID": "n-id", "Node": "n1", "Address": "10.0.0.1", "Datacenter": "dc1",
            "TaggedAddresses": {"lan": "10.0.0.1"}, "Meta": {"k": "v"},
            "CreateIndex": 1, "ModifyIndex": 2
        }))
        .unwrap();
        assert_eq!(
            node,
            Node {
                id: "n-id".into(),
                node: "n1".into(),
                address: "10.0.0.1".into(),
                datacenter: "dc1".into(),
                tagged_addresses: BTreeMap::from([("lan".into(), "10.0.0.1".into())]),
                meta: BTreeMap::from([("k".into(), "v".into())]),
                create_index: 1,
                modify_index: 2,
            }
        );
        let check: HealthCheck = serde_json::from_value(json!({
            "Node": "n1", "CheckID": "c1", "Name": "check", "Status": "warning", "Notes": "n",
            "Output": "o", "ServiceID": "web-1", "ServiceName": "web", "ServiceTags": ["t"],
            "Type": "http", "Interval": "10s", "Timeout": "5s",
            "Definition": {"HTTP": "http://x", "Method": "HEAD", "Header": {"H": ["v"]},
                           "TLSSkipVerify": true, "TCP": "x:1", "Interval": "1s",
                           "Timeout": "2s", "DeregisterCriticalServiceAfter": "1m0s",
                           "TTL": "3s"},
            "Namespace": "ns", "Partition": "p", "CreateIndex": 3, "ModifyIndex": 4
        }))
        .unwrap();
        assert_eq!(
            check,
            HealthCheck {
                node: "n1".into(),
                check_id: "c1".into(),
                name: "check".into(),
                status: CheckStatus::Warning,
                notes: "n".into(),
                output: "o".into(),
                service_id: "web-1".into(),
                service_name: "web".into(),
                service_tags: vec!["t".into()],
                r#type: "http".into(),
                interval: Some(Duration::from_secs(10)),
                timeout: Some(Duration::from_secs(5)),
                definition: HealthCheckDefinition {
                    http: "http://x".into(),
                    method: "HEAD".into(),
                    header: BTreeMap::from([("H".into(), vec!["v".into()])]),
                    tls_skip_verify: true,
                    tcp: "x:1".into(),
                    interval: Some(Duration::from_secs(1)),
                    timeout: Some(Duration::from_secs(2)),
                    deregister_critical_service_after: Some(Duration::from_secs(60)),
                    ttl: Some(Duration::from_secs(3)),
                },
                namespace: "ns".into(),
                partition: "p".into(),
                create_index: 3,
                modify_index: 4,
            }
        );
        let entry: ServiceEntry = serde_json::from_value(json!({
            "Node": {"Node": "n1"}, "Service": {"ID": "web-1"}, "Checks": [{"CheckID": "c1"}]
        }))
        .unwrap();
        assert_eq!(
            (
                entry.node.node.as_str(),
                entry.service.id.as_str(),
                entry.checks[0].check_id.as_str()
            ),
            ("n1", "web-1", "c1")
        );
        let me = AgentSelf::from(
            serde_json::from_value::<AgentSelfWire>(json!({
                "Config": {"Datacenter": "dc1", "PrimaryDatacenter": "dc0", "NodeName": "n1",
                           "NodeID": "n-id", "Version": "1.14.11", "Revision": "r",
                           "Server": true},
                "Member": {"Name": "n1", "Addr": "10.0.0.1", "Port": 8301, "Status": 1,
                           "Tags": {"role": "consul"}}
            }))
            .unwrap(),
        );
        assert_eq!(
            me,
            AgentSelf {
                datacenter: "dc1".into(),
                primary_datacenter: "dc0".into(),
                node_name: "n1".into(),
                node_id: "n-id".into(),
                version: "1.14.11".into(),
                revision: "r".into(),
                server: true,
                member: Some(AgentMember {
                    name: "n1".into(),
                    addr: "10.0.0.1".into(),
                    port: 8301,
                    status: 1,
                    tags: BTreeMap::from([("role".into(), "consul".into())]),
                }),
            }
        );
    }
}
