//! Which address and port the instance registers, and where it probes itself.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::error::Error;
use crate::service::Settings;

/// Where Consul and clients reach the instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Advertised {
    /// IP address or host name, without brackets.
    pub(crate) host: String,
    pub(crate) port: u16,
}

impl Advertised {
    /// `http://host:port<path>`, with an IPv6 address in brackets.
    pub(crate) fn url(&self, path: &str) -> String {
        http_url(&self.host, self.port, path)
    }

    /// `host:port`, with an IPv6 address in brackets: a gRPC check's target.
    pub(crate) fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

pub(crate) fn http_url(host: &str, port: u16, path: &str) -> String {
    if host.contains(':') {
        format!("http://[{host}]:{port}{path}")
    } else {
        format!("http://{host}:{port}{path}")
    }
}

/// The configured address, else the bound IP, else (bound to `0.0.0.0` / `::`) the host's
/// primary IP; the configured port, else the bound one.
pub(crate) fn advertise(settings: &Settings, bound: SocketAddr) -> Result<Advertised, Error> {
    let port = settings.lifecycle.advertise_port.unwrap_or(bound.port());
    let host = match &settings.lifecycle.advertise_address {
        Some(host) => host.clone(),
        None if !bound.ip().is_unspecified() => bound.ip().to_string(),
        None => primary_ip(bound.ip())?.to_string(),
    };
    Ok(Advertised { host, port })
}

/// The host's primary IP of the bound family (no traffic sent; see `primary_ip`).
fn primary_ip(unspecified: IpAddr) -> Result<IpAddr, Error> {
    super::primary_ip::primary_ip(unspecified).map_err(|e| Error::Config {
        setting: "DISCOVERABLE_ADVERTISE_ADDR",
        message: format!(
            "the listener is bound to {unspecified} and the host's primary IP could not be found ({e}); set DISCOVERABLE_ADVERTISE_ADDR to the address other hosts reach this one at"
        ),
    })
}

/// Where the runtime probes its own health route: the bound address, or loopback when bound
/// to an unspecified address.
pub(crate) fn probe_addr(bound: SocketAddr) -> SocketAddr {
    match bound.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => (Ipv4Addr::LOCALHOST, bound.port()).into(),
        IpAddr::V6(ip) if ip.is_unspecified() => (Ipv6Addr::LOCALHOST, bound.port()).into(),
        _ => bound,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Service;

    fn settings(addr: Option<&str>, port: Option<u16>) -> std::sync::Arc<Settings> {
        let mut b = Service::builder("a");
        if let Some(addr) = addr {
            b = b.advertise_address(addr);
        }
        if let Some(port) = port {
            b = b.advertise_port(port);
        }
        b.build_with(|_| None).unwrap().settings
    }

    #[test]
    fn bound_ip_is_advertised() {
        let a = advertise(&settings(None, None), "127.0.0.1:4000".parse().unwrap()).unwrap();
        assert_eq!(
            a,
            Advertised {
                host: "127.0.0.1".into(),
                port: 4000
            }
        );
        assert_eq!(a.url("/health"), "http://127.0.0.1:4000/health");
    }

    #[test]
    fn configured_address_and_port_win() {
        let s = settings(Some("svc.example.com"), Some(80));
        let a = advertise(&s, "0.0.0.0:4000".parse().unwrap()).unwrap();
        assert_eq!(
            a,
            Advertised {
                host: "svc.example.com".into(),
                port: 80
            }
        );
    }

    #[test]
    fn ipv6_is_bracketed() {
        let a = advertise(&settings(None, None), "[::1]:4000".parse().unwrap()).unwrap();
        assert_eq!(a.host, "::1");
        assert_eq!(a.url("/health"), "http://[::1]:4000/health");
    }

    #[test]
    fn unspecified_uses_a_real_interface_address() {
        // Reads the interface table only; nothing is sent to the address found.
        if let Ok(a) = advertise(&settings(None, None), "0.0.0.0:4000".parse().unwrap()) {
            let ip: IpAddr = a.host.parse().unwrap();
            assert!(!ip.is_unspecified());
            assert_eq!(a.port, 4000);
        }
    }

    #[test]
    fn probe_uses_loopback_for_unspecified() {
        assert_eq!(
            probe_addr("0.0.0.0:5".parse().unwrap()),
            "127.0.0.1:5".parse().unwrap()
        );
        assert_eq!(
            probe_addr("[::]:5".parse().unwrap()),
            "[::1]:5".parse().unwrap()
        );
        assert_eq!(
            probe_addr("10.0.0.1:5".parse().unwrap()),
            "10.0.0.1:5".parse().unwrap()
        );
    }
}
