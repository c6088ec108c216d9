//! The gateway's connections as streams: every accepted connection is read through a
//! [`FramingTracker`], and what it finds is shared with the request side through
//! [`ConnectionFraming`]; a request head that does not arrive within `header_read_timeout`
//! (counted from the connection's start, or from the head's first byte) ends the connection.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

use super::framing::{FramingTracker, Refusal, RefusalReason};
use super::limits::Liveness;
use super::rewrite::{Replacement, find_hyper_error};
use crate::telemetry::ConnectionLimit;

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

    /// Whether a request head of the connection could not be followed: hyper refuses it too,
    /// with an answer of its own.
    pub(super) fn found_unparseable(&self) -> bool {
        self.verdict.load(Ordering::Acquire) & 1 == 1
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
    liveness: Arc<Liveness>,
    head_timer: HeadTimer,
    /// hyper's own error answer, being replaced by the contract's JSON.
    replacement: Option<Replacement>,
}

impl TrackedStream {
    /// `header_read_timeout` bounds each request head; `liveness` says whether a request is in
    /// flight (then no head is owed: a pipelined one waits its turn).
    pub(super) fn new(
        inner: TcpStream,
        liveness: Arc<Liveness>,
        header_read_timeout: Duration,
    ) -> Self {
        Self {
            inner,
            tracker: FramingTracker::new(),
            framing: Arc::default(),
            liveness,
            head_timer: HeadTimer {
                limit: header_read_timeout,
                armed_for: None,
                sleep: None,
            },
            replacement: None,
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
        // Only a read that waits can be late; one that returned bytes costs nothing more here.
        if polled.is_pending()
            && let Some(head) = this.tracker.head_in_progress()
            && this.liveness.is_idle()
            && this.head_timer.expired(head, cx)
        {
            this.liveness.close_by(ConnectionLimit::HeaderTimeout);
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no whole request head within header_read_timeout",
            )));
        }
        polled
    }
}

/// The deadline of the request head a connection owes.
#[derive(Debug)]
struct HeadTimer {
    limit: Duration,
    /// The head the deadline is for.
    armed_for: Option<u64>,
    /// Boxed once per connection, when it first waits for a head; reset for later heads.
    sleep: Option<Pin<Box<Sleep>>>,
}

impl HeadTimer {
    /// Whether head number `head` is overdue; the first call for a head starts its clock, and
    /// a pending answer registers `cx` to be woken at the deadline.
    fn expired(&mut self, head: u64, cx: &mut Context<'_>) -> bool {
        if self.armed_for != Some(head) {
            let deadline = Instant::now() + self.limit;
            match &mut self.sleep {
                Some(sleep) => sleep.as_mut().reset(deadline),
                None => self.sleep = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
            self.armed_for = Some(head);
        }
        self.sleep
            .as_mut()
            .is_some_and(|sleep| sleep.as_mut().poll(cx).is_ready())
    }
}

impl AsyncWrite for TrackedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(replacement) = &mut this.replacement {
            let consumed = ready!(replacement.poll_drain(&mut this.inner, cx));
            this.replacement = None;
            return Poll::Ready(consumed);
        }
        // Only a connection with an unparseable head can be sent hyper's own error answer.
        if this.framing.found_unparseable()
            && let Some((start, len, json)) = find_hyper_error(buf)
        {
            if start > 0 {
                // The answers before it go out as they are; hyper comes back with the rest.
                return Pin::new(&mut this.inner).poll_write(cx, &buf[..start]);
            }
            let replacement = this.replacement.insert(Replacement::new(json, len));
            let consumed = ready!(replacement.poll_drain(&mut this.inner, cx));
            this.replacement = None;
            return Poll::Ready(consumed);
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.framing.found_unparseable() || self.replacement.is_some() {
            // One slice at a time, so that hyper's error head is seen whole by `poll_write`.
            let first = bufs
                .iter()
                .find(|b| !b.is_empty())
                .map_or(&[][..], |b| &**b);
            return self.poll_write(cx, first);
        }
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
