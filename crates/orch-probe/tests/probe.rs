//! `orch_probe::get` against real sockets: a plain HTTP server answering raw bytes and an
//! HTTPS server with a self-signed certificate.

use orch_probe::{get, ProbeError, MAX_HEAD_BYTES};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

const LIMIT: Duration = Duration::from_secs(10);

/// Reads a request head (or, from anything but an HTTP client, one read).
async fn read_request<S: AsyncRead + Unpin>(stream: &mut S) -> String {
    let mut request = Vec::new();
    let mut buffer = [0_u8; 1024];
    while request.is_empty() || request.starts_with(b"GET ") && !request.ends_with(b"\r\n\r\n") {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => request.extend_from_slice(&buffer[..n]),
        }
    }
    String::from_utf8_lossy(&request).into_owned()
}

/// Writes `answer`, then keeps the connection open a while.
async fn answer<S: AsyncWrite + Unpin>(mut stream: S, answer: &[u8]) {
    let _ = stream.write_all(answer).await;
    let _ = stream.flush().await;
    tokio::time::sleep(LIMIT).await;
}

/// A plain server answering every connection with `reply`; the last request is sent on the
/// returned channel.
async fn plain_server(reply: Vec<u8>) -> (u16, tokio::sync::mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    let (requests, received) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let reply = reply.clone();
            let requests = requests.clone();
            tokio::spawn(async move {
                let _ = requests.send(read_request(&mut stream).await).await;
                answer(stream, &reply).await;
            });
        }
    });
    (port, received)
}

/// An HTTPS server with a self-signed certificate for `localhost`, answering `reply`.
async fn tls_server(reply: &'static [u8]) -> u16 {
    let key = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("cert");
    let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.signing_key.serialize_der()));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(vec![key.cert.der().clone()], der)
    .expect("server config");
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut stream) = acceptor.accept(stream).await {
                    read_request(&mut stream).await;
                    answer(stream, reply).await;
                }
            });
        }
    });
    port
}

async fn status_of(reply: &str) -> Result<u16, ProbeError> {
    let (port, _) = plain_server(reply.as_bytes().to_vec()).await;
    get(&format!("http://127.0.0.1:{port}/"), LIMIT).await
}

#[tokio::test]
async fn status_codes_pass_through() {
    for (reply, status) in [
        ("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 200),
        ("HTTP/1.1 204 No Content\r\n\r\n", 204),
        (
            "HTTP/1.1 404 Not Found\r\nContent-Length: 5\r\n\r\nnope\n",
            404,
        ),
        ("HTTP/1.1 503 Service Unavailable\r\n\r\n", 503),
        ("HTTP/1.0 200 OK\r\n\r\nbody until close", 200),
        ("HTTP/1.1 100 Continue\r\n\r\n", 100),
        (
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n",
            100,
        ),
    ] {
        assert_eq!(status_of(reply).await.expect(reply), status, "{reply}");
    }
}

#[tokio::test]
async fn the_request_names_path_host_and_agent() {
    let (port, mut requests) = plain_server(b"HTTP/1.1 200 OK\r\n\r\n".to_vec()).await;
    let url = format!("http://127.0.0.1:{port}/health?deep=1");
    assert_eq!(get(&url, LIMIT).await.expect("status"), 200);
    let request = requests.recv().await.expect("request");
    assert!(
        request.starts_with("GET /health?deep=1 HTTP/1.1\r\n"),
        "{request}"
    );
    assert!(
        request.contains(&format!("Host: 127.0.0.1:{port}\r\n")),
        "{request}"
    );
    assert!(request.contains("User-Agent: orch-probe/"), "{request}");
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let (port, mut requests) =
        plain_server(b"HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\n\r\n".to_vec()).await;
    let url = format!("http://127.0.0.1:{port}/");
    assert_eq!(get(&url, LIMIT).await.expect("status"), 302);
    requests.recv().await.expect("one request");
    assert!(
        tokio::time::timeout(Duration::from_millis(300), requests.recv())
            .await
            .is_err(),
        "a second request followed the redirect"
    );
}

#[tokio::test]
async fn a_silent_server_times_out_within_the_bound() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    let url = format!("http://127.0.0.1:{port}/");
    let started = Instant::now();
    let error = get(&url, Duration::from_millis(300))
        .await
        .expect_err("no answer");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(2),
        "{took:?}"
    );
    assert!(matches!(error, ProbeError::TimedOut { .. }), "{error}");
    assert!(error.to_string().contains(&url), "{error}");
    drop(listener);
}

#[tokio::test]
async fn a_refused_connection_is_an_error() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        listener.local_addr().expect("address").port()
    };
    let url = format!("http://127.0.0.1:{port}/x");
    let error = get(&url, LIMIT).await.expect_err("nothing listens");
    assert!(matches!(error, ProbeError::Connect { .. }), "{error}");
    let text = error.to_string();
    assert!(text.starts_with("cannot connect to 127.0.0.1:"), "{text}");
    assert!(text.contains(&url), "{text}");
}

#[tokio::test]
async fn https_to_a_self_signed_server_works() {
    let port = tls_server(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n").await;
    let by_ip = format!("https://127.0.0.1:{port}/ready");
    assert_eq!(get(&by_ip, LIMIT).await.expect("status"), 201);
    let by_name = format!("https://localhost:{port}/ready");
    assert_eq!(get(&by_name, LIMIT).await.expect("status"), 201);
}

#[tokio::test]
async fn https_to_a_plain_server_fails() {
    let (port, _) = plain_server(b"HTTP/1.1 200 OK\r\n\r\n".to_vec()).await;
    let url = format!("https://127.0.0.1:{port}/");
    let error = get(&url, LIMIT).await.expect_err("not TLS");
    assert!(matches!(error, ProbeError::Tls { .. }), "{error}");
    assert!(error.to_string().contains(&url), "{error}");
}

#[tokio::test]
async fn bad_and_oversized_heads_are_refused() {
    let error = status_of("SSH-2.0-OpenSSH\r\n")
        .await
        .expect_err("not HTTP");
    assert!(matches!(error, ProbeError::BadResponse { .. }), "{error}");

    let mut huge = b"HTTP/1.1 200 OK\r\n".to_vec();
    while huge.len() <= MAX_HEAD_BYTES {
        huge.extend_from_slice(format!("X-Filler: {}\r\n", "x".repeat(100)).as_bytes());
    }
    huge.extend_from_slice(b"\r\n");
    let (port, _) = plain_server(huge).await;
    let error = get(&format!("http://127.0.0.1:{port}/"), LIMIT)
        .await
        .expect_err("too large");
    assert!(matches!(error, ProbeError::HeadTooLarge { .. }), "{error}");
}

#[tokio::test]
async fn a_connection_closed_without_an_answer_is_an_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let _ = stream.read(&mut [0_u8; 1024]).await;
            drop(stream);
        }
    });
    let error = get(&format!("http://127.0.0.1:{port}/"), LIMIT)
        .await
        .expect_err("closed");
    assert!(matches!(error, ProbeError::NoAnswer { .. }), "{error}");
}

#[tokio::test]
async fn invalid_urls_are_refused() {
    for url in ["ftp://127.0.0.1/", "/relative", "http:///"] {
        let error = get(url, LIMIT).await.expect_err(url);
        assert!(matches!(error, ProbeError::InvalidUrl { .. }), "{error}");
    }
}
