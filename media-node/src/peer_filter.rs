//! Which peers a relay may talk to: a deny-list of CIDR ranges with an
//! allow-list that wins over it, as coturn's `denied-peer-ip` and
//! `allowed-peer-ip`. On by default with coturn's ranges (private,
//! loopback, link-local and cloud metadata, multicast, reserved), so a TURN
//! credential is never a way into the node's own network.
//!
//! An IPv4-mapped IPv6 peer (`::ffff:a.b.c.d`) is judged as the IPv4
//! address it maps, so the IPv4 ranges cover their mapped forms too.

use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;

/// The ranges denied when `TINCAN_TURN_DENIED_PEERS` is unset: coturn's
/// recommended list.
pub const DEFAULT_DENIED_PEERS: &[&str] = &[
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "255.255.255.255/32",
    "::1/128",
    "::/128",
    "fc00::/7",
    "fe80::/10",
    "ff00::/8",
];

/// A CIDR list that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PeerFilterError {
    #[error("{entry:?} is not an IP address or CIDR range (e.g. 10.0.0.0/8, fe80::/10)")]
    BadRange { entry: String },
}

/// Deny- and allow-lists of peer ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerFilter {
    denied: Vec<IpNet>,
    allowed: Vec<IpNet>,
    /// The same lists as (network, mask) integers: a check is a few ANDs
    /// per range, on every Send indication.
    denied_masks: Masks,
    allowed_masks: Masks,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Masks {
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

impl Masks {
    fn of(nets: &[IpNet]) -> Self {
        let mut masks = Masks::default();
        for net in nets {
            match net {
                IpNet::V4(n) => masks
                    .v4
                    .push((u32::from(n.network()), u32::from(n.netmask()))),
                IpNet::V6(n) => masks
                    .v6
                    .push((u128::from(n.network()), u128::from(n.netmask()))),
            }
        }
        masks
    }

    fn hit(&self, v4: Option<u32>, v6: Option<u128>) -> bool {
        v4.is_some_and(|ip| self.v4.iter().any(|&(net, mask)| ip & mask == net))
            || v6.is_some_and(|ip| self.v6.iter().any(|&(net, mask)| ip & mask == net))
    }
}

impl Default for PeerFilter {
    /// coturn's deny-list, nothing allowed over it.
    fn default() -> Self {
        Self::new(
            DEFAULT_DENIED_PEERS
                .iter()
                .filter_map(|r| IpNet::from_str(r).ok())
                .collect(),
            Vec::new(),
        )
    }
}

impl PeerFilter {
    /// No range denied: every peer is allowed.
    pub fn open() -> Self {
        Self::new(Vec::new(), Vec::new())
    }

    /// Denies `denied`, except what `allowed` names.
    pub fn new(denied: Vec<IpNet>, allowed: Vec<IpNet>) -> Self {
        Self {
            denied_masks: Masks::of(&denied),
            allowed_masks: Masks::of(&allowed),
            denied,
            allowed,
        }
    }

    /// Adds ranges allowed over the deny-list.
    pub fn allow(mut self, ranges: impl IntoIterator<Item = IpNet>) -> Self {
        self.allowed.extend(ranges);
        self.allowed_masks = Masks::of(&self.allowed);
        self
    }

    /// Loopback (127.0.0.0/8 and ::1) allowed over the deny-list: for a node
    /// whose clients and peers are all on one machine.
    pub fn allow_loopback(self) -> Self {
        self.allow(
            ["127.0.0.0/8", "::1/128"]
                .iter()
                .filter_map(|r| IpNet::from_str(r).ok()),
        )
    }

    pub fn denied(&self) -> &[IpNet] {
        &self.denied
    }

    pub fn allowed(&self) -> &[IpNet] {
        &self.allowed
    }

    /// Whether a relay may not reach `ip`.
    pub fn is_denied(&self, ip: IpAddr) -> bool {
        let (v4, v6) = match ip {
            IpAddr::V4(v4) => (Some(u32::from(v4)), None),
            // An IPv4-mapped address is judged by the IPv4 ranges as well.
            IpAddr::V6(v6) => (v6.to_ipv4_mapped().map(u32::from), Some(u128::from(v6))),
        };
        self.denied_masks.hit(v4, v6) && !self.allowed_masks.hit(v4, v6)
    }
}

/// Parses a comma-separated list of CIDR ranges or bare addresses (a bare
/// address is its own /32 or /128); blanks are skipped.
pub fn parse_ranges(list: &str) -> Result<Vec<IpNet>, PeerFilterError> {
    list.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            IpNet::from_str(entry)
                .or_else(|_| IpAddr::from_str(entry).map(IpNet::from))
                .map(|net| net.trunc())
                .map_err(|_| PeerFilterError::BadRange {
                    entry: entry.to_owned(),
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    #[test]
    fn default_denies_coturns_ranges_and_their_mapped_forms() {
        let filter = PeerFilter::default();
        assert_eq!(filter.denied().len(), DEFAULT_DENIED_PEERS.len());
        for denied in [
            "0.1.2.3",
            "10.1.2.3",
            "100.64.0.1",
            "100.127.255.255",
            "127.0.0.1",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.168.1.1",
            "198.18.0.1",
            "198.19.255.255",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
        ] {
            assert!(filter.is_denied(ip(denied)), "{denied} should be denied");
        }
        for allowed in [
            "8.8.8.8",
            "203.0.113.5",
            "100.63.255.255",
            "100.128.0.0",
            "172.32.0.1",
            "192.0.1.1",
            "2001:db8::1",
            "2600::1",
            "::ffff:8.8.8.8",
        ] {
            assert!(!filter.is_denied(ip(allowed)), "{allowed} should pass");
        }
    }

    #[test]
    fn allowed_wins_over_denied() {
        let filter = PeerFilter::default().allow_loopback();
        assert!(!filter.is_denied(ip("127.0.0.1")));
        assert!(!filter.is_denied(ip("127.9.9.9")));
        assert!(!filter.is_denied(ip("::1")));
        assert!(!filter.is_denied(ip("::ffff:127.0.0.1")));
        assert!(filter.is_denied(ip("10.0.0.1")));

        let custom = PeerFilter::new(
            parse_ranges("203.0.113.0/24").expect("list"),
            parse_ranges("203.0.113.7").expect("list"),
        );
        assert!(custom.is_denied(ip("203.0.113.8")));
        assert!(!custom.is_denied(ip("203.0.113.7")));
        assert!(!custom.is_denied(ip("10.0.0.1")), "custom list replaces");
        assert!(!PeerFilter::open().is_denied(ip("127.0.0.1")));
    }

    #[test]
    fn lists_parse_with_blanks_bare_addresses_and_host_bits() {
        let nets =
            parse_ranges(" 10.0.0.0/8, ,192.168.1.5/16,::1,2001:db8::/32 ,").expect("valid list");
        let shown: Vec<String> = nets.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            ["10.0.0.0/8", "192.168.0.0/16", "::1/128", "2001:db8::/32"]
        );
        assert_eq!(parse_ranges("").expect("empty"), Vec::<IpNet>::new());
        for bad in ["10.0.0.0/33", "nonsense", "10.0.0/8", "::1/129", "1.2.3.4/"] {
            assert_eq!(
                parse_ranges(&format!("8.8.8.8/32,{bad}")),
                Err(PeerFilterError::BadRange {
                    entry: bad.to_owned()
                }),
                "{bad}"
            );
        }
    }
}
