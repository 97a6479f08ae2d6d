//! Byte-counting wrappers around the proxy's sockets: [`Metered`] adds every byte read and
//! written to a set of counters (a frontend's for client sockets; a server's and its
//! backend's for upstream sockets) and bumps an activity tick on every read, which the idle
//! watchdogs of client connections and tunnels compare between two wake-ups.
//!
//! The wrappers forward vectored writes, so hyper keeps using `writev`.
//!
//! May depend on: std, tokio (io traits), [`super::stats`].

use super::stats::Counters;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Where a [`Metered`] stream counts.
pub(crate) trait Meter: Send + Sync + 'static {
    /// `n` bytes were read from the stream.
    fn read(&self, n: usize);
    /// `n` bytes were written to the stream.
    fn written(&self, n: usize);
}

/// A client connection's meter: its frontend's byte counters and its activity tick.
#[derive(Debug)]
pub(crate) struct ClientMeter {
    /// The frontend the client connected to.
    pub frontend: Arc<Counters>,
    /// Reads so far (compared by the keep-alive watchdog).
    pub reads: AtomicU64,
}

impl Meter for ClientMeter {
    fn read(&self, n: usize) {
        self.frontend.bytes_in.fetch_add(n as u64, Relaxed);
        self.reads.fetch_add(1, Relaxed);
    }

    fn written(&self, n: usize) {
        self.frontend.bytes_out.fetch_add(n as u64, Relaxed);
    }
}

/// An activity tick shared by the two sides of a tunnel.
#[derive(Debug, Default)]
pub(crate) struct Ticks(pub AtomicU64);

impl Meter for Ticks {
    fn read(&self, _n: usize) {
        self.0.fetch_add(1, Relaxed);
    }

    fn written(&self, _n: usize) {}
}

/// A stream whose reads and writes are counted by `M`.
#[derive(Debug)]
pub(crate) struct Metered<S, M> {
    /// The stream.
    inner: S,
    /// Where it counts.
    meter: Arc<M>,
}

impl<S, M> Metered<S, M> {
    /// Wraps `inner`.
    pub fn new(inner: S, meter: Arc<M>) -> Self {
        Self { inner, meter }
    }
}

impl<S: AsyncRead + Unpin, M: Meter> AsyncRead for Metered<S, M> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = result {
            let n = buf.filled().len() - before;
            if n > 0 {
                this.meter.read(n);
            }
        }
        result
    }
}

impl<S: AsyncWrite + Unpin, M: Meter> AsyncWrite for Metered<S, M> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = result {
            this.meter.written(n);
        }
        result
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = result {
            this.meter.written(n);
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn counts_bytes_both_ways() {
        let (a, mut b) = tokio::io::duplex(64);
        let meter = Arc::new(ClientMeter {
            frontend: Arc::new(Counters::default()),
            reads: AtomicU64::new(0),
        });
        let mut metered = Metered::new(a, Arc::clone(&meter));
        metered.write_all(b"hello").await.expect("write");
        b.write_all(b"abc").await.expect("write back");
        let mut buf = [0u8; 3];
        metered.read_exact(&mut buf).await.expect("read");
        assert_eq!(meter.frontend.bytes_out.load(Relaxed), 5);
        assert_eq!(meter.frontend.bytes_in.load(Relaxed), 3);
        assert!(meter.reads.load(Relaxed) >= 1);
    }
}
