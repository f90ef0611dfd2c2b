//! `/v1/agent/*`: the local agent's services and checks, its self-description, maintenance mode
//! and the local health endpoints.
//!
//! Validation runs in Consul's order with Consul's texts (see `CONSUL_API.md` §2): decode, name,
//! address, token, weights, meta, checks, check status, then permission. Agent endpoints are not
//! blocking (no `X-Consul-Index`), except `GET /v1/agent/service/:id`, which blocks on `?hash=`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Instant;

use serde_json::{Value, json};

use super::answer::{Answer, ApiError, empty, text};
use super::filter::{AGENT_SERVICE, HEALTH_CHECK};
use super::read::{Preamble, Read, filter_error, jittered, parsed_filter};
use super::request::Req;
use super::views::{self, VERSION};
use crate::acl::Authz;
use crate::agent::Agent;
use crate::decode::{
    CheckDef, CheckForm, Fields, Registration, ServiceDef, TaggedAddress, parse_go_bool, parse_json,
};
use crate::state::{Check, NewCheck, Service, State, Status, Ttl};

const SERVICE_MAINT_PREFIX: &str = "_service_maintenance:";
const NODE_MAINT: &str = "_node_maintenance";

fn decode_failed(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(400, format!("Request decode failed: {e}"))
}

/// Consul's `ipaddr.IsAny`: `0.0.0.0` or `::`.
fn is_any(address: &str) -> bool {
    address
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .is_ok_and(|ip| ip.is_unspecified())
}

fn validate_weights((passing, warning): (i64, i64)) -> Result<(), ApiError> {
    let fail = |m: &str| Err(ApiError::new(400, format!("Invalid Weights: {m}")));
    if passing < 1 {
        return fail("Passing must be greater than 0");
    }
    if warning < 0 {
        return fail("Warning must be greater or equal than 0");
    }
    if passing > 65535 || warning > 65535 {
        return fail("DNS Weight must be between 0 and 65535");
    }
    Ok(())
}

/// Consul's `ValidateServiceMetadata` for a typical service.
fn validate_meta(meta: &BTreeMap<String, String>) -> Result<(), ApiError> {
    let fail = |m: String| Err(ApiError::new(400, format!("Invalid Service Meta: {m}")));
    if meta.len() > 64 {
        return fail("Node metadata cannot contain more than 64 key/value pairs".into());
    }
    for (k, v) in meta {
        let problem = if k.is_empty() {
            Some("Key cannot be blank".to_owned())
        } else if !k
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            Some("Key contains invalid characters".into())
        } else if k.len() > 128 {
            Some("Key is too long (limit: 128 characters)".into())
        } else if k.starts_with("consul-") {
            Some("Key prefix 'consul-' is reserved for internal use".into())
        } else if v.len() > 512 {
            Some("Value is too long (limit: 512 characters)".into())
        } else {
            None
        };
        if let Some(p) = problem {
            return fail(format!("Couldn't load metadata pair ('{k}', '{v}'): {p}"));
        }
    }
    Ok(())
}

fn scripts_disabled(defs: &[CheckDef]) -> Result<(), ApiError> {
    if defs.iter().any(|d| !d.script_args.is_empty()) {
        return Err(ApiError::new(
            500,
            "Scripts are disabled on this agent from remote calls; to enable, configure 'enable_script_checks' to true",
        ));
    }
    Ok(())
}

/// A check in its registered state, registered in `form`.
fn new_check(agent: &Agent, def: &CheckDef, form: CheckForm, id: String, name: String) -> NewCheck {
    let status = Status::parse(&def.status);
    let mut check = Check::new(id, name, status);
    check.form = form;
    check.notes = def.notes.clone();
    check.service_id = def.service_id.clone();
    check.type_name = def.type_name().to_owned();
    check.def = def.clone();
    check.reap_after = def
        .deregister_critical_service_after
        .positive()
        .map(|d| d.max(agent.deregister_critical_min))
        .map(|d| agent.deregister_critical_cap.map_or(d, |cap| d.min(cap)));
    check.ttl = def.ttl.positive().map(|ttl| Ttl {
        ttl,
        deadline: Some(Instant::now() + ttl),
        last_output: String::new(),
    });
    NewCheck { check }
}

