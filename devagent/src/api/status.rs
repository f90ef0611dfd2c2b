//! `/v1/status/*` and `/v1/operator/raft/configuration`: the Raft leader and peers of this
//! single-server "cluster".

use serde_json::json;

use super::answer::Answer;
use super::read::{Preamble, Read};
use super::request::Req;
use super::views::SERVER_ADDRESS;
use crate::agent::Agent;

/// `GET /v1/status/leader`: a JSON string such as `"127.0.0.1:8300"`.
pub(super) fn leader(_: &Agent, req: &Req) -> Answer {
    Ok(req.json(&SERVER_ADDRESS))
}

/// `GET /v1/status/peers`.
pub(super) fn peers(_: &Agent, req: &Req) -> Answer {
    Ok(req.json(&[SERVER_ADDRESS]))
}

/// `GET /v1/operator/raft/configuration` (what `consul operator raft list-peers` prints): the
/// one server, leader and voter, its raft ID the node ID. Needs `operator:read`; `?stale` is
/// accepted, the answer carries no query headers.
pub(super) fn raft_configuration(agent: &Agent, req: &Req) -> Answer {
    let read = Read::new(agent, req, Preamble::QUERY)?;
    read.authz.require_unnamed("operator", "read")?;
    let (node_id, index) = agent.store.read(|st| (st.node_id.clone(), st.index));
    Ok(read.json(&json!({
        "Servers": [{
            "ID": node_id,
            "Node": agent.node,
            "Address": SERVER_ADDRESS,
            "Leader": true,
            "ProtocolVersion": "3",
            "Voter": true,
            "LastIndex": index,
        }],
        "Index": 0,
    })))
}
