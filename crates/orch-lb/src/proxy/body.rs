//! Bodies streamed through the proxy, frame by frame (never buffered whole): the request
//! body towards the server, cut after `timeout client` of client silence, and the response
//! body towards the client (a server's, cut after `timeout server` of server silence, or one
//! the proxy wrote itself).
//!
//! A server's response body drives its upstream connection (reading from the server
//! happens as the client's side asks for more). When it has been read to its end, its
//! [`Exchange`] is released as reusable, which puts the upstream connection back into its
//! server's pool; a body dropped early (the client went away) or failed closes the
//! connection instead.
//!
//! The idle timers ([`IdleTimer`]) are armed only when a read has to wait, so a body that
//! arrives in one piece never touches the timer wheel.
//!
//! May depend on: std, hyper, bytes, [`super::exchange`], [`super::timeouts`],
//! [`crate::LbError`].

use super::exchange::Exchange;
use super::timeouts::IdleTimer;
use crate::LbError;
use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// A request body on its way to a server.
#[derive(Debug)]
pub(crate) enum RequestBody {
    /// No body (a replayed request).
    Empty,
    /// The client's body.
    Client {
        /// The body as hyper reads it.
        inner: Incoming,
        /// `timeout client`.
        idle: IdleTimer,
    },
}

impl RequestBody {
    /// The client's body, with `client_timeout` of allowed silence.
    pub fn client(inner: Incoming, client_timeout: Duration) -> Self {
        Self::Client {
            inner,
            idle: IdleTimer::new(client_timeout),
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = LbError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, LbError>>> {
        match self.get_mut() {
            Self::Empty => Poll::Ready(None),
            Self::Client { inner, idle } => match Pin::new(inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    idle.touch();
                    Poll::Ready(Some(Ok(frame)))
                }
                Poll::Ready(Some(Err(source))) => {
                    Poll::Ready(Some(Err(LbError::ClientBody { source })))
                }
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending if idle.poll_expired(cx) => {
                    Poll::Ready(Some(Err(LbError::ClientTimeout {
                        seconds: idle.seconds(),
                    })))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Empty => true,
            Self::Client { inner, .. } => inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Empty => SizeHint::with_exact(0),
            Self::Client { inner, .. } => inner.size_hint(),
        }
    }
}

/// A response body on its way to a client.
#[derive(Debug)]
pub(crate) enum ResponseBody {
    /// Written by the proxy (errors, redirects); `None` once sent.
    Full(Option<Bytes>),
    /// A server's body.
    Upstream(UpstreamBody),
}

/// A server's response body and the exchange it belongs to.
#[derive(Debug)]
pub(crate) struct UpstreamBody {
    /// The body as hyper reads it.
    inner: Incoming,
    /// `timeout server`.
    idle: IdleTimer,
    /// Released when the body ends or is dropped.
    exchange: Option<Exchange>,
}

impl ResponseBody {
    /// A body the proxy wrote.
    pub fn full(data: impl Into<Bytes>) -> Self {
        Self::Full(Some(data.into()))
    }

    /// No body.
    pub fn empty() -> Self {
        Self::Full(None)
    }

    /// A server's body, belonging to `exchange`, with `server_timeout` of allowed silence.
    pub fn upstream(inner: Incoming, exchange: Exchange, server_timeout: Duration) -> Self {
        Self::Upstream(UpstreamBody {
            inner,
            idle: IdleTimer::new(server_timeout),
            exchange: Some(exchange),
        })
    }
}

impl UpstreamBody {
    /// Releases the exchange, its connection reusable or not.
    fn release(&mut self, reusable: bool) {
        if let Some(mut exchange) = self.exchange.take() {
            exchange.reusable = reusable;
        }
    }
}

impl UpstreamBody {
    /// The next frame of the server's body.
    fn poll_inner(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, LbError>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                self.idle.touch();
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(source))) => {
                self.release(false);
                Poll::Ready(Some(Err(LbError::ServerBody { source })))
            }
            Poll::Ready(None) => {
                self.release(true);
                Poll::Ready(None)
            }
            Poll::Pending if self.idle.poll_expired(cx) => {
                self.release(false);
                Poll::Ready(Some(Err(LbError::ServerTimeout {
                    seconds: self.idle.seconds(),
                })))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        let complete = self.inner.is_end_stream();
        self.release(complete);
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = LbError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, LbError>>> {
        match self.get_mut() {
            Self::Full(data) => Poll::Ready(data.take().map(|data| Ok(Frame::data(data)))),
            Self::Upstream(body) => {
                if let Some(upstream) = body
                    .exchange
                    .as_mut()
                    .and_then(|exchange| exchange.upstream.as_mut())
                {
                    // Ends are seen through the body (hyper fails or ends it).
                    let _ = upstream.poll_connection(cx);
                }
                body.poll_inner(cx)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Full(data) => data.is_none(),
            Self::Upstream(body) => body.inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Full(Some(data)) => SizeHint::with_exact(data.len() as u64),
            Self::Full(None) => SizeHint::with_exact(0),
            Self::Upstream(body) => body.inner.size_hint(),
        }
    }
}
