//! The host's primary IP, advertised when the listener is bound to `0.0.0.0` or `::`.
//!
//! First the address the kernel would send from towards the rest of the network: the local
//! address of a UDP socket connected to a documentation address (192.0.2.1, 2001:db8::1).
//! Connecting a UDP socket only looks up the route; no packet is sent. A host without such a
//! route (no default route, say, on an isolated network) has no such address; then the first
//! address of the family on an interface that is up and not loopback, as the interface list
//! gives them (`getifaddrs`), IPv6 link-local addresses left out: they are unusable without
//! their interface's name.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};

/// The host's primary IP of `family`'s kind (IPv4 for an IPv4 address, else IPv6); `Err` says
/// why none was found.
pub(crate) fn primary_ip(family: IpAddr) -> Result<IpAddr, String> {
    if let Some(ip) = routed_source(family) {
        return Ok(ip);
    }
    let listed = interfaces::list().map_err(|e| format!("cannot list the interfaces: {e}"))?;
    first_usable(family, &listed).ok_or_else(|| {
        format!(
            "no route to other hosts and no {} address on an interface that is up and not loopback",
            if family.is_ipv4() { "IPv4" } else { "IPv6" }
        )
    })
}

/// The source address the kernel picks for traffic to the rest of the network.
fn routed_source(family: IpAddr) -> Option<IpAddr> {
    let (bind, towards): (SocketAddr, SocketAddr) = match family {
        IpAddr::V4(_) => (
            (Ipv4Addr::UNSPECIFIED, 0).into(),
            (Ipv4Addr::new(192, 0, 2, 1), 9).into(),
        ),
        IpAddr::V6(_) => (
            (Ipv6Addr::UNSPECIFIED, 0).into(),
            (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1), 9).into(),
        ),
    };
    let socket = UdpSocket::bind(bind).ok()?;
    socket.connect(towards).ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_unspecified() && !ip.is_loopback()).then_some(ip)
}

/// One address of one interface, as the interface list gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Listed {
    ip: IpAddr,
    up: bool,
    loopback: bool,
}

/// The first address of `family`'s kind on an interface that is up and not loopback, not
/// link-local.
fn first_usable(family: IpAddr, listed: &[Listed]) -> Option<IpAddr> {
    listed
        .iter()
        .filter(|l| l.up && !l.loopback && !l.ip.is_loopback())
        .map(|l| l.ip)
        .find(|ip| match (family, ip) {
            (IpAddr::V4(_), IpAddr::V4(_)) => true,
            (IpAddr::V6(_), IpAddr::V6(v6)) => (v6.segments()[0] & 0xffc0) != 0xfe80,
            _ => false,
        })
}

/// The interface list, through `getifaddrs(3)`.
#[cfg(unix)]
#[allow(unsafe_code)]
mod interfaces {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    use super::Listed;

    pub(super) fn list() -> std::io::Result<Vec<Listed>> {
        let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
        // SAFETY: `getifaddrs` writes a list it allocated into `head`, or fails and writes
        // nothing; the list is freed below with `freeifaddrs`, once, after the last read.
        if unsafe { libc::getifaddrs(&mut head) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut listed = Vec::new();
        let mut cursor = head;
        while !cursor.is_null() {
            // SAFETY: `cursor` is a node of the list `getifaddrs` returned, not freed yet.
            let entry = unsafe { &*cursor };
            cursor = entry.ifa_next;
            if entry.ifa_addr.is_null() {
                continue;
            }
            // SAFETY: a non-null `ifa_addr` points at a socket address whose `sa_family`
            // says which structure it is; each is read as the structure its family names.
            let ip = unsafe {
                match i32::from((*entry.ifa_addr).sa_family) {
                    libc::AF_INET => {
                        let sin = &*entry.ifa_addr.cast::<libc::sockaddr_in>();
                        IpAddr::V4(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)))
                    }
                    libc::AF_INET6 => {
                        let sin6 = &*entry.ifa_addr.cast::<libc::sockaddr_in6>();
                        IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr))
                    }
                    _ => continue,
                }
            };
            let flags = entry.ifa_flags;
            listed.push(Listed {
                ip,
                up: flags & libc::IFF_UP as libc::c_uint != 0,
                loopback: flags & libc::IFF_LOOPBACK as libc::c_uint != 0,
            });
        }
        // SAFETY: `head` came from `getifaddrs` and nothing points into it any more.
        unsafe { libc::freeifaddrs(head) };
        Ok(listed)
    }
}

/// Without `getifaddrs`, only the routed source address is known.
#[cfg(not(unix))]
mod interfaces {
    pub(super) fn list() -> std::io::Result<Vec<super::Listed>> {
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(ip: &str, up: bool, loopback: bool) -> Listed {
        Listed {
            ip: ip.parse().unwrap(),
            up,
            loopback,
        }
    }

    const V4: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    const V6: IpAddr = IpAddr::V6(Ipv6Addr::UNSPECIFIED);

    #[test]
    fn several_interfaces_the_first_usable_of_the_family() {
        let list = [
            listed("127.0.0.1", true, true),
            listed("::1", true, true),
            listed("10.9.9.9", false, false),
            listed("fe80::1", true, false),
            listed("10.0.0.7", true, false),
            listed("2001:db8:5::7", true, false),
            listed("192.168.1.7", true, false),
        ];
        assert_eq!(first_usable(V4, &list), Some("10.0.0.7".parse().unwrap()));
        assert_eq!(
            first_usable(V6, &list),
            Some("2001:db8:5::7".parse().unwrap())
        );
    }

    #[test]
    fn only_loopback_down_or_link_local_is_none() {
        let list = [
            listed("127.0.0.1", true, true),
            listed("10.9.9.9", false, false),
            listed("fe80::1", true, false),
        ];
        assert_eq!(first_usable(V4, &list), None);
        assert_eq!(first_usable(V6, &list), None);
    }

    #[test]
    fn this_hosts_interfaces_are_listed_with_loopback() {
        let list = interfaces::list().unwrap();
        assert!(
            list.iter()
                .any(|l| l.ip == IpAddr::V4(Ipv4Addr::LOCALHOST) && l.loopback),
            "{list:?}"
        );
    }

    #[test]
    fn the_routed_source_is_an_address_of_this_host() {
        // Nothing is sent: a UDP connect only looks up the route.
        for family in [V4, V6] {
            if let Some(ip) = routed_source(family) {
                let list = interfaces::list().unwrap();
                assert!(list.iter().any(|l| l.ip == ip), "{ip} in {list:?}");
                assert_eq!(ip.is_ipv4(), family.is_ipv4());
            }
        }
    }
}
