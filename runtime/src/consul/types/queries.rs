//! What a read asks for (state, datacenter, filter, blocking index and wait) and the answers'
//! query metadata (`X-Consul-Index`, `X-Consul-ContentHash`, ...).

use std::fmt;
use std::time::Duration;

/// Consul's blocking-query default wait when none (or zero) is given: 5 minutes.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(5 * 60);

/// The longest wait Consul honours for a blocking query: 10 minutes.
pub const MAX_WAIT: Duration = Duration::from_secs(10 * 60);

/// The state filter of `GET /v1/health/state/:state`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HealthState {
    /// Every check, whatever its status.
    #[default]
    Any,
    /// Checks that pass.
    Passing,
    /// Checks that warn.
    Warning,
    /// Checks that are critical.
    Critical,
}

impl HealthState {
    /// The path segment Consul expects: `any`, `passing`, `warning` or `critical`.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthState::Any => "any",
            HealthState::Passing => "passing",
            HealthState::Warning => "warning",
            HealthState::Critical => "critical",
        }
    }
}

impl fmt::Display for HealthState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Options shared by the reads: datacenter, filter, and the blocking-query index and wait.
///
/// A read blocks only when `index` is `Some(n)` with `n > 0`: Consul then holds the answer
/// until the result's index passes `n` or `wait` (default 5 minutes, at most 10) runs out.
/// `Some(0)` and `None` read at once, so the value [`next_index`] returns can always be passed
/// back as `index: Some(..)`.
///
/// ```
/// use std::time::Duration;
/// use discoverable::consul::QueryOptions;
///
/// let mut options = QueryOptions::blocking(42, Duration::from_secs(60));
/// options.datacenter = Some("dc2".into());
/// assert_eq!(options.index, Some(42));
/// assert_eq!(QueryOptions::default().index, None, "reads at once");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueryOptions {
    /// Datacenter to ask (`?dc=`); the agent's own when `None`.
    pub datacenter: Option<String>,
    /// A filter expression (`?filter=`), e.g. `Service.Meta.version == "2"`.
    pub filter: Option<String>,
    /// The index of the previous answer (`?index=`); blocks when greater than zero.
    pub index: Option<u64>,
    /// How long a blocking read may wait (`?wait=`).
    pub wait: Option<Duration>,
    /// Who may answer, and how fresh the answer must be (`?stale`, `?cached`).
    pub consistency: Consistency,
}

/// Who answers a read, and how fresh its answer is: Consul's consistency modes
/// (`api-docs/features/consistency`) and its agent cache (`api-docs/features/caching`).
///
/// A blocking read works in every mode: it returns when the answering side's copy changes.
///
/// ```
/// use discoverable::consul::{Consistency, QueryOptions};
///
/// let mut options = QueryOptions::default();
/// assert_eq!(options.consistency, Consistency::Default);
/// options.consistency = Consistency::Stale; // sent as `?stale`
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Consistency {
    /// No parameter: the agent forwards the read to a server, which forwards it to the
    /// leader; the leader answers from its state without checking it is still the leader.
    #[default]
    Default,
    /// `?stale`: the first server the agent reaches answers from its own copy, which may lag
    /// the leader (`X-Consul-LastContact` says by how much). Reads go on without a leader and
    /// spread over every server.
    Stale,
    /// `?cached`: the local agent answers from its own cache, which it keeps current with one
    /// blocking query of its own per distinct read, however many clients ask; the answer
    /// carries `X-Cache: HIT` or `MISS`. The cache's reads are stale ones.
    Cached,
}

impl Consistency {
    /// The query parameter this mode sends: `stale`, `cached`, or none.
    ///
    /// ```
    /// use discoverable::consul::Consistency;
    ///
    /// assert_eq!(Consistency::Stale.param(), Some("stale"));
    /// assert_eq!(Consistency::Default.param(), None);
    /// ```
    pub fn param(self) -> Option<&'static str> {
        match self {
            Consistency::Default => None,
            Consistency::Stale => Some("stale"),
            Consistency::Cached => Some("cached"),
        }
    }
}

impl QueryOptions {
    /// A read that blocks until the result's index passes `index` or `wait` runs out; with
    /// `index` 0 it reads at once. Nothing else set.
    pub fn blocking(index: u64, wait: Duration) -> QueryOptions {
        QueryOptions {
            index: Some(index),
            wait: Some(wait),
            ..QueryOptions::default()
        }
    }
}

