//! The gateway's listener: every accepted connection is read through a [`FramingTracker`], and
//! what it finds is shared with the request side through [`ConnectionFraming`].

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use super::framing::{FramingTracker, Refusal, RefusalReason};

/// A TCP listener whose connections are [`TrackedStream`]s.
#[derive(Debug)]
pub(super) struct FramingListener {
    inner: TcpListener,
}

impl FramingListener {
    /// Wraps a bound listener.
    pub(super) fn new(inner: TcpListener) -> Self {
        Self { inner }
    }
}

impl axum::serve::Listener for FramingListener {
    type Io = TrackedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TrackedStream, SocketAddr) {
        // axum's own accept loop: it logs and backs off on errors such as too many open files.
        let (stream, addr) = axum::serve::Listener::accept(&mut self.inner).await;
        (TrackedStream::new(stream), addr)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// What the reading side of one connection learnt, for the request side: which request (by
/// position) is the first to refuse, and how many requests were handed on so far.
#[derive(Debug, Default)]
pub(super) struct ConnectionFraming {
    /// 0: nothing to refuse; otherwise `ordinal << 1 | reason`.
    verdict: AtomicU64,
    dispatched: AtomicU64,
}

impl ConnectionFraming {
    fn record(&self, refusal: Refusal) {
        let reason = match refusal.reason {
            RefusalReason::ConflictingFraming => 0,
            RefusalReason::Unframed => 1,
        };
        self.verdict
            .store(refusal.ordinal << 1 | reason, Ordering::Release);
    }

    /// Counts the next request of the connection (hyper hands them on one at a time, in the
    /// order they arrived) and says whether it must be refused.
    pub(super) fn admit(&self) -> Result<(), RefusalReason> {
        let ordinal = self.dispatched.fetch_add(1, Ordering::Relaxed) + 1;
        let verdict = self.verdict.load(Ordering::Acquire);
        if verdict == 0 || ordinal < verdict >> 1 {
            return Ok(());
        }
        Err(if verdict & 1 == 0 {
            RefusalReason::ConflictingFraming
        } else {
            RefusalReason::Unframed
        })
    }
}

/// A TCP connection whose incoming bytes pass through a [`FramingTracker`] on their way to hyper.
#[derive(Debug)]
pub(super) struct TrackedStream {
    inner: TcpStream,
    tracker: FramingTracker,
    framing: Arc<ConnectionFraming>,
}

impl TrackedStream {
    fn new(inner: TcpStream) -> Self {
        Self {
            inner,
            tracker: FramingTracker::new(),
            framing: Arc::default(),
        }
    }

    /// The connection's framing verdicts, shared with its requests.
    pub(super) fn framing(&self) -> &Arc<ConnectionFraming> {
        &self.framing
    }
}

impl AsyncRead for TrackedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        // The verdict is stored before hyper sees these bytes, so before it can hand on the
        // request they belong to.
        if let Poll::Ready(Ok(())) = polled
            && !this.tracker.is_stopped()
            && let Some(refusal) = this.tracker.feed(&buf.filled()[before..])
        {
            this.framing.record(refusal);
        }
        polled
    }
}

impl AsyncWrite for TrackedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
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

    #[test]
    fn requests_before_the_refused_one_pass_and_it_and_later_ones_do_not() {
        let framing = ConnectionFraming::default();
        framing.record(Refusal {
            ordinal: 3,
            reason: RefusalReason::ConflictingFraming,
        });
        let admitted: Vec<_> = (0..4).map(|_| framing.admit()).collect();
        let conflict = Err(RefusalReason::ConflictingFraming);
        assert_eq!(admitted, [Ok(()), Ok(()), conflict, conflict]);

        let framing = ConnectionFraming::default();
        assert_eq!(framing.admit(), Ok(()));
        framing.record(Refusal {
            ordinal: 2,
            reason: RefusalReason::Unframed,
        });
        assert_eq!(framing.admit(), Err(RefusalReason::Unframed));
    }
}
