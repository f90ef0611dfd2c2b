//! `/v1/status/*` and `/v1/operator/raft/configuration`: the Raft leader and peers of this
//! single-server "cluster".

use std::sync::Arc;

use serde_json::json;

use super::answer::Answer;
use super::read::ReadOptions;
use super::request::Req;
use super::views::SERVER_ADDRESS;
use crate::state::Shared;

/// `GET /v1/status/leader`: a JSON string such as `"127.0.0.1:8300"`.
pub(super) fn leader(req: &Req) -> Answer {
    Ok(req.json(&SERVER_ADDRESS))
}

/// `GET /v1/status/peers`.
pub(super) fn peers(req: &Req) -> Answer {
    Ok(req.json(&[SERVER_ADDRESS]))
}

/// `GET /v1/operator/raft/configuration` (what `consul operator raft list-peers` prints): the
/// one server, leader and voter, its raft ID the node ID. Needs `operator:read`; `?stale` is
/// accepted, the answer carries no query headers.
pub(super) fn raft_configuration(shared: &Arc<Shared>, req: &Req) -> Answer {
    let opts = ReadOptions::parse(&req.query)?;
    opts.check_dc(shared)?;
    let authz = req.authz(shared)?;
    authz.require_unnamed("operator", "read")?;
    let (node_id, index) = shared.read(|st| (st.node_id.clone(), st.index));
    Ok(req.json(&json!({
        "Servers": [{
            "ID": node_id,
            "Node": shared.node,
            "Address": SERVER_ADDRESS,
            "Leader": true,
            "ProtocolVersion": "3",
            "Voter": true,
            "LastIndex": index,
        }],
        "Index": 0,
    })))
}
