//! The request and response shapes of the Consul endpoints the client calls, in Consul's JSON.
//!
//! Request types ([`Registration`], [`CheckDefinition`]) serialize to the CamelCase keys that
//! Consul's Go `api` package sends, leaving out zero values as it does. Response types
//! ([`AgentService`], [`ServiceEntry`], [`HealthCheck`], ...) are tolerant: every field may be
//! missing or `null` and then takes its default, and unknown fields are ignored, so answers
//! from older or newer agents decode.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Consul's blocking-query default wait when none (or zero) is given: 5 minutes.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(5 * 60);

/// The longest wait Consul honours for a blocking query: 10 minutes.
pub const MAX_WAIT: Duration = Duration::from_secs(10 * 60);

// ---------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------

/// A service registration, the body of `PUT /v1/agent/service/register`.
///
/// Serializes to the keys Consul's Go `api.AgentServiceRegistration` sends (`ID`, `Name`,
/// `Tags`, `Address`, `Port`, `Meta`, `Checks`), leaving out empty values as Go's `omitempty`
/// does.
///
/// ```
/// use std::time::Duration;
/// use discoverable_runtime::consul::{CheckDefinition, CheckStatus, Registration};
///
/// let reg = Registration {
///     id: "web-1".into(),
///     name: "web".into(),
///     tags: vec!["urlprefix-/web".into()],
///     address: "10.0.0.7".into(),
///     port: 8080,
///     checks: vec![CheckDefinition {
///         http: Some("http://10.0.0.7:8080/health".into()),
///         interval: Some(Duration::from_secs(10)),
///         status: Some(CheckStatus::Passing),
///         ..Default::default()
///     }],
///     ..Default::default()
/// };
/// let json = serde_json::to_value(&reg).unwrap();
/// assert_eq!(json["Checks"][0]["Interval"], "10s");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Registration {
    /// Unique id of this instance on the agent (`ID`); Consul uses `name` when empty.
    #[serde(rename = "ID", skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// Logical service name (`Name`), required by Consul.
    #[serde(rename = "Name", skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Tags (`Tags`), e.g. Fabio's `urlprefix-/path`.
    #[serde(rename = "Tags", skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Address the service is reached at (`Address`); empty means the agent's address.
    #[serde(rename = "Address", skip_serializing_if = "String::is_empty")]
    pub address: String,
    /// Port the service is reached at (`Port`).
    #[serde(rename = "Port", skip_serializing_if = "is_zero_u16")]
    pub port: u16,
    /// Service metadata (`Meta`).
    #[serde(rename = "Meta", skip_serializing_if = "BTreeMap::is_empty")]
    pub meta: BTreeMap<String, String>,
    /// Health checks of the service (`Checks`).
    #[serde(rename = "Checks", skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckDefinition>,
    /// Send `?replace-existing-checks=true`, so the agent drops checks of this service that
    /// are not in `checks`. Not part of the body.
    #[serde(skip)]
    pub replace_existing_checks: bool,
}

/// One health check of a [`Registration`], as Consul's Go `api.AgentServiceCheck`.
///
/// Durations serialize as Go duration strings (`"10s"`, `"1500ms"`), see
/// [`format_go_duration`]. Fields left at their default are not sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CheckDefinition {
    /// Check id (`CheckID`); Consul uses `service:<service id>` (or `service:<id>:<n>`) when
    /// absent.
    #[serde(rename = "CheckID", skip_serializing_if = "Option::is_none")]
    pub check_id: Option<String>,
    /// Check name (`Name`); Consul uses `Service '<name>' check` when absent.
    #[serde(rename = "Name", skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// URL of an HTTP check (`HTTP`).
    #[serde(rename = "HTTP", skip_serializing_if = "Option::is_none")]
    pub http: Option<String>,
    /// HTTP method of an HTTP check (`Method`); Consul uses GET when absent.
    #[serde(rename = "Method", skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Extra headers of an HTTP check (`Header`).
    #[serde(rename = "Header", skip_serializing_if = "BTreeMap::is_empty")]
    pub header: BTreeMap<String, Vec<String>>,
    /// Do not verify the certificate of an HTTPS check (`TLSSkipVerify`).
    #[serde(rename = "TLSSkipVerify", skip_serializing_if = "is_false")]
    pub tls_skip_verify: bool,
    /// How often an HTTP check runs (`Interval`).
    #[serde(
        rename = "Interval",
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_go_duration"
    )]
    pub interval: Option<Duration>,
    /// Bound of one HTTP check run (`Timeout`); Consul's default is 10s.
    #[serde(
        rename = "Timeout",
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_go_duration"
    )]
    pub timeout: Option<Duration>,
    /// Time to live of a TTL check (`TTL`); the check turns critical unless updated within it.
    #[serde(
        rename = "TTL",
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_go_duration"
    )]
    pub ttl: Option<Duration>,
    /// Deregister the service when this check has been critical this long
    /// (`DeregisterCriticalServiceAfter`; Consul's minimum is one minute).
    #[serde(
        rename = "DeregisterCriticalServiceAfter",
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_go_duration"
    )]
    pub deregister_critical_service_after: Option<Duration>,
    /// Initial status (`Status`); Consul starts checks `critical` when absent.
    #[serde(rename = "Status", skip_serializing_if = "Option::is_none")]
    pub status: Option<CheckStatus>,
    /// Human-readable notes (`Notes`).
    #[serde(rename = "Notes", skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
}