/// `403`/`404` for a write to a service, as Consul's `vetServiceUpdate`.
fn vet_service_update(st: &State, authz: &Authz, id: &str) -> Result<String, ApiError> {
    let Some(service) = st.services.get(id) else {
        return Err(ApiError::new(
            404,
            format!(
                "Unknown service ID {id:?}. Ensure that the service ID is passed, not the service name."
            ),
        ));
    };
    authz.require("service", "write", &service.def.name)?;
    Ok(service.def.name.clone())
}

/// `403`/`404` for a write to a check, as Consul's `vetCheckUpdate`.
fn vet_check_update(agent: &Agent, authz: &Authz, id: &str) -> Result<(), ApiError> {
    agent.store.read(|st| match st.checks.get(id) {
        None => Err(ApiError::new(
            404,
            format!(
                "Unknown check ID {id:?}. Ensure that the check ID is passed, not the check name."
            ),
        )),
        Some(c) if c.service_name.is_empty() => Ok(authz.require("node", "write", &agent.node)?),
        Some(c) => Ok(authz.require("service", "write", &c.service_name)?),
    })
}

/// `GET /v1/agent/self`: what `consul info` prints (`Stats`), the agent's `Config`, its serf
/// `Member`, as a dev-mode Consul server that leads itself reports them.
pub(super) fn self_info(agent: &Agent, req: &Req) -> Answer {
    let read = Read::new(agent, req, Preamble::AGENT)?;
    read.authz.require("agent", "read", &agent.node)?;
    let (node_id, services, checks, ttls, index) = agent.store.read(|st| {
        let ttls = st.checks.values().filter(|c| c.ttl.is_some()).count();
        (
            st.node_id.clone(),
            st.services.len(),
            st.checks.len(),
            ttls,
            st.index,
        )
    });
    let acls = agent.acl.default_policy() == "deny";
    Ok(req.json(&json!({
        "Config": {
            "Datacenter": agent.datacenter,
            "PrimaryDatacenter": agent.datacenter,
            "NodeName": agent.node,
            "NodeID": node_id,
            "Revision": "devagent",
            "Server": true,
            "Version": VERSION,
            "BuildDate": "2024-01-01T00:00:00Z",
        },
        "DebugConfig": {
            "Datacenter": agent.datacenter,
            "NodeName": agent.node,
            "NodeID": node_id,
            "DNSDomain": "consul.",
            "ACLsEnabled": acls,
            "ACLResolverSettings": {"ACLDefaultPolicy": agent.acl.default_policy()},
            "ServerMode": true,
            "DevMode": true,
            "CheckReapInterval": crate::decode::GoDuration::from_std(agent.reap_interval).to_string(),
            "CheckDeregisterIntervalMin": crate::decode::GoDuration::from_std(agent.deregister_critical_min).to_string(),
        },
        // Go writes a float64 zero as `0`.
        "Coord": {"Vec": [0, 0, 0, 0, 0, 0, 0, 0], "Error": 1.5, "Adjustment": 0, "Height": 1e-5},
        "Member": member(agent, &node_id),
        "Stats": {
            "agent": {
                "check_monitors": "0",
                "check_ttls": ttls.to_string(),
                "checks": checks.to_string(),
                "services": services.to_string(),
            },
            "build": {"prerelease": "", "revision": "devagent", "version": VERSION, "version_metadata": ""},
            "consul": {
                "acl": if acls { "enabled" } else { "disabled" },
                "bootstrap": "false",
                "known_datacenters": "1",
                "leader": "true",
                "leader_addr": views::SERVER_ADDRESS,
                "server": "true",
            },
            "raft": raft_stats(&node_id, index),
            "runtime": runtime_stats(),
            "serf_lan": serf_stats(1, 2),
            "serf_wan": serf_stats(0, 1),
        },
        "Meta": {"consul-network-segment": ""},
    })))
}

