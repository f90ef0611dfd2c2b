//! The agent as its HTTP API serves it: its settings, and handles on its parts (the state, the
//! check runners beside it, the fault switches).

use std::sync::Arc;
use std::time::Duration;

use crate::acl::Acl;
use crate::checks::Runners;
use crate::faults::Faults;
use crate::state::Store;

/// What the API's handlers work with. Built once, when the agent starts.
pub(crate) struct Agent {
    /// The node name.
    pub(crate) node: String,
    pub(crate) datacenter: String,
    pub(crate) acl: Acl,
    /// How often the reaper runs (shown in `agent/self`).
    pub(crate) reap_interval: Duration,
    /// The least `DeregisterCriticalServiceAfter` honoured.
    pub(crate) deregister_critical_min: Duration,
    /// Not Consul behaviour, for tests: the most `DeregisterCriticalServiceAfter` honoured.
    pub(crate) deregister_critical_cap: Option<Duration>,
    /// Services, checks, KV and the index; read it here, and change checks' registrations
    /// through [`Agent::checks`].
    pub(crate) store: Arc<Store>,
    /// The check runners, which follow the registrations written through them.
    pub(crate) checks: Arc<Runners>,
    pub(crate) faults: Faults,
}
