//! Fabio's route tags: `urlprefix-<host>/<path> [opt=value ...]`.
//!
//! The grammar is Fabio's (`registry/consul/routecmd.go` and its documentation): the source is
//! `/path`, `host/path` (host lower-cased) or `:port` (TCP); options follow, separated by
//! spaces: `strip=`, `prepend=`, `proto=`, `host=`, `weight=`, `redirect=`, `tlsskipverify=`,
//! `auth=`, `allow=`, `deny=`, `register=`. This module reads them the way Fabio does, so a
//! router built on [`Discovery`](super::Discovery) routes like Fabio.

use std::collections::BTreeMap;

/// The tag prefix Fabio reads routes from.
pub const URLPREFIX: &str = "urlprefix-";

/// One route read from a `urlprefix-` tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Host to match, lower-case; `None` matches any host. May start with `*.`.
    pub host: Option<String>,
    /// Path prefix to match, starting with `/`. Empty for a TCP route.
    pub path: String,
    /// TCP port for a `:port` route.
    pub tcp_port: Option<u16>,
    /// Options in the tag, e.g. `strip` -> `/v1`.
    pub options: BTreeMap<String, String>,
}

impl Route {
    /// Parses one tag; `None` when it is not a `urlprefix-` tag or has no source.
    ///
    /// ```
    /// use discoverable::discovery::Route;
    /// let r = Route::parse("urlprefix-Example.com/api strip=/api proto=https").unwrap();
    /// assert_eq!(r.host.as_deref(), Some("example.com"));
    /// assert_eq!(r.path, "/api");
    /// assert_eq!(r.strip(), Some("/api"));
    /// assert_eq!(r.scheme(), "https");
    /// ```
    pub fn parse(tag: &str) -> Option<Route> {
        let rest = tag.strip_prefix(URLPREFIX)?;
        let mut parts = rest.split_whitespace();
        let src = parts.next()?;
        let options = parts
            .filter_map(|opt| {
                let (k, v) = opt.split_once('=')?;
                Some((k.to_owned(), v.to_owned()))
            })
            .collect();
        if let Some(port) = src.strip_prefix(':') {
            return Some(Route {
                host: None,
                path: String::new(),
                tcp_port: Some(port.parse().ok()?),
                options,
            });
        }
        let slash = src.find('/')?;
        let (host, path) = src.split_at(slash);
        Some(Route {
            host: (!host.is_empty()).then(|| host.to_ascii_lowercase()),
            path: path.to_owned(),
            tcp_port: None,
            options,
        })
    }

    /// Every route among `tags`.
    pub fn from_tags<'a>(tags: impl IntoIterator<Item = &'a String>) -> Vec<Route> {
        tags.into_iter().filter_map(|t| Route::parse(t)).collect()
    }

    /// The `strip=` option: the path prefix removed before forwarding.
    pub fn strip(&self) -> Option<&str> {
        self.options.get("strip").map(String::as_str)
    }

    /// The `prepend=` option: a path prefix added before forwarding.
    pub fn prepend(&self) -> Option<&str> {
        self.options.get("prepend").map(String::as_str)
    }

    /// The scheme to forward with: `proto=` or `http`.
    pub fn scheme(&self) -> &str {
        self.options.get("proto").map_or("http", String::as_str)
    }

    /// Whether this route matches a request for `host` and `path`, as Fabio matches: the
    /// route's host (exact, or `*.` suffix), then the path prefix.
    pub fn matches(&self, host: Option<&str>, path: &str) -> bool {
        if self.tcp_port.is_some() || !path.starts_with(&self.path) {
            return false;
        }
        match (&self.host, host) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(want), Some(got)) => {
                let got = got.split(':').next().unwrap_or(got).to_ascii_lowercase();
                match want.strip_prefix("*.") {
                    Some(suffix) => got.ends_with(&format!(".{suffix}")),
                    None => *want == got,
                }
            }
        }
    }

    /// Sort key, most specific route first (host routes before host-less ones, then the
    /// longest path), the order in which Fabio tries them.
    pub fn specificity(&self) -> (bool, usize) {
        (self.host.is_some(), self.path.len())
    }

    /// The path to forward: `strip` removed, `prepend` added.
    pub fn rewrite<'p>(&self, path: &'p str) -> std::borrow::Cow<'p, str> {
        let mut out = std::borrow::Cow::Borrowed(path);
        if let Some(strip) = self.strip() {
            if let Some(rest) = path.strip_prefix(strip) {
                out = if rest.starts_with('/') {
                    std::borrow::Cow::Borrowed(rest)
                } else {
                    std::borrow::Cow::Owned(format!("/{rest}"))
                };
            }
        }
        if let Some(prepend) = self.prepend() {
            out = std::borrow::Cow::Owned(format!("{}{}", prepend.trim_end_matches('/'), out));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fabio_tags() {
        let r = Route::parse("urlprefix-/oops").unwrap();
        assert_eq!((r.host, r.path.as_str(), r.tcp_port), (None, "/oops", None));
        let r = Route::parse("urlprefix-:3306 proto=tcp").unwrap();
        assert_eq!(r.tcp_port, Some(3306));
        assert_eq!(r.scheme(), "tcp");
        assert!(Route::parse("version-1").is_none());
        assert!(Route::parse("urlprefix-").is_none());
        assert!(Route::parse("urlprefix-nopath").is_none());
    }

    #[test]
    fn matches_like_fabio() {
        let v1 = Route::parse("urlprefix-/v1").unwrap();
        assert!(v1.matches(None, "/v1/users"));
        assert!(!v1.matches(None, "/v2/users"));
        let host = Route::parse("urlprefix-api.example.com/").unwrap();
        assert!(host.matches(Some("API.example.com:8080"), "/x"));
        assert!(!host.matches(Some("other.com"), "/x"));
        assert!(!host.matches(None, "/x"));
        let wild = Route::parse("urlprefix-*.example.com/").unwrap();
        assert!(wild.matches(Some("a.example.com"), "/"));
        assert!(!wild.matches(Some("example.com"), "/"));
        assert!(host.specificity() > v1.specificity());
    }

    #[test]
    fn rewrites_paths() {
        let r = Route::parse("urlprefix-/v1 strip=/v1").unwrap();
        assert_eq!(r.rewrite("/v1/users"), "/users");
        assert_eq!(r.rewrite("/v1"), "/");
        let r = Route::parse("urlprefix-/a prepend=/b").unwrap();
        assert_eq!(r.rewrite("/a/x"), "/b/a/x");
    }
}
