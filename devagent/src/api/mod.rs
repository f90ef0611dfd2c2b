//! Consul's HTTP API: routing, query parameters, common headers, errors and blocking queries.
//!
//! Routing works like Consul's Go `ServeMux`: a pattern ending in `/` matches every path under
//! it (the handler reads the rest of the path as a name, ID or key, percent-decoded), any other
//! pattern matches exactly, the longest match wins. An unknown path answers `404 Invalid URL
//! path: not a recognized HTTP API endpoint`, a known path with another method `405` with an
//! `Allow` header, `OPTIONS` the allowed methods. Errors are plain text with Consul's wording;
//! JSON answers honour `?pretty`. Every answer carries `X-Consul-Default-ACL-Policy`; blocking
//! endpoints add `X-Consul-Index` (never below 1), `X-Consul-KnownLeader: true`,
//! `X-Consul-LastContact: 0` and `X-Consul-Query-Backend: blocking-query` (a blocking
//! `/v1/health/service/:name` query answers as Consul's streaming backend does: `streaming`, no
//! known leader).
//!
//! A blocking query (`?index=N&wait=D`) waits while its own index is `<= N`, up to `wait`
//! (default 5m, at most 10m, plus up to `wait/16` random jitter), then answers 200 with the
//! current data either way. A restart that lost the state wakes it at once with the lower index.
//! A query arriving with an index above the agent's current one (it saw the agent before such a
//! restart) waits as Consul's does, until its own index passes the one it named or the wait
//! ends, then answers with the current, lower index.

mod agent;
mod catalog;
mod filter;
mod health;
mod kv;
mod status;
pub(crate) mod views;

use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, header};
use axum::response::Response;
use serde::Serialize;

use crate::acl::{Acl, Authz, Denied};
use crate::faults;
use crate::server::Server;
use crate::state::{Shared, State};

/// An error answer: a status and Consul's plain-text reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub(crate) status: u16,
    pub(crate) text: String,
    /// Carries the blocking-query headers of an empty result (see [`ApiError::in_query`]).
    query_meta: bool,
}

impl ApiError {
    pub(crate) fn new(status: u16, text: impl Into<String>) -> ApiError {
        ApiError {
            status,
            text: text.into(),
            query_meta: false,
        }
    }

    /// The error of a query that failed on Consul's server (another datacenter, a filter, a
    /// token), for the catalog and health endpoints whose handler sets the query's headers
    /// whatever happens: `X-Consul-Index: 1`, `X-Consul-KnownLeader: false`,
    /// `X-Consul-LastContact: 0`, `X-Consul-Query-Backend: blocking-query`.
    pub(crate) fn in_query(self) -> ApiError {
        ApiError {
            query_meta: true,
            ..self
        }
    }

    pub(crate) fn into_response(self) -> Response {
        let mut resp = text(self.status, self.text);
        if self.query_meta {
            let h = resp.headers_mut();
            for (name, value) in [
                ("x-consul-index", "1"),
                ("x-consul-knownleader", "false"),
                ("x-consul-lastcontact", "0"),
                ("x-consul-query-backend", "blocking-query"),
            ] {
                h.insert(
                    HeaderName::from_static(name),
                    HeaderValue::from_static(value),
                );
            }
        }
        resp
    }
}

/// A refusal of the ACL system is Consul's `403` with its text.
impl From<Denied> for ApiError {
    fn from(denied: Denied) -> ApiError {
        ApiError::new(403, denied.to_string())
    }
}

/// What a handler returns.
pub(crate) type Answer = Result<Response, ApiError>;

