//! Header edits of the HTTP mode, as marathon-lb's HAProxy config makes them:
//! `option forwardfor` (an `X-Forwarded-For` line with the client's address is added),
//! `X-Forwarded-Port` (the LB port the client hit) and `X-Forwarded-Proto` (`http` or
//! `https`) set; hop-by-hop headers (`Connection` and what it names, `Keep-Alive`,
//! `Proxy-Connection`) removed both ways, except the upgrade handshake; the sticky cookie
//! read and, as `cookie ... indirect` does, hidden from the server; the HTTPS redirect's
//! `Location`; HSTS.
//!
//! Work is only done for headers that are present: a plain keep-alive request costs three
//! header inserts.
//!
//! May depend on: std, hyper (header types), [`super::live`] (the cookie name).

use super::live::STICKY_COOKIE;
use hyper::header::{HeaderMap, HeaderName, HeaderValue, CONNECTION, COOKIE, UPGRADE};
use hyper::http::uri::PathAndQuery;

/// `X-Forwarded-For`.
pub(crate) static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Port`.
pub(crate) static X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
/// `X-Forwarded-Proto`.
pub(crate) static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `X-Marathon-App-Id`, the app-id port's routing header.
pub(crate) static X_MARATHON_APP_ID: HeaderName = HeaderName::from_static("x-marathon-app-id");
/// `Keep-Alive`.
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
/// `Proxy-Connection`.
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
/// marathon-lb's `Strict-Transport-Security` value.
pub(crate) static HSTS_VALUE: HeaderValue = HeaderValue::from_static("max-age=15768000");

/// Adds the `X-Forwarded-*` headers: `client` (the client's address), `port` (the LB port),
/// `tls` (whether the client spoke TLS).
pub(crate) fn add_forwarded(
    headers: &mut HeaderMap,
    client: &HeaderValue,
    port: &HeaderValue,
    tls: bool,
) {
    headers.append(X_FORWARDED_FOR.clone(), client.clone());
    headers.insert(X_FORWARDED_PORT.clone(), port.clone());
    headers.insert(
        X_FORWARDED_PROTO.clone(),
        HeaderValue::from_static(if tls { "https" } else { "http" }),
    );
}

/// Whether a request asks to switch protocols (`Connection: upgrade` and `Upgrade`).
pub(crate) fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(UPGRADE) && has_token(headers, "upgrade")
}

/// Removes the hop-by-hop headers; keeps `Connection: upgrade` and `Upgrade` when
/// `keep_upgrade`.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    if !headers.contains_key(CONNECTION) {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
        .collect();
    for name in named {
        if !(keep_upgrade && name == UPGRADE) && name != CONNECTION {
            headers.remove(&name);
        }
    }
    headers.remove(&KEEP_ALIVE);
    headers.remove(&PROXY_CONNECTION);
    if keep_upgrade {
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        headers.remove(CONNECTION);
    }
}

/// Whether `Connection` lists `token` (case ignored).
fn has_token(headers: &HeaderMap, token: &str) -> bool {
    headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// The value of the sticky cookie, if the request carries one.
pub(crate) fn sticky_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == STICKY_COOKIE).then_some(value.trim())
        })
}

/// Removes the sticky cookie from the request's `Cookie` headers (dropping headers left
/// empty).
pub(crate) fn strip_sticky_cookie(headers: &mut HeaderMap) {
    let kept: Vec<String> = headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .map(|value| {
            value
                .split(';')
                .map(str::trim)
                .filter(|pair| {
                    pair.split_once('=')
                        .is_none_or(|(name, _)| name != STICKY_COOKIE)
                })
                .filter(|pair| !pair.is_empty())
                .collect::<Vec<_>>()
                .join("; ")
        })
        .filter(|value| !value.is_empty())
        .collect();
    headers.remove(COOKIE);
    for value in kept {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.append(COOKIE, value);
        }
    }
}

/// `https://<host>[:<https_port>]<path and query>` (`host` without its port; the port is
/// left out when it is 443).
pub(crate) fn https_location(
    host: &str,
    https_port: u16,
    path: Option<&PathAndQuery>,
) -> Option<HeaderValue> {
    let path = path.map_or("/", PathAndQuery::as_str);
    let location = if https_port == 443 || https_port == 0 {
        format!("https://{host}{path}")
    } else {
        format!("https://{host}:{https_port}{path}")
    };
    HeaderValue::from_str(&location).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        headers
    }

    #[test]
    fn forwarded_headers_append_and_set() {
        let mut headers = map(&[
            ("x-forwarded-for", "1.1.1.1"),
            ("x-forwarded-proto", "https"),
        ]);
        add_forwarded(
            &mut headers,
            &HeaderValue::from_static("10.0.0.1"),
            &HeaderValue::from_static("80"),
            false,
        );
        let xff: Vec<_> = headers.get_all(&X_FORWARDED_FOR).iter().collect();
        assert_eq!(xff, vec!["1.1.1.1", "10.0.0.1"]);
        assert_eq!(headers[&X_FORWARDED_PORT], "80");
        assert_eq!(headers[&X_FORWARDED_PROTO], "http");
    }

    #[test]
    fn hop_by_hop_headers_go() {
        let mut headers = map(&[
            ("connection", "close, x-secret"),
            ("x-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("host", "a"),
        ]);
        strip_hop_by_hop(&mut headers, false);
        assert_eq!(headers.len(), 1, "{headers:?}");
        let mut upgrade = map(&[("connection", "Upgrade"), ("upgrade", "websocket")]);
        assert!(is_upgrade(&upgrade));
        strip_hop_by_hop(&mut upgrade, true);
        assert_eq!(upgrade["connection"], "upgrade");
        assert_eq!(upgrade["upgrade"], "websocket");
    }

    #[test]
    fn sticky_cookie_is_read_and_hidden() {
        let mut headers = map(&[
            ("cookie", "a=1; mesosphere_server_id=abcdef0123; b=2"),
            ("cookie", "mesosphere_server_id=zzz"),
        ]);
        assert_eq!(sticky_cookie(&headers), Some("abcdef0123"));
        strip_sticky_cookie(&mut headers);
        let left: Vec<_> = headers.get_all(COOKIE).iter().collect();
        assert_eq!(left, vec!["a=1; b=2"]);
        assert_eq!(sticky_cookie(&headers), None);
    }

    #[test]
    fn https_location_keeps_path_and_query() {
        let path = PathAndQuery::from_static("/a?b=c");
        assert_eq!(
            https_location("web.example.com", 443, Some(&path)).expect("valid"),
            "https://web.example.com/a?b=c"
        );
        assert_eq!(
            https_location("web.example.com", 8443, None).expect("valid"),
            "https://web.example.com:8443/"
        );
    }
}
