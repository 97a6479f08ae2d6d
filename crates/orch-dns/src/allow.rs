//! Who may have names outside the zone forwarded: the client networks of `--forward-allow`.
//!
//! A DNS server that forwards any name for anyone is an open resolver (a reflection and
//! amplification tool). Names inside the zone are answered to every client; forwarding is
//! done only for clients whose address lies in one of the allowed networks, others get
//! REFUSED (as BIND's `allow-recursion`, whose default is also "local networks").
//!
//! Default ([`default_forward_allow`]): loopback (127.0.0.0/8, ::1/128), the private ranges
//! (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, fc00::/7) and link-local (169.254.0.0/16,
//! fe80::/10: those addresses are never routed beyond their link, so they are as local as a
//! private range). Carrier-grade NAT (100.64.0.0/10) and public ranges are not in it.
//!
//! An IPv4 client seen on a dual-stack socket as `::ffff:a.b.c.d` is matched as `a.b.c.d`.
//!
//! May depend on: std, ipnet, [`super::config`] (the error type).

use super::config::DnsError;
use ipnet::IpNet;
use std::net::IpAddr;

/// The networks forwarding is allowed for when `--forward-allow` is not given.
pub const DEFAULT_FORWARD_ALLOW: [&str; 8] = [
    "127.0.0.0/8",
    "::1/128",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "fc00::/7",
    "169.254.0.0/16",
    "fe80::/10",
];

/// [`DEFAULT_FORWARD_ALLOW`] as networks.
pub fn default_forward_allow() -> Vec<IpNet> {
    DEFAULT_FORWARD_ALLOW
        .iter()
        .filter_map(|text| text.parse().ok())
        .collect()
}

/// A network as `--forward-allow` takes it: `ADDRESS/PREFIX`, or a bare address (one host).
/// Host bits are cleared (`10.1.2.3/8` is `10.0.0.0/8`).
pub fn parse_network(text: &str) -> Result<IpNet, DnsError> {
    let text = text.trim();
    let bad = || DnsError::BadNetwork {
        value: text.to_owned(),
    };
    if text.contains('/') {
        return text
            .parse::<IpNet>()
            .map(|net| net.trunc())
            .map_err(|_| bad());
    }
    text.parse::<IpAddr>().map(IpNet::from).map_err(|_| bad())
}

/// True if `client` lies in one of `allow`.
pub fn forward_allowed(allow: &[IpNet], client: IpAddr) -> bool {
    let client = client.to_canonical();
    allow.iter().any(|net| net.contains(&client))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an IP")
    }

    #[test]
    fn the_default_is_loopback_private_and_link_local() {
        let allow = default_forward_allow();
        assert_eq!(allow.len(), DEFAULT_FORWARD_ALLOW.len());
        for inside in [
            "127.0.0.1",
            "127.255.0.9",
            "::1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "fd00::2",
            "fc00::1",
            "169.254.169.254",
            "fe80::1",
            "::ffff:10.0.0.1",
            "::ffff:127.0.0.1",
        ] {
            assert!(forward_allowed(&allow, ip(inside)), "{inside}");
        }
        for outside in [
            "8.8.8.8",
            "172.32.0.1",
            "172.15.255.255",
            "192.169.0.1",
            "11.0.0.1",
            "100.64.0.1",
            "192.0.2.2",
            "2001:db8::1",
            "::ffff:8.8.8.8",
            "::2",
            "0.0.0.0",
            "::",
        ] {
            assert!(!forward_allowed(&allow, ip(outside)), "{outside}");
        }
    }

    #[test]
    fn an_empty_list_allows_nobody_and_a_catch_all_everybody() {
        assert!(!forward_allowed(&[], ip("127.0.0.1")));
        let all = [
            parse_network("0.0.0.0/0").expect("v4"),
            parse_network("::/0").expect("v6"),
        ];
        for client in ["8.8.8.8", "2001:db8::1", "127.0.0.1"] {
            assert!(forward_allowed(&all, ip(client)), "{client}");
        }
    }

    #[test]
    fn networks_parse_with_or_without_a_prefix() {
        let cases = [
            ("10.0.0.0/8", "10.0.0.0/8"),
            (" 10.1.2.3/8 ", "10.0.0.0/8"),
            ("192.0.2.7", "192.0.2.7/32"),
            ("::1", "::1/128"),
            ("fd00::/8", "fd00::/8"),
        ];
        for (text, want) in cases {
            let got = parse_network(text).expect("a valid network");
            assert_eq!(got.to_string(), want, "{text}");
        }
        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "ten/8",
            "10.0.0.0/",
            "/8",
            "1.2.3",
        ] {
            assert!(
                matches!(parse_network(bad), Err(DnsError::BadNetwork { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_single_host_allows_only_itself() {
        let allow = [parse_network("127.0.0.1").expect("host")];
        assert!(forward_allowed(&allow, ip("127.0.0.1")));
        assert!(!forward_allowed(&allow, ip("127.0.0.2")));
    }
}