/// A plain-text answer.
pub(crate) fn text(status: u16, body: impl Into<String>) -> Response {
    let mut resp = Response::new(Body::from(body.into()));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// `200` with an empty body: Consul's answer to a successful write.
pub(crate) fn empty() -> Response {
    Response::new(Body::empty())
}

/// Decoded query parameters, in order, repeated names kept.
#[derive(Debug, Clone, Default)]
pub(crate) struct Query(Vec<(String, String)>);

impl Query {
    /// `application/x-www-form-urlencoded` decoding: `+` is a space, a malformed escape is
    /// kept as it is, invalid UTF-8 becomes U+FFFD, empty pairs are skipped.
    pub(crate) fn parse(raw: Option<&str>) -> Query {
        let pairs = form_urlencoded::parse(raw.unwrap_or_default().as_bytes());
        Query(pairs.into_owned().collect())
    }

    /// The first value of `name` (Go's `Values.Get`), if the parameter is present.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether `name` is present, with or without a value.
    pub(crate) fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Every value of `name`.
    pub(crate) fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A percent-decoded path (`+` stays `+`); malformed escapes are kept as they are, invalid
/// UTF-8 becomes U+FFFD.
fn decode_path(path: &str) -> String {
    percent_encoding::percent_decode_str(path)
        .decode_utf8_lossy()
        .into_owned()
}

/// Go's `strconv.ParseBool`.
pub(crate) fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// A routed request.
pub(crate) struct Req {
    /// The path after the route's pattern: a name, ID or KV key.
    pub(crate) rest: String,
    pub(crate) method: Method,
    pub(crate) query: Query,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Req {
    /// Resolves the request's token (`403 ACL not found` if unknown).
    pub(crate) fn authz(&self, shared: &Shared) -> Result<Authz, ApiError> {
        let token = Acl::token_of(self.query.get("token"), &self.headers);
        Ok(shared.acl.resolve(&token)?)
    }

    /// A JSON answer with `status`, indented if `?pretty`.
    pub(crate) fn json_status(&self, status: u16, value: &impl Serialize) -> Response {
        let body = if self.query.has("pretty") {
            let mut buf = Vec::new();
            let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
            let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
            let _ = value.serialize(&mut ser);
            buf.push(b'\n');
            buf
        } else {
            serde_json::to_vec(value).unwrap_or_default()
        };
        let mut resp = Response::new(Body::from(body));
        *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        resp
    }

    /// A `200` JSON answer.
    pub(crate) fn json(&self, value: &impl Serialize) -> Response {
        self.json_status(200, value)
    }

    /// `?filter=`, checked against the fields of `schema` (Consul's `500` with go-bexpr's text
    /// if it cannot be used, `400` beyond this agent's limits).
    pub(crate) fn filter(
        &self,
        schema: &filter::Schema,
    ) -> Result<Option<filter::Filter>, ApiError> {
        self.filter_as(schema, true)
    }

    /// [`Req::filter`]; `prefixed: false` words errors as Consul's streaming backend does
    /// (without `Failed to create boolean expression evaluator: `).
    pub(crate) fn filter_as(
        &self,
        schema: &filter::Schema,
        prefixed: bool,
    ) -> Result<Option<filter::Filter>, ApiError> {
        match self.query.get("filter") {
            None | Some("") => Ok(None),
            Some(f) => filter::parse(f)
                .and_then(|parsed| parsed.check(schema))
                .map(Some)
                .map_err(|e| filter_error(&e, prefixed)),
        }
    }

    /// `?filter=` parsed only, not yet checked against the fields of a type.
    pub(crate) fn parsed_filter(&self) -> Result<Option<filter::Parsed>, ApiError> {
        match self.query.get("filter") {
            None | Some("") => Ok(None),
            Some(f) => filter::parse(f)
                .map(Some)
                .map_err(|e| filter_error(&e, true)),
        }
    }
}

/// The answer to a filter that cannot be used.
pub(crate) fn filter_error(e: &filter::FilterError, prefixed: bool) -> ApiError {
    let (status, text) = e.answer(prefixed);
    ApiError::new(status, text)
}

/// Adds `X-Consul-Results-Filtered-By-ACLs: true` when the token's view dropped something and
/// the request named a token.
pub(crate) fn filtered(mut resp: Response, authz: &Authz, dropped: bool) -> Response {
    if authz.report_filtered(dropped) {
        resp.headers_mut().insert(
            HeaderName::from_static("x-consul-results-filtered-by-acls"),
            HeaderValue::from_static("true"),
        );
    }
    resp
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
    pub(crate) fn check_dc(&self, shared: &Shared) -> Result<(), ApiError> {
        match &self.dc {
            Some(dc) if *dc != shared.datacenter => {
                Err(ApiError::new(500, "No path to datacenter"))
            }
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
        shared: &Shared,
        mut query: impl FnMut(&State) -> (u64, T),
    ) -> (u64, T) {
        let mut changes = shared.subscribe();
        let start = *changes.borrow_and_update();
        let (index, data) = shared.read(&mut query);
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
            let (index, data) = shared.read(&mut query);
            if index > self.index || version.generation != start.generation {
                return (index.max(1), data);
            }
        }
        let (index, data) = shared.read(&mut query);
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

/// The routes: pattern, allowed methods. Patterns ending in `/` match the paths under them.
const ROUTES: &[(&str, &[Method])] = &[
    ("/v1/agent/self", &[Method::GET]),
    ("/v1/agent/members", &[Method::GET]),
    ("/v1/agent/services", &[Method::GET]),
    ("/v1/agent/service/", &[Method::GET]),
    ("/v1/agent/service/register", &[Method::PUT]),
    ("/v1/agent/service/deregister/", &[Method::PUT]),
    ("/v1/agent/service/maintenance/", &[Method::PUT]),
    ("/v1/agent/maintenance", &[Method::PUT]),
    ("/v1/agent/checks", &[Method::GET]),
    ("/v1/agent/check/register", &[Method::PUT]),
    ("/v1/agent/check/deregister/", &[Method::PUT]),
    ("/v1/agent/check/pass/", &[Method::PUT]),
    ("/v1/agent/check/warn/", &[Method::PUT]),
    ("/v1/agent/check/fail/", &[Method::PUT]),
    ("/v1/agent/check/update/", &[Method::PUT]),
    ("/v1/agent/health/service/id/", &[Method::GET]),
    ("/v1/agent/health/service/name/", &[Method::GET]),
    ("/v1/health/service/", &[Method::GET]),
    ("/v1/health/checks/", &[Method::GET]),
    ("/v1/health/state/", &[Method::GET]),
    ("/v1/health/node/", &[Method::GET]),
    ("/v1/catalog/services", &[Method::GET]),
    ("/v1/catalog/service/", &[Method::GET]),
    ("/v1/catalog/nodes", &[Method::GET]),
    ("/v1/catalog/node/", &[Method::GET]),
    ("/v1/catalog/datacenters", &[Method::GET]),
    ("/v1/status/leader", &[Method::GET]),
    ("/v1/status/peers", &[Method::GET]),
    ("/v1/operator/raft/configuration", &[Method::GET]),
    ("/v1/kv/", &[Method::GET, Method::PUT, Method::DELETE]),
    ("/_devagent/checks", &[Method::GET]),
];

fn route(path: &str) -> Option<(&'static str, &'static [Method])> {
    ROUTES
        .iter()
        .filter(|(p, _)| {
            if p.ends_with('/') {
                path.starts_with(p)
            } else {
                path == *p
            }
        })
        .max_by_key(|(p, _)| p.len())
        .copied()
}

fn allow(methods: &[Method]) -> HeaderValue {
    let list: Vec<&str> = std::iter::once("OPTIONS")
        .chain(methods.iter().map(Method::as_str))
        .collect();
    HeaderValue::from_str(&list.join(",")).unwrap_or(HeaderValue::from_static("OPTIONS"))
}

/// Largest request body read (KV values have their own, smaller limit).
const MAX_BODY: usize = 16 << 20;

/// Answers one HTTP request to the agent `shared`, served by `server`.
pub(crate) async fn handle(
    shared: Arc<Shared>,
    server: Weak<Server>,
    req: Request<Body>,
) -> Response {
    let (parts, body) = req.into_parts();
    let path = decode_path(parts.uri.path());
    let query = Query::parse(parts.uri.query());
    let method = parts.method.clone();
    let headers = owned_headers(&parts.headers);
    // The URI and the header values share the connection's read buffer: free it before waiting.
    drop(parts);
    // The page's files hold no data: no token, no faults, no Consul headers.
    if let Some(resp) = crate::ui::serve(&method, &path) {
        tracing::debug!(%method, %path, status = resp.status().as_u16(), "request");
        return resp;
    }
    let mut resp = match path.strip_prefix("/_devagent/fault/") {
        Some(what) if method == Method::PUT => faults::handle(&shared, &server, what, &query).await,
        Some(_) => method_not_allowed(&method, &[Method::PUT]),
        None => serve(&shared, &path, query, method.clone(), headers, body).await,
    };
    // Consul's API handlers set the policy header; its "not a recognized endpoint" answer has none.
    if route(&path).is_some() || path.starts_with("/_devagent/") {
        resp.headers_mut().insert(
            HeaderName::from_static("x-consul-default-acl-policy"),
            HeaderValue::from_static(shared.acl.default_policy()),
        );
    }
    // The query string is left out and ACL paths are hidden: either may hold a token.
    let logged = if path.starts_with("/v1/acl/") {
        "/v1/acl/<hidden>"
    } else {
        path.as_str()
    };
    tracing::debug!(%method, path = %logged, status = resp.status().as_u16(), "request");
    resp
}

/// The request's headers with values of their own. The URI and the header values the server
/// hands over share the connection's read buffer (8 KiB), which would otherwise stay allocated,
/// next to the buffer the connection reads into meanwhile, for as long as a blocking query
/// waits.
fn owned_headers(headers: &HeaderMap) -> HeaderMap {
    let mut owned = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        if let Ok(value) = HeaderValue::from_bytes(value.as_bytes()) {
            owned.append(name.clone(), value);
        }
    }
    owned
}

fn method_not_allowed(method: &Method, methods: &[Method]) -> Response {
    let mut resp = text(405, format!("method {method} not allowed"));
    resp.headers_mut().insert(header::ALLOW, allow(methods));
    resp
}

async fn serve(
    shared: &Arc<Shared>,
    path: &str,
    query: Query,
    method: Method,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if path.starts_with("/v1/") {
        if let Some(delay) = shared.faults.delay() {
            tokio::time::sleep(delay).await;
        }
        if shared.faults.take_failure() {
            return text(500, faults::INJECTED_FAILURE);
        }
    }
    let Some((pattern, methods)) = route(path) else {
        return match path {
            "/" => text(
                200,
                "devagent: a Consul-compatible agent for development and tests. It is not Consul.\n\
                 Its page: /ui/\n",
            ),
            p if p.contains("/v1/") => text(
                404,
                "Invalid URL path: not a recognized HTTP API endpoint\n",
            ),
            _ => text(
                404,
                "Invalid URL path: if attempting to use the HTTP API, ensure the path starts with '/v1/'\n",
            ),
        };
    };
    if method == Method::OPTIONS {
        let mut resp = empty();
        resp.headers_mut().insert(header::ALLOW, allow(methods));
        return resp;
    }
    if !methods.contains(&method) {
        return method_not_allowed(&method, methods);
    }
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => return text(413, "Request body too large"),
    };
    let req = Req {
        rest: path[pattern.len()..].to_owned(),
        method,
        query,
        headers,
        body,
    };
    let answer = match pattern {
        "/v1/agent/self" => agent::self_info(shared, &req),
        "/v1/agent/members" => agent::members(shared, &req),
        "/v1/agent/services" => agent::services(shared, &req),
        "/v1/agent/service/" => agent::service(shared, &req).await,
        "/v1/agent/service/register" => agent::register(shared, &req),
        "/v1/agent/service/deregister/" => agent::deregister(shared, &req),
        "/v1/agent/service/maintenance/" => agent::service_maintenance(shared, &req),
        "/v1/agent/maintenance" => agent::node_maintenance(shared, &req),
        "/v1/agent/checks" => agent::checks(shared, &req),
        "/v1/agent/check/register" => agent::check_register(shared, &req),
        "/v1/agent/check/deregister/" => agent::check_deregister(shared, &req),
        "/v1/agent/check/pass/" => agent::check_ttl(shared, &req, crate::state::Status::Passing),
        "/v1/agent/check/warn/" => agent::check_ttl(shared, &req, crate::state::Status::Warning),
        "/v1/agent/check/fail/" => agent::check_ttl(shared, &req, crate::state::Status::Critical),
        "/v1/agent/check/update/" => agent::check_update(shared, &req),
        "/v1/agent/health/service/id/" => agent::health_by_id(shared, &req),
        "/v1/agent/health/service/name/" => agent::health_by_name(shared, &req),
        "/v1/health/service/" => health::service(shared, &req).await,
        "/v1/health/checks/" => health::checks(shared, &req).await,
        "/v1/health/state/" => health::state(shared, &req).await,
        "/v1/health/node/" => health::node(shared, &req).await,
        "/v1/catalog/services" => catalog::services(shared, &req).await,
        "/v1/catalog/service/" => catalog::service(shared, &req).await,
        "/v1/catalog/nodes" => catalog::nodes(shared, &req).await,
        "/v1/catalog/node/" => catalog::node(shared, &req).await,
        "/v1/catalog/datacenters" => catalog::datacenters(shared, &req),
        "/v1/status/leader" => status::leader(&req),
        "/v1/status/peers" => status::peers(&req),
        "/v1/operator/raft/configuration" => status::raft_configuration(shared, &req),
        "/v1/kv/" => kv::handle(shared, &req).await,
        "/_devagent/checks" => agent::definitions(shared, &req),
        _ => Err(ApiError::new(
            404,
            "Invalid URL path: not a recognized HTTP API endpoint\n",
        )),
    };
    answer.unwrap_or_else(ApiError::into_response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_like_go_servemux() {
        assert_eq!(
            route("/v1/agent/service/register").unwrap().0,
            "/v1/agent/service/register"
        );
        assert_eq!(
            route("/v1/agent/service/web-1").unwrap().0,
            "/v1/agent/service/"
        );
        assert_eq!(
            route("/v1/agent/service/deregister/web").unwrap().0,
            "/v1/agent/service/deregister/"
        );
        assert_eq!(route("/v1/kv/a/b/c").unwrap().0, "/v1/kv/");
        assert!(route("/v1/agent/servicesx").is_none());
        assert!(route("/v1/nope").is_none());
    }

    #[test]
    fn decodes_queries() {
        let q = Query::parse(Some("tag=a&tag=b%20c&passing&note=x+y&bad=%zz&t=%4"));
        assert_eq!(q.all("tag").collect::<Vec<_>>(), ["a", "b c"]);
        assert_eq!(q.get("passing"), Some(""));
        assert_eq!(q.get("note"), Some("x y"));
        assert_eq!(q.get("bad"), Some("%zz"));
        assert_eq!(q.get("t"), Some("%4"));
        assert_eq!(decode_path("/v1/kv/a%2Fb+c"), "/v1/kv/a/b+c");
        let q = Query::parse(Some("&&=v&k=a=b&u=%FF&plus=%2B&k=2&"));
        assert_eq!(q.get(""), Some("v"));
        assert_eq!(q.all("k").collect::<Vec<_>>(), ["a=b", "2"]);
        assert_eq!(q.get("u"), Some("\u{FFFD}"));
        assert_eq!(q.get("plus"), Some("+"));
        assert_eq!(q.0.len(), 5);
        assert_eq!(decode_path("/v1/kv/%zz%4%e2%82%ac"), "/v1/kv/%zz%4\u{20ac}");
    }

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
