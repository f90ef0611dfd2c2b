//! ACL tokens: where a request's token is read from, and what it may do.
//!
//! With ACLs on, the agent knows two tokens, like a Consul cluster right after bootstrap with a
//! `deny` default policy: the management token from [`Config::acl_token`](crate::Config), which
//! may do everything, and the anonymous token (used when a request names none, or names
//! `anonymous`), which may do nothing. Any other token is unknown: `403 ACL not found`.
//! Denied writes answer `403 Permission denied: ...` in Consul 1.14's words, naming the anonymous
//! token by its accessor ID; list endpoints drop what the token may not read instead.
//!
//! The token is never logged and never printed by `Debug`. A refusal is a [`Denied`], which the
//! HTTP API answers as `403` with its text.

use std::fmt;

use axum::http::HeaderMap;

/// The secret ID Consul gives the anonymous token.
const ANONYMOUS: &str = "anonymous";
/// The accessor ID of Consul's anonymous token, which its denials name.
const ANONYMOUS_ACCESSOR: &str = "00000000-0000-0000-0000-000000000002";

/// The ACL settings of the agent.
#[derive(Clone, Default)]
pub(crate) struct Acl {
    management: Option<String>,
}

impl fmt::Debug for Acl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Acl")
            .field("enabled", &self.management.is_some())
            .finish()
    }
}

/// What a resolved token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Grant {
    /// ACLs are off: everything is allowed.
    Disabled,
    Management,
    Anonymous,
}

/// A refusal, in Consul's words: the token is unknown, or lacks a permission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Denied(String);

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A request's resolved token.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Authz {
    grant: Grant,
    /// Whether the request named a token (decides `X-Consul-Results-Filtered-By-ACLs`).
    presented: bool,
}

impl Acl {
    /// ACLs on with `management` as the management token, or off.
    pub(crate) fn new(management: Option<String>) -> Acl {
        Acl { management }
    }

    /// `deny` with ACLs on, `allow` without: the `X-Consul-Default-ACL-Policy` header.
    pub(crate) fn default_policy(&self) -> &'static str {
        if self.management.is_some() {
            "deny"
        } else {
            "allow"
        }
    }

    /// Consul's precedence: `?token=` (`query_token`, the decoded parameter), then
    /// `X-Consul-Token`, then `Authorization: Bearer <t>`.
    pub(crate) fn token_of(query_token: Option<&str>, headers: &HeaderMap) -> String {
        if let Some(t) = query_token.filter(|t| !t.is_empty()) {
            return t.to_owned();
        }
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .filter(|v| !v.is_empty())
        };
        if let Some(t) = header("x-consul-token") {
            return t.to_owned();
        }
        if let Some(auth) = header("authorization") {
            let parts: Vec<&str> = auth.split(' ').collect();
            if parts.len() > 1 && parts[0].eq_ignore_ascii_case("bearer") {
                let value = parts[1..].join(" ");
                let first = value.trim().split(' ').next().unwrap_or_default();
                return first.trim().to_owned();
            }
        }
        String::new()
    }

    /// Resolves a token: `ACL not found` for a token the agent does not know.
    pub(crate) fn resolve(&self, token: &str) -> Result<Authz, Denied> {
        let presented = !token.is_empty();
        let grant = match &self.management {
            None => Grant::Disabled,
            Some(m) if token == m => Grant::Management,
            Some(_) if token.is_empty() || token == ANONYMOUS => Grant::Anonymous,
            Some(_) => return Err(Denied("ACL not found".into())),
        };
        Ok(Authz { grant, presented })
    }
}

impl Authz {
    /// Whether this token may do anything at all (the only distinction this agent makes).
    pub(crate) fn allowed(&self) -> bool {
        self.grant != Grant::Anonymous
    }

    /// `Ok` if allowed, else Consul's refusal for lacking `resource:access` on `name`.
    pub(crate) fn require(&self, resource: &str, access: &str, name: &str) -> Result<(), Denied> {
        if self.allowed() {
            return Ok(());
        }
        Err(Denied(format!(
            "Permission denied: token with AccessorID '{ANONYMOUS_ACCESSOR}' lacks permission \
             '{resource}:{access}' on {name:?}"
        )))
    }

    /// `Ok` if allowed, else Consul's refusal for lacking `resource:access` on a resource
    /// without a name (`operator`).
    pub(crate) fn require_unnamed(&self, resource: &str, access: &str) -> Result<(), Denied> {
        if self.allowed() {
            return Ok(());
        }
        Err(Denied(format!(
            "Permission denied: token with AccessorID '{ANONYMOUS_ACCESSOR}' lacks permission \
             '{resource}:{access}'"
        )))
    }

    /// Whether to send `X-Consul-Results-Filtered-By-ACLs: true`: something was dropped and the
    /// request named a token (Consul hides the fact from requests without one).
    pub(crate) fn report_filtered(&self, dropped: bool) -> bool {
        dropped && self.presented
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(query_token: Option<&str>, headers: &[(&str, &str)]) -> String {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.insert(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        Acl::token_of(query_token, &map)
    }

    #[test]
    fn token_precedence_is_consuls() {
        let both = [("X-Consul-Token", "hdr"), ("Authorization", "Bearer bear")];
        assert_eq!(token(Some("q"), &both), "q");
        assert_eq!(token(Some(""), &both), "hdr");
        assert_eq!(token(None, &both), "hdr");
        assert_eq!(token(None, &both[1..]), "bear");
        assert_eq!(
            token(None, &[("Authorization", "bearer  spaced  x")]),
            "spaced"
        );
        assert_eq!(token(None, &[("Authorization", "Basic abc")]), "");
        assert_eq!(token(None, &[("Authorization", "Bearer")]), "");
    }

    #[test]
    fn resolves_tokens() {
        let acl = Acl::new(Some("secret".into()));
        assert!(acl.resolve("secret").unwrap().allowed());
        assert!(!acl.resolve("").unwrap().allowed());
        assert!(!acl.resolve("anonymous").unwrap().allowed());
        let err = acl.resolve("other").unwrap_err();
        assert_eq!(err.to_string(), "ACL not found");
        assert!(Acl::new(None).resolve("whatever").unwrap().allowed());
        assert_eq!(format!("{acl:?}"), "Acl { enabled: true }");
    }

    #[test]
    fn denial_text_is_consuls() {
        let authz = Acl::new(Some("s".into())).resolve("").unwrap();
        let err = authz.require("service", "write", "web").unwrap_err();
        assert_eq!(
            err.to_string(),
            "Permission denied: token with AccessorID '00000000-0000-0000-0000-000000000002' \
             lacks permission 'service:write' on \"web\""
        );
        assert!(!authz.report_filtered(true));
    }
}