/// Status of a health check: `passing`, `warning` or `critical` in Consul's JSON.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    /// Healthy; routers send traffic.
    Passing,
    /// Degraded; Consul keeps it in `?passing=false` results, Fabio does not route it.
    Warning,
    /// Unhealthy. Consul's initial status of a check, and the default here.
    #[default]
    Critical,
}

impl CheckStatus {
    /// The status as Consul spells it: `"passing"`, `"warning"` or `"critical"`.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Passing => "passing",
            CheckStatus::Warning => "warning",
            CheckStatus::Critical => "critical",
        }
    }

    /// Parses Consul's spelling; anything else is `None`.
    pub fn parse(s: &str) -> Option<CheckStatus> {
        match s {
            "passing" => Some(CheckStatus::Passing),
            "warning" => Some(CheckStatus::Warning),
            "critical" => Some(CheckStatus::Critical),
            _ => None,
        }
    }

    /// How bad the status is, for aggregation: passing < warning < critical.
    fn severity(self) -> u8 {
        match self {
            CheckStatus::Passing => 0,
            CheckStatus::Warning => 1,
            CheckStatus::Critical => 2,
        }
    }
}

impl fmt::Display for CheckStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Strict decoding: only `passing`, `warning` and `critical` are accepted.
impl<'de> Deserialize<'de> for CheckStatus {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        CheckStatus::parse(&s).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown check status `{s}`; expected passing, warning or critical"
            ))
        })
    }
}

/// The state filter of `GET /v1/health/state/:state`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum HealthState {
    /// Every check, whatever its status.
    #[default]
    Any,
    /// Checks that pass.
    Passing,
    /// Checks that warn.
    Warning,
    /// Checks that are critical.
    Critical,
}

impl HealthState {
    /// The path segment Consul expects: `any`, `passing`, `warning` or `critical`.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthState::Any => "any",
            HealthState::Passing => "passing",
            HealthState::Warning => "warning",
            HealthState::Critical => "critical",
        }
    }
}

impl fmt::Display for HealthState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Options shared by the reads: datacenter, filter, and the blocking-query index and wait.
///
/// A read blocks only when `index` is `Some(n)` with `n > 0`: Consul then holds the answer
/// until the result's index passes `n` or `wait` (default 5 minutes, at most 10) runs out.
/// `Some(0)` and `None` read at once, so the value [`next_index`] returns can always be passed
/// back as `index: Some(..)`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryOptions {
    /// Datacenter to ask (`?dc=`); the agent's own when `None`.
    pub datacenter: Option<String>,
    /// A filter expression (`?filter=`), e.g. `Service.Meta.version == "2"`.
    pub filter: Option<String>,
    /// The index of the previous answer (`?index=`); blocks when greater than zero.
    pub index: Option<u64>,
    /// How long a blocking read may wait (`?wait=`).
    pub wait: Option<Duration>,
}

/// Options of [`Client::health_service`](super::Client::health_service).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthQuery {
    /// Only instances whose every check passes (`?passing`). Default `true`.
    pub passing: bool,
    /// Only instances that carry all these tags (`?tag=`, repeated).
    pub tags: Vec<String>,
    /// Datacenter, filter, index and wait.
    pub options: QueryOptions,
}