/// The raft section of `Stats`: the one voter, leader since the first election, with the log at
/// the agent's index and no snapshot yet.
fn raft_stats(node_id: &str, index: u64) -> Value {
    let index = index.to_string();
    json!({
        "applied_index": index,
        "commit_index": index,
        "fsm_pending": "0",
        "last_contact": "0",
        "last_log_index": index,
        "last_log_term": "2",
        "last_snapshot_index": "0",
        "last_snapshot_term": "0",
        "latest_configuration": format!("[{{Suffrage:Voter ID:{node_id} Address:{}}}]", views::SERVER_ADDRESS),
        "latest_configuration_index": "0",
        "num_peers": "0",
        "protocol_version": "3",
        "protocol_version_max": "3",
        "protocol_version_min": "0",
        "snapshot_version_max": "1",
        "snapshot_version_min": "0",
        "state": "Leader",
        "term": "2",
    })
}

/// A serf pool of this one member: `user_events` queued, the event clock at `event_time`.
fn serf_stats(user_events: u32, event_time: u32) -> Value {
    json!({
        "coordinate_resets": "0",
        "encrypted": "false",
        "event_queue": user_events.to_string(),
        "event_time": event_time.to_string(),
        "failed": "0",
        "health_score": "0",
        "intent_queue": "0",
        "left": "0",
        "member_time": "1",
        "members": "1",
        "query_queue": "0",
        "query_time": "1",
    })
}

/// The runtime section of `Stats`, in Go's words: `GOOS`/`GOARCH` names, the CPUs the process
/// may use, its concurrent tasks as `goroutines`.
fn runtime_stats() -> Value {
    let os = match std::env::consts::OS {
        "macos" => "darwin",
        other => other,
    };
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "loongarch64" => "loong64",
        other => other,
    };
    let parallelism = std::thread::available_parallelism().map_or(1, usize::from);
    let tasks = tokio::runtime::Handle::try_current().map_or(1, |h| h.metrics().num_alive_tasks());
    json!({
        "arch": arch,
        "cpu_count": allowed_cpus().unwrap_or(parallelism).to_string(),
        "goroutines": tasks.to_string(),
        "max_procs": parallelism.to_string(),
        "os": os,
        "version": concat!("devagent ", env!("CARGO_PKG_VERSION")),
    })
}

/// The CPUs this process may run on (Linux's `Cpus_allowed_list`), as Go's `NumCPU` counts
/// them: the affinity mask, not a cgroup's quota.
fn allowed_cpus() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))?
        .trim();
    let mut count = 0;
    for part in list.split(',') {
        count += match part.split_once('-') {
            Some((a, b)) => b.parse::<usize>().ok()? + 1 - a.parse::<usize>().ok()?,
            None => {
                part.parse::<usize>().ok()?;
                1
            }
        };
    }
    (count > 0).then_some(count)
}

fn member(agent: &Agent, node_id: &str) -> Value {
    json!({
        "Name": agent.node,
        "Addr": views::NODE_ADDRESS,
        "Port": 8301,
        "Tags": {
            "acls": if agent.acl.default_policy() == "deny" { "1" } else { "0" },
            "build": format!("{VERSION}:devagent"),
            "dc": agent.datacenter,
            "ft_fs": "1",
            "ft_si": "1",
            "id": node_id,
            "port": "8300",
            "raft_vsn": "3",
            "role": "consul",
            "segment": "",
            "vsn": "2",
            "vsn_max": "3",
            "vsn_min": "2",
            "wan_join_port": "8302",
        },
        "Status": 1,
        "ProtocolMin": 1,
        "ProtocolMax": 5,
        "ProtocolCur": 2,
        "DelegateMin": 2,
        "DelegateMax": 5,
        "DelegateCur": 4,
    })
}

/// `GET /v1/agent/members`.
pub(super) fn members(agent: &Agent, req: &Req) -> Answer {
    let read = Read::new(agent, req, Preamble::AGENT)?;
    let node_id = agent.store.read(|st| st.node_id.clone());
    let (list, dropped) = read.acl_filter(vec![member(agent, &node_id)]);
    Ok(read.filtered(&list, dropped))
}

/// `GET /v1/agent/services`.
pub(super) fn services(agent: &Agent, req: &Req) -> Answer {
    let read = Read::new(agent, req, Preamble::AGENT.filtered(&AGENT_SERVICE))?;
    let all: Vec<Value> = agent.store.read(|st| {
        st.services
            .values()
            .map(|s| json!(views::agent_service(s, &agent.datacenter)))
            .collect()
    });
    let (kept, dropped) = read.acl_filter(read.apply_filter(all));
    let map: serde_json::Map<String, Value> = kept
        .into_iter()
        .map(|v| (v["ID"].as_str().unwrap_or_default().to_owned(), v))
        .collect();
    Ok(read.filtered(&map, dropped))
}

