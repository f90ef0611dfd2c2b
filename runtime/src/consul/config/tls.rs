//! TLS material read once when the configuration is built: CA certificates (a file or a
//! directory), the client certificate and its key, and the server name to expect. Reading
//! certificates needs the `tls` feature; without it, a setting that asks for TLS stops the
//! build of the configuration ([`refuse_without_tls`]).

use std::net::IpAddr;
#[cfg(feature = "tls")]
use std::path::Path;
use std::path::PathBuf;

use reqwest::Url;

#[cfg(feature = "tls")]
use super::Set;
use super::address::Endpoint;
use super::config_error;
use super::env::ENV_HTTP_ADDR;
use crate::Error;

/// CA certificates to trust instead of the system's. (Without the `tls` feature none is ever
/// read.)
#[derive(Clone)]
#[cfg_attr(not(feature = "tls"), allow(dead_code))]
pub(crate) struct CaCerts {
    pub(crate) origin: &'static str,
    pub(crate) source: PathBuf,
    /// PEM contents, one entry per file.
    pub(crate) pems: Vec<Vec<u8>>,
}

/// A client certificate and its key, PEM.
#[derive(Clone)]
#[cfg_attr(not(feature = "tls"), allow(dead_code))]
pub(crate) struct ClientIdentity {
    pub(crate) origin: &'static str,
    pub(crate) cert_path: PathBuf,
    /// Certificate chain followed by the private key.
    pub(crate) pem: Vec<u8>,
}

#[cfg(feature = "tls")]
fn read_file(path: &Path, origin: &'static str, what: &str) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| {
        config_error(
            origin,
            format!(
                "cannot read {} ({e}); expected a readable {what}",
                path.display()
            ),
        )
    })
}

#[cfg(feature = "tls")]
fn count_pem_certs(pem: &[u8]) -> usize {
    reqwest::Certificate::from_pem_bundle(pem).map_or(0, |v| v.len())
}

#[cfg(feature = "tls")]
pub(super) fn load_ca_file(path: &Path, origin: &'static str) -> Result<CaCerts, Error> {
    let pem = read_file(path, origin, "PEM file of CA certificates")?;
    if count_pem_certs(&pem) == 0 {
        return Err(config_error(
            origin,
            format!(
                "{} holds no PEM certificate; expected a PEM file of CA certificates",
                path.display()
            ),
        ));
    }
    Ok(CaCerts {
        origin,
        source: path.to_owned(),
        pems: vec![pem],
    })
}

#[cfg(feature = "tls")]
/// Every file under `dir` (recursively, in name order) must hold PEM certificates, as
/// `go-rootcerts`' `LoadCAPath` requires.
pub(super) fn load_ca_dir(dir: &Path, origin: &'static str) -> Result<CaCerts, Error> {
    let mut files = Vec::new();
    collect_files(dir, origin, &mut files)?;
    files.sort();
    if files.is_empty() {
        return Err(config_error(
            origin,
            format!(
                "{} holds no files; expected a directory of PEM CA certificates",
                dir.display()
            ),
        ));
    }
    let mut pems = Vec::with_capacity(files.len());
    for file in files {
        let pem = read_file(&file, origin, "PEM file of CA certificates")?;
        if count_pem_certs(&pem) == 0 {
            return Err(config_error(
                origin,
                format!(
                    "{} holds no PEM certificate; expected only PEM CA certificates in {}",
                    file.display(),
                    dir.display()
                ),
            ));
        }
        pems.push(pem);
    }
    Ok(CaCerts {
        origin,
        source: dir.to_owned(),
        pems,
    })
}

