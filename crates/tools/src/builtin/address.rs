//! Which network addresses `web_fetch` may connect to: public unicast only. Private,
//! loopback, link-local (cloud metadata), shared, reserved, documentation and multicast ranges
//! are refused, including when they hide inside IPv6 (IPv4-mapped, IPv4-compatible, NAT64,
//! 6to4) or behind a tunnel (Teredo).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Where `web_fetch` may connect. The default refuses every blocked range; no setting opens
/// one for `web_fetch`, whose URLs a model chooses. Only what an operator configures (a
/// watcher's source, a webhook) may be given exact exceptions from the operator's own settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    /// Exact addresses let through although their range is blocked (tests, operator exceptions).
    allowed_exact: Vec<IpAddr>,
}

impl AddressPolicy {
    /// Public unicast addresses only.
    pub fn strict() -> Self {
        Self::default()
    }

    /// Lets these exact addresses through (e.g. `127.0.0.1` for a local mock server) and
    /// nothing else of the blocked ranges: `127.0.0.2`, `::1` or `::ffff:127.0.0.1` stay blocked.
    #[cfg(any(test, feature = "test-support"))]
    pub fn allowing_exact(addresses: impl IntoIterator<Item = IpAddr>) -> Self {
        Self { allowed_exact: addresses.into_iter().collect() }
    }

    /// Lets the exact addresses an operator named in the settings through (an intranet feed, a
    /// webhook relay on the LAN); for destinations an administrator configures, never for URLs
    /// a model or a user's message chose.
    pub fn operator_exceptions(addresses: impl IntoIterator<Item = IpAddr>) -> Self {
        Self { allowed_exact: addresses.into_iter().collect() }
    }

    /// `Err` names the blocked range the address falls in.
    pub fn check(&self, ip: IpAddr) -> Result<(), String> {
        if self.allowed_exact.contains(&ip) {
            return Ok(());
        }
        match blocked_reason(ip) {
            Some(reason) => Err(reason),
            None => Ok(()),
        }
    }
}

const V4_BLOCKED: &[([u8; 4], u8, &str)] = &[
    ([0, 0, 0, 0], 8, "\"this network\" (0.0.0.0/8)"),
    ([10, 0, 0, 0], 8, "private (10.0.0.0/8)"),
    ([100, 64, 0, 0], 10, "carrier-grade NAT (100.64.0.0/10)"),
    ([127, 0, 0, 0], 8, "loopback (127.0.0.0/8)"),
    ([169, 254, 0, 0], 16, "link-local and cloud metadata (169.254.0.0/16)"),
    ([172, 16, 0, 0], 12, "private (172.16.0.0/12)"),
    ([192, 0, 0, 0], 24, "IETF protocol assignments (192.0.0.0/24)"),
    ([192, 0, 2, 0], 24, "documentation (192.0.2.0/24)"),
    ([192, 88, 99, 0], 24, "6to4 relay anycast (192.88.99.0/24)"),
    ([192, 168, 0, 0], 16, "private (192.168.0.0/16)"),
    ([198, 18, 0, 0], 15, "benchmarking (198.18.0.0/15)"),
    ([198, 51, 100, 0], 24, "documentation (198.51.100.0/24)"),
    ([203, 0, 113, 0], 24, "documentation (203.0.113.0/24)"),
    ([224, 0, 0, 0], 4, "multicast (224.0.0.0/4)"),
    ([255, 255, 255, 255], 32, "broadcast (255.255.255.255)"),
    ([240, 0, 0, 0], 4, "reserved (240.0.0.0/4)"),
];