/// The FNV-1a hash of an answer, as Consul's `ContentHash` (hex).
fn content_hash(value: &impl serde::Serialize) -> String {
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{hash:x}")
}

/// `GET /v1/agent/service/:id`, blocking on `?hash=` until the definition changes.
pub(super) async fn service(agent: &Agent, req: &Req) -> Answer {
    let read = Read::new(agent, req, Preamble::AGENT.waits())?;
    let id = req.rest.as_str();
    let lookup = |st: &State| -> Result<views::AgentService, ApiError> {
        let Some(service) = st.services.get(id) else {
            return Err(ApiError::new(404, format!("unknown service ID: {id}")));
        };
        read.authz.require("service", "read", &service.def.name)?;
        let mut view = views::agent_service(service, &agent.datacenter);
        view.content_hash = Some(content_hash(&view));
        Ok(view)
    };
    // The answer depends on the service's definition alone, which changes only with its
    // indexes (or the agent's generation, after a restart that lost its state).
    let version = |st: &State| {
        let service = st.services.get(id);
        (
            st.generation,
            service.map(|s| (s.create_index, s.modify_index)),
        )
    };
    let wanted = read.params.hash.as_str();
    let mut changes = agent.store.subscribe();
    let (mut seen, found) = agent.store.read(|st| (version(st), lookup(st)));
    let mut view = found?;
    if !wanted.is_empty() {
        let deadline = tokio::time::Instant::now() + jittered(read.params.wait);
        while view.content_hash.as_deref() == Some(wanted) {
            tokio::select! {
                changed = changes.changed() => if changed.is_err() { break },
                _ = tokio::time::sleep_until(deadline) => break,
            }
            // Every change wakes every waiting query. One about another service leaves this
            // answer as it was: no view built and hashed again for it, so that a thousand
            // instances, each waiting on its own registration, do not cost a thousand views
            // per registration.
            let next = agent.store.read(|st| {
                let now = version(st);
                (now != seen).then(|| (now, lookup(st)))
            });
            if let Some((now, found)) = next {
                seen = now;
                view = found?;
            }
        }
    }
    let hash = view.content_hash.clone().unwrap_or_default();
    let mut resp = read.json(&view);
    if let Ok(v) = axum::http::HeaderValue::from_str(&hash) {
        resp.headers_mut().insert("x-consul-contenthash", v);
    }
    Ok(resp)
}

/// `PUT /v1/agent/service/register[?replace-existing-checks]`.
pub(super) fn register(agent: &Agent, req: &Req) -> Answer {
    let registration = Registration::decode(&req.body).map_err(decode_failed)?;
    let def = &registration.service;
    if def.name.is_empty() {
        return Err(ApiError::new(400, "Missing service name"));
    }
    if is_any(&def.address) {
        return Err(ApiError::new(400, "Invalid service address"));
    }
    let authz = req.authz(agent)?;
    validate_weights(def.weights)?;
    validate_meta(&def.meta)?;
    let defs = registration
        .check_types()
        .map_err(|e| ApiError::new(400, format!("Invalid check: {e}")))?;
    if defs
        .iter()
        .any(|c| !c.status.is_empty() && Status::parse(&c.status).is_none())
    {
        return Err(ApiError::new(
            400,
            "Status for checks must 'passing', 'warning', 'critical'",
        ));
    }
    let id = if def.id.is_empty() {
        def.name.clone()
    } else {
        def.id.clone()
    };
    authz.require("service", "write", &def.name)?;
    if let Some(existing) = agent
        .store
        .read(|st| st.services.get(&id).map(|s| s.def.name.clone()))
    {
        authz.require("service", "write", &existing)?;
    }
    scripts_disabled(&defs)?;

    let service = Service::new(stored(registration.service, id));
    let several = defs.len() > 1;
    let new_checks: Vec<NewCheck> = defs
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let check_id = match (d.check_id.is_empty(), several) {
                (false, _) => d.check_id.clone(),
                (true, false) => format!("service:{}", service.def.id),
                (true, true) => format!("service:{}:{}", service.def.id, i + 1),
            };
            let name = if d.name.is_empty() {
                format!("Service '{}' check", service.def.name)
            } else {
                d.name.clone()
            };
            let mut d = d.clone();
            d.service_id = service.def.id.clone();
            let mut c = new_check(agent, &d, CheckForm::ServiceCheck, check_id, name);
            c.check.service_name = service.def.name.clone();
            c
        })
        .collect();
    let replace = req
        .query
        .get("replace-existing-checks")
        .is_some_and(|v| v.is_empty() || v == "true");
    tracing::info!(service = %service.def.id, name = %service.def.name, "registered service");
    agent
        .checks
        .write(|st| st.add_service(service, new_checks, replace));
    Ok(empty())
}

