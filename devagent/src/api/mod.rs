//! Consul's HTTP API: routing, and the headers every answer carries.
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
//! [`ROUTES`] is the one list of endpoints: the router finds a path's pattern there, answers
//! `OPTIONS` and `405` from the methods listed for it, and calls the handler listed for the
//! method. The fault switches are an endpoint like the others, under `/_devagent/fault/`.

mod agent;
mod answer;
mod catalog;
mod faults;
mod filter;
mod health;
mod kv;
mod read;
mod request;
mod status;
mod views;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Request, header};
use axum::response::Response;

use self::answer::{Answer, ApiError, empty, text};
use self::request::{Query, Req};
use crate::agent::Agent;
use crate::state::Status;

/// A percent-decoded path (`+` stays `+`); malformed escapes are kept as they are, invalid
/// UTF-8 becomes U+FFFD.
fn decode_path(path: &str) -> String {
    percent_encoding::percent_decode_str(path)
        .decode_utf8_lossy()
        .into_owned()
}

/// The answer of a handler that may wait.
type Waiting<'a> = Pin<Box<dyn Future<Output = Answer> + Send + 'a>>;

/// What answers a route.
#[derive(Clone, Copy)]
enum Handler {
    /// Answers at once.
    Now(fn(&Agent, &Req) -> Answer),
    /// May wait before answering: a blocking read.
    Wait(for<'a> fn(&'a Agent, &'a Req) -> Waiting<'a>),
}

/// One endpoint: a path pattern (ending in `/`: every path under it), a method, its handler.
struct Route {
    pattern: &'static str,
    method: Method,
    handler: Handler,
}

const fn now(pattern: &'static str, method: Method, f: fn(&Agent, &Req) -> Answer) -> Route {
    Route {
        pattern,
        method,
        handler: Handler::Now(f),
    }
}

const fn wait(
    pattern: &'static str,
    method: Method,
    f: for<'a> fn(&'a Agent, &'a Req) -> Waiting<'a>,
) -> Route {
    Route {
        pattern,
        method,
        handler: Handler::Wait(f),
    }
}

const GET: Method = Method::GET;
const PUT: Method = Method::PUT;
const DELETE: Method = Method::DELETE;

/// Every endpoint. A pattern listed with several methods answers `OPTIONS` and `405` with all
/// of them, in this order.
#[rustfmt::skip]
const ROUTES: &[Route] = &[
    now("/v1/agent/self",                  GET,    agent::self_info),
    now("/v1/agent/members",               GET,    agent::members),
    now("/v1/agent/services",              GET,    agent::services),
    wait("/v1/agent/service/",             GET,    |a, r| Box::pin(agent::service(a, r))),
    now("/v1/agent/service/register",      PUT,    agent::register),
    now("/v1/agent/service/deregister/",   PUT,    agent::deregister),
    now("/v1/agent/service/maintenance/",  PUT,    agent::service_maintenance),
    now("/v1/agent/maintenance",           PUT,    agent::node_maintenance),
    now("/v1/agent/checks",                GET,    agent::checks),
    now("/v1/agent/check/register",        PUT,    agent::check_register),
    now("/v1/agent/check/deregister/",     PUT,    agent::check_deregister),
    now("/v1/agent/check/pass/",           PUT,    |a, r| agent::check_ttl(a, r, Status::Passing)),
    now("/v1/agent/check/warn/",           PUT,    |a, r| agent::check_ttl(a, r, Status::Warning)),
    now("/v1/agent/check/fail/",           PUT,    |a, r| agent::check_ttl(a, r, Status::Critical)),
    now("/v1/agent/check/update/",         PUT,    agent::check_update),
    now("/v1/agent/health/service/id/",    GET,    agent::health_by_id),
    now("/v1/agent/health/service/name/",  GET,    agent::health_by_name),
    wait("/v1/health/service/",            GET,    |a, r| Box::pin(health::service(a, r))),
    wait("/v1/health/checks/",             GET,    |a, r| Box::pin(health::checks(a, r))),
    wait("/v1/health/state/",              GET,    |a, r| Box::pin(health::state(a, r))),
    wait("/v1/health/node/",               GET,    |a, r| Box::pin(health::node(a, r))),
    wait("/v1/catalog/services",           GET,    |a, r| Box::pin(catalog::services(a, r))),
    wait("/v1/catalog/service/",           GET,    |a, r| Box::pin(catalog::service(a, r))),
    wait("/v1/catalog/nodes",              GET,    |a, r| Box::pin(catalog::nodes(a, r))),
    wait("/v1/catalog/node/",              GET,    |a, r| Box::pin(catalog::node(a, r))),
    now("/v1/catalog/datacenters",         GET,    catalog::datacenters),
    now("/v1/status/leader",               GET,    status::leader),
    now("/v1/status/peers",                GET,    status::peers),
    now("/v1/operator/raft/configuration", GET,    status::raft_configuration),
    wait("/v1/kv/",                        GET,    |a, r| Box::pin(kv::get(a, r))),
    now("/v1/kv/",                         PUT,    kv::put),
    now("/v1/kv/",                         DELETE, kv::delete),
    now("/_devagent/checks",               GET,    agent::definitions),
    now("/_devagent/fault/",               PUT,    faults::set),
];

