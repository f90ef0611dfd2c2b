//! One type for "the dev agent or a real Consul", for tests that run against both.

use discoverable_devagent::{Config, DevAgent};

use crate::consul::{Consul, ConsulOptions};
use crate::peers;

/// Which agent a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentKind {
    /// The project's dev agent, in process.
    Dev,
    /// A real `consul agent -dev` process.
    RealConsul,
}

/// The dev agent or a real Consul, on loopback.
#[derive(Debug)]
pub enum Agent {
    /// The dev agent.
    Dev(DevAgent),
    /// A real Consul.
    Real(Box<Consul>),
}

impl Agent {
    /// Starts an agent of `kind`; `None` when a real Consul cannot be built here (the test
    /// then skips; under `CI=true` this panics instead). `acl_token`: ACLs on with that
    /// management token.
    pub async fn start(kind: AgentKind, test: &str, acl_token: Option<&str>) -> Option<Agent> {
        match kind {
            AgentKind::Dev => {
                let config = Config {
                    acl_token: acl_token.map(str::to_owned),
                    ..Config::default()
                };
                Some(Agent::Dev(
                    DevAgent::start(config).await.expect("dev agent starts"),
                ))
            }
            AgentKind::RealConsul => {
                let peers = peers::require(test)?;
                let options = ConsulOptions {
                    acl_management_token: acl_token.map(str::to_owned),
                    ..ConsulOptions::default()
                };
                let consul = tokio::task::spawn_blocking(move || Consul::start(&peers, options))
                    .await
                    .expect("consul starts");
                Some(Agent::Real(Box::new(consul)))
            }
        }
    }

    /// The HTTP API's base URL.
    pub fn url(&self) -> String {
        match self {
            Agent::Dev(a) => a.url(),
            Agent::Real(c) => c.url(),
        }
    }

    /// Which kind this is.
    pub fn kind(&self) -> AgentKind {
        match self {
            Agent::Dev(_) => AgentKind::Dev,
            Agent::Real(_) => AgentKind::RealConsul,
        }
    }

    /// How many blocking reads wait in the agent for a change right now: the dev agent counts
    /// its own; for a real Consul, its HTTP handlers in the goroutine dump.
    pub async fn blocking_queries(&self) -> usize {
        match self {
            Agent::Dev(a) => a.blocking_queries(),
            Agent::Real(c) => blocking(|| c.blocking_queries()).expect("Consul's goroutine dump"),
        }
    }

    /// Waits until exactly `n` blocking reads are parked in the agent (5 s at most), so a
    /// test makes the change they wait for only once they wait.
    pub async fn parked(&self, n: usize) {
        crate::until(
            std::time::Duration::from_secs(5),
            &format!("{n} blocking reads parked in the agent"),
            || async { self.blocking_queries().await == n },
        )
        .await;
    }

    /// The dev agent, if this is one.
    pub fn dev(&self) -> Option<&DevAgent> {
        match self {
            Agent::Dev(a) => Some(a),
            Agent::Real(_) => None,
        }
    }
}

/// Faults, the same for both kinds: the dev agent's switches, or the real process killed,
/// restarted or frozen from outside.
impl Agent {
    /// Stops answering: the dev agent stops listening; a real Consul is killed.
    pub async fn go_down(&mut self) {
        match self {
            Agent::Dev(a) => a.faults().set_unavailable(true).await,
            Agent::Real(c) => blocking(|| c.kill()),
        }
    }

    /// Answers again on the same address: the dev agent listens again (keeping its state);
    /// a real `-dev` Consul starts afresh (its state is gone) and is ready when this returns.
    pub async fn come_back(&mut self) {
        match self {
            Agent::Dev(a) => a.faults().set_unavailable(false).await,
            Agent::Real(c) => blocking(|| c.restart(false)),
        }
    }

    /// Forgets every registration and starts its index over (a restart without state).
    pub async fn lose_state(&mut self) {
        match self {
            Agent::Dev(a) => a.faults().restart_losing_state(),
            Agent::Real(c) => blocking(|| c.restart(false)),
        }
    }

    /// Stops answering while keeping connections open: the dev agent delays every answer by
    /// a minute; a real Consul is frozen (SIGSTOP).
    pub fn hang(&self) {
        match self {
            Agent::Dev(a) => a
                .faults()
                .set_delay(Some(std::time::Duration::from_secs(60))),
            Agent::Real(c) => c.freeze(),
        }
    }

    /// Ends [`Agent::hang`].
    pub fn unhang(&self) {
        match self {
            Agent::Dev(a) => a.faults().set_delay(None),
            Agent::Real(c) => c.thaw(),
        }
    }
}

/// Runs a blocking process operation without stalling the runtime's other tasks (needs the
/// multi-threaded runtime, which [`against_both_agents!`](crate::against_both_agents) uses).
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}
