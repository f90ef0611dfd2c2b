//! `/v1/kv/<key>`: enough of Consul's KV store for Fabio's configuration and simple flags.
//!
//! `GET` answers `[{LockIndex, Key, Flags, Value (base64), CreateIndex, ModifyIndex}]`, or `404`
//! with an empty body (and the blocking headers) when nothing matches; `?recurse` lists a prefix,
//! `?keys[&separator=/]` lists key names, `?raw` answers the bare value. Reads block on `?index`.
//! `PUT` stores the body (`?flags=`, `?cas=`) and answers `true`/`false`; `DELETE` removes a key
//! or, with `?recurse`, a prefix. Sessions (`?acquire`, `?release`) are not supported.

use std::collections::BTreeSet;

use axum::body::Body;
use axum::response::Response;
use base64::Engine;
use serde_json::{Value, json};

use super::answer::{Answer, ApiError};
use super::read::{Params, Preamble, Read};
use super::request::Req;
use crate::agent::Agent;

/// Consul's default `kv_max_value_size`.
const MAX_VALUE: usize = 512 * 1024;

fn missing_key(req: &Req) -> Result<(), ApiError> {
    if req.rest.is_empty() {
        return Err(ApiError::new(400, "Missing key name"));
    }
    Ok(())
}

fn parse_u64(req: &Req, name: &str) -> Result<Option<u64>, ApiError> {
    match req.query.get(name) {
        None => Ok(None),
        Some(raw) => raw.parse().map(Some).map_err(|_| {
            ApiError::new(
                500,
                format!("strconv.ParseUint: parsing {raw:?}: invalid syntax"),
            )
        }),
    }
}

/// What a read found.
enum Found {
    Json(Value),
    Raw(Vec<u8>),
}

/// `GET /v1/kv/<key>[?recurse|?keys[&separator=]|?raw]`.
pub(super) async fn get(agent: &Agent, req: &Req) -> Answer {
    let key = req.rest.as_str();
    let keys = req.query.has("keys");
    let recurse = req.query.has("recurse");
    let preamble = if keys || recurse {
        Preamble::QUERY
    } else {
        Preamble::QUERY.named("Missing key name")
    };
    let read = Read::new(agent, req, preamble)?;
    if !keys && !recurse {
        read.authz.require("key", "read", key)?;
    }
    let separator = req.query.get("separator").unwrap_or_default().to_owned();
    let raw = req.query.has("raw") && !recurse && !keys;
    let (index, body) = read
        .block(&agent.store, |st| {
            let index = st.kv_read_index(key, recurse || keys);
            if !read.authz.allowed() {
                return (index, None);
            }
            let under = st
                .kv
                .range(key.to_owned()..)
                .take_while(|(k, _)| k.starts_with(key));
            let body = if keys {
                let names: BTreeSet<String> = under
                    .map(|(k, _)| match k[key.len()..].find(separator.as_str()) {
                        Some(i) if !separator.is_empty() => {
                            k[..key.len() + i + separator.len()].to_owned()
                        }
                        _ => k.clone(),
                    })
                    .collect();
                (!names.is_empty()).then(|| Found::Json(json!(names)))
            } else if raw {
                st.kv.get(key).map(|e| Found::Raw(e.value.clone()))
            } else {
                let entries: Vec<Value> = under
                    .filter(|(k, _)| recurse || k.as_str() == key)
                    .map(|(k, e)| {
                        json!({
                            "LockIndex": 0,
                            "Key": k,
                            "Flags": e.flags,
                            "Value": if e.value.is_empty() {
                                Value::Null
                            } else {
                                json!(base64::engine::general_purpose::STANDARD.encode(&e.value))
                            },
                            "CreateIndex": e.create_index,
                            "ModifyIndex": e.modify_index,
                        })
                    })
                    .collect();
                (!entries.is_empty()).then(|| Found::Json(json!(entries)))
            };
            (index, body)
        })
        .await;
    let resp = match body {
        None => {
            let mut resp = Response::new(Body::empty());
            *resp.status_mut() = axum::http::StatusCode::NOT_FOUND;
            resp
        }
        Some(Found::Raw(bytes)) => {
            // Consul types a raw value `text/plain` whatever it holds, and keeps browsers
            // from running it.
            let mut resp = Response::new(Body::from(bytes));
            let h = resp.headers_mut();
            h.insert(
                axum::http::header::CONTENT_TYPE,
                axum::http::HeaderValue::from_static("text/plain"),
            );
            h.insert(
                "content-security-policy",
                axum::http::HeaderValue::from_static("sandbox"),
            );
            h.insert(
                "x-content-type-options",
                axum::http::HeaderValue::from_static("nosniff"),
            );
            resp
        }
        Some(Found::Json(body)) => read.json(&body),
    };
    // KV reads carry no X-Consul-Effective-Consistency in Consul.
    let mut resp = read.meta(resp, index);
    resp.headers_mut().remove("x-consul-effective-consistency");
    Ok(resp)
}

/// `PUT /v1/kv/<key>[?flags=&cas=]`: `true`, or `false` when `?cas` did not match.
pub(super) fn put(agent: &Agent, req: &Req) -> Answer {
    let params = Params::parse(&req.query)?;
    missing_key(req)?;
    if ["acquire", "release"].iter().any(|p| req.query.has(p)) {
        return Err(ApiError::new(
            400,
            "Sessions (?acquire, ?release) are not supported by devagent",
        ));
    }
    let flags = parse_u64(req, "flags")?.unwrap_or(0);
    let cas = parse_u64(req, "cas")?;
    if req.body.len() > MAX_VALUE {
        return Err(ApiError::new(
            413,
            format!(
                "Request body({} bytes) too large, max size: {MAX_VALUE} bytes. See \
                 https://developer.hashicorp.com/docs/agent/config/config-files#kv_max_value_size.",
                req.body.len()
            ),
        ));
    }
    params.check_dc(agent)?;
    let authz = req.authz(agent)?;
    authz.require("key", "write", &req.rest)?;
    let value = req.body.to_vec();
    let ok = agent
        .store
        .write(|st| st.kv_put(&req.rest, value, flags, cas));
    Ok(req.json(&ok))
}

/// `DELETE /v1/kv/<key>[?recurse][&cas=]`: `true`, or `false` when `?cas` did not match.
pub(super) fn delete(agent: &Agent, req: &Req) -> Answer {
    let params = Params::parse(&req.query)?;
    let recurse = req.query.has("recurse");
    if !recurse {
        missing_key(req)?;
    }
    let cas = parse_u64(req, "cas")?;
    params.check_dc(agent)?;
    let authz = req.authz(agent)?;
    authz.require("key", "write", &req.rest)?;
    let ok = agent
        .store
        .write(|st| st.kv_delete(&req.rest, recurse, cas));
    Ok(req.json(&ok))
}