impl Default for HealthQuery {
    fn default() -> Self {
        HealthQuery {
            passing: true,
            tags: Vec::new(),
            options: QueryOptions::default(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Response wrappers
// ---------------------------------------------------------------------------------------------

/// The answer of a read that supports index-based blocking, with Consul's query metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Indexed<T> {
    /// The decoded body.
    pub value: T,
    /// `X-Consul-Index`: pass it through [`next_index`] and back as [`QueryOptions::index`].
    pub index: u64,
    /// `X-Consul-KnownLeader`: whether the answering server knew a leader.
    pub known_leader: bool,
    /// `X-Consul-LastContact`: time since the answering server last heard from the leader.
    pub last_contact: Duration,
}

impl<T> Indexed<T> {
    /// Applies `f` to the value, keeping the metadata.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Indexed<U> {
        Indexed {
            value: f(self.value),
            index: self.index,
            known_leader: self.known_leader,
            last_contact: self.last_contact,
        }
    }
}

/// The answer of an agent-local read that supports hash-based blocking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hashed<T> {
    /// The decoded body.
    pub value: T,
    /// `X-Consul-ContentHash` (or the body's `ContentHash`); pass it back to block until the
    /// content differs. `None` when the agent sent none (e.g. the service is unknown).
    pub hash: Option<String>,
}

/// The index to send with the next blocking read, by the rules of Consul's blocking-query
/// documentation (`api-docs/features/blocking`), given the index sent before (`previous`,
/// 0 for the first read) and the `X-Consul-Index` just returned (`returned`):
///
/// 1. `returned < previous`: the index went backwards (snapshot restore, an agent that lost
///    its state, ...). Returns `0`: the next read must not block, so it fetches the current
///    state at once and starts the loop over.
/// 2. otherwise, `returned == 0`: Consul should never answer 0, but some versions did, and
///    waiting on 0 does not block, which would make a busy loop. Returns `1`, always a safe
///    index to wait on.
/// 3. otherwise: returns `returned`.
///
/// The client sends no `index` parameter for `0`, so passing the result back as
/// `QueryOptions::index = Some(next)` is always right. The rules do not make a loop
/// rate-limited; callers should still limit how fast they loop.
///
/// ```
/// use discoverable_runtime::consul::next_index;
///
/// assert_eq!(next_index(0, 7), 7);   // first read
/// assert_eq!(next_index(7, 7), 7);   // wait ran out, nothing changed
/// assert_eq!(next_index(7, 9), 9);   // something changed
/// assert_eq!(next_index(9, 3), 0);   // went backwards: read again without blocking
/// assert_eq!(next_index(0, 0), 1);   // never wait on 0
/// ```
pub fn next_index(previous: u64, returned: u64) -> u64 {
    if returned < previous {
        0
    } else if returned < 1 {
        1
    } else {
        returned
    }
}

// ---------------------------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------------------------

/// A service as the agent (`/v1/agent/services`, `/v1/agent/service/:id`) and the health
/// endpoints (`Service` of each entry) describe it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct AgentService {
    /// Instance id (`ID`).
    #[serde(rename = "ID", deserialize_with = "null_default")]
    pub id: String,
    /// Service name (`Service`).
    #[serde(rename = "Service", deserialize_with = "null_default")]
    pub service: String,
    /// Tags (`Tags`).
    #[serde(rename = "Tags", deserialize_with = "null_default")]
    pub tags: Vec<String>,
    /// Metadata (`Meta`).
    #[serde(rename = "Meta", deserialize_with = "null_default")]
    pub meta: BTreeMap<String, String>,
    /// Port (`Port`).
    #[serde(rename = "Port", deserialize_with = "null_default")]
    pub port: u16,
    /// Address (`Address`); `""` means "the node's address", see [`ServiceEntry::address`].
    #[serde(rename = "Address", deserialize_with = "null_default")]
    pub address: String,
    /// Named extra addresses (`TaggedAddresses`), e.g. `lan_ipv4`.
    #[serde(rename = "TaggedAddresses", deserialize_with = "null_default")]
    pub tagged_addresses: BTreeMap<String, ServiceAddress>,
    /// DNS SRV weights (`Weights`), `{1, 1}` when absent.
    #[serde(rename = "Weights", deserialize_with = "null_default")]
    pub weights: Weights,
    /// Whether anti-entropy leaves tags changed in the catalog alone (`EnableTagOverride`).
    #[serde(rename = "EnableTagOverride", deserialize_with = "null_default")]
    pub enable_tag_override: bool,
    /// Kind (`Kind`): `""` for a typical service, or `connect-proxy`, `mesh-gateway`, ...
    #[serde(rename = "Kind", deserialize_with = "null_default")]
    pub kind: String,
    /// Datacenter (`Datacenter`), set by the agent endpoints.
    #[serde(rename = "Datacenter", deserialize_with = "null_default")]
    pub datacenter: String,
    /// Namespace (`Namespace`, Consul Enterprise).
    #[serde(rename = "Namespace", deserialize_with = "null_default")]
    pub namespace: String,
    /// Admin partition (`Partition`, Consul Enterprise).
    #[serde(rename = "Partition", deserialize_with = "null_default")]
    pub partition: String,
    /// Hash of the definition (`ContentHash`), set by `/v1/agent/service/:id`.
    #[serde(rename = "ContentHash", deserialize_with = "null_default")]
    pub content_hash: String,
    /// Raft index of creation (`CreateIndex`), set by the catalog and health endpoints.
    #[serde(rename = "CreateIndex", deserialize_with = "null_default")]
    pub create_index: u64,
    /// Raft index of the last change (`ModifyIndex`).
    #[serde(rename = "ModifyIndex", deserialize_with = "null_default")]
    pub modify_index: u64,
}