/// A service as the agent stores it: with its ID, and the address as its LAN and WAN tagged
/// addresses unless the registration named them.
fn stored(mut def: ServiceDef, id: String) -> ServiceDef {
    def.id = id;
    if let Ok(ip) = def.address.parse::<IpAddr>() {
        let (lan, wan) = if ip.is_ipv4() {
            ("lan_ipv4", "wan_ipv4")
        } else {
            ("lan_ipv6", "wan_ipv6")
        };
        for key in [lan, wan] {
            def.tagged_addresses
                .entry(key.to_owned())
                .or_insert_with(|| TaggedAddress {
                    address: def.address.clone(),
                    port: def.port,
                });
        }
    }
    def
}

/// `PUT /v1/agent/service/deregister/:id`.
pub(super) fn deregister(agent: &Agent, req: &Req) -> Answer {
    let authz = req.authz(agent)?;
    let id = req.rest.as_str();
    agent.checks.write(|st| {
        vet_service_update(st, &authz, id)?;
        st.remove_service(id);
        Ok::<_, ApiError>(())
    })?;
    tracing::info!(service = %id, "deregistered service");
    Ok(empty())
}

fn enable_param(req: &Req) -> Result<bool, ApiError> {
    let Some(raw) = req.query.get("enable") else {
        return Err(ApiError::new(400, "Missing value for enable"));
    };
    parse_go_bool(raw)
        .ok_or_else(|| ApiError::new(400, format!("Invalid value for enable: {raw:?}")))
}

/// `PUT /v1/agent/service/maintenance/:id?enable=&reason=`.
pub(super) fn service_maintenance(agent: &Agent, req: &Req) -> Answer {
    let id = req.rest.as_str();
    if id.is_empty() {
        return Err(ApiError::new(400, "Missing service ID"));
    }
    let enable = enable_param(req)?;
    let authz = req.authz(agent)?;
    let reason = req.query.get("reason").filter(|r| !r.is_empty()).unwrap_or(
        "Maintenance mode is enabled for this service, but no reason was provided. This is a default message.",
    );
    let check_id = format!("{SERVICE_MAINT_PREFIX}{id}");
    agent.checks.write(|st| {
        let name = vet_service_update(st, &authz, id)?;
        let present = st.checks.contains_key(&check_id);
        if enable && !present {
            let mut check = Check::new(
                check_id.clone(),
                "Service Maintenance Mode".into(),
                Some(Status::Critical),
            );
            check.notes = reason.to_owned();
            check.service_id = id.to_owned();
            check.service_name = name;
            check.type_name = "maintenance".into();
            st.add_check(NewCheck { check });
        } else if !enable && present {
            st.remove_check(&check_id);
        }
        Ok::<_, ApiError>(())
    })?;
    Ok(empty())
}

/// `PUT /v1/agent/maintenance?enable=&reason=` (the node).
pub(super) fn node_maintenance(agent: &Agent, req: &Req) -> Answer {
    let enable = enable_param(req)?;
    let authz = req.authz(agent)?;
    authz.require("node", "write", &agent.node)?;
    let reason = req.query.get("reason").filter(|r| !r.is_empty()).unwrap_or(
        "Maintenance mode is enabled for this node, but no reason was provided. This is a default message.",
    );
    agent.checks.write(|st| {
        let present = st.checks.contains_key(NODE_MAINT);
        if enable && !present {
            let mut check = Check::new(
                NODE_MAINT.into(),
                "Node Maintenance Mode".into(),
                Some(Status::Critical),
            );
            check.notes = reason.to_owned();
            check.type_name = "maintenance".into();
            st.add_check(NewCheck { check });
        } else if !enable && present {
            st.remove_check(NODE_MAINT);
        }
    });
    Ok(empty())
}

