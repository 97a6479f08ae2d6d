//! Text addresses as the cluster state holds them (`ip:port`, `[v6]:port`, a bare IP or
//! host name) read as IPs, without name lookups.

use std::net::IpAddr;

/// An IP, with or without IPv6 brackets; `None` for a host name.
pub fn parse_ip(text: &str) -> Option<IpAddr> {
    let text = text.trim();
    let bare = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    bare.parse().ok()
}

/// Splits `host:port`, `[v6]:port`, or a bare host or IP (no port).
pub fn split_host_port(text: &str) -> (&str, Option<u16>) {
    let text = text.trim();
    if let Some(rest) = text.strip_prefix('[') {
        if let Some((host, after)) = rest.split_once(']') {
            let port = after.strip_prefix(':').and_then(|p| p.parse().ok());
            return (host, port);
        }
    }
    if text.parse::<IpAddr>().is_ok() {
        return (text, None);
    }
    match text.rsplit_once(':') {
        Some((host, port)) => (host, port.parse().ok()),
        None => (text, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_split_and_parse_without_lookups() {
        assert_eq!(split_host_port("host"), ("host", None));
        assert_eq!(split_host_port("10.0.0.1:5050"), ("10.0.0.1", Some(5050)));
        assert_eq!(split_host_port("[fd00::1]:5050"), ("fd00::1", Some(5050)));
        assert_eq!(split_host_port("fd00::1"), ("fd00::1", None));
        assert_eq!(parse_ip(" [fd00::1] "), "fd00::1".parse().ok());
        assert_eq!(parse_ip("agent-1"), None);
    }
}