/// A named service address (`TaggedAddresses` values of a service).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct ServiceAddress {
    /// The address (`Address`; older docs spell it `address`).
    #[serde(
        rename = "Address",
        alias = "address",
        deserialize_with = "null_default"
    )]
    pub address: String,
    /// The port (`Port`; older docs spell it `port`).
    #[serde(rename = "Port", alias = "port", deserialize_with = "null_default")]
    pub port: u16,
}

/// DNS SRV weights of a service (`Weights`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Weights {
    /// Weight while all checks pass (`Passing`).
    #[serde(rename = "Passing", deserialize_with = "null_default")]
    pub passing: u32,
    /// Weight while a check warns (`Warning`).
    #[serde(rename = "Warning", deserialize_with = "null_default")]
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
#[serde(default)]
pub struct Node {
    /// Node id, a UUID (`ID`).
    #[serde(rename = "ID", deserialize_with = "null_default")]
    pub id: String,
    /// Node name (`Node`).
    #[serde(rename = "Node", deserialize_with = "null_default")]
    pub node: String,
    /// Node address (`Address`).
    #[serde(rename = "Address", deserialize_with = "null_default")]
    pub address: String,
    /// Datacenter (`Datacenter`).
    #[serde(rename = "Datacenter", deserialize_with = "null_default")]
    pub datacenter: String,
    /// Named addresses (`TaggedAddresses`: `lan`, `wan`, `lan_ipv4`, ...).
    #[serde(rename = "TaggedAddresses", deserialize_with = "null_default")]
    pub tagged_addresses: BTreeMap<String, String>,
    /// Node metadata (`Meta`).
    #[serde(rename = "Meta", deserialize_with = "null_default")]
    pub meta: BTreeMap<String, String>,
    /// Raft index of creation (`CreateIndex`).
    #[serde(rename = "CreateIndex", deserialize_with = "null_default")]
    pub create_index: u64,
    /// Raft index of the last change (`ModifyIndex`).
    #[serde(rename = "ModifyIndex", deserialize_with = "null_default")]
    pub modify_index: u64,
}

