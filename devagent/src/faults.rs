//! Fault switches: unavailable, slow, failing, restarted without state.
//!
//! Each switch exists twice, with the same effect: as a method on [`Faults`] for tests that hold
//! the [`DevAgent`](crate::DevAgent), and over HTTP under `/_devagent/fault/`, a path Consul does
//! not use, for the demo and for processes that only know the agent's address (the API's
//! `faults` module).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::checks::Runners;
use crate::server::Listening;
use crate::state::State;

/// The text of a `500` answer injected by [`Faults::fail_next`].
pub(crate) const INJECTED_FAILURE: &str =
    "rpc error making call: No cluster leader (injected by devagent)";

/// The switches the request path reads.
#[derive(Debug, Default)]
struct Switches {
    delay: Mutex<Option<Duration>>,
    failures: AtomicU32,
}

impl Switches {
    fn delay(&self) -> Option<Duration> {
        *self.delay.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_delay(&self, delay: Option<Duration>) {
        *self.delay.lock().unwrap_or_else(|e| e.into_inner()) = delay.filter(|d| !d.is_zero());
    }

    fn take_failure(&self) -> bool {
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
    switches: Arc<Switches>,
    /// Restarting without state goes through the check runners, which stop with the checks.
    checks: Arc<Runners>,
    listening: Listening,
    /// The agent's address, for `Debug`.
    addr: SocketAddr,
}

impl std::fmt::Debug for Faults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Faults")
            .field("addr", &self.addr)
            .field("delay", &self.switches.delay())
            .field(
                "failures_left",
                &self.switches.failures.load(Ordering::SeqCst),
            )
            .finish()
    }
}

impl Faults {
    /// The switches of the agent at `addr`, whose listener `listening` stops and resumes and
    /// whose state and check runners `checks` holds.
    pub(crate) fn new(checks: Arc<Runners>, listening: Listening, addr: SocketAddr) -> Faults {
        Faults {
            switches: Arc::default(),
            checks,
            listening,
            addr,
        }
    }

    /// `true`: close the listener and drop open connections, so clients see connections refused.
    /// `false`: listen again on the same port. Services, checks and the index are kept.
    /// Returns once the change is in effect.
    pub async fn set_unavailable(&self, on: bool) {
        self.listening.set(!on).await;
    }

    /// After a moment (for the answer that asked for it to leave), stops listening for `period`,
    /// then listens again; returns at once.
    pub(crate) fn unavailable_for(&self, period: Duration) {
        let listening = self.listening.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            listening.set(false).await;
            tokio::time::sleep(period).await;
            listening.set(true).await;
        });
    }

    /// Every API answer waits `delay` first (`None` or zero: no delay).
    pub fn set_delay(&self, delay: Option<Duration>) {
        self.switches.set_delay(delay);
    }

    /// The next `n` API requests answer `500` with a plain-text body.
    pub fn fail_next(&self, n: u32) {
        self.switches.failures.store(n, Ordering::SeqCst);
    }

    /// Forgets every service, check and KV entry and resets the index to its start, as an agent
    /// restarted without its data. Every blocking query returns at once with the lower index.
    pub fn restart_losing_state(&self) {
        tracing::info!("fault: restart losing state");
        self.checks.write(State::restart);
    }

    /// How long every API answer waits first.
    pub(crate) fn delay(&self) -> Option<Duration> {
        self.switches.delay()
    }

    /// Whether this API request should fail; counts the failures asked for down.
    pub(crate) fn take_failure(&self) -> bool {
        self.switches.take_failure()
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
