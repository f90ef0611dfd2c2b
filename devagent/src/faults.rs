//! Fault switches: unavailable, slow, failing, restarted without state.
//!
//! Each switch exists twice, with the same effect: as a method on [`Faults`] for tests that hold
//! the [`DevAgent`](crate::DevAgent), and over HTTP under `/_devagent/fault/`, a path Consul does
//! not use, for the demo and for processes that only know the agent's address:
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

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use axum::response::Response;

use crate::api::{self, ApiError, Query};
use crate::decode::parse_go_duration;
use crate::server::Server;
use crate::state::Shared;

/// The text of a `500` answer injected by [`Faults::fail_next`].
pub(crate) const INJECTED_FAILURE: &str =
    "rpc error making call: No cluster leader (injected by devagent)";

/// The switches the request path reads.
#[derive(Debug, Default)]
pub(crate) struct Switches {
    delay: Mutex<Option<Duration>>,
    failures: AtomicU32,
}

impl Switches {
    /// How long every API answer waits first.
    pub(crate) fn delay(&self) -> Option<Duration> {
        *self.delay.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_delay(&self, delay: Option<Duration>) {
        *self.delay.lock().unwrap_or_else(|e| e.into_inner()) = delay.filter(|d| !d.is_zero());
    }

    /// Whether this request should fail; counts it down.
    pub(crate) fn take_failure(&self) -> bool {
        self.failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }
}

/// A handle on the agent's fault switches. Cheap to clone.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// use std::time::Duration;
/// use discoverable_devagent::{Config, DevAgent};
///
/// let agent = DevAgent::start(Config::default()).await?;
/// let faults = agent.faults();
/// faults.fail_next(2); // the next two requests answer 500
/// faults.set_delay(Some(Duration::from_millis(50)));
/// faults.set_delay(None);
/// faults.set_unavailable(true).await; // connections are refused now
/// faults.set_unavailable(false).await; // listening again, same port, same state
/// faults.restart_losing_state();
/// agent.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Faults {
    shared: Arc<Shared>,
    server: Arc<Server>,
}

impl std::fmt::Debug for Faults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Faults")
            .field("addr", &self.server.addr())
            .field("delay", &self.shared.faults.delay())
            .field(
                "failures_left",
                &self.shared.faults.failures.load(Ordering::SeqCst),
            )
            .finish()
    }
}

impl Faults {
    pub(crate) fn new(shared: Arc<Shared>, server: Arc<Server>) -> Faults {
        Faults { shared, server }
    }

    /// `true`: close the listener and drop open connections, so clients see connections refused.
    /// `false`: listen again on the same port. Services, checks and the index are kept.
    /// Returns once the change is in effect.
    pub async fn set_unavailable(&self, on: bool) {
        if on {
            self.server.stop_listening().await;
        } else if let Err(e) = self.server.start_listening().await {
            tracing::error!(error = %e, "could not listen again on the same port");
        }
    }

    /// Every API answer waits `delay` first (`None` or zero: no delay).
    pub fn set_delay(&self, delay: Option<Duration>) {
        self.shared.faults.set_delay(delay);
    }

    /// The next `n` API requests answer `500` with a plain-text body.
    pub fn fail_next(&self, n: u32) {
        self.shared.faults.failures.store(n, Ordering::SeqCst);
    }

    /// Forgets every service, check and KV entry and resets the index to its start, as an agent
    /// restarted without its data. Every blocking query returns at once with the lower index.
    pub fn restart_losing_state(&self) {
        tracing::info!("fault: restart losing state");
        self.shared.reset();
    }
}

/// `PUT /_devagent/fault/<what>`, to the agent `shared` served by `server`.
pub(crate) async fn handle(
    shared: &Arc<Shared>,
    server: &Weak<Server>,
    what: &str,
    query: &Query,
) -> Response {
    let result = (|| -> Result<&'static str, ApiError> {
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
                let weak = server.clone();
                tracing::info!(?period, "fault: unavailable");
                tokio::spawn(async move {
                    // Let this answer reach the client before the connection is dropped.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    let Some(server) = weak.upgrade() else {
                        return;
                    };
                    server.stop_listening().await;
                    tokio::time::sleep(period).await;
                    if let Err(e) = server.start_listening().await {
                        tracing::error!(error = %e, "could not listen again on the same port");
                    }
                });
                Ok("unavailable")
            }
            "delay" => {
                let d = duration("d")?;
                tracing::info!(delay = ?d, "fault: delay");
                shared.faults.set_delay(Some(d));
                Ok("delay set")
            }
            "fail" => {
                let n = query
                    .get("n")
                    .and_then(|n| n.parse::<u32>().ok())
                    .ok_or_else(|| ApiError::new(400, "Missing or invalid ?n= (a count)"))?;
                tracing::info!(n, "fault: fail next requests");
                shared.faults.failures.store(n, Ordering::SeqCst);
                Ok("failing")
            }
            "restart" => {
                tracing::info!("fault: restart losing state");
                shared.reset();
                Ok("restarted")
            }
            _ => Err(ApiError::new(
                404,
                "Unknown fault; expected one of unavailable, delay, fail, restart",
            )),
        }
    })();
    match result {
        Ok(text) => {
            let mut resp = api::text(200, text);
            if what == "unavailable" {
                resp.headers_mut().insert(
                    axum::http::header::CONNECTION,
                    axum::http::HeaderValue::from_static("close"),
                );
            }
            resp
        }
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_count_down() {
        let s = Switches::default();
        assert!(!s.take_failure());
        s.failures.store(2, Ordering::SeqCst);
        assert!(s.take_failure());
        assert!(s.take_failure());
        assert!(!s.take_failure());
    }

    #[test]
    fn zero_delay_is_off() {
        let s = Switches::default();
        s.set_delay(Some(Duration::ZERO));
        assert_eq!(s.delay(), None);
        s.set_delay(Some(Duration::from_millis(5)));
        assert_eq!(s.delay(), Some(Duration::from_millis(5)));
    }
}
