//! The client of a request: the TCP peer, or the address a trusted proxy
//! vouches for in `X-Forwarded-For` (`CUSTOS_TRUSTED_PROXIES`).

use std::net::IpAddr;

/// An IP network in CIDR form (`10.0.0.0/8`, `fd00::/8`) or a single
/// address, as named in `CUSTOS_TRUSTED_PROXIES`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNetwork {
    base: IpAddr,
    prefix: u8,
}

impl IpNetwork {
    /// Parses `addr` or `addr/prefix`; the address bits below the prefix
    /// are ignored.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let base = addr
            .parse::<IpAddr>()
            .map_err(|_| format!("{text:?} is not an IP address or CIDR network"))?
            .to_canonical();
        let max = match base {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        let prefix = match prefix {
            Some(prefix) => prefix
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{text:?} has a prefix length outside 0..={max}"))?,
            None => max,
        };
        Ok(Self { base, prefix })
    }

    /// Whether `ip` lies in the network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.base, ip.to_canonical()) {
            (IpAddr::V4(base), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(base) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(base), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(base) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// Parses one `X-Forwarded-For` entry: an address, possibly with a port.
fn forwarded_address(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))
        .map(|ip| ip.to_canonical())
}

/// The client of a request: the TCP `peer`, unless the peer is a trusted
/// proxy, in which case the `X-Forwarded-For` chain (every header, in
/// order) is walked from the right past trusted proxies to the first
/// address that is not one. A malformed entry stops the walk at the last
/// address a trusted hop vouched for.
pub fn client_ip(
    peer: Option<IpAddr>,
    forwarded_for: &[&str],
    trusted: &[IpNetwork],
) -> Option<IpAddr> {
    let peer = peer?.to_canonical();
    let is_trusted = |ip: IpAddr| trusted.iter().any(|network| network.contains(ip));
    if !is_trusted(peer) {
        return Some(peer);
    }
    let mut client = peer;
    let entries = forwarded_for
        .iter()
        .flat_map(|header| header.split(','))
        .collect::<Vec<_>>();
    for entry in entries.into_iter().rev() {
        let Some(ip) = forwarded_address(entry) else {
            break;
        };
        client = ip;
        if !is_trusted(ip) {
            break;
        }
    }
    Some(client)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn nets(list: &[&str]) -> Vec<IpNetwork> {
        list.iter().map(|n| IpNetwork::parse(n).unwrap()).collect()
    }

    #[test]
    fn networks_parse_and_match() {
        let net = IpNetwork::parse("10.1.0.0/16").unwrap();
        assert!(net.contains(ip("10.1.255.3")));
        assert!(!net.contains(ip("10.2.0.1")));
        assert!(
            net.contains(ip("::ffff:10.1.0.9")),
            "v4-mapped counts as v4"
        );
        let single = IpNetwork::parse("192.0.2.7").unwrap();
        assert!(single.contains(ip("192.0.2.7")));
        assert!(!single.contains(ip("192.0.2.8")));
        let v6 = IpNetwork::parse("fd00::/8").unwrap();
        assert!(v6.contains(ip("fd12:3456::1")));
        assert!(!v6.contains(ip("fe80::1")));
        assert!(!v6.contains(ip("10.0.0.1")));
        assert!(
            IpNetwork::parse("0.0.0.0/0")
                .unwrap()
                .contains(ip("8.8.8.8"))
        );
        for bad in ["", "10.0.0.0/33", "fd00::/129", "host", "10.0.0.0/x"] {
            assert!(IpNetwork::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn forwarded_for_is_ignored_without_trusted_proxies() {
        let peer = Some(ip("203.0.113.9"));
        assert_eq!(client_ip(peer, &["198.51.100.1"], &[]), peer);
        // Trusted proxies named, but this peer is not one of them.
        assert_eq!(
            client_ip(peer, &["198.51.100.1"], &nets(&["10.0.0.0/8"])),
            peer
        );
        assert_eq!(client_ip(None, &["198.51.100.1"], &[]), None);
    }

    #[test]
    fn forwarded_for_is_walked_past_trusted_hops_only() {
        let trusted = nets(&["10.0.0.0/8"]);
        let peer = Some(ip("10.0.0.2"));
        // The client forged the left-most entry; the proxy appended the real one.
        assert_eq!(
            client_ip(peer, &["6.6.6.6, 198.51.100.1"], &trusted),
            Some(ip("198.51.100.1"))
        );
        // Two proxies in the chain, headers split over two lines.
        assert_eq!(
            client_ip(peer, &["6.6.6.6, 198.51.100.1", "10.0.0.7"], &trusted),
            Some(ip("198.51.100.1"))
        );
        // Ports are tolerated.
        assert_eq!(
            client_ip(peer, &["198.51.100.1:4711"], &trusted),
            Some(ip("198.51.100.1"))
        );
        // No header: the proxy itself is all we know.
        assert_eq!(client_ip(peer, &[], &trusted), peer);
        // Garbage after the trusted hop: stop at what was vouched for.
        assert_eq!(client_ip(peer, &["198.51.100.1, junk"], &trusted), peer);
    }
}
