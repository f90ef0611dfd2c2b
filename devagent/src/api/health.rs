//! `/v1/health/*`: instances with their checks, and checks by service, state or node. All
//! blocking; results the token may not read are dropped, never refused.
//!
//! `/health/service/:name` answers `[{Node, Service, Checks}]`, each entry's `Checks` holding the
//! node's `serfHealth` too; `?tag=` (repeatable, all must match, case-insensitive), `?filter=`
//! and `?passing` (drops an entry if any of its checks is not passing) narrow it.

use serde_json::{Value, json};

use super::answer::{Answer, text};
use super::filter::{CHECK_SERVICE_NODE, HEALTH_CHECK};
use super::read::{Preamble, Read};
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
    let preamble = Preamble::QUERY
        .named("Missing service name")
        .streamed()
        .filtered(&CHECK_SERVICE_NODE);
    let read = Read::new(agent, req, preamble)?;
    let name = req.rest.as_str();
    // Consul reads ?passing after the query ran, so its 400 carries the blocking headers.
    let passing = match req.query.get("passing") {
        None => Some(false),
        Some("") => Some(true),
        Some(v) => parse_go_bool(v),
    };
    let (index, (entries, dropped)) = read
        .block(&agent.store, |st| {
            let entries: Vec<Value> = instances(agent, st, name)
                .into_iter()
                .filter(|e| {
                    let t: Vec<String> =
                        serde_json::from_value(e["Service"]["Tags"].clone()).unwrap_or_default();
                    read.has_tags(&t)
                })
                .collect();
            let entries = read.apply_filter(entries);
            (st.service_index(name), read.acl_filter(entries))
        })
        .await;
    let Some(passing) = passing else {
        let resp = text(400, "Invalid value for ?passing");
        return Ok(read.meta(resp, index));
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
    Ok(read.answer(&entries, index, dropped))
}

/// A list of checks: the catalog's checks that `select` picks, with its index.
async fn check_list(
    agent: &Agent,
    req: &Req,
    missing: &'static str,
    select: impl Fn(&State, &str) -> (u64, Vec<views::HealthCheck>),
) -> Answer {
    let preamble = Preamble::QUERY
        .named(missing)
        .in_query()
        .filtered_first(&HEALTH_CHECK);
    let read = Read::new(agent, req, preamble)?;
    let (index, (checks, dropped)) = read
        .block(&agent.store, |st| {
            let (index, checks) = select(st, &req.rest);
            let values = checks.into_iter().map(|c| json!(c)).collect();
            (index, read.acl_filter(read.apply_filter(values)))
        })
        .await;
    Ok(read.answer(&checks, index, dropped))
}

/// `GET /v1/health/checks/:service`.
pub(super) async fn checks(agent: &Agent, req: &Req) -> Answer {
    check_list(agent, req, "Missing service name", |st, name| {
        let checks = st
            .checks
            .values()
            .filter(|c| c.service_name == name && !c.service_id.is_empty())
            .map(|c| views::health_check(c, st, &agent.node))
            .collect();
        (st.service_index(name), checks)
    })
    .await
}

/// `GET /v1/health/state/:state` (`any`, `passing`, `warning`, `critical`).
pub(super) async fn state(agent: &Agent, req: &Req) -> Answer {
    check_list(agent, req, "Missing check state", |st, wanted| {
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
    check_list(agent, req, "Missing node name", |st, node| {
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