/// `GET /v1/agent/checks`. Consul checks a filter's selectors against the check type only
/// when it first matches a check: with no check, any selector goes; with one, an invalid
/// selector's error comes without the evaluator's prefix.
pub(super) fn checks(agent: &Agent, req: &Req) -> Answer {
    let read = Read::new(agent, req, Preamble::AGENT)?;
    let parsed = parsed_filter(&req.query)?;
    let all: Vec<Value> = agent.store.read(|st| {
        st.checks
            .values()
            .map(|c| json!(views::local_check(c, st, &agent.node)))
            .collect()
    });
    let filter = match parsed {
        Some(p) if !all.is_empty() => Some(
            p.check(&HEALTH_CHECK)
                .map_err(|e| filter_error(&e, false))?,
        ),
        _ => None,
    };
    let all = match filter {
        Some(f) => all.into_iter().filter(|c| f.matches(c)).collect(),
        None => all,
    };
    let (kept, dropped) = read.acl_filter(all);
    let map: serde_json::Map<String, Value> = kept
        .into_iter()
        .map(|v| (v["CheckID"].as_str().unwrap_or_default().to_owned(), v))
        .collect();
    Ok(read.filtered(&map, dropped))
}

/// `GET /_devagent/checks` (not Consul's): `{CheckID: definition}`, each check's definition as
/// the agent decoded it from its registration (`TTL`, `HTTP`, `Interval`,
/// `DeregisterCriticalServiceAfter`, ...; fields left at their zero value are left out). Consul
/// shows none of it (`Definition` is `{}`); tests read it here to see how a registration was
/// understood. Filtered by the token as `/v1/agent/checks` is.
pub(super) fn definitions(agent: &Agent, req: &Req) -> Answer {
    let read = Read::new(agent, req, Preamble::AGENT)?;
    let all: Vec<(String, Value)> = agent.store.read(|st| {
        st.checks
            .values()
            .map(|c| (c.id.clone(), Value::Object(views::definition(&c.def))))
            .collect()
    });
    let (kept, dropped) = read.acl_filter(all);
    let map: serde_json::Map<String, Value> = kept.into_iter().collect();
    Ok(read.filtered(&map, dropped))
}

/// `PUT /v1/agent/check/register`.
pub(super) fn check_register(agent: &Agent, req: &Req) -> Answer {
    let value = parse_json(&req.body).map_err(decode_failed)?;
    let fields = Fields::new(&value, "CheckDefinition").map_err(decode_failed)?;
    let def = CheckDef::decode(fields, CheckForm::Registration).map_err(decode_failed)?;
    let id = fields.string("ID").map_err(decode_failed)?;
    if def.name.is_empty() {
        return Err(ApiError::new(400, "Missing check name"));
    }
    if !def.status.is_empty() && Status::parse(&def.status).is_none() {
        return Err(ApiError::new(400, "Bad check status"));
    }
    let authz = req.authz(agent)?;
    def.validate()
        .map_err(|e| ApiError::new(400, format!("Invalid check: {e}")))?;
    let check_id = [id, def.check_id.clone(), def.name.clone()]
        .into_iter()
        .find(|s| !s.is_empty())
        .unwrap_or_default();
    let service_name = if def.service_id.is_empty() {
        String::new()
    } else {
        agent
            .store
            .read(|st| st.services.get(&def.service_id).map(|s| s.def.name.clone()))
            .ok_or_else(|| {
                ApiError::new(
                    404,
                    format!("ServiceID {:?} does not exist", def.service_id),
                )
            })?
    };
    if service_name.is_empty() {
        authz.require("node", "write", &agent.node)?;
    } else {
        authz.require("service", "write", &service_name)?;
    }
    if let Some(existing) = agent
        .store
        .read(|st| st.checks.get(&check_id).map(|c| c.service_name.clone()))
    {
        if existing.is_empty() {
            authz.require("node", "write", &agent.node)?;
        } else {
            authz.require("service", "write", &existing)?;
        }
    }
    scripts_disabled(std::slice::from_ref(&def))?;
    let name = def.name.clone();
    let mut new = new_check(agent, &def, CheckForm::Registration, check_id, name);
    new.check.service_name = service_name;
    agent.checks.write(|st| st.add_check(new));
    Ok(empty())
}

