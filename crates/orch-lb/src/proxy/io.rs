//! Byte-counting wrappers around the proxy's sockets: [`Metered`] counts every byte read and
//! written with a [`Meter`]: a frontend's (batched per client connection, [`ClientMeter`]),
//! a server's (upstream sockets), or an activity tick ([`Ticks`]), which the idle watchdogs
//! of client connections and tunnels compare between two wake-ups.
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

/// Bytes a client connection counts locally before adding them to its frontend (so that
/// small requests do not touch the frontend's shared counters each time).
const FLUSH_BYTES: u64 = 64 * 1024;

/// A client connection's meter: its activity tick, and its bytes, added to its frontend's
/// counters every [`FLUSH_BYTES`], when [`ClientMeter::flush`] is called (the connection's
/// watchdog does, periodically) and when the connection ends.
#[derive(Debug)]
pub(crate) struct ClientMeter {
    /// The frontend the client connected to.
    pub frontend: Arc<Counters>,
    /// Reads so far (compared by the keep-alive watchdog).
    pub reads: AtomicU64,
    /// Bytes read and not yet added to the frontend.
    pending_in: AtomicU64,
    /// Bytes written and not yet added to the frontend.
    pending_out: AtomicU64,
}

impl ClientMeter {
    /// A meter counting at `frontend`.
    pub fn new(frontend: Arc<Counters>) -> Self {
        Self {
            frontend,
            reads: AtomicU64::new(0),
            pending_in: AtomicU64::new(0),
            pending_out: AtomicU64::new(0),
        }
    }

    /// Adds the pending bytes to the frontend.
    pub fn flush(&self) {
        let bytes_in = self.pending_in.swap(0, Relaxed);
        if bytes_in > 0 {
            self.frontend.bytes_in.fetch_add(bytes_in, Relaxed);
        }
        let bytes_out = self.pending_out.swap(0, Relaxed);
        if bytes_out > 0 {
            self.frontend.bytes_out.fetch_add(bytes_out, Relaxed);
        }
    }
}

impl Drop for ClientMeter {
    fn drop(&mut self) {
        self.flush();
    }
}

impl Meter for ClientMeter {
    fn read(&self, n: usize) {
        self.reads.fetch_add(1, Relaxed);
        if self.pending_in.fetch_add(n as u64, Relaxed) + n as u64 >= FLUSH_BYTES {
            self.flush();
        }
    }

    fn written(&self, n: usize) {
        if self.pending_out.fetch_add(n as u64, Relaxed) + n as u64 >= FLUSH_BYTES {
            self.flush();
        }
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
        let frontend = Arc::new(Counters::default());
        let meter = Arc::new(ClientMeter::new(Arc::clone(&frontend)));
        let mut metered = Metered::new(a, Arc::clone(&meter));
        metered.write_all(b"hello").await.expect("write");
        b.write_all(b"abc").await.expect("write back");
        let mut buf = [0u8; 3];
        metered.read_exact(&mut buf).await.expect("read");
        assert!(meter.reads.load(Relaxed) >= 1);
        assert_eq!(frontend.bytes_out.load(Relaxed), 0, "not flushed yet");
        meter.flush();
        assert_eq!(frontend.bytes_out.load(Relaxed), 5);
        assert_eq!(frontend.bytes_in.load(Relaxed), 3);
        let big = vec![0u8; usize::try_from(FLUSH_BYTES).expect("small")];
        let reader = tokio::spawn(async move {
            // "hello" is still unread, then the big write.
            let mut sink = vec![0u8; 5 + usize::try_from(FLUSH_BYTES).expect("small")];
            b.read_exact(&mut sink).await.expect("read all");
        });
        metered.write_all(&big).await.expect("write big");
        reader.await.expect("reader");
        assert!(
            frontend.bytes_out.load(Relaxed) > FLUSH_BYTES / 2,
            "large transfers are added as they go"
        );
        drop(metered);
        drop(meter);
        assert_eq!(
            frontend.bytes_out.load(Relaxed),
            5 + FLUSH_BYTES,
            "flushed at the end"
        );
    }
}
