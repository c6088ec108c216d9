//! The bound on open connections: every accepted connection takes a [`Slot`]; at
//! `max_connections` the oldest connection with no request in flight is closed to make room,
//! and when every one is busy the new connection is closed instead.
//!
//! Why the oldest idle one: silent or idle connections are what a flood is made of, and closing
//! them keeps `/health` and `/metrics` answering; a request in flight is never cut for a newcomer.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use std::time::Duration;

use futures_util::task::AtomicWaker;

use crate::breaker::{Clock, Nanos};

use crate::telemetry::{self, ConnectionLimit};

/// Of the descriptor limit, the share client connections may hold; the rest is left to upstream
/// connections, the database and files.
const CONNECTIONS_SHARE_OF_DESCRIPTORS: (u64, u64) = (3, 4);

/// `max_connections` as served: the configured bound, or three quarters of the soft descriptor
/// limit when that is lower.
pub(super) fn effective_max(configured: usize, descriptor_limit: Option<u64>) -> usize {
    let (num, den) = CONNECTIONS_SHARE_OF_DESCRIPTORS;
    descriptor_limit
        .map(|limit| limit / den * num)
        .and_then(|cap| usize::try_from(cap).ok())
        .map_or(configured, |cap| configured.min(cap.max(1)))
}

/// What one connection shares with the accept loop and its requests.
#[derive(Debug)]
pub(super) struct Liveness {
    clock: Arc<dyn Clock>,
    /// When its last request ended, or when it opened (the gateway's clock).
    last_active: AtomicU64,
    in_flight: AtomicUsize,
    evicted: AtomicBool,
    /// The connection's task, woken when it is closed from outside (lock-free: it is polled on
    /// every wake of the task).
    evict: AtomicWaker,
    /// The limit that closed it, once one did: 0 none, else a [`ConnectionLimit`] + 1.
    closed_by: AtomicU8,
}

impl Liveness {
    fn new(clock: Arc<dyn Clock>) -> Self {
        let now = clock.now().0;
        Self {
            clock,
            last_active: AtomicU64::new(now),
            in_flight: AtomicUsize::new(0),
            evicted: AtomicBool::new(false),
            evict: AtomicWaker::new(),
            closed_by: AtomicU8::new(0),
        }
    }

    /// Whether it has been idle for `idle` at `now`.
    fn idle_for(&self, idle: Duration, now: Nanos) -> bool {
        self.is_idle()
            && Nanos(self.last_active.load(Ordering::Acquire)).saturating_add(idle) <= now
    }

    /// Whether no request of the connection is being served (its answer not yet fully sent).
    pub(super) fn is_idle(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0
    }

    /// Counts a request as in flight until the guard (carried by its answer's body) drops.
    pub(super) fn start_request(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(Arc::clone(self))
    }