/// One instance of `GET /v1/health/service/:service`: its node, the service, and its checks
/// (service checks and node checks such as `serfHealth`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct ServiceEntry {
    /// The node the instance runs on (`Node`).
    #[serde(rename = "Node", deserialize_with = "null_default")]
    pub node: Node,
    /// The instance (`Service`).
    #[serde(rename = "Service", deserialize_with = "null_default")]
    pub service: AgentService,
    /// Its checks and its node's checks (`Checks`).
    #[serde(rename = "Checks", deserialize_with = "null_default")]
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
#[serde(default)]
pub struct HealthCheck {
    /// Node name (`Node`).
    #[serde(rename = "Node", deserialize_with = "null_default")]
    pub node: String,
    /// Check id (`CheckID`), e.g. `service:web-1` or `serfHealth`.
    #[serde(rename = "CheckID", deserialize_with = "null_default")]
    pub check_id: String,
    /// Check name (`Name`).
    #[serde(rename = "Name", deserialize_with = "null_default")]
    pub name: String,
    /// Status (`Status`). A missing or unknown status decodes as `Critical`: a check whose
    /// state cannot be read is not treated as healthy.
    #[serde(rename = "Status", deserialize_with = "lenient_status")]
    pub status: CheckStatus,
    /// Notes given at registration (`Notes`).
    #[serde(rename = "Notes", deserialize_with = "null_default")]
    pub notes: String,
    /// Output of the last run, or the note of the last TTL update (`Output`).
    #[serde(rename = "Output", deserialize_with = "null_default")]
    pub output: String,
    /// Id of the service the check belongs to, `""` for node checks (`ServiceID`).
    #[serde(rename = "ServiceID", deserialize_with = "null_default")]
    pub service_id: String,
    /// Name of that service (`ServiceName`).
    #[serde(rename = "ServiceName", deserialize_with = "null_default")]
    pub service_name: String,
    /// Tags of that service (`ServiceTags`).
    #[serde(rename = "ServiceTags", deserialize_with = "null_default")]
    pub service_tags: Vec<String>,
    /// Kind of check (`Type`): `http`, `ttl`, `tcp`, ...; `""` for `serfHealth`.
    #[serde(rename = "Type", deserialize_with = "null_default")]
    pub r#type: String,
    /// Run interval (`Interval`), where the endpoint reports it.
    #[serde(rename = "Interval", deserialize_with = "lenient_go_duration")]
    pub interval: Option<Duration>,
    /// Run bound (`Timeout`), where the endpoint reports it.
    #[serde(rename = "Timeout", deserialize_with = "lenient_go_duration")]
    pub timeout: Option<Duration>,
    /// How the check was defined (`Definition`).
    #[serde(rename = "Definition", deserialize_with = "null_default")]
    pub definition: HealthCheckDefinition,
    /// Namespace (`Namespace`, Consul Enterprise).
    #[serde(rename = "Namespace", deserialize_with = "null_default")]
    pub namespace: String,
    /// Admin partition (`Partition`, Consul Enterprise).
    #[serde(rename = "Partition", deserialize_with = "null_default")]
    pub partition: String,
    /// Raft index of creation (`CreateIndex`).
    #[serde(rename = "CreateIndex", deserialize_with = "null_default")]
    pub create_index: u64,
    /// Raft index of the last change (`ModifyIndex`).
    #[serde(rename = "ModifyIndex", deserialize_with = "null_default")]
    pub modify_index: u64,
}

/// The definition part of a [`HealthCheck`] (`Definition`). Durations decode from Go duration
/// strings (`"10s"`) or nanosecond numbers; anything else decodes as `None`.
///
/// Consul 1.14 leaves `Definition` empty in its agent and health views for checks registered
/// over HTTP, so every field here is then empty; read [`HealthCheck::interval`] and
/// [`HealthCheck::timeout`] instead, which it does fill in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct HealthCheckDefinition {
    /// URL of an HTTP check (`HTTP`).
    #[serde(rename = "HTTP", deserialize_with = "null_default")]
    pub http: String,
    /// HTTP method (`Method`).
    #[serde(rename = "Method", deserialize_with = "null_default")]
    pub method: String,
    /// Extra headers (`Header`).
    #[serde(rename = "Header", deserialize_with = "null_default")]
    pub header: BTreeMap<String, Vec<String>>,
    /// Whether the certificate of an HTTPS check is not verified (`TLSSkipVerify`).
    #[serde(rename = "TLSSkipVerify", deserialize_with = "null_default")]
    pub tls_skip_verify: bool,
    /// Address of a TCP check (`TCP`).
    #[serde(rename = "TCP", deserialize_with = "null_default")]
    pub tcp: String,
    /// Run interval (`Interval`).
    #[serde(rename = "Interval", deserialize_with = "lenient_go_duration")]
    pub interval: Option<Duration>,
    /// Run bound (`Timeout`).
    #[serde(rename = "Timeout", deserialize_with = "lenient_go_duration")]
    pub timeout: Option<Duration>,
    /// Critical time after which the service is reaped (`DeregisterCriticalServiceAfter`).
    #[serde(
        rename = "DeregisterCriticalServiceAfter",
        deserialize_with = "lenient_go_duration"
    )]
    pub deregister_critical_service_after: Option<Duration>,
    /// Time to live of a TTL check (`TTL`).
    #[serde(rename = "TTL", deserialize_with = "lenient_go_duration")]
    pub ttl: Option<Duration>,
}

