//! IP addresses and CIDR ranges, parsed in one place: the search filter, Stytch's rule
//! identifiers and the sandbox's rule matching all read them here.

use std::net::IpAddr;

/// An address with an optional prefix length (`10.0.0.0/24`, `2001:db8::1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    /// The address.
    pub addr: IpAddr,
    /// The prefix length, when one was written.
    pub prefix: Option<u8>,
}

/// Why a text is not a CIDR range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CidrError {
    /// The address part is not an IP address.
    Address,
    /// The prefix is not a number within the family's bits.
    Prefix {
        /// 32 for IPv4, 128 for IPv6.
        max: u8,
    },
}

// === impl Cidr ===

impl Cidr {
    /// Parses `addr` or `addr/prefix`.
    pub fn parse(text: &str) -> Result<Self, CidrError> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| CidrError::Address)?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => None,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max && p.bytes().all(|b| b.is_ascii_digit()) => Some(n),
                _ => return Err(CidrError::Prefix { max }),
            },
        };
        Ok(Self { addr, prefix })
    }

    /// The prefix length, the whole address when none was written.
    pub fn bits(&self) -> u8 {
        self.prefix
            .unwrap_or(if self.addr.is_ipv4() { 32 } else { 128 })
    }

    /// Whether `ip` lies in this range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let bits = u32::from(self.bits());
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
                u32::from(ip) & mask == u32::from(net) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
                u128::from(ip) & mask == u128::from(net) & mask
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_matches() {
        let c = Cidr::parse("203.0.113.0/24").unwrap();
        assert!(c.contains("203.0.113.9".parse().unwrap()));
        assert!(!c.contains("203.0.114.9".parse().unwrap()));
        assert_eq!(Cidr::parse("10.0.0.1").unwrap().bits(), 32);
        assert_eq!(
            Cidr::parse("2001:db8::/129"),
            Err(CidrError::Prefix { max: 128 })
        );
        assert_eq!(
            Cidr::parse("10.0.0.0/+8"),
            Err(CidrError::Prefix { max: 32 })
        );
        assert_eq!(Cidr::parse("nope"), Err(CidrError::Address));
        assert!(
            Cidr::parse("2001:db8::/32")
                .unwrap()
                .contains("2001:db8::5".parse().unwrap())
        );
    }
}
