//! Which address a request came from when a reverse proxy sits in front: the socket's peer,
//! unless that peer is a proxy the operator trusts (`api.trusted_proxies`), in which case the
//! proxy's `X-Forwarded-For` is read from the right, skipping trusted proxies, and the first
//! other address is the client's. A header from anyone else is ignored, so a client cannot
//! pick the address its sign-in attempts are throttled under.

use std::net::IpAddr;

/// An address or a network (`10.0.0.0/8`, `::1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyNet {
    address: IpAddr,
    prefix: u8,
}

impl ProxyNet {
    /// Parses `ADDRESS` or `ADDRESS/PREFIX`; the error says what is wrong.
    pub fn parse(text: &str) -> Result<ProxyNet, String> {
        let text = text.trim();
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let address: IpAddr = address.parse().map_err(|_| format!("{text:?} is not an IP address or network"))?;
        let max = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(p) if p <= max => p,
                _ => return Err(format!("{text:?}: the prefix must be 0 to {max}")),
            },
        };
        Ok(ProxyNet { address, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let bits = |ip: IpAddr| -> Option<(u128, u8)> {
            match (self.address, ip) {
                (IpAddr::V4(_), IpAddr::V4(v4)) => Some((u128::from(u32::from(v4)) << 96, 32)),
                (IpAddr::V6(_), IpAddr::V6(v6)) => Some((u128::from(v6), 128)),
                (IpAddr::V4(_), IpAddr::V6(v6)) => v6.to_ipv4_mapped().map(|v4| (u128::from(u32::from(v4)) << 96, 32)),
                (IpAddr::V6(_), IpAddr::V4(_)) => None,
            }
        };
        let (Some((net, _)), Some((candidate, _))) = (bits(self.address), bits(ip)) else { return false };
        let prefix = u32::from(self.prefix);
        let mask = if prefix == 0 { 0 } else { u128::MAX << (128 - prefix.min(128)) };
        net & mask == candidate & mask
    }
}

/// The client's address: `peer`, or when `peer` is trusted, the right-most untrusted address of
/// `forwarded_for` (the left-most one when every hop is trusted).
pub fn client_address(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[ProxyNet]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let hops: Vec<IpAddr> =
        forwarded_for.unwrap_or_default().split(',').filter_map(|hop| hop.trim().parse().ok()).collect();
    hops.iter().rev().copied().find(|ip| !is_trusted(*ip)).or_else(|| hops.first().copied()).unwrap_or(peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    #[test]
    fn networks_parse_and_match() {
        let net = ProxyNet::parse("10.0.0.0/8").expect("net");
        assert!(net.contains(ip("10.1.2.3")) && !net.contains(ip("11.0.0.1")));
        assert!(net.contains(ip("::ffff:10.9.9.9")), "IPv4-mapped IPv6");
        assert!(ProxyNet::parse("::1").expect("v6").contains(ip("::1")));
        assert!(ProxyNet::parse("0.0.0.0/0").expect("all").contains(ip("8.8.8.8")));
        assert!(ProxyNet::parse("10.0.0.0/33").is_err());
        assert!(ProxyNet::parse("proxy.local").expect_err("not an address").contains("not an IP"));
    }

    #[test]
    fn forwarded_for_is_read_only_from_trusted_proxies() {
        let trusted = [ProxyNet::parse("10.0.0.0/8").expect("net")];
        // A client talking to us directly cannot choose its address.
        assert_eq!(client_address(ip("203.0.113.9"), Some("1.2.3.4"), &trusted), ip("203.0.113.9"));
        // Through our proxy: the right-most hop the proxy saw.
        assert_eq!(client_address(ip("10.0.0.2"), Some("1.2.3.4, 198.51.100.7"), &trusted), ip("198.51.100.7"));
        // Through two of our proxies.
        assert_eq!(client_address(ip("10.0.0.2"), Some("198.51.100.7, 10.0.0.9"), &trusted), ip("198.51.100.7"));
        assert_eq!(client_address(ip("10.0.0.2"), None, &trusted), ip("10.0.0.2"));
        assert_eq!(client_address(ip("10.0.0.2"), Some("garbage"), &trusted), ip("10.0.0.2"));
        assert_eq!(client_address(ip("10.0.0.2"), Some("1.1.1.1"), &[]), ip("10.0.0.2"), "nothing trusted");
    }
}