/// What `GET /v1/agent/self` says about the agent (a typed subset).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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
#[serde(default)]
pub struct AgentMember {
    /// Member name (`Name`), the node name.
    #[serde(rename = "Name", deserialize_with = "null_default")]
    pub name: String,
    /// Advertised address (`Addr`).
    #[serde(rename = "Addr", deserialize_with = "null_default")]
    pub addr: String,
    /// Gossip port (`Port`).
    #[serde(rename = "Port", deserialize_with = "null_default")]
    pub port: u16,
    /// Serf status (`Status`): 1 alive, 2 leaving, 3 left, 4 failed.
    #[serde(rename = "Status", deserialize_with = "null_default")]
    pub status: i64,
    /// Serf tags (`Tags`).
    #[serde(rename = "Tags", deserialize_with = "null_default")]
    pub tags: BTreeMap<String, String>,
}

/// The wire shape of `/v1/agent/self`, decoded into [`AgentSelf`].
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct AgentSelfWire {
    #[serde(rename = "Config", deserialize_with = "null_default")]
    config: AgentSelfConfigWire,
    #[serde(rename = "Member", deserialize_with = "null_default")]
    member: Option<AgentMember>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct AgentSelfConfigWire {
    #[serde(rename = "Datacenter", deserialize_with = "null_default")]
    datacenter: String,
    #[serde(rename = "PrimaryDatacenter", deserialize_with = "null_default")]
    primary_datacenter: String,
    #[serde(rename = "NodeName", deserialize_with = "null_default")]
    node_name: String,
    #[serde(rename = "NodeID", deserialize_with = "null_default")]
    node_id: String,
    #[serde(rename = "Version", deserialize_with = "null_default")]
    version: String,
    #[serde(rename = "Revision", deserialize_with = "null_default")]
    revision: String,
    #[serde(rename = "Server", deserialize_with = "null_default")]
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

/// The body of `PUT /v1/agent/check/update/:check_id`.
#[derive(Debug, Serialize)]
pub(crate) struct CheckUpdate<'a> {
    #[serde(rename = "Status")]
    pub(crate) status: CheckStatus,
    #[serde(rename = "Output")]
    pub(crate) output: &'a str,
}

// ---------------------------------------------------------------------------------------------
// Go durations
// ---------------------------------------------------------------------------------------------

/// Formats a duration the way Go's `time.ParseDuration` reads it, exactly and as short as
/// possible in one unit: `"10s"`, `"1500ms"`, `"250us"`, `"7ns"`, `"0s"`.
///
/// ```
/// use std::time::Duration;
/// use discoverable_runtime::consul::format_go_duration;
///
/// assert_eq!(format_go_duration(Duration::from_secs(60)), "60s");
/// assert_eq!(format_go_duration(Duration::from_millis(1500)), "1500ms");
/// ```
pub fn format_go_duration(d: Duration) -> String {
    // One formatting for the attribute's messages and for Consul's requests.
    discoverable_rules::go_duration(d)
}

/// Parses a Go duration string (`"10s"`, `"1.5s"`, `"1m30s"`, `"250ms"`, `"0"`), as Go's
/// `time.ParseDuration` does. Negative or malformed input, or a value too large for
/// [`Duration`], gives `None`.
///
/// ```
/// use std::time::Duration;
/// use discoverable_runtime::consul::parse_go_duration;
///
/// assert_eq!(parse_go_duration("1m30s"), Some(Duration::from_secs(90)));
/// assert_eq!(parse_go_duration("1.5s"), Some(Duration::from_millis(1500)));
/// assert_eq!(parse_go_duration("10"), None);
/// ```
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    let s = s.strip_prefix('+').unwrap_or(s);
    if s == "0" {
        return Some(Duration::ZERO);
    }
    if s.is_empty() || s.starts_with('-') {
        return None;
    }
    let mut rest = s;
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let int_part = &rest[..int_len];
        rest = &rest[int_len..];
        let mut frac_part = "";
        if let Some(after_dot) = rest.strip_prefix('.') {
            let frac_len = after_dot.bytes().take_while(u8::is_ascii_digit).count();
            frac_part = &after_dot[..frac_len];
            rest = &after_dot[frac_len..];
        }
        if int_part.is_empty() && frac_part.is_empty() {
            return None;
        }
        let unit_len = rest
            .char_indices()
            .find(|(_, c)| c.is_ascii_digit() || *c == '.')
            .map_or(rest.len(), |(i, _)| i);
        let unit: u128 = match &rest[..unit_len] {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60 * 1_000_000_000,
            "h" => 3_600 * 1_000_000_000,
            _ => return None,
        };
        rest = &rest[unit_len..];
        let whole: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().ok()?
        };
        let mut value = whole.checked_mul(unit)?;
        // The fraction, to nanosecond precision (Go truncates as well).
        let mut scale = unit;
        for digit in frac_part.bytes() {
            scale /= 10;
            if scale == 0 {
                break;
            }
            value = value.checked_add(u128::from(digit - b'0') * scale)?;
        }
        total = total.checked_add(value)?;
    }
    let secs = u64::try_from(total / 1_000_000_000).ok()?;
    // The remainder is below 1e9, so it fits.
    let sub = (total % 1_000_000_000) as u32;
    Some(Duration::new(secs, sub))
}

