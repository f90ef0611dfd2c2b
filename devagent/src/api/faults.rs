//! `PUT /_devagent/fault/<what>`: the fault switches over HTTP, under a path Consul does not use
//! (see [`Faults`](crate::faults::Faults) for the same switches as methods).
//!
//! | Request | Effect |
//! |---|---|
//! | `PUT /_devagent/fault/unavailable?for=2s` | after answering, stop listening (connections refused, open connections dropped) for that long, then listen again on the same port |
//! | `PUT /_devagent/fault/delay?d=300ms` | every API answer waits that long first; `d=0` turns it off |
//! | `PUT /_devagent/fault/fail?n=3` | the next 3 API requests answer `500` with a plain-text body |
//! | `PUT /_devagent/fault/restart` | forget every service, check and KV entry and reset the index, as an agent restarted without its data |
//!
//! Durations are Go durations (`300ms`, `2s`, `1m`). The fault endpoints need no ACL token and
//! are not themselves delayed or failed.

use std::time::Duration;

use axum::http::{HeaderValue, header};

use super::answer::{Answer, ApiError, text};
use super::request::Req;
use crate::agent::Agent;
use crate::decode::parse_go_duration;

/// `PUT /_devagent/fault/<what>`.
pub(super) fn set(agent: &Agent, req: &Req) -> Answer {
    let (faults, query, what) = (&agent.faults, &req.query, req.rest.as_str());
    let done = (|| -> Result<&'static str, ApiError> {
        let duration = |name: &str| -> Result<Duration, ApiError> {
            let raw = query
                .get(name)
                .ok_or_else(|| ApiError::new(400, format!("Missing ?{name}= (a Go duration)")))?;
            let d = parse_go_duration(raw).map_err(|e| ApiError::new(400, e.0))?;
            Ok(d.positive().unwrap_or_default())
        };
        match what {
            "unavailable" => {
                let period = duration("for")?;
                tracing::info!(?period, "fault: unavailable");
                faults.unavailable_for(period);
                Ok("unavailable")
            }
            "delay" => {
                let d = duration("d")?;
                tracing::info!(delay = ?d, "fault: delay");
                faults.set_delay(Some(d));
                Ok("delay set")
            }
            "fail" => {
                let n = query
                    .get("n")
                    .and_then(|n| n.parse::<u32>().ok())
                    .ok_or_else(|| ApiError::new(400, "Missing or invalid ?n= (a count)"))?;
                tracing::info!(n, "fault: fail next requests");
                faults.fail_next(n);
                Ok("failing")
            }
            "restart" => {
                faults.restart_losing_state();
                Ok("restarted")
            }
            _ => Err(ApiError::new(
                404,
                "Unknown fault; expected one of unavailable, delay, fail, restart",
            )),
        }
    })()?;
    let mut resp = text(200, done);
    if what == "unavailable" {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    Ok(resp)
}
