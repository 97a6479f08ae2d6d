//! The HTTP mode, one request: route it (host and path on the HTTP and HTTPS ports,
//! `X-Marathon-App-Id` on the app-id port, the frontend's backend on a service port),
//! redirect plain HTTP to HTTPS where the backend asks, pick a server (sticky cookie, then
//! the backend's balance), send the request on a pooled or new upstream connection and
//! stream the response back.
//!
//! Failures, as HAProxy answers them: no backend or no server → 503; a server that cannot
//! be connected (refused, `timeout connect`) is marked down and another is tried, up to
//! `retries` more (the request was not sent, so this is safe for every method, as
//! HAProxy's default `retry-on conn-failure`); when every try failed → 502; no response
//! head within `timeout server` → 504; a request body that stalls for `timeout client`
//! → 408. A pooled connection found closed when used is
//! replaced by another without counting a retry; an idempotent request without a body sent
//! on a connection that was idle a while, which the server closed as the request went out,
//! is sent once more on a fresh connection.
//!
//! Upgrades (WebSocket): the `101` is passed back and both upgraded connections are
//! tunnelled with `timeout tunnel` ([`TUNNEL_TIMEOUT`]).
//!
//! Per-request work is kept small: a few header inserts, atomic counters, no logging above
//! debug, no locks held across awaits.
//!
//! May depend on: std, tokio, hyper, hyper-util, tracing, [`super::balance`],
//! [`super::body`], [`super::conn`], [`super::exchange`], [`super::headers`],
//! [`super::live`], [`super::pool`], [`super::replies`], [`super::route`],
//! [`super::shared`], [`super::tcp`], [`super::timeouts`], [`crate::LbError`].

use super::balance;
use super::body::{RequestBody, ResponseBody};
use super::conn::ConnCtx;
use super::exchange::{Exchange, InFlight};
use super::headers::{
    add_forwarded, https_location, is_upgrade, sticky_cookie, strip_hop_by_hop,
    strip_sticky_cookie, HSTS_VALUE, X_MARATHON_APP_ID,
};
use super::live::{Live, LiveBackend};
use super::pool;
use super::replies;
use super::route::{normalize_host, request_host};
use super::shared::ListenerKind;
use super::tcp;
use super::timeouts::within;
use crate::LbError;
use hyper::body::{Body, Incoming};
use hyper::header::{HeaderMap, HeaderValue, CACHE_CONTROL, SET_COOKIE, STRICT_TRANSPORT_SECURITY};
use hyper::upgrade::OnUpgrade;
use hyper::{Method, Request, Response, StatusCode, Uri, Version};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// A pooled connection idle at least this long may be closed by its server just as a
/// request goes out; idempotent requests without a body keep a copy of their head then.
const REPLAY_AFTER_IDLE: Duration = Duration::from_millis(500);

/// marathon-lb's `timeout tunnel`: how long an upgraded connection may be silent.
pub(crate) const TUNNEL_TIMEOUT: Duration = Duration::from_secs(3600);

/// Serves one request with the table `live`.
pub(crate) async fn handle(
    live: Arc<Live>,
    ctx: Arc<ConnCtx>,
    request: Request<Incoming>,
) -> Result<Response<ResponseBody>, Infallible> {
    ctx.tally.request();
    let in_flight = InFlight::start(Arc::clone(&ctx));
    let response = match route(&live, &ctx, &request) {
        None => replies::error(StatusCode::SERVICE_UNAVAILABLE),
        Some(backend) => {
            let counters = &live.backends[backend].state.counters;
            counters.requests.fetch_add(1, Relaxed);
            let response = forward(&live, backend, &ctx, in_flight, request).await;
            counters.count_response(response.status());
            response
        }
    };
    ctx.tally.response(response.status());
    Ok(response)
}

/// The backend a request goes to.
fn route(live: &Live, ctx: &ConnCtx, request: &Request<Incoming>) -> Option<usize> {
    match ctx.kind {
        ListenerKind::Http | ListenerKind::Https => {
            let host = request_host(request, ctx.sni.as_deref())?;
            live.vhost_backend(host, request.uri().path())
        }
        ListenerKind::AppId => {
            let app_id = request.headers().get(&X_MARATHON_APP_ID)?.to_str().ok()?;
            live.app_id_backend(app_id.trim())
        }
        ListenerKind::Service => live
            .frontends
            .get(&ctx.listener)
            .and_then(|frontend| frontend.backend)
            .or_else(|| {
                ctx.accept_backend
                    .as_deref()
                    .and_then(|name| live.backend_named(name))
            }),
    }
}

