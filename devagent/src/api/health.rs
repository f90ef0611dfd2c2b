//! `/v1/health/*`: instances with their checks, and checks by service, state or node. All
//! blocking; results the token may not read are dropped, never refused.
//!
//! `/health/service/:name` answers `[{Node, Service, Checks}]`, each entry's `Checks` holding the
//! node's `serfHealth` too; `?tag=` (repeatable, all must match, case-insensitive), `?filter=`
//! and `?passing` (drops an entry if any of its checks is not passing) narrow it.

use serde_json::{Value, json};

use super::answer::{Answer, ApiError, filtered, text};
use super::read::{ReadOptions, acl_filter, apply_filter, has_tags};
use super::request::Req;
use super::views;
use crate::agent::Agent;
use crate::decode::parse_go_bool;
use crate::state::State;

fn instances(agent: &Agent, st: &State, name: &str) -> Vec<Value> {
    let node = views::node(agent, st);
    views::catalog_services(st)
        .iter()
        .filter(|s| s.def.name == name)
        .map(|s| {
            let mut checks = views::node_checks(st, &agent.node);
            if s.def.id != "consul" {
                checks.extend(views::instance_checks(st, &agent.node, &s.def.id));
            }
            json!({"Node": node, "Service": views::node_service(s), "Checks": checks})
        })
        .collect()
}

/// `GET /v1/health/service/:name`.
pub(super) async fn service(agent: &Agent, req: &Req) -> Answer {
    let opts = ReadOptions::parse(&req.query)?.streamed();
    let name = req.rest.as_str();
    if name.is_empty() {
        return Err(ApiError::new(400, "Missing service name"));
    }
    // Consul reads ?passing after the query ran, so its 400 carries the blocking headers.
    let passing = match req.query.get("passing") {
        None => Some(false),
        Some("") => Some(true),
        Some(v) => parse_go_bool(v),
    };
    opts.check_dc(agent)?;
    let authz = req.authz(agent)?;
    // A streamed (blocking) query words filter errors without the evaluator's prefix.
    let filter = req.filter_as(&super::filter::CHECK_SERVICE_NODE, !opts.is_streamed())?;
    let tags: Vec<String> = req.query.all("tag").map(str::to_owned).collect();
    let (index, (entries, dropped)) = opts
        .block(&agent.store, |st| {
            let entries: Vec<Value> = instances(agent, st, name)
                .into_iter()
                .filter(|e| {
                    let t: Vec<String> =
                        serde_json::from_value(e["Service"]["Tags"].clone()).unwrap_or_default();
                    has_tags(&t, &tags)
                })
                .collect();
            let entries = apply_filter(&filter, entries);
            (st.service_index(name), acl_filter(&authz, entries))
        })
        .await;
    let Some(passing) = passing else {
        let resp = text(400, "Invalid value for ?passing");
        return Ok(opts.meta(resp, index));
    };
    let entries: Vec<Value> = if passing {
        entries
            .into_iter()
            .filter(|e| {
                e["Checks"]
                    .as_array()
                    .is_some_and(|cs| cs.iter().all(|c| c["Status"] == "passing"))
            })
            .collect()
    } else {
        entries
    };
    Ok(filtered(
        opts.meta(req.json(&entries), index),
        &authz,
        dropped,
    ))
}

async fn check_list(
    agent: &Agent,
    req: &Req,
    opts: ReadOptions,
    select: impl Fn(&State) -> (u64, Vec<views::HealthCheck>),
) -> Answer {
    let (filter, authz) = (|| {
        opts.check_dc(agent)?;
        let filter = req.filter(&super::filter::HEALTH_CHECK)?;
        Ok((filter, req.authz(agent)?))
    })()
    .map_err(ApiError::in_query)?;
    let (index, (checks, dropped)) = opts
        .block(&agent.store, |st| {
            let (index, checks) = select(st);
            let values = checks.into_iter().map(|c| json!(c)).collect();
            (index, acl_filter(&authz, apply_filter(&filter, values)))
        })
        .await;
    Ok(filtered(
        opts.meta(req.json(&checks), index),
        &authz,
        dropped,
    ))
}

/// `GET /v1/health/checks/:service`.
pub(super) async fn checks(agent: &Agent, req: &Req) -> Answer {
    let opts = ReadOptions::parse(&req.query)?;
    let name = req.rest.clone();
    if name.is_empty() {
        return Err(ApiError::new(400, "Missing service name"));
    }
    check_list(agent, req, opts, |st| {
        let checks = st
            .checks
            .values()
            .filter(|c| c.service_name == name && !c.service_id.is_empty())
            .map(|c| views::health_check(c, st, &agent.node))
            .collect();
        (st.service_index(&name), checks)
    })
    .await
}

/// `GET /v1/health/state/:state` (`any`, `passing`, `warning`, `critical`).
pub(super) async fn state(agent: &Agent, req: &Req) -> Answer {
    let opts = ReadOptions::parse(&req.query)?;
    let wanted = req.rest.clone();
    if wanted.is_empty() {
        return Err(ApiError::new(400, "Missing check state"));
    }
    check_list(agent, req, opts, |st| {
        let checks = views::node_checks(st, &agent.node)
            .into_iter()
            .chain(
                st.checks
                    .values()
                    .filter(|c| !c.service_id.is_empty())
                    .map(|c| views::health_check(c, st, &agent.node)),
            )
            .filter(|c| wanted == "any" || c.status == wanted)
            .collect();
        (st.checks_index, checks)
    })
    .await
}

/// `GET /v1/health/node/:node`.
pub(super) async fn node(agent: &Agent, req: &Req) -> Answer {
    let opts = ReadOptions::parse(&req.query)?;
    let node = req.rest.clone();
    if node.is_empty() {
        return Err(ApiError::new(400, "Missing node name"));
    }
    check_list(agent, req, opts, |st| {
        let checks = if node == agent.node {
            views::node_checks(st, &agent.node)
                .into_iter()
                .chain(
                    st.checks
                        .values()
                        .filter(|c| !c.service_id.is_empty())
                        .map(|c| views::health_check(c, st, &agent.node)),
                )
                .collect()
        } else {
            Vec::new()
        };
        (st.checks_index, checks)
    })
    .await
}