    /// Notes that `limit` is closing the connection; the first limit noted is the one counted.
    pub(super) fn close_by(&self, limit: ConnectionLimit) {
        let code = match limit {
            ConnectionLimit::HeaderTimeout => 1,
            ConnectionLimit::IdleTimeout => 2,
            ConnectionLimit::MaxConnections => 3,
        };
        let _ = self
            .closed_by
            .compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire);
    }

    /// The limit that closed the connection, if one did.
    pub(super) fn closed_by(&self) -> Option<ConnectionLimit> {
        match self.closed_by.load(Ordering::Acquire) {
            1 => Some(ConnectionLimit::HeaderTimeout),
            2 => Some(ConnectionLimit::IdleTimeout),
            3 => Some(ConnectionLimit::MaxConnections),
            _ => None,
        }
    }

    /// Closes the connection from outside (its task wakes and drops it) because of `limit`.
    fn close(&self, limit: ConnectionLimit) {
        self.close_by(limit);
        self.evicted.store(true, Ordering::Release);
        self.evict.wake();
    }

    /// Ready once the connection is closed from outside (to make room, or idle too long); the flag is set before
    /// the wake, so an eviction before the first poll is not lost.
    pub(super) fn poll_evicted(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.evicted.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        self.evict.register(cx.waker());
        if self.evicted.load(Ordering::Acquire) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// A request in flight on its connection; dropping it ends the request.
#[derive(Debug)]
pub(super) struct InFlight(Arc<Liveness>);

impl Drop for InFlight {
    fn drop(&mut self) {
        // One load of the gateway's coarse clock per request, and no timer: the reaper reads
        // this stamp on its rounds.
        let now = self.0.clock.now().0;
        self.0.last_active.store(now, Ordering::Release);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// An answer's body that keeps its request in flight until hyper has sent it and drops it.
#[derive(Debug)]
pub(super) struct CountedBody {
    inner: axum::body::Body,
    _in_flight: InFlight,
}

impl CountedBody {
    pub(super) fn new(inner: axum::body::Body, in_flight: InFlight) -> Self {
        Self {
            inner,
            _in_flight: in_flight,
        }
    }
}

impl http_body::Body for CountedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The open connections, oldest first.
#[derive(Debug)]
pub(super) struct Registry {
    max: usize,
    clock: Arc<dyn Clock>,
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    next: u64,
    by_age: BTreeMap<u64, Arc<Liveness>>,
}

impl Registry {
    pub(super) fn new(max: usize, clock: Arc<dyn Clock>) -> Arc<Self> {
        Arc::new(Self {
            max,
            clock,
            open: Mutex::default(),
        })
    }

    /// Closes every connection idle for `idle` or longer; returns how many.
    ///
    /// Why a periodic round rather than a timer per connection: a connection's timer would be
    /// polled on every wake of its task, that is several times per request; a round costs one
    /// load per open connection, once per tick.
    pub(super) fn reap(&self, idle: Duration) -> usize {
        let now = self.clock.now();
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let due: Vec<u64> = open
            .by_age
            .iter()
            .filter(|(_, conn)| conn.idle_for(idle, now))
            .map(|(id, _)| *id)
            .collect();
        for id in &due {
            if let Some(conn) = open.by_age.remove(id) {
                conn.close(ConnectionLimit::IdleTimeout);
            }
        }
        due.len()
    }

    /// A slot for a new connection from `peer`, closing the oldest idle one when the bound is
    /// reached; `None` (the new one is to be closed) when every open connection is busy.
    /// Locks once per connection, never per request.
    pub(super) fn admit(self: &Arc<Self>, peer: SocketAddr) -> Option<Slot> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if open.by_age.len() >= self.max {
            let oldest_idle = open
                .by_age
                .iter()
                .find(|(_, conn)| conn.is_idle() && !conn.evicted.load(Ordering::Acquire))
                .map(|(id, _)| *id);
            let Some(id) = oldest_idle else {
                drop(open);
                telemetry::connection_closed(ConnectionLimit::MaxConnections, peer);
                return None;
            };
            if let Some(conn) = open.by_age.remove(&id) {
                conn.close(ConnectionLimit::MaxConnections);
            }
        }
        let id = open.next;
        open.next += 1;
        let liveness = Arc::new(Liveness::new(Arc::clone(&self.clock)));
        open.by_age.insert(id, Arc::clone(&liveness));
        drop(open);
        telemetry::connection_open(true);
        Some(Slot {
            id,
            liveness,
            registry: Arc::clone(self),
        })
    }
}

/// One open connection's place in the [`Registry`]; dropping it frees the place.
#[derive(Debug)]
pub(super) struct Slot {
    id: u64,
    liveness: Arc<Liveness>,
    registry: Arc<Registry>,
}

impl Slot {
    pub(super) fn liveness(&self) -> &Arc<Liveness> {
        &self.liveness
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        // An evicted connection left the registry when it was chosen.
        let mut open = self
            .registry
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        open.by_age.remove(&self.id);
        drop(open);
        telemetry::connection_open(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 9))
    }

    #[test]
    fn the_bound_is_the_lower_of_the_setting_and_three_quarters_of_the_descriptors() {
        assert_eq!(effective_max(10_000, Some(1024)), 768);
        assert_eq!(effective_max(100, Some(1024)), 100);
        assert_eq!(effective_max(10_000, None), 10_000);
        assert_eq!(effective_max(10_000, Some(1)), 1);
    }

    #[test]
    fn at_the_bound_the_oldest_idle_connection_gives_way_and_busy_ones_never_do() {
        let registry = Registry::new(2, Arc::new(crate::breaker::ManualClock::new()));
        let first = registry.admit(peer()).expect("room");
        let second = registry.admit(peer()).expect("room");
        let busy = first.liveness().start_request();
        let third = registry.admit(peer()).expect("the idle second gives way");
        assert_eq!(
            second.liveness().closed_by(),
            Some(ConnectionLimit::MaxConnections)
        );
        assert_eq!(first.liveness().closed_by(), None);
        let _also_busy = third.liveness().start_request();
        assert!(registry.admit(peer()).is_none(), "every one is busy");
        drop(busy);
        assert!(registry.admit(peer()).is_some(), "the first is idle again");
    }

    #[test]
    fn the_reaper_closes_connections_idle_past_the_timeout_and_only_those() {
        let clock = Arc::new(crate::breaker::ManualClock::new());
        let registry = Registry::new(10, Arc::clone(&clock) as Arc<dyn Clock>);
        let idle = Duration::from_secs(60);
        let quiet = registry.admit(peer()).expect("room");
        let busy = registry.admit(peer()).expect("room");
        let _in_flight = busy.liveness().start_request();
        clock.advance(Duration::from_secs(30));
        let recent = registry.admit(peer()).expect("room");
        drop(recent.liveness().start_request());
        assert_eq!(registry.reap(idle), 0, "nobody idle for a minute yet");
        clock.advance(Duration::from_secs(30));
        assert_eq!(registry.reap(idle), 1);
        assert_eq!(
            quiet.liveness().closed_by(),
            Some(ConnectionLimit::IdleTimeout)
        );
        assert_eq!(busy.liveness().closed_by(), None, "a request in flight");
        assert_eq!(
            recent.liveness().closed_by(),
            None,
            "its request ended 30 s ago"
        );
    }
}
