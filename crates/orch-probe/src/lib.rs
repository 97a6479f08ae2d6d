//! One HTTP(S) GET for health and readiness checks: [`get`] connects to the URL's host, sends
//! `GET <path>` and returns the status code of the answer, or a [`ProbeError`] naming the URL
//! and the reason, all within a timeout.
//!
//! It behaves as Mesos and Marathon probe tasks:
//!
//! - `http://` and `https://` URLs; HTTPS does not verify the certificate (any certificate is
//!   accepted, the handshake signatures are still checked, see [`tls`]).
//! - One fresh connection per probe (`Connection: close`), with `Host` and `User-Agent`
//!   headers. Redirects are not followed: a 3xx is a status like any other.
//! - The first status line decides: an interim 1xx answer is returned as soon as it arrives
//!   (callers may ignore it, as `ignoreHttp1xx` does), else the final status. The body is
//!   never read.
//! - Bounded: the whole exchange by the caller's timeout, the response head by
//!   [`MAX_HEAD_BYTES`].
//!
//! Used by the agent's HTTP(S) health checks and the master's readiness checks.
//!
//! May depend on: hyper (HTTP/1.1 client connection), hyper-util (tokio I/O adapter), rustls with
//! the ring provider and tokio-rustls (TLS), tokio; of orch only orch-core's error text. It
//! knows no tasks or apps.

pub mod tls;

use bytes::Bytes;
use http_body_util::Empty;
use hyper::header::{ACCEPT, CONNECTION, HOST, USER_AGENT};
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// The most bytes of a response head (status line and headers) read before giving up.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;

/// The `User-Agent` of every probe.
pub const PROBE_USER_AGENT: &str = concat!("orch-probe/", env!("CARGO_PKG_VERSION"));

/// Why a probe got no status.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// Not an absolute `http://` or `https://` URL.
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The TCP connection failed.
    #[error("cannot connect to {address} for {url}: {source}")]
    Connect {
        /// The URL probed.
        url: String,
        /// `host:port`.
        address: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The TLS handshake failed (e.g. the server does not speak TLS).
    #[error("TLS handshake with {url} failed: {source}")]
    Tls {
        /// The URL probed.
        url: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The status line and headers did not fit in [`MAX_HEAD_BYTES`].
    #[error("the response head from {url} is larger than {MAX_HEAD_BYTES} bytes")]
    HeadTooLarge {
        /// The URL probed.
        url: String,
    },
    /// The answer is not HTTP/1.x.
    #[error("bad HTTP status line or header from {url}: {source}")]
    BadResponse {
        /// The URL probed.
        url: String,
        /// The parse error.
        source: hyper::Error,
    },
    /// The server closed the connection before a status line.
    #[error("{url} closed the connection without answering")]
    NoAnswer {
        /// The URL probed.
        url: String,
    },
    /// Any other failure of the exchange.
    #[error("GET {url} failed: {}", orch_core::errors::chain(source))]
    Http {
        /// The URL probed.
        url: String,
        /// The cause.
        source: hyper::Error,
    },
    /// No status within the timeout.
    #[error("GET {url} timed out after {after:?}")]
    TimedOut {
        /// The URL probed.
        url: String,
        /// The timeout.
        after: Duration,
    },
}

/// `GET url` within `timeout`: the status code of the first status line (see the crate doc).
pub async fn get(url: &str, timeout: Duration) -> Result<u16, ProbeError> {
    tokio::time::timeout(timeout, get_unbounded(url))
        .await
        .unwrap_or_else(|_| {
            Err(ProbeError::TimedOut {
                url: url.to_owned(),
                after: timeout,
            })
        })
}

/// Where a URL points.
struct Target {
    tls: bool,
    /// Host name or IP, without IPv6 brackets.
    host: String,
    port: u16,
    /// The `Host` header: the URL's authority.
    authority: String,
    /// Path and query, at least `/`.
    path: String,
}

fn target(url: &str) -> Result<Target, ProbeError> {
    let invalid = |reason: &str| ProbeError::InvalidUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let uri: Uri =
        url.parse()
            .map_err(|e: hyper::http::uri::InvalidUri| ProbeError::InvalidUrl {
                url: url.to_owned(),
                reason: e.to_string(),
            })?;
    let tls = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => return Err(invalid("the scheme is not http or https")),
    };
    let authority = uri.authority().ok_or_else(|| invalid("no host"))?;
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    if host.is_empty() {
        return Err(invalid("no host"));
    }
    Ok(Target {
        tls,
        host: host.to_owned(),
        port: authority.port_u16().unwrap_or(if tls { 443 } else { 80 }),
        authority: authority.as_str().to_owned(),
        path: uri
            .path_and_query()
            .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned()),
    })
}

async fn get_unbounded(url: &str) -> Result<u16, ProbeError> {
    let target = target(url)?;
    let tcp = TcpStream::connect((target.host.as_str(), target.port))
        .await
        .map_err(|source| ProbeError::Connect {
            url: url.to_owned(),
            address: if target.host.contains(':') {
                format!("[{}]:{}", target.host, target.port)
            } else {
                format!("{}:{}", target.host, target.port)
            },
            source,
        })?;
    let _ = tcp.set_nodelay(true);
    if target.tls {
        let tls = tls::connect(&target.host, tcp)
            .await
            .map_err(|source| ProbeError::Tls {
                url: url.to_owned(),
                source,
            })?;
        exchange(tls, &target, url).await
    } else {
        exchange(tcp, &target, url).await
    }
}

/// Sends the request on `io` and waits for the first status line.
async fn exchange<T>(io: T, target: &Target, url: &str) -> Result<u16, ProbeError>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let http_error = |source: hyper::Error| {
        let url = url.to_owned();
        if source.is_parse_too_large() {
            ProbeError::HeadTooLarge { url }
        } else if source.is_parse() {
            ProbeError::BadResponse { url, source }
        } else if source.is_incomplete_message() {
            ProbeError::NoAnswer { url }
        } else {
            ProbeError::Http { url, source }
        }
    };
    let mut request = Request::get(target.path.as_str())
        .header(HOST, target.authority.as_str())
        .header(USER_AGENT, PROBE_USER_AGENT)
        .header(ACCEPT, "*/*")
        .header(CONNECTION, "close")
        .body(Empty::<Bytes>::new())
        .map_err(|e| ProbeError::InvalidUrl {
            url: url.to_owned(),
            reason: e.to_string(),
        })?;
    // hyper skips interim answers; this hands the first one over.
    let (interim_tx, mut interim) = tokio::sync::mpsc::channel(1);
    hyper::ext::on_informational(&mut request, move |response| {
        let _ = interim_tx.try_send(response.status().as_u16());
    });
    let (mut sender, connection) = hyper::client::conn::http1::Builder::new()
        .title_case_headers(true)
        .max_buf_size(MAX_HEAD_BYTES)
        .handshake(TokioIo::new(io))
        .await
        .map_err(http_error)?;
    let response = sender.send_request(request);
    tokio::pin!(connection, response);
    let answer = tokio::select! {
        biased;
        Some(status) = interim.recv() => return Ok(status),
        answer = &mut response => answer,
        ended = &mut connection => match ended {
            // A connection ends cleanly only after the answer (else with an error).
            Ok(()) => response.await,
            Err(error) => Err(error),
        },
    };
    // An interim answer parsed together with the final one still comes first.
    if let Ok(status) = interim.try_recv() {
        return Ok(status);
    }
    answer.map(|r| r.status().as_u16()).map_err(http_error)
}