#[cfg(feature = "tls")]
fn collect_files(dir: &Path, origin: &'static str, out: &mut Vec<PathBuf>) -> Result<(), Error> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        config_error(
            origin,
            format!(
                "cannot read the directory {} ({e}); expected a directory of PEM CA certificates",
                dir.display()
            ),
        )
    })?;
    for entry in entries {
        let entry = entry
            .map_err(|e| config_error(origin, format!("cannot list {} ({e})", dir.display())))?;
        let path = entry.path();
        // Follow symlinks, as the usual hash-named links in CA directories are.
        if path.is_dir() {
            collect_files(&path, origin, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

#[cfg(feature = "tls")]
pub(super) fn load_identity(
    cert: &Set<PathBuf>,
    key: &Set<PathBuf>,
) -> Result<ClientIdentity, Error> {
    let cert_pem = read_file(&cert.value, cert.origin, "PEM client certificate")?;
    if count_pem_certs(&cert_pem) == 0 {
        return Err(config_error(
            cert.origin,
            format!(
                "{} holds no PEM certificate; expected the PEM client certificate",
                cert.value.display()
            ),
        ));
    }
    let key_pem = read_file(&key.value, key.origin, "PEM private key")?;
    let mut pem = cert_pem;
    pem.push(b'\n');
    pem.extend_from_slice(&key_pem);
    if let Err(e) = reqwest::Identity::from_pem(&pem) {
        return Err(config_error(
            key.origin,
            format!(
                "{} is not a usable private key for {} ({e}); expected the PEM private key of the client certificate",
                key.value.display(),
                cert.value.display()
            ),
        ));
    }
    Ok(ClientIdentity {
        origin: cert.origin,
        cert_path: cert.value.clone(),
        pem,
    })
}

/// `CONSUL_TLS_SERVER_NAME` as Consul's `SetupTLSConfig` reads it: a `:port` is dropped.
pub(super) fn parse_server_name(
    raw: &str,
    origin: &'static str,
    endpoint: &Endpoint,
) -> Result<Option<String>, Error> {
    let raw = raw.trim();
    let host = if let Some(rest) = raw.strip_prefix('[') {
        // `[v6]` or `[v6]:port`
        match rest.split_once(']') {
            Some((h, tail)) if tail.is_empty() || tail.starts_with(':') => h,
            _ => {
                return Err(config_error(
                    origin,
                    format!(
                        "`{raw}` is not a valid server name; expected a DNS name, e.g. server.dc1.consul"
                    ),
                ));
            }
        }
    } else {
        match raw.matches(':').count() {
            0 => raw,
            1 => raw.split(':').next().unwrap_or(""),
            // A bare IPv6 address.
            _ => raw,
        }
    };
    if host.is_empty() {
        return Ok(None);
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        // Connecting elsewhere while verifying an IP is not expressible with this client;
        // the same IP as the address needs nothing.
        let same = endpoint
            .url
            .host_str()
            .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
            .and_then(|h| h.parse::<IpAddr>().ok())
            == Some(ip);
        if same {
            return Ok(None);
        }
        return Err(config_error(
            origin,
            format!(
                "`{raw}` is an IP address other than the address's host; expected a DNS name, or the IP of {ENV_HTTP_ADDR}"
            ),
        ));
    }
    let lowered = host.to_ascii_lowercase();
    let valid = Url::parse(&format!("https://{lowered}/"))
        .ok()
        .and_then(|u| u.domain().map(|d| d == lowered))
        .unwrap_or(false);
    if !valid {
        return Err(config_error(
            origin,
            format!(
                "`{raw}` is not a valid DNS name; expected the name in the server's certificate, e.g. server.dc1.consul"
            ),
        ));
    }
    Ok(Some(lowered))
}

/// What a build without the `tls` feature says when a setting asks for TLS: it never falls
/// back to plain HTTP.
#[cfg(not(feature = "tls"))]
pub(super) fn refuse_without_tls(setting: &'static str) -> Error {
    config_error(
        setting,
        "HTTPS and TLS to Consul need the `tls` feature of discoverable, which this build \
         lacks; turn it on (`discoverable = { version = \"0.1\", features = [\"tls\"] }`), or \
         reach the agent over plain http://",
    )
}