// ---------------------------------------------------------------------------------------------
// serde helpers
// ---------------------------------------------------------------------------------------------

fn is_zero_u16(v: &u16) -> bool {
    *v == 0
}

fn is_false(v: &bool) -> bool {
    !*v
}

fn ser_go_duration<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_str(&format_go_duration(*d)),
        None => s.serialize_none(),
    }
}

/// `null` decodes as the default, like a missing field does with `#[serde(default)]`.
pub(crate) fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Option::<T>::deserialize(d).map(Option::unwrap_or_default)
}

/// A check status that never fails to decode: unknown, missing or `null` is `Critical`.
fn lenient_status<'de, D: Deserializer<'de>>(d: D) -> Result<CheckStatus, D::Error> {
    let raw = Option::<serde_json::Value>::deserialize(d)?;
    Ok(raw
        .as_ref()
        .and_then(serde_json::Value::as_str)
        .and_then(CheckStatus::parse)
        .unwrap_or(CheckStatus::Critical))
}

/// A duration given as a Go duration string or as nanoseconds; anything else is `None`.
fn lenient_go_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let raw = Option::<serde_json::Value>::deserialize(d)?;
    Ok(match raw {
        Some(serde_json::Value::String(s)) => parse_go_duration(&s),
        Some(serde_json::Value::Number(n)) => n.as_u64().map(Duration::from_nanos),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn consul_go_duration_formatting() {
        assert_eq!(format_go_duration(Duration::ZERO), "0s");
        assert_eq!(format_go_duration(Duration::from_secs(10)), "10s");
        assert_eq!(format_go_duration(Duration::from_secs(90)), "90s");
        assert_eq!(format_go_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(format_go_duration(Duration::from_micros(250)), "250us");
        assert_eq!(
            format_go_duration(Duration::from_nanos(1_000_000_007)),
            "1000000007ns"
        );
        // What we format, Go's parser (ours mirrors it) reads back exactly.
        for d in [
            Duration::ZERO,
            Duration::from_secs(3600),
            Duration::from_millis(1),
            Duration::from_micros(1_000_001),
            Duration::from_nanos(3),
        ] {
            assert_eq!(parse_go_duration(&format_go_duration(d)), Some(d));
        }
    }

    #[test]
    fn consul_go_duration_parsing() {
        let ok = [
            ("0", Duration::ZERO),
            ("0s", Duration::ZERO),
            ("+5s", Duration::from_secs(5)),
            ("1h", Duration::from_secs(3600)),
            ("1h0m0s", Duration::from_secs(3600)),
            ("1m30s", Duration::from_secs(90)),
            ("1.5s", Duration::from_millis(1500)),
            (".5s", Duration::from_millis(500)),
            ("5.s", Duration::from_secs(5)),
            ("1.5h", Duration::from_secs(5400)),
            ("100ms", Duration::from_millis(100)),
            ("3us", Duration::from_micros(3)),
            ("3\u{b5}s", Duration::from_micros(3)),
            ("3\u{3bc}s", Duration::from_micros(3)),
            ("7ns", Duration::from_nanos(7)),
            ("1.0000000001s", Duration::from_secs(1)),
        ];
        for (s, d) in ok {
            assert_eq!(parse_go_duration(s), Some(d), "{s}");
        }
        for bad in [
            "",
            "10",
            "-1s",
            "s",
            "1x",
            "1.s.",
            ".s",
            "1h-1m",
            " 1s",
            "1s ",
            "99999999999999999999999h",
        ] {
            assert_eq!(parse_go_duration(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn consul_registration_serializes_with_go_api_keys() {
        let reg = Registration {
            id: "web-1".into(),
            name: "web".into(),
            tags: vec!["urlprefix-/web".into(), "v1".into()],
            address: "10.0.0.7".into(),
            port: 8080,
            meta: BTreeMap::from([("version".into(), "1.2".into())]),
            checks: vec![
                CheckDefinition {
                    check_id: Some("web-1-http".into()),
                    name: Some("HTTP on /health".into()),
                    http: Some("http://10.0.0.7:8080/health".into()),
                    method: Some("HEAD".into()),
                    header: BTreeMap::from([("X-Probe".into(), vec!["consul".into()])]),
                    tls_skip_verify: true,
                    interval: Some(Duration::from_secs(10)),
                    timeout: Some(Duration::from_millis(1500)),
                    deregister_critical_service_after: Some(Duration::from_secs(60)),
                    status: Some(CheckStatus::Passing),
                    notes: Some("served by the app".into()),
                    ..Default::default()
                },
                CheckDefinition {
                    ttl: Some(Duration::from_secs(15)),
                    ..Default::default()
                },
            ],
            replace_existing_checks: true,
        };
        let json = serde_json::to_value(&reg).unwrap();
        assert_eq!(
            json,
            json!({
                "ID": "web-1",
                "Name": "web",
                "Tags": ["urlprefix-/web", "v1"],
                "Address": "10.0.0.7",
                "Port": 8080,
                "Meta": {"version": "1.2"},
                "Checks": [
                    {
                        "CheckID": "web-1-http",
                        "Name": "HTTP on /health",
                        "HTTP": "http://10.0.0.7:8080/health",
                        "Method": "HEAD",
                        "Header": {"X-Probe": ["consul"]},
                        "TLSSkipVerify": true,
                        "Interval": "10s",
                        "Timeout": "1500ms",
                        "DeregisterCriticalServiceAfter": "60s",
                        "Status": "passing",
                        "Notes": "served by the app"
                    },
                    {"TTL": "15s"}
                ]
            })
        );
    }

    #[test]
    fn consul_registration_leaves_out_zero_values() {
        let reg = Registration {
            name: "web".into(),
            ..Default::default()
        };
        assert_eq!(serde_json::to_value(&reg).unwrap(), json!({"Name": "web"}));
        assert_eq!(
            serde_json::to_value(CheckDefinition::default()).unwrap(),
            json!({})
        );
    }

    #[test]
    fn consul_check_status_spelling() {
        for (s, v) in [
            ("passing", CheckStatus::Passing),
            ("warning", CheckStatus::Warning),
            ("critical", CheckStatus::Critical),
        ] {
            assert_eq!(serde_json::to_value(v).unwrap(), json!(s));
            assert_eq!(serde_json::from_value::<CheckStatus>(json!(s)).unwrap(), v);
            assert_eq!(v.to_string(), s);
        }
        assert!(serde_json::from_value::<CheckStatus>(json!("maintenance")).is_err());
        assert_eq!(
            serde_json::to_value(CheckUpdate {
                status: CheckStatus::Warning,
                output: "slow"
            })
            .unwrap(),
            json!({"Status": "warning", "Output": "slow"})
        );
    }

    #[test]
    fn consul_next_index_rules() {
        assert_eq!(next_index(0, 1), 1);
        assert_eq!(next_index(0, 42), 42);
        assert_eq!(next_index(42, 42), 42);
        assert_eq!(next_index(42, 43), 43);
        // Backwards: reset, read again without blocking.
        assert_eq!(next_index(42, 41), 0);
        assert_eq!(next_index(42, 1), 0);
        assert_eq!(next_index(42, 0), 0);
        // Zero from the server: wait on 1 instead of busy looping.
        assert_eq!(next_index(0, 0), 1);
        // After a reset the loop starts over.
        assert_eq!(next_index(0, 5), 5);
        assert_eq!(next_index(u64::MAX, u64::MAX), u64::MAX);
    }

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

    #[test]
    fn consul_health_query_defaults_to_passing() {
        let q = HealthQuery::default();
        assert!(q.passing);
        assert!(q.tags.is_empty());
        assert_eq!(q.options, QueryOptions::default());
    }
}
