//! `CONSUL_HTTP_ADDR`: `host:port`, or a URL with scheme `http`, `https` or `unix`.

use std::path::PathBuf;

use reqwest::Url;

use super::config_error;
use super::env::ENV_HTTP_AUTH;
use crate::Error;

/// A parsed address: what `Config::address` shows, the base URL, the socket of `unix://`.
pub(super) struct Endpoint {
    pub(super) display: String,
    pub(super) url: Url,
    pub(super) unix_socket: Option<PathBuf>,
}

const ADDRESS_EXPECTED: &str = "expected host:port, or a URL such as http://127.0.0.1:8500, https://consul.example:8501 or unix:///run/consul/http.sock";

/// `CONSUL_HTTP_ADDR` as Consul's `api.NewClient` reads it: split at `://`; `http` keeps the
/// scheme chosen by `CONSUL_HTTP_SSL`, `https` forces HTTPS, `unix` dials a socket; a path
/// after `host:port` is a prefix for every request (Consul behind a reverse proxy).
pub(super) fn parse_address(
    raw: &str,
    https: bool,
    origin: &'static str,
) -> Result<Endpoint, Error> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err(config_error(
            origin,
            format!("the address is empty; {ADDRESS_EXPECTED}"),
        ));
    }
    let (scheme, rest) = match raw.split_once("://") {
        Some((scheme, rest)) => (Some(scheme.to_ascii_lowercase()), rest),
        None => (None, raw),
    };
    if scheme.is_none() && raw.contains('/') {
        // `http//x` or `http:/x`: a URL with a broken scheme, not a host.
        return Err(config_error(
            origin,
            format!("`{raw}` has a path but no `scheme://`; {ADDRESS_EXPECTED}"),
        ));
    }
    let scheme = match scheme.as_deref() {
        None | Some("http") => {
            if https {
                "https"
            } else {
                "http"
            }
        }
        Some("https") => "https",
        Some("unix") => return parse_unix_address(rest, https, origin),
        Some(other) => {
            return Err(config_error(
                origin,
                format!("unknown scheme `{other}`; expected http, https or unix"),
            ));
        }
    };
    let url = Url::parse(&format!("{scheme}://{rest}")).map_err(|e| {
        // `::1:8500`: an IPv6 address needs brackets before its port.
        let authority = rest.split('/').next().unwrap_or(rest);
        let bracketed = authority.rsplit_once(':').filter(|(ip, port)| {
            ip.parse::<std::net::Ipv6Addr>().is_ok() && port.parse::<u16>().is_ok()
        });
        match bracketed {
            Some((ip, port)) => config_error(
                origin,
                format!("`{raw}` is not a valid address: an IPv6 address takes brackets before its port; write [{ip}]:{port}"),
            ),
            None => config_error(
                origin,
                format!("`{raw}` is not a valid address ({e}); {ADDRESS_EXPECTED}"),
            ),
        }
    })?;
    if !url.username().is_empty() || url.password().is_some() {
        // Do not echo the value: it may hold a password.
        return Err(config_error(
            origin,
            format!(
                "the address holds user information; expected it without, and basic auth in {ENV_HTTP_AUTH}"
            ),
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(config_error(
            origin,
            format!("`{raw}` has no host; {ADDRESS_EXPECTED}"),
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(config_error(
            origin,
            format!("`{raw}` has a query or fragment; {ADDRESS_EXPECTED}"),
        ));
    }
    let display = url.as_str().trim_end_matches('/').to_owned();
    Ok(Endpoint {
        display,
        url,
        unix_socket: None,
    })
}

#[cfg(unix)]
fn parse_unix_address(path: &str, https: bool, origin: &'static str) -> Result<Endpoint, Error> {
    if path.is_empty() {
        return Err(config_error(
            origin,
            "the unix address has no socket path; expected e.g. unix:///run/consul/http.sock",
        ));
    }
    let url = Url::parse(if https {
        "https://localhost/"
    } else {
        "http://localhost/"
    })
    .map_err(|e| config_error(origin, e.to_string()))?;
    Ok(Endpoint {
        display: format!("unix://{path}"),
        url,
        unix_socket: Some(PathBuf::from(path)),
    })
}

#[cfg(not(unix))]
fn parse_unix_address(_path: &str, _https: bool, origin: &'static str) -> Result<Endpoint, Error> {
    Err(config_error(
        origin,
        "unix sockets are not supported on this platform; expected an http:// or https:// address",
    ))
}
