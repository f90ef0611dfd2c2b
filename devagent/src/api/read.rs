//! What every catalog, health and KV read takes: blocking (`?index`, `?wait`), consistency and
//! datacenter, and the narrowing of its result by `?tag`, `?filter` and the token.
//!
//! A blocking query (`?index=N&wait=D`) waits while its own index is `<= N`, up to `wait`
//! (default 5m, at most 10m, plus up to `wait/16` random jitter), then answers 200 with the
//! current data either way. A restart that lost the state wakes it at once with the lower index.
//! A query arriving with an index above the agent's current one (it saw the agent before such a
//! restart) waits as Consul's does, until its own index passes the one it named or the wait
//! ends, then answers with the current, lower index.

use std::time::Duration;

use axum::http::{HeaderName, HeaderValue};
use axum::response::Response;

use super::answer::ApiError;
use super::filter;
use super::request::Query;
use crate::acl::Authz;
use crate::agent::Agent;
use crate::state::{State, Store};

/// Whether every `?tag=` is among `tags` (case-insensitive, as Consul's tag filter).
pub(crate) fn has_tags(tags: &[String], wanted: &[String]) -> bool {
    wanted
        .iter()
        .all(|w| tags.iter().any(|t| t.eq_ignore_ascii_case(w)))
}

/// Keeps everything if allowed, nothing otherwise; says whether something was dropped.
pub(crate) fn acl_filter<T>(authz: &Authz, mut items: Vec<T>) -> (Vec<T>, bool) {
    let before = items.len();
    if !authz.allowed() {
        items.clear();
    }
    let dropped = items.len() != before;
    (items, dropped)
}

/// Applies `?filter=` to JSON entries.
pub(crate) fn apply_filter(
    filter: &Option<filter::Filter>,
    entries: Vec<serde_json::Value>,
) -> Vec<serde_json::Value> {
    match filter {
        None => entries,
        Some(f) => entries.into_iter().filter(|e| f.matches(e)).collect(),
    }
}

/// The options every catalog, health and KV read takes: blocking and consistency.
#[derive(Debug, Clone)]
pub(crate) struct ReadOptions {
    pub(crate) index: u64,
    pub(crate) wait: Option<Duration>,
    consistency: &'static str,
    dc: Option<String>,
    /// Served as by Consul's streaming backend (see [`ReadOptions::streamed`]).
    streaming: bool,
}

impl ReadOptions {
    /// Parses `?stale`/`?consistent`, `?dc`, `?wait` and `?index` with Consul's error texts.
    pub(crate) fn parse(q: &Query) -> Result<ReadOptions, ApiError> {
        let (stale, consistent) = (q.has("stale"), q.has("consistent"));
        if stale && consistent {
            return Err(ApiError::new(
                400,
                "Cannot specify ?stale with ?consistent, conflicting semantics.",
            ));
        }
        let wait = match q.get("wait").filter(|w| !w.is_empty()) {
            None => None,
            Some(w) => Some(
                crate::decode::parse_go_duration(w)
                    .map_err(|_| ApiError::new(400, "Invalid wait time"))?
                    .positive()
                    .unwrap_or_default(),
            ),
        };
        let index = match q.get("index").filter(|i| !i.is_empty()) {
            None => 0,
            Some(i) => i
                .parse::<u64>()
                .map_err(|_| ApiError::new(400, "Invalid index"))?,
        };
        Ok(ReadOptions {
            index,
            wait,
            consistency: if stale {
                "stale"
            } else if consistent {
                "consistent"
            } else {
                "leader"
            },
            dc: q.get("dc").filter(|d| !d.is_empty()).map(str::to_owned),
            streaming: false,
        })
    }

    /// These options for `/v1/health/service/:name`, which a Consul agent answers from its
    /// streaming backend once the query blocks (`?index` above 0): such answers say
    /// `X-Consul-Query-Backend: streaming` and `X-Consul-KnownLeader: false` (the
    /// materialised view knows no leader). Other reads say `blocking-query` and `true`.
    pub(crate) fn streamed(mut self) -> ReadOptions {
        self.streaming = self.index > 0;
        self
    }

    /// Whether the answer comes as from Consul's streaming backend.
    pub(crate) fn is_streamed(&self) -> bool {
        self.streaming
    }