/// Options of [`Client::health_service`](crate::consul::Client::health_service).
///
/// ```
/// use std::time::Duration;
/// use discoverable::consul::{HealthQuery, QueryOptions};
///
/// let mut query = HealthQuery::default(); // only instances whose every check passes
/// query.passing = false;
/// query.tags.push("primary".into());
/// query.options = QueryOptions::blocking(7, Duration::from_secs(30));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HealthQuery {
    /// Only instances whose every check passes (`?passing`). Default `true`.
    pub passing: bool,
    /// Only instances that carry all these tags (`?tag=`, repeated).
    pub tags: Vec<String>,
    /// Datacenter, filter, index and wait.
    pub options: QueryOptions,
}

impl Default for HealthQuery {
    fn default() -> Self {
        HealthQuery {
            passing: true,
            tags: Vec::new(),
            options: QueryOptions::default(),
        }
    }
}

/// The answer of a read that supports index-based blocking, with Consul's query metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Indexed<T> {
    /// The decoded body.
    pub value: T,
    /// `X-Consul-Index`: pass it through [`next_index`] and back as [`QueryOptions::index`].
    pub index: u64,
    /// `X-Consul-KnownLeader`: whether the answering server knew a leader.
    pub known_leader: bool,
    /// `X-Consul-LastContact`: time since the answering server last heard from the leader.
    pub last_contact: Duration,
}

impl<T> Indexed<T> {
    /// Applies `f` to the value, keeping the metadata.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Indexed<U> {
        Indexed {
            value: f(self.value),
            index: self.index,
            known_leader: self.known_leader,
            last_contact: self.last_contact,
        }
    }
}

/// The answer of an agent-local read that supports hash-based blocking.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Hashed<T> {
    /// The decoded body.
    pub value: T,
    /// `X-Consul-ContentHash` (or the body's `ContentHash`); pass it back to block until the
    /// content differs. `None` when the agent sent none (e.g. the service is unknown).
    pub hash: Option<String>,
}

/// The index to send with the next blocking read, by the rules of Consul's blocking-query
/// documentation (`api-docs/features/blocking`), given the index sent before (`previous`,
/// 0 for the first read) and the `X-Consul-Index` just returned (`returned`):
///
/// 1. `returned < previous`: the index went backwards (snapshot restore, an agent that lost
///    its state, ...). Returns `0`: the next read must not block, so it fetches the current
///    state at once and starts the loop over.
/// 2. otherwise, `returned == 0`: Consul should never answer 0, but some versions did, and
///    waiting on 0 does not block, which would make a busy loop. Returns `1`, always a safe
///    index to wait on.
/// 3. otherwise: returns `returned`.
///
/// The client sends no `index` parameter for `0`, so passing the result back as
/// `QueryOptions::index = Some(next)` is always right. The rules do not make a loop
/// rate-limited; callers should still limit how fast they loop.
///
/// ```
/// use discoverable::consul::next_index;
///
/// assert_eq!(next_index(0, 7), 7);   // first read
/// assert_eq!(next_index(7, 7), 7);   // wait ran out, nothing changed
/// assert_eq!(next_index(7, 9), 9);   // something changed
/// assert_eq!(next_index(9, 3), 0);   // went backwards: read again without blocking
/// assert_eq!(next_index(0, 0), 1);   // never wait on 0
/// ```
pub fn next_index(previous: u64, returned: u64) -> u64 {
    if returned < previous {
        0
    } else if returned < 1 {
        1
    } else {
        returned
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consul_next_index_rules() {
        assert_eq!(next_index(0, 1), 1);
        assert_eq!(next_index(0, 42), 42);
        assert_eq!(next_index(42, 42), 42);
        assert_eq!(next_index(42, 43), 43);
        // Backwards: reset, read again without blocking.
        assert_eq!(next_index(42, 41), 0);
        assert_eq!(next_index(42, 1), 0);
        assert_eq!(next_index(42, 0), 0);
        // Zero from the server: wait on 1 instead of busy looping.
        assert_eq!(next_index(0, 0), 1);
        // After a reset the loop starts over.
        assert_eq!(next_index(0, 5), 5);
        assert_eq!(next_index(u64::MAX, u64::MAX), u64::MAX);
    }

    #[test]
    fn consul_health_query_defaults_to_passing() {
        let q = HealthQuery::default();
        assert!(q.passing);
        assert!(q.tags.is_empty());
        assert_eq!(q.options, QueryOptions::default());
    }

    #[test]
    fn consul_blocking_options() {
        let o = QueryOptions::blocking(9, Duration::from_secs(3));
        assert_eq!(
            o,
            QueryOptions {
                datacenter: None,
                filter: None,
                index: Some(9),
                wait: Some(Duration::from_secs(3)),
                consistency: Consistency::Default,
            }
        );
    }
}
