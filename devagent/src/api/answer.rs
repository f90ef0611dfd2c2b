//! What a handler answers: Consul's plain-text errors, empty and JSON answers.

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::Response;
use serde::Serialize;

use crate::acl::{Authz, Denied};

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

/// A JSON answer with `status`, indented as Consul indents it if `pretty` (`?pretty`).
pub(crate) fn json(pretty: bool, status: u16, value: &impl Serialize) -> Response {
    let body = if pretty {
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

/// `200` with an empty body: Consul's answer to a successful write.
pub(crate) fn empty() -> Response {
    Response::new(Body::empty())
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
