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

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Request, header};
use axum::response::Response;

use self::answer::{ApiError, empty, text};
use self::request::{Query, Req};
use crate::agent::Agent;

/// A percent-decoded path (`+` stays `+`); malformed escapes are kept as they are, invalid
/// UTF-8 becomes U+FFFD.
fn decode_path(path: &str) -> String {
    percent_encoding::percent_decode_str(path)
        .decode_utf8_lossy()
        .into_owned()
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
    let mut resp = match path.strip_prefix("/_devagent/fault/") {
        Some(what) if method == Method::PUT => faults::handle(&agent.faults, what, &query),
        Some(_) => method_not_allowed(&method, &[Method::PUT]),
        None => serve(&agent, &path, query, method.clone(), headers, body).await,
    };
    // Consul's API handlers set the policy header; its "not a recognized endpoint" answer has none.
    if route(&path).is_some() || path.starts_with("/_devagent/") {
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

fn method_not_allowed(method: &Method, methods: &[Method]) -> Response {
    let mut resp = text(405, format!("method {method} not allowed"));
    resp.headers_mut().insert(header::ALLOW, allow(methods));
    resp
}

async fn serve(
    agent: &Agent,
    path: &str,
    query: Query,
    method: Method,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if path.starts_with("/v1/") {
        if let Some(delay) = agent.faults.delay() {
            tokio::time::sleep(delay).await;
        }
        if agent.faults.take_failure() {
            return text(500, crate::faults::INJECTED_FAILURE);
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
        "/v1/agent/self" => agent::self_info(agent, &req),
        "/v1/agent/members" => agent::members(agent, &req),
        "/v1/agent/services" => agent::services(agent, &req),
        "/v1/agent/service/" => agent::service(agent, &req).await,
        "/v1/agent/service/register" => agent::register(agent, &req),
        "/v1/agent/service/deregister/" => agent::deregister(agent, &req),
        "/v1/agent/service/maintenance/" => agent::service_maintenance(agent, &req),
        "/v1/agent/maintenance" => agent::node_maintenance(agent, &req),
        "/v1/agent/checks" => agent::checks(agent, &req),
        "/v1/agent/check/register" => agent::check_register(agent, &req),
        "/v1/agent/check/deregister/" => agent::check_deregister(agent, &req),
        "/v1/agent/check/pass/" => agent::check_ttl(agent, &req, crate::state::Status::Passing),
        "/v1/agent/check/warn/" => agent::check_ttl(agent, &req, crate::state::Status::Warning),
        "/v1/agent/check/fail/" => agent::check_ttl(agent, &req, crate::state::Status::Critical),
        "/v1/agent/check/update/" => agent::check_update(agent, &req),
        "/v1/agent/health/service/id/" => agent::health_by_id(agent, &req),
        "/v1/agent/health/service/name/" => agent::health_by_name(agent, &req),
        "/v1/health/service/" => health::service(agent, &req).await,
        "/v1/health/checks/" => health::checks(agent, &req).await,
        "/v1/health/state/" => health::state(agent, &req).await,
        "/v1/health/node/" => health::node(agent, &req).await,
        "/v1/catalog/services" => catalog::services(agent, &req).await,
        "/v1/catalog/service/" => catalog::service(agent, &req).await,
        "/v1/catalog/nodes" => catalog::nodes(agent, &req).await,
        "/v1/catalog/node/" => catalog::node(agent, &req).await,
        "/v1/catalog/datacenters" => catalog::datacenters(agent, &req),
        "/v1/status/leader" => status::leader(&req),
        "/v1/status/peers" => status::peers(&req),
        "/v1/operator/raft/configuration" => status::raft_configuration(agent, &req),
        "/v1/kv/" => kv::handle(agent, &req).await,
        "/_devagent/checks" => agent::definitions(agent, &req),
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
    fn decodes_paths() {
        assert_eq!(decode_path("/v1/kv/a%2Fb+c"), "/v1/kv/a/b+c");
        assert_eq!(decode_path("/v1/kv/%zz%4%e2%82%ac"), "/v1/kv/%zz%4\u{20ac}");
    }
}