const V6_BLOCKED: &[(u128, u8, &str)] = &[
    (0x0000_0000_0000_0000_0000_0000_0000_0000, 128, "unspecified (::)"),
    (0x0000_0000_0000_0000_0000_0000_0000_0001, 128, "loopback (::1)"),
    (0x0000_0000_0000_0000_0000_0000_0000_0000, 96, "IPv4-compatible (::/96, deprecated)"),
    (0x0064_ff9b_0001_0000_0000_0000_0000_0000, 48, "local-use NAT64 (64:ff9b:1::/48)"),
    (0x0100_0000_0000_0000_0000_0000_0000_0000, 64, "discard-only (100::/64)"),
    (0x2001_0000_0000_0000_0000_0000_0000_0000, 32, "Teredo (2001::/32)"),
    (0x2001_0000_0000_0000_0000_0000_0000_0000, 23, "IETF protocol assignments (2001::/23)"),
    (0x2001_0db8_0000_0000_0000_0000_0000_0000, 32, "documentation (2001:db8::/32)"),
    (0x3fff_0000_0000_0000_0000_0000_0000_0000, 20, "documentation (3fff::/20)"),
    (0xfc00_0000_0000_0000_0000_0000_0000_0000, 7, "unique-local (fc00::/7)"),
    (0xfe80_0000_0000_0000_0000_0000_0000_0000, 10, "link-local (fe80::/10)"),
    (0xfec0_0000_0000_0000_0000_0000_0000_0000, 10, "site-local (fec0::/10, deprecated)"),
    (0xff00_0000_0000_0000_0000_0000_0000_0000, 8, "multicast (ff00::/8)"),
];

const NAT64: (u128, u8) = (0x0064_ff9b_0000_0000_0000_0000_0000_0000, 96);
const SIX_TO_FOUR: (u128, u8) = (0x2002_0000_0000_0000_0000_0000_0000_0000, 16);
const GLOBAL_UNICAST: (u128, u8) = (0x2000_0000_0000_0000_0000_0000_0000_0000, 3);

/// Why an address may not be fetched from, or `None` for a public unicast address.
pub fn blocked_reason(ip: IpAddr) -> Option<String> {
    match ip {
        IpAddr::V4(v4) => v4_reason(v4).map(str::to_owned),
        IpAddr::V6(v6) => v6_reason(v6),
    }
}

fn v4_reason(ip: Ipv4Addr) -> Option<&'static str> {
    let bits = u32::from(ip);
    V4_BLOCKED
        .iter()
        .find(|(network, prefix, _)| in_v4(bits, u32::from_be_bytes(*network), *prefix))
        .map(|(_, _, reason)| *reason)
}

fn v6_reason(ip: Ipv6Addr) -> Option<String> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return v4_reason(v4).map(|reason| format!("IPv4-mapped {reason}"));
    }
    let bits = u128::from(ip);
    if in_v6(bits, NAT64) {
        let embedded = Ipv4Addr::from(bits as u32);
        return v4_reason(embedded).map(|reason| format!("NAT64 (64:ff9b::/96) of {reason}"));
    }
    if let Some((_, _, reason)) = V6_BLOCKED.iter().find(|(network, prefix, _)| in_v6(bits, (*network, *prefix))) {
        return Some((*reason).to_owned());
    }
    if in_v6(bits, SIX_TO_FOUR) {
        let embedded = Ipv4Addr::from((bits >> 80) as u32);
        return v4_reason(embedded).map(|reason| format!("6to4 (2002::/16) of {reason}"));
    }
    if !in_v6(bits, GLOBAL_UNICAST) {
        return Some("not global unicast (outside 2000::/3)".to_owned());
    }
    None
}

fn in_v4(bits: u32, network: u32, prefix: u8) -> bool {
    let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(prefix)) };
    bits & mask == network & mask
}

fn in_v6(bits: u128, (network, prefix): (u128, u8)) -> bool {
    let mask = if prefix == 0 { 0 } else { u128::MAX << (128 - u32::from(prefix)) };
    bits & mask == network & mask
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_allowances_do_not_open_their_range() {
        let loopback: IpAddr = "127.0.0.1".parse().unwrap();
        let policy = AddressPolicy::allowing_exact([loopback]);
        assert_eq!(policy.check(loopback), Ok(()));
        for other in ["127.0.0.2", "::1", "::ffff:127.0.0.1", "10.0.0.1"] {
            assert!(policy.check(other.parse().unwrap()).is_err(), "{other}");
        }
        assert!(AddressPolicy::strict().check(loopback).is_err());
        assert_eq!(AddressPolicy::strict().check("93.184.215.14".parse().unwrap()), Ok(()));
    }
}
