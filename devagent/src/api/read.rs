//! The preamble every read repeats, done once per request: [`Read`], built by the order of an
//! endpoint's [`Preamble`], holds the read's blocking parameters, its resolved token and its
//! checked filter, runs the blocking query and writes the answer's headers.
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
use serde::Serialize;
use serde_json::Value;

use super::answer::{self, ApiError};
use super::filter::{self, Filter, Schema};
use super::request::{Query, Req};
use crate::acl::Authz;
use crate::agent::Agent;
use crate::state::{State, Store};

/// What an endpoint checks before it reads, in this order, each step's failure answered at once:
/// the blocking parameters (`400`s), the name in the path (`400`), the datacenter (`500`), then
/// the token (`403`) and the filter (`500`, `400`) in the order Consul's endpoint resolves them.
#[derive(Clone, Copy)]
pub(crate) struct Preamble {
    /// Parse `?index`, `?wait`, `?stale`/`?consistent` and `?dc`.
    params: bool,
    /// Check `?dc` names this datacenter.
    dc: bool,
    /// The `400` text when the path names nothing.
    name: Option<&'static str>,
    /// The fields `?filter=` is checked against.
    filter: Option<&'static Schema>,
    /// The filter is checked before the token is resolved.
    filter_first: bool,
    /// The datacenter's, the token's and the filter's errors carry the blocking headers, as
    /// the catalog and health endpoints answer them (see [`ApiError::in_query`]).
    in_query: bool,
    /// Answered as by Consul's streaming backend once blocking (see [`Preamble::streamed`]).
    streamed: bool,
}

impl Preamble {
    /// An agent endpoint's: the token only.
    pub(crate) const AGENT: Preamble = Preamble {
        params: false,
        dc: false,
        name: None,
        filter: None,
        filter_first: false,
        in_query: false,
        streamed: false,
    };

    /// A catalog, health, KV or operator read's: the blocking parameters, the datacenter, the
    /// token.
    pub(crate) const QUERY: Preamble = Preamble {
        params: true,
        dc: true,
        ..Preamble::AGENT
    };

    /// The blocking parameters parsed too (`?wait` for `?hash`), the datacenter unchecked.
    pub(crate) const fn waits(self) -> Preamble {
        Preamble {
            params: true,
            ..self
        }
    }

    /// The path names something: `missing` answers `400` when it does not.
    pub(crate) const fn named(self, missing: &'static str) -> Preamble {
        Preamble {
            name: Some(missing),
            ..self
        }
    }

    /// `?filter=`, checked against `schema` after the token is resolved.
    pub(crate) const fn filtered(self, schema: &'static Schema) -> Preamble {
        Preamble {
            filter: Some(schema),
            ..self
        }
    }

    /// `?filter=`, checked against `schema` before the token is resolved (the endpoints that
    /// filter by ACL after the query, as Consul's `ListNodes` and health checks do).
    pub(crate) const fn filtered_first(self, schema: &'static Schema) -> Preamble {
        Preamble {
            filter: Some(schema),
            filter_first: true,
            ..self
        }
    }

    /// The datacenter's, the token's and the filter's errors carry the blocking headers.
    pub(crate) const fn in_query(self) -> Preamble {
        Preamble {
            in_query: true,
            ..self
        }
    }

    /// For `/v1/health/service/:name`, which a Consul agent answers from its streaming backend
    /// once the query blocks (`?index` above 0): such answers say
    /// `X-Consul-Query-Backend: streaming` and `X-Consul-KnownLeader: false` (the materialised
    /// view knows no leader), and word filter errors without the evaluator's prefix. Other
    /// reads say `blocking-query` and `true`.
    pub(crate) const fn streamed(self) -> Preamble {
        Preamble {
            streamed: true,
            ..self
        }
    }
}

