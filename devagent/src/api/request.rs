//! What a handler reads: the routed request, its decoded query parameters and its token.

use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Serialize;

use super::answer::{ApiError, json};
use crate::acl::{Acl, Authz};
use crate::agent::Agent;

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

/// A routed request.
pub(crate) struct Req {
    /// The path after the route's pattern: a name, ID or KV key.
    pub(crate) rest: String,
    pub(crate) query: Query,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Req {
    /// Resolves the request's token (`403 ACL not found` if unknown).
    pub(crate) fn authz(&self, agent: &Agent) -> Result<Authz, ApiError> {
        let token = Acl::token_of(self.query.get("token"), &self.headers);
        Ok(agent.acl.resolve(&token)?)
    }

    /// A JSON answer with `status`, indented if `?pretty`.
    pub(crate) fn json_status(&self, status: u16, value: &impl Serialize) -> Response {
        json(self.query.has("pretty"), status, value)
    }

    /// A `200` JSON answer.
    pub(crate) fn json(&self, value: &impl Serialize) -> Response {
        self.json_status(200, value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_queries() {
        let q = Query::parse(Some("tag=a&tag=b%20c&passing&note=x+y&bad=%zz&t=%4"));
        assert_eq!(q.all("tag").collect::<Vec<_>>(), ["a", "b c"]);
        assert_eq!(q.get("passing"), Some(""));
        assert_eq!(q.get("note"), Some("x y"));
        assert_eq!(q.get("bad"), Some("%zz"));
        assert_eq!(q.get("t"), Some("%4"));
        let q = Query::parse(Some("&&=v&k=a=b&u=%FF&plus=%2B&k=2&"));
        assert_eq!(q.get(""), Some("v"));
        assert_eq!(q.all("k").collect::<Vec<_>>(), ["a=b", "2"]);
        assert_eq!(q.get("u"), Some("\u{FFFD}"));
        assert_eq!(q.get("plus"), Some("+"));
        assert_eq!(q.0.len(), 5);
    }
}