    /// `500 No path to datacenter` for a datacenter other than the agent's.
    pub(crate) fn check_dc(&self, agent: &Agent) -> Result<(), ApiError> {
        match &self.dc {
            Some(dc) if *dc != agent.datacenter => Err(ApiError::new(500, "No path to datacenter")),
            _ => Ok(()),
        }
    }

    /// Adds the blocking-query headers to an answer.
    pub(crate) fn meta(&self, mut resp: Response, index: u64) -> Response {
        let h = resp.headers_mut();
        let num =
            |n: u64| HeaderValue::from_str(&n.to_string()).unwrap_or(HeaderValue::from_static("1"));
        h.insert(HeaderName::from_static("x-consul-index"), num(index.max(1)));
        h.insert(
            HeaderName::from_static("x-consul-knownleader"),
            HeaderValue::from_static(if self.streaming { "false" } else { "true" }),
        );
        h.insert(
            HeaderName::from_static("x-consul-query-backend"),
            HeaderValue::from_static(if self.streaming {
                "streaming"
            } else {
                "blocking-query"
            }),
        );
        h.insert(
            HeaderName::from_static("x-consul-lastcontact"),
            HeaderValue::from_static("0"),
        );
        h.insert(
            HeaderName::from_static("x-consul-effective-consistency"),
            HeaderValue::from_static(self.consistency),
        );
        resp
    }

    /// Runs `query` against the state, blocking as `?index`/`?wait` ask. `query` returns the
    /// answer's index and data; it runs under the state lock, so it must be quick.
    pub(crate) async fn block<T>(
        &self,
        store: &Store,
        mut query: impl FnMut(&State) -> (u64, T),
    ) -> (u64, T) {
        let mut changes = store.subscribe();
        let start = *changes.borrow_and_update();
        let (index, data) = store.read(&mut query);
        // index=0 never blocks. An index above the agent's (from before a restart) blocks too,
        // as in Consul, whose blocking loop compares only the answer's index with it.
        if self.index == 0 || index > self.index {
            return (index.max(1), data);
        }
        // Not the answer this query will give: no need to hold it while waiting.
        drop(data);
        let deadline = tokio::time::Instant::now() + jittered(self.wait);
        loop {
            tokio::select! {
                changed = changes.changed() => if changed.is_err() { break },
                _ = tokio::time::sleep_until(deadline) => break,
            }
            let version = *changes.borrow_and_update();
            let (index, data) = store.read(&mut query);
            if index > self.index || version.generation != start.generation {
                return (index.max(1), data);
            }
        }
        let (index, data) = store.read(&mut query);
        (index.max(1), data)
    }
}

/// Consul's wait: default 5m, at most 10m, plus `RandomStagger(wait/16)`.
pub(crate) fn jittered(wait: Option<Duration>) -> Duration {
    const DEFAULT: Duration = Duration::from_secs(300);
    const MAX: Duration = Duration::from_secs(600);
    let wait = wait.filter(|w| !w.is_zero()).unwrap_or(DEFAULT).min(MAX);
    let jitter_ns = (wait / 16).as_nanos() as u64;
    let jitter = if jitter_ns == 0 {
        0
    } else {
        rand::random_range(0..jitter_ns)
    };
    wait + Duration::from_nanos(jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_like_consul() {
        // The jitter's bound is wait/16 exactly (18.75 s for 5 min), not a whole second.
        let within = |w: Duration, wait: Duration| w >= wait && w < wait + wait / 16;
        for _ in 0..200 {
            assert!(within(jittered(None), Duration::from_secs(300)));
            let capped = jittered(Some(Duration::from_secs(3600)));
            assert!(within(capped, Duration::from_secs(600)), "{capped:?}");
        }
    }

    #[test]
    fn read_options_errors() {
        let bad = |q: &str| ReadOptions::parse(&Query::parse(Some(q))).unwrap_err().text;
        assert_eq!(bad("wait=abc"), "Invalid wait time");
        assert_eq!(bad("index=-1"), "Invalid index");
        assert_eq!(
            bad("stale&consistent"),
            "Cannot specify ?stale with ?consistent, conflicting semantics."
        );
    }
}