/// `PUT /v1/agent/check/deregister/:id`.
pub(super) fn check_deregister(agent: &Agent, req: &Req) -> Answer {
    let authz = req.authz(agent)?;
    vet_check_update(agent, &authz, &req.rest)?;
    agent.checks.write(|st| st.remove_check(&req.rest));
    Ok(empty())
}

fn ttl_update(agent: &Agent, req: &Req, status: Status, output: &str) -> Answer {
    let authz = req.authz(agent)?;
    vet_check_update(agent, &authz, &req.rest)?;
    agent
        .store
        .write(|st| st.update_ttl(&req.rest, status, output))
        .map_err(|e| ApiError::new(500, e))?;
    agent.checks.rearm(&req.rest);
    Ok(empty())
}

/// `PUT /v1/agent/check/{pass,warn,fail}/:id?note=`.
pub(super) fn check_ttl(agent: &Agent, req: &Req, status: Status) -> Answer {
    let note = req.query.get("note").unwrap_or_default().to_owned();
    ttl_update(agent, req, status, &note)
}

/// `PUT /v1/agent/check/update/:id` with `{"Status": ..., "Output": ...}`.
pub(super) fn check_update(agent: &Agent, req: &Req) -> Answer {
    let value = parse_json(&req.body).map_err(decode_failed)?;
    let fields = Fields::new(&value, "checkUpdate").map_err(decode_failed)?;
    let status = fields.string("Status").map_err(decode_failed)?;
    let output = fields.string("Output").map_err(decode_failed)?;
    let Some(status) = Status::parse(&status) else {
        return Err(ApiError::new(
            400,
            format!("Invalid check status: '{status}'"),
        ));
    };
    ttl_update(agent, req, status, &output)
}

/// Consul's `AggregatedStatus` over a service's checks (maintenance first).
fn aggregated(checks: &[views::AgentHealthCheck]) -> &'static str {
    if checks
        .iter()
        .any(|c| c.check_id == NODE_MAINT || c.check_id.starts_with(SERVICE_MAINT_PREFIX))
    {
        return "maintenance";
    }
    let has = |s: Status| checks.iter().any(|c| c.status == s.as_str());
    if has(Status::Critical) {
        "critical"
    } else if has(Status::Warning) {
        "warning"
    } else {
        "passing"
    }
}

fn code_of(status: &str) -> u16 {
    match status {
        "passing" => 200,
        "warning" => 429,
        _ => 503,
    }
}

/// A `?format=text` health answer: Consul types it `text/plain`, without a charset.
fn health_text(status: u16, body: impl Into<String>) -> axum::response::Response {
    let mut resp = text(status, body);
    resp.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("text/plain"),
    );
    resp
}

fn wants_text(req: &Req) -> bool {
    let accept = req
        .headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if accept.starts_with("text/plain") {
        return true;
    }
    match req.query.get("format") {
        Some(f) if !f.is_empty() => f == "text",
        _ => false,
    }
}

/// The local health of one instance: status, and the JSON `AgentServiceChecksInfo`.
fn instance_health(agent: &Agent, st: &State, service: &Service) -> (&'static str, Value) {
    let views: Vec<views::AgentHealthCheck> = st
        .checks
        .values()
        .filter(|c| c.service_id == service.def.id || c.service_id.is_empty())
        .map(|c| views::agent_health_check(c, st, &agent.node))
        .collect();
    let status = aggregated(&views);
    let info = json!({
        "AggregatedStatus": status,
        "Service": views::agent_service(service, &agent.datacenter),
        "Checks": views,
    });
    (status, info)
}

