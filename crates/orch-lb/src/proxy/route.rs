//! How a request names its route, as HAProxy's ACLs in marathon-lb's config match it: the
//! host (from the `Host` header, else the request target's authority, else the TLS SNI
//! name) without its port and in lowercase, and `path_beg` prefixes, with `-i` ignoring
//! case.
//!
//! Pure functions; no allocation unless a host has uppercase letters.
//!
//! May depend on: std, hyper (request types).

use hyper::header::HOST;
use hyper::Request;
use std::borrow::Cow;

/// `host` without a trailing `:port` (IPv6 literals keep their brackets), lowercase.
pub(crate) fn normalize_host(host: &str) -> Cow<'_, str> {
    let host = host.trim();
    let host = if host.starts_with('[') {
        match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        }
    } else {
        match host.rfind(':') {
            Some(colon) if host[colon + 1..].bytes().all(|b| b.is_ascii_digit()) => &host[..colon],
            _ => host,
        }
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    }
}

/// Whether `prefix` begins `path` (`prefix` is already lowercase when `ignore_case`).
pub(crate) fn path_matches(path: &str, prefix: &str, ignore_case: bool) -> bool {
    match path.as_bytes().get(..prefix.len()) {
        Some(head) if ignore_case => head.eq_ignore_ascii_case(prefix.as_bytes()),
        Some(head) => head == prefix.as_bytes(),
        None => false,
    }
}

/// The host a request is for: its `Host` header, else its target's authority, else `sni`.
pub(crate) fn request_host<'a, B>(
    request: &'a Request<B>,
    sni: Option<&'a str>,
) -> Option<&'a str> {
    request
        .headers()
        .get(HOST)
        .and_then(|value| value.to_str().ok())
        .filter(|host| !host.is_empty())
        .or_else(|| request.uri().authority().map(|a| a.as_str()))
        .or(sni)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_lose_port_and_case() {
        assert_eq!(normalize_host("Web.Example.COM:8080"), "web.example.com");
        assert_eq!(normalize_host("web.example.com"), "web.example.com");
        assert_eq!(normalize_host("web.example.com."), "web.example.com");
        assert_eq!(normalize_host("[::1]:80"), "[::1]");
        assert_eq!(normalize_host("[::1]"), "[::1]");
        assert_eq!(normalize_host("10.0.0.1:80"), "10.0.0.1");
        assert!(matches!(normalize_host("a.b:1"), Cow::Borrowed(_)));
    }

    #[test]
    fn path_prefixes() {
        assert!(path_matches("/api/users", "/api", false));
        assert!(!path_matches("/API/users", "/api", false));
        assert!(path_matches("/API/users", "/api", true));
        assert!(!path_matches("/ap", "/api", true));
        assert!(path_matches("/anything", "/", false));
    }

    #[test]
    fn host_falls_back_to_authority_then_sni() {
        let with_header = Request::builder()
            .uri("/x")
            .header(HOST, "a.example")
            .body(())
            .expect("request");
        assert_eq!(request_host(&with_header, Some("sni")), Some("a.example"));
        let absolute = Request::builder()
            .uri("http://b.example:81/x")
            .body(())
            .expect("request");
        assert_eq!(request_host(&absolute, None), Some("b.example:81"));
        let bare = Request::builder().uri("/x").body(()).expect("request");
        assert_eq!(request_host(&bare, Some("c.example")), Some("c.example"));
        assert_eq!(request_host(&bare, None), None);
    }
}
