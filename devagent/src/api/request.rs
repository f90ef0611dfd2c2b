//! What a handler reads: the routed request, its decoded query parameters, its token and its
//! filter.

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use serde::Serialize;

use super::answer::ApiError;
use super::filter;
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
    pub(crate) method: Method,
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
