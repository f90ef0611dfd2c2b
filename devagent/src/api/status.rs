//! `/v1/status/*`: the Raft leader and peers of this single-server "cluster".

use super::views::SERVER_ADDRESS;
use super::{Answer, Req};

/// `GET /v1/status/leader`: a JSON string such as `"127.0.0.1:8300"`.
pub(super) fn leader(req: &Req) -> Answer {
    Ok(req.json(&SERVER_ADDRESS))
}

/// `GET /v1/status/peers`.
pub(super) fn peers(req: &Req) -> Answer {
    Ok(req.json(&[SERVER_ADDRESS]))
}