/// The pattern `path` is routed by: as Go's `ServeMux`, the longest that matches it.
fn pattern(path: &str) -> Option<&'static str> {
    ROUTES
        .iter()
        .map(|r| r.pattern)
        .filter(|p| {
            if p.ends_with('/') {
                path.starts_with(p)
            } else {
                path == *p
            }
        })
        .max_by_key(|p| p.len())
}

/// The routes of `pattern`, one per method.
fn routes(pattern: &str) -> impl Iterator<Item = &'static Route> + '_ {
    ROUTES.iter().filter(move |r| r.pattern == pattern)
}

/// The `Allow` header of `pattern`: `OPTIONS` and its methods.
fn allow(pattern: &str) -> HeaderValue {
    let list: Vec<&str> = std::iter::once("OPTIONS")
        .chain(routes(pattern).map(|r| r.method.as_str()))
        .collect();
    HeaderValue::from_str(&list.join(",")).unwrap_or(HeaderValue::from_static("OPTIONS"))
}

/// Largest request body read (KV values have their own, smaller limit).
const MAX_BODY: usize = 16 << 20;

/// Answers one HTTP request to `agent`.
pub(crate) async fn handle(agent: Arc<Agent>, req: Request<Body>) -> Response {
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
    let mut resp = serve(&agent, &path, query, method.clone(), headers, body).await;
    // Consul's API handlers set the policy header; its "not a recognized endpoint" answer has none.
    if pattern(&path).is_some() || path.starts_with("/_devagent/") {
        resp.headers_mut().insert(
            HeaderName::from_static("x-consul-default-acl-policy"),
            HeaderValue::from_static(agent.acl.default_policy()),
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

async fn serve(
    agent: &Agent,
    path: &str,
    query: Query,
    method: Method,
    headers: HeaderMap,
    body: Body,
) -> Response {
    // The fault switches themselves (under `/_devagent/`) are neither delayed nor failed.
    if path.starts_with("/v1/") {
        if let Some(delay) = agent.faults.delay() {
            tokio::time::sleep(delay).await;
        }
        if agent.faults.take_failure() {
            return text(500, crate::faults::INJECTED_FAILURE);
        }
    }
    let Some(pattern) = pattern(path) else {
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
        resp.headers_mut().insert(header::ALLOW, allow(pattern));
        return resp;
    }
    let Some(route) = routes(pattern).find(|r| r.method == method) else {
        let mut resp = text(405, format!("method {method} not allowed"));
        resp.headers_mut().insert(header::ALLOW, allow(pattern));
        return resp;
    };
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => return text(413, "Request body too large"),
    };
    let req = Req {
        rest: path[pattern.len()..].to_owned(),
        query,
        headers,
        body,
    };
    let answer = match route.handler {
        Handler::Now(handler) => handler(agent, &req),
        Handler::Wait(handler) => handler(agent, &req).await,
    };
    answer.unwrap_or_else(ApiError::into_response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_like_go_servemux() {
        assert_eq!(
            pattern("/v1/agent/service/register"),
            Some("/v1/agent/service/register")
        );
        assert_eq!(
            pattern("/v1/agent/service/web-1"),
            Some("/v1/agent/service/")
        );
        assert_eq!(
            pattern("/v1/agent/service/deregister/web"),
            Some("/v1/agent/service/deregister/")
        );
        assert_eq!(pattern("/v1/kv/a/b/c"), Some("/v1/kv/"));
        assert_eq!(pattern("/v1/agent/servicesx"), None);
        assert_eq!(pattern("/v1/nope"), None);
    }

    #[test]
    fn allows_every_method_of_a_pattern() {
        assert_eq!(allow("/v1/kv/"), "OPTIONS,GET,PUT,DELETE");
        assert_eq!(allow("/v1/agent/self"), "OPTIONS,GET");
        assert_eq!(allow("/_devagent/fault/"), "OPTIONS,PUT");
    }

    #[test]
    fn decodes_paths() {
        assert_eq!(decode_path("/v1/kv/a%2Fb+c"), "/v1/kv/a/b+c");
        assert_eq!(decode_path("/v1/kv/%zz%4%e2%82%ac"), "/v1/kv/%zz%4\u{20ac}");
    }
}