/// A read's preamble, done: built once per request by [`Read::new`].
pub(crate) struct Read {
    /// The blocking parameters.
    pub(crate) params: Params,
    /// What the request's token may do.
    pub(crate) authz: Authz,
    /// `?filter=`, checked.
    pub(crate) filter: Option<Filter>,
    /// `?tag=`, every one.
    tags: Vec<String>,
    /// `?pretty`.
    pretty: bool,
}

impl Read {
    /// Checks `req` as `preamble` says, in its order; the first failure is the answer.
    pub(crate) fn new(agent: &Agent, req: &Req, preamble: Preamble) -> Result<Read, ApiError> {
        let mut params = if preamble.params {
            Params::parse(&req.query)?
        } else {
            Params::default()
        };
        params.streaming = preamble.streamed && params.index > 0;
        if let Some(missing) = preamble.name {
            if req.rest.is_empty() {
                return Err(ApiError::new(400, missing));
            }
        }
        let admit = || -> Result<(Authz, Option<Filter>), ApiError> {
            if preamble.dc {
                params.check_dc(agent)?;
            }
            // A streamed (blocking) query words filter errors without the evaluator's prefix.
            let filter = || match preamble.filter {
                Some(schema) => checked_filter(&req.query, schema, !params.streaming),
                None => Ok(None),
            };
            if preamble.filter_first {
                let filter = filter()?;
                Ok((req.authz(agent)?, filter))
            } else {
                let authz = req.authz(agent)?;
                Ok((authz, filter()?))
            }
        };
        let (authz, filter) =
            admit().map_err(|e| if preamble.in_query { e.in_query() } else { e })?;
        Ok(Read {
            params,
            authz,
            filter,
            tags: req.query.all("tag").map(str::to_owned).collect(),
            pretty: req.query.has("pretty"),
        })
    }

    /// Whether every `?tag=` is among `tags` (case-insensitive, as Consul's tag filter).
    pub(crate) fn has_tags(&self, tags: &[String]) -> bool {
        self.tags
            .iter()
            .all(|w| tags.iter().any(|t| t.eq_ignore_ascii_case(w)))
    }

    /// Keeps what `?filter=` matches.
    pub(crate) fn apply_filter(&self, entries: Vec<Value>) -> Vec<Value> {
        match &self.filter {
            None => entries,
            Some(f) => entries.into_iter().filter(|e| f.matches(e)).collect(),
        }
    }

    /// Keeps what the token may read (all or nothing, in this agent); says whether something
    /// was dropped.
    pub(crate) fn acl_filter<T>(&self, mut items: Vec<T>) -> (Vec<T>, bool) {
        let before = items.len();
        if !self.authz.allowed() {
            items.clear();
        }
        let dropped = items.len() != before;
        (items, dropped)
    }

    /// Runs `query` against the state, blocking as `?index`/`?wait` ask (see
    /// [`Params::block`]).
    pub(crate) async fn block<T>(
        &self,
        store: &Store,
        query: impl FnMut(&State) -> (u64, T),
    ) -> (u64, T) {
        self.params.block(store, query).await
    }

    /// A JSON answer with `status`, indented if `?pretty`.
    pub(crate) fn json_status(&self, status: u16, value: &impl Serialize) -> Response {
        answer::json(self.pretty, status, value)
    }

    /// A `200` JSON answer.
    pub(crate) fn json(&self, value: &impl Serialize) -> Response {
        self.json_status(200, value)
    }

    /// Adds the blocking-query headers of the answer at `index` (see [`Params::meta`]).
    pub(crate) fn meta(&self, resp: Response, index: u64) -> Response {
        self.params.meta(resp, index)
    }

    /// The `200` JSON answer of a list, with `X-Consul-Results-Filtered-By-ACLs` when the
    /// token's view `dropped` something.
    pub(crate) fn filtered(&self, value: &impl Serialize, dropped: bool) -> Response {
        answer::filtered(self.json(value), &self.authz, dropped)
    }

    /// [`Read::filtered`] for a blocking read at `index`: with its blocking headers.
    pub(crate) fn answer(&self, value: &impl Serialize, index: u64, dropped: bool) -> Response {
        self.meta(self.filtered(value, dropped), index)
    }
}

