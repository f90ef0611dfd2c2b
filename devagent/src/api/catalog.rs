//! `/v1/catalog/*`: the one-node catalog. Blocking (except `datacenters`); results the token may
//! not read are dropped. Registrations show here as soon as the agent's register call returns,
//! as with a real agent, whose register triggers an immediate sync.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use super::answer::{Answer, ApiError, filtered};
use super::read::{ReadOptions, acl_filter, apply_filter, has_tags};
use super::request::Req;
use super::views;
use crate::agent::Agent;

/// `GET /v1/catalog/services`: `{name: [tags]}`. Its index moves when instances come, change or
/// go, not when their checks do (Consul's `services` table index).
pub(super) async fn services(agent: &Agent, req: &Req) -> Answer {
    let opts = ReadOptions::parse(&req.query)?;
    let (filter, authz) = (|| {
        opts.check_dc(agent)?;
        let authz = req.authz(agent)?;
        Ok((req.filter(&super::filter::SERVICE_NODE_FIELDS)?, authz))
    })()
    .map_err(ApiError::in_query)?;
    let (index, (names, dropped)) = opts
        .block(&agent.store, |st| {
            let mut names: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
            for s in views::catalog_services(st) {
                let entry = json!(views::service_node(agent, st, &s));
                if apply_filter(&filter, vec![entry]).is_empty() {
                    continue;
                }
                names
                    .entry(s.def.name.clone())
                    .or_default()
                    .extend(s.def.tags);
            }
            let list: Vec<(String, BTreeSet<String>)> = names.into_iter().collect();
            (st.services_index, acl_filter(&authz, list))
        })
        .await;
    let map: BTreeMap<String, Vec<String>> = names
        .into_iter()
        .map(|(k, v)| (k, v.into_iter().collect()))
        .collect();
    Ok(filtered(opts.meta(req.json(&map), index), &authz, dropped))
}

/// `GET /v1/catalog/service/:name`: `[ServiceNode]`.
pub(super) async fn service(agent: &Agent, req: &Req) -> Answer {
    let opts = ReadOptions::parse(&req.query)?;
    let name = req.rest.as_str();
    if name.is_empty() {
        return Err(ApiError::new(400, "Missing service name"));
    }
    let (filter, authz) = (|| {
        opts.check_dc(agent)?;
        let authz = req.authz(agent)?;
        Ok((req.filter(&super::filter::SERVICE_NODE_FIELDS)?, authz))
    })()
    .map_err(ApiError::in_query)?;
    let tags: Vec<String> = req.query.all("tag").map(str::to_owned).collect();
    let (index, (nodes, dropped)) = opts
        .block(&agent.store, |st| {
            let nodes: Vec<Value> = views::catalog_services(st)
                .iter()
                .filter(|s| s.def.name == name && has_tags(&s.def.tags, &tags))
                .map(|s| json!(views::service_node(agent, st, s)))
                .collect();
            (
                st.service_index(name),
                acl_filter(&authz, apply_filter(&filter, nodes)),
            )
        })
        .await;
    Ok(filtered(
        opts.meta(req.json(&nodes), index),
        &authz,
        dropped,
    ))
}

/// `GET /v1/catalog/nodes`.
pub(super) async fn nodes(agent: &Agent, req: &Req) -> Answer {
    let opts = ReadOptions::parse(&req.query)?;
    let (filter, authz) = (|| {
        opts.check_dc(agent)?;
        let filter = req.filter(&super::filter::NODE_FIELDS)?;
        Ok((filter, req.authz(agent)?))
    })()
    .map_err(ApiError::in_query)?;
    let (index, (nodes, dropped)) = opts
        .block(&agent.store, |st| {
            let nodes = apply_filter(&filter, vec![views::node(agent, st)]);
            (st.catalog_index, acl_filter(&authz, nodes))
        })
        .await;
    Ok(filtered(
        opts.meta(req.json(&nodes), index),
        &authz,
        dropped,
    ))
}

/// `GET /v1/catalog/node/:node`: `{Node, Services: {id: NodeService}}`, `null` if unknown.
pub(super) async fn node(agent: &Agent, req: &Req) -> Answer {
    let opts = ReadOptions::parse(&req.query)?;
    let node = req.rest.as_str();
    if node.is_empty() {
        return Err(ApiError::new(400, "Missing node name"));
    }
    let authz = (|| {
        opts.check_dc(agent)?;
        req.authz(agent)
    })()
    .map_err(ApiError::in_query)?;
    let (index, body) = opts
        .block(&agent.store, |st| {
            if node != agent.node || !authz.allowed() {
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
    Ok(opts.meta(req.json(&body), index))
}

/// `GET /v1/catalog/datacenters`.
pub(super) fn datacenters(agent: &Agent, req: &Req) -> Answer {
    Ok(req.json(&[&agent.datacenter]))
}