/// GET, HEAD, OPTIONS, PUT, DELETE and TRACE.
fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

/// Whether `error` was caused by the client's request body stalling (`timeout client`).
fn client_timed_out(error: &hyper::Error) -> bool {
    let mut cause = std::error::Error::source(error);
    while let Some(error) = cause {
        if matches!(
            error.downcast_ref::<LbError>(),
            Some(LbError::ClientTimeout { .. })
        ) {
            return true;
        }
        cause = error.source();
    }
    false
}

/// A request head kept for one replay.
type Head = (Method, Uri, Version, HeaderMap);

fn copy_head(request: &Request<RequestBody>) -> Head {
    (
        request.method().clone(),
        request.uri().clone(),
        request.version(),
        request.headers().clone(),
    )
}

fn from_head((method, uri, version, headers): Head) -> Request<RequestBody> {
    let mut request = Request::new(RequestBody::Empty);
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = version;
    *request.headers_mut() = headers;
    request
}

/// Connecting to (or sending on a new connection to) `server` failed: it is marked down and
/// noted as tried; `true` while a retry is left (one is used), `false` to give up.
fn retry_elsewhere(
    backend: &LiveBackend,
    server: usize,
    tried: &mut Vec<usize>,
    retries: &mut u32,
) -> bool {
    backend.servers[server].state.mark_down();
    tried.push(server);
    if *retries == 0 {
        return false;
    }
    *retries -= 1;
    backend.state.counters.retries.fetch_add(1, Relaxed);
    true
}