/// `GET /v1/agent/health/service/id/:id[?format=text]`.
pub(super) fn health_by_id(agent: &Agent, req: &Req) -> Answer {
    let read = Read::new(agent, req, Preamble::AGENT.named("Missing serviceID"))?;
    let id = req.rest.as_str();
    let found = agent.store.read(|st| {
        st.services.get(id).map(|s| {
            read.authz
                .require("service", "read", &s.def.name)
                .map(|()| instance_health(agent, st, s))
        })
    });
    let reason_header = |mut resp: axum::response::Response, reason: &str| {
        if let Ok(v) = axum::http::HeaderValue::from_str(reason) {
            resp.headers_mut().insert("x-consul-reason", v);
        }
        resp
    };
    match found {
        Some(result) => {
            let (status, info) = result?;
            let resp = if wants_text(req) {
                health_text(code_of(status), status)
            } else {
                read.json_status(code_of(status), &info)
            };
            Ok(reason_header(resp, status))
        }
        None => {
            let reason = format!("ServiceId {id} not found");
            let resp = if wants_text(req) {
                health_text(404, reason.clone())
            } else {
                read.json_status(
                    404,
                    &json!({"AggregatedStatus": "critical", "Service": null, "Checks": null}),
                )
            };
            Ok(reason_header(resp, &reason))
        }
    }
}

/// `GET /v1/agent/health/service/name/:name[?format=text]`: the worst of its instances.
pub(super) fn health_by_name(agent: &Agent, req: &Req) -> Answer {
    let read = Read::new(agent, req, Preamble::AGENT.named("Missing service Name"))?;
    let name = req.rest.as_str();
    read.authz.require("service", "read", name)?;
    let (code, status, list) = agent.store.read(|st| {
        let mut code = 404;
        let mut status = format!("ServiceName {name} Not Found");
        let mut list = Vec::new();
        for s in st.services.values().filter(|s| s.def.name == name) {
            let (s_status, info) = instance_health(agent, st, s);
            let s_code = code_of(s_status);
            if code == 404 || code < s_code {
                code = s_code;
                status = s_status.to_owned();
            }
            list.push(info);
        }
        (code, status, list)
    });
    let mut resp = if wants_text(req) {
        health_text(code, status.clone())
    } else {
        read.json_status(code, &list)
    };
    if let Ok(v) = axum::http::HeaderValue::from_str(&status) {
        resp.headers_mut().insert("x-consul-reason", v);
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unspecified_addresses() {
        assert!(is_any("0.0.0.0"));
        assert!(is_any("::"));
        assert!(is_any("[::]"));
        assert!(!is_any("127.0.0.1"));
        assert!(!is_any(""));
        assert!(!is_any("example.invalid"));
    }

    #[test]
    fn meta_errors_are_consuls() {
        let meta = |k: &str, v: &str| validate_meta(&BTreeMap::from([(k.into(), v.into())]));
        assert!(meta("version", "1").is_ok());
        assert_eq!(
            meta("", "x").unwrap_err().text,
            "Invalid Service Meta: Couldn't load metadata pair ('', 'x'): Key cannot be blank"
        );
        assert!(
            meta("a.b", "x")
                .unwrap_err()
                .text
                .ends_with("Key contains invalid characters")
        );
        assert!(
            meta(&"k".repeat(129), "x")
                .unwrap_err()
                .text
                .ends_with("Key is too long (limit: 128 characters)")
        );
        assert!(
            meta("consul-x", "x")
                .unwrap_err()
                .text
                .ends_with("Key prefix 'consul-' is reserved for internal use")
        );
        assert!(
            meta("k", &"v".repeat(513))
                .unwrap_err()
                .text
                .ends_with("Value is too long (limit: 512 characters)")
        );
        let many: BTreeMap<String, String> =
            (0..65).map(|i| (format!("k{i}"), "v".into())).collect();
        assert_eq!(
            validate_meta(&many).unwrap_err().text,
            "Invalid Service Meta: Node metadata cannot contain more than 64 key/value pairs"
        );
    }

    #[test]
    fn weight_errors_are_consuls() {
        assert!(validate_weights((1, 0)).is_ok());
        assert_eq!(
            validate_weights((0, 1)).unwrap_err().text,
            "Invalid Weights: Passing must be greater than 0"
        );
        assert_eq!(
            validate_weights((1, -1)).unwrap_err().text,
            "Invalid Weights: Warning must be greater or equal than 0"
        );
        assert_eq!(
            validate_weights((70000, 1)).unwrap_err().text,
            "Invalid Weights: DNS Weight must be between 0 and 65535"
        );
    }
}
