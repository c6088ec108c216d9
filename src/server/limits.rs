//! The bound on open connections: every accepted connection takes a [`Slot`]; at
//! `max_connections` the oldest connection with no request in flight is closed to make room,
//! and when every one is busy the new connection is closed instead.
//!
//! Why the oldest idle one: silent or idle connections are what a flood is made of, and closing
//! them keeps `/health` and `/metrics` answering; a request in flight is never cut for a newcomer.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::sync::Notify;

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
#[derive(Debug, Default)]
pub(super) struct Liveness {
    in_flight: AtomicUsize,
    evicted: AtomicBool,
    evict: Notify,
    /// The limit that closed it, once one did: 0 none, else a [`ConnectionLimit`] + 1.
    closed_by: AtomicU8,
}

impl Liveness {
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

    /// Resolves once the accept loop chose this connection to make room (a permit is kept, so
    /// an eviction before the wait is not lost).
    pub(super) async fn evicted(&self) {
        self.evict.notified().await;
    }
}

/// A request in flight on its connection; dropping it ends the request.
#[derive(Debug)]
pub(super) struct InFlight(Arc<Liveness>);

impl Drop for InFlight {
    fn drop(&mut self) {
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
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    next: u64,
    by_age: BTreeMap<u64, Arc<Liveness>>,
}

impl Registry {
    pub(super) fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max,
            open: Mutex::default(),
        })
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
                conn.evicted.store(true, Ordering::Release);
                conn.close_by(ConnectionLimit::MaxConnections);
                conn.evict.notify_one();
            }
        }
        let id = open.next;
        open.next += 1;
        let liveness = Arc::new(Liveness::default());
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
        let registry = Registry::new(2);
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
}