/// Sends `request` to a server of backend `b` and returns the response (or the proxy's
/// error page).
async fn forward(
    live: &Arc<Live>,
    b: usize,
    ctx: &ConnCtx,
    in_flight: InFlight,
    mut request: Request<Incoming>,
) -> Response<ResponseBody> {
    let backend = &live.backends[b];
    let config = &ctx.shared.config;
    let limits = &config.limits;

    if backend.backend.redirect_to_https && !ctx.tls {
        let location = request_host(&request, None).and_then(|host| {
            https_location(
                &normalize_host(host),
                config.https_port,
                request.uri().path_and_query(),
            )
        });
        if let Some(location) = location {
            return replies::redirect(location);
        }
    }

    // The server the request's sticky cookie names, if it can take it; a response from
    // any other server sets the cookie anew.
    let mut chosen = None;
    if backend.backend.sticky {
        let cookie = sticky_cookie(request.headers());
        let carried = cookie.is_some();
        chosen = cookie.and_then(|cookie| balance::sticky(backend, cookie));
        if carried {
            strip_sticky_cookie(request.headers_mut());
        }
    }
    let sticky_target = chosen;

    let upgrade = is_upgrade(request.headers());
    let mut client_upgrade: Option<OnUpgrade> = upgrade.then(|| hyper::upgrade::on(&mut request));
    let headers = request.headers_mut();
    strip_hop_by_hop(headers, upgrade);
    add_forwarded(headers, &ctx.forwarded_for, &ctx.forwarded_port, ctx.tls);
    let (parts, body) = request.into_parts();
    let mut replayable = !upgrade && is_idempotent(&parts.method) && body.is_end_stream();
    let mut pending = Request::from_parts(parts, RequestBody::client(body, limits.client_timeout));

    let mut tried: Vec<usize> = Vec::new();
    let mut retries = limits.retries;
    loop {
        let Some(server) = chosen
            .take()
            .or_else(|| balance::pick(backend, ctx.client.ip(), &tried))
        else {
            return replies::error(if tried.is_empty() {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::BAD_GATEWAY
            });
        };
        let live_server = &backend.servers[server];
        let state = &live_server.state;

        let (mut upstream, reused) = match state.pool.take() {
            Some(upstream) => {
                let idle_since = upstream.idle_since;
                (upstream, Some(idle_since))
            }
            None => match pool::connect(state, limits.connect_timeout).await {
                Ok(upstream) => (upstream, None),
                Err(error) => {
                    tracing::debug!(
                        error = &error as &dyn std::error::Error,
                        server = %live_server.name,
                        "connect failed"
                    );
                    if !retry_elsewhere(backend, server, &mut tried, &mut retries) {
                        return replies::error(StatusCode::BAD_GATEWAY);
                    }
                    continue;
                }
            },
        };
        if !within(limits.connect_timeout, upstream.ready())
            .await
            .unwrap_or(false)
        {
            if reused.is_some() {
                // A pooled connection the server closed meanwhile: use another.
                chosen = Some(server);
                continue;
            }
            tracing::debug!(server = %live_server.name, "the server closed a new connection");
            if !retry_elsewhere(backend, server, &mut tried, &mut retries) {
                return replies::error(StatusCode::BAD_GATEWAY);
            }
            continue;
        }
        if reused.is_none() {
            state.mark_up();
        }

        let replay = match reused {
            Some(since) if replayable && since.elapsed() >= REPLAY_AFTER_IDLE => {
                Some(copy_head(&pending))
            }
            _ => None,
        };
        let mut exchange = Exchange::start(Arc::clone(live), b, server);
        let sent = within(limits.server_timeout, upstream.send(pending)).await;
        match sent {
            None => {
                tracing::debug!(server = %live_server.name, "no response within timeout server");
                return replies::error(StatusCode::GATEWAY_TIMEOUT);
            }
            Some(Ok(response)) => {
                if response.status() == StatusCode::SWITCHING_PROTOCOLS {
                    if let Some(client) = client_upgrade.take() {
                        exchange.in_flight = Some(in_flight);
                        let shutdown = ctx.shared.shutdown.clone();
                        tokio::spawn(async move {
                            let server = upstream.into_upgraded().await;
                            match (client.await, server) {
                                (Ok(client), Some((server, early))) => {
                                    let mut client = TokioIo::new(client);
                                    if client.write_all(&early).await.is_ok() {
                                        tcp::tunnel(client, server, TUNNEL_TIMEOUT, shutdown).await;
                                    }
                                }
                                _ => tracing::debug!("an upgrade did not complete"),
                            }
                            drop(exchange);
                        });
                    }
                    let (parts, _) = response.into_parts();
                    return Response::from_parts(parts, ResponseBody::empty());
                }
                let (mut parts, body) = response.into_parts();
                strip_hop_by_hop(&mut parts.headers, false);
                if backend.backend.sticky && sticky_target != Some(server) {
                    parts
                        .headers
                        .append(SET_COOKIE, live_server.set_cookie.clone());
                    parts
                        .headers
                        .append(CACHE_CONTROL, HeaderValue::from_static("private"));
                }
                if backend.backend.hsts && ctx.tls {
                    parts
                        .headers
                        .insert(STRICT_TRANSPORT_SECURITY, HSTS_VALUE.clone());
                }
                exchange.upstream = Some(upstream);
                exchange.in_flight = Some(in_flight);
                let body = ResponseBody::upstream(body, exchange, limits.server_timeout);
                return Response::from_parts(parts, body);
            }
            Some(Err(mut error)) => {
                drop(exchange);
                if let Some(request) = error.take_message() {
                    // Not sent: the connection was closed before it could be used.
                    pending = request;
                    if reused.is_some() {
                        chosen = Some(server);
                        continue;
                    }
                    if !retry_elsewhere(backend, server, &mut tried, &mut retries) {
                        return replies::error(StatusCode::BAD_GATEWAY);
                    }
                    continue;
                }
                if let Some(head) = replay {
                    pending = from_head(head);
                    replayable = false;
                    chosen = Some(server);
                    continue;
                }
                let error = error.into_error();
                tracing::debug!(
                    error = &error as &dyn std::error::Error,
                    server = %live_server.name,
                    "the request failed"
                );
                return replies::error(if client_timed_out(&error) {
                    StatusCode::REQUEST_TIMEOUT
                } else {
                    StatusCode::BAD_GATEWAY
                });
            }
        }
    }
}
