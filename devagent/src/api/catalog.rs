//! `/v1/catalog/*`: the one-node catalog. Blocking (except `datacenters`); results the token may
//! not read are dropped. Registrations show here as soon as the agent's register call returns,
//! as with a real agent, whose register triggers an immediate sync.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use super::answer::Answer;
use super::filter::{NODE_FIELDS, SERVICE_NODE_FIELDS};
use super::read::{Preamble, Read};
use super::request::Req;
use super::views;
use crate::agent::Agent;

/// `GET /v1/catalog/services`: `{name: [tags]}`. Its index moves when instances come, change or
/// go, not when their checks do (Consul's `services` table index).
pub(super) async fn services(agent: &Agent, req: &Req) -> Answer {
    let preamble = Preamble::QUERY.in_query().filtered(&SERVICE_NODE_FIELDS);
    let read = Read::new(agent, req, preamble)?;
    let (index, (names, dropped)) = read
        .block(&agent.store, |st| {
            let mut names: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
            for s in views::catalog_services(st) {
                let entry = json!(views::service_node(agent, st, &s));
                if read.apply_filter(vec![entry]).is_empty() {
                    continue;
                }
                names
                    .entry(s.def.name.clone())
                    .or_default()
                    .extend(s.def.tags);
            }
            let list: Vec<(String, BTreeSet<String>)> = names.into_iter().collect();
            (st.services_index, read.acl_filter(list))
        })
        .await;
    let map: BTreeMap<String, Vec<String>> = names
        .into_iter()
        .map(|(k, v)| (k, v.into_iter().collect()))
        .collect();
    Ok(read.answer(&map, index, dropped))
}

/// `GET /v1/catalog/service/:name`: `[ServiceNode]`.
pub(super) async fn service(agent: &Agent, req: &Req) -> Answer {
    let preamble = Preamble::QUERY
        .named("Missing service name")
        .in_query()
        .filtered(&SERVICE_NODE_FIELDS);
    let read = Read::new(agent, req, preamble)?;
    let name = req.rest.as_str();
    let (index, (nodes, dropped)) = read
        .block(&agent.store, |st| {
            let nodes: Vec<Value> = views::catalog_services(st)
                .iter()
                .filter(|s| s.def.name == name && read.has_tags(&s.def.tags))
                .map(|s| json!(views::service_node(agent, st, s)))
                .collect();
            let nodes = read.apply_filter(nodes);
            (st.service_index(name), read.acl_filter(nodes))
        })
        .await;
    Ok(read.answer(&nodes, index, dropped))
}

/// `GET /v1/catalog/nodes`.
pub(super) async fn nodes(agent: &Agent, req: &Req) -> Answer {
    let preamble = Preamble::QUERY.in_query().filtered_first(&NODE_FIELDS);
    let read = Read::new(agent, req, preamble)?;
    let (index, (nodes, dropped)) = read
        .block(&agent.store, |st| {
            let nodes = read.apply_filter(vec![views::node(agent, st)]);
            (st.catalog_index, read.acl_filter(nodes))
        })
        .await;
    Ok(read.answer(&nodes, index, dropped))
}

/// `GET /v1/catalog/node/:node`: `{Node, Services: {id: NodeService}}`, `null` if unknown.
pub(super) async fn node(agent: &Agent, req: &Req) -> Answer {
    let preamble = Preamble::QUERY.named("Missing node name").in_query();
    let read = Read::new(agent, req, preamble)?;
    let node = req.rest.as_str();
    let (index, body) = read
        .block(&agent.store, |st| {
            if node != agent.node || !read.authz.allowed() {
                return (st.catalog_index, Value::Null);
            }
            let services: BTreeMap<String, Value> = views::catalog_services(st)
                .iter()
                .map(|s| (s.def.id.clone(), json!(views::node_service(s))))
                .collect();
            (
                st.catalog_index,
                json!({"Node": views::node(agent, st), "Services": services}),
            )
        })
        .await;
    Ok(read.meta(read.json(&body), index))
}

/// `GET /v1/catalog/datacenters`: no token needed.
pub(super) fn datacenters(agent: &Agent, req: &Req) -> Answer {
    Ok(req.json(&[&agent.datacenter]))
}