/// A read's blocking and consistency parameters, as Consul's HTTP layer parses them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Params {
    /// `?index`: 0 never blocks.
    pub(crate) index: u64,
    pub(crate) wait: Option<Duration>,
    /// `?hash`: blocks (on `/v1/agent/service/:id`) until the content's hash differs.
    pub(crate) hash: String,
    consistency: Consistency,
    dc: Option<String>,
    /// Served as by Consul's streaming backend (see [`Preamble::streamed`]).
    streaming: bool,
}

/// `?stale`, `?consistent`, or neither.
#[derive(Debug, Clone, Copy, Default)]
enum Consistency {
    #[default]
    Leader,
    Stale,
    Consistent,
}

impl Params {
    /// Parses `?stale`/`?consistent`, `?dc`, `?wait`, `?index` and `?hash` with Consul's error
    /// texts.
    pub(crate) fn parse(q: &Query) -> Result<Params, ApiError> {
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
        Ok(Params {
            index,
            wait,
            hash: q.get("hash").unwrap_or_default().to_owned(),
            consistency: if stale {
                Consistency::Stale
            } else if consistent {
                Consistency::Consistent
            } else {
                Consistency::Leader
            },
            dc: q.get("dc").filter(|d| !d.is_empty()).map(str::to_owned),
            streaming: false,
        })
    }

    /// `500 No path to datacenter` for a datacenter other than the agent's.
    pub(crate) fn check_dc(&self, agent: &Agent) -> Result<(), ApiError> {
        match &self.dc {
            Some(dc) if *dc != agent.datacenter => Err(ApiError::new(500, "No path to datacenter")),
            _ => Ok(()),
        }
    }

    /// Adds the blocking-query headers to an answer: `X-Consul-Index` (never below 1),
    /// `X-Consul-KnownLeader`, `X-Consul-Query-Backend`, `X-Consul-LastContact: 0` and
    /// `X-Consul-Effective-Consistency`.
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
            HeaderValue::from_static(match self.consistency {
                Consistency::Leader => "leader",
                Consistency::Stale => "stale",
                Consistency::Consistent => "consistent",
            }),
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

/// `?filter=`, checked against the fields of `schema` (Consul's `500` with go-bexpr's text if it
/// cannot be used, `400` beyond this agent's limits); `prefixed: false` words errors as
/// Consul's streaming backend does.
fn checked_filter(q: &Query, schema: &Schema, prefixed: bool) -> Result<Option<Filter>, ApiError> {
    match q.get("filter") {
        None | Some("") => Ok(None),
        Some(f) => filter::parse(f)
            .and_then(|parsed| parsed.check(schema))
            .map(Some)
            .map_err(|e| filter_error(&e, prefixed)),
    }
}

/// `?filter=` parsed only, not yet checked against the fields of a type.
pub(crate) fn parsed_filter(q: &Query) -> Result<Option<filter::Parsed>, ApiError> {
    match q.get("filter") {
        None | Some("") => Ok(None),
        Some(f) => filter::parse(f)
            .map(Some)
            .map_err(|e| filter_error(&e, true)),
    }
}

/// The answer to a filter that cannot be used; `prefixed: false` words it as Consul's
/// streaming backend does (without `Failed to create boolean expression evaluator: `).
pub(crate) fn filter_error(e: &filter::FilterError, prefixed: bool) -> ApiError {
    let (status, text) = e.answer(prefixed);
    ApiError::new(status, text)
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
    fn parameter_errors() {
        let bad = |q: &str| Params::parse(&Query::parse(Some(q))).unwrap_err().text;
        assert_eq!(bad("wait=abc"), "Invalid wait time");
        assert_eq!(bad("index=-1"), "Invalid index");
        assert_eq!(
            bad("stale&consistent"),
            "Cannot specify ?stale with ?consistent, conflicting semantics."
        );
    }
}
