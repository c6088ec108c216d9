//! What the gateway answers when an upstream cannot: a cached response, a degraded answer, a
//! queued request replayed later, or a clear error.
//!
//! The seams below keep the data flowing one way: the pipeline hands requests to an [`Enqueue`]
//! and responses to a [`CacheStore`]; the queue's replay hands requests back to a [`Deliver`].
//! The store implements the persistence ([`QueueStore`], [`CacheStore`]); delivery goes through
//! the upstream client.

use std::fmt;
use std::time::Duration;

use futures_util::future::BoxFuture;
use uuid::Uuid;

pub mod cache;
pub mod cache_key;
pub(crate) mod degraded;
mod deliver;
pub mod queue;
pub(crate) mod records;
pub(crate) mod replay;

pub use crate::outcome::Delivery;
pub use records::{CachedResponse, QueueStatus, QueuedRequest};

/// Why a request could not be queued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    /// Neither the store nor the bounded memory buffer can take more.
    #[error("the queue is full ({capacity} requests wait already)")]
    Full {
        /// How many requests the buffer holds at most.
        capacity: usize,
    },
    /// Taking it would pass a bound on pending requests (`queue_max_requests` or
    /// `queue_max_bytes`, of its upstream or of the whole gateway).
    #[error("{bound}")]
    OverLimit {
        /// Which bound, in words: e.g. "upstream `q` holds 3 pending requests
        /// (queue_max_requests = 3)".
        bound: String,
    },
    /// The gateway is shutting down and accepts nothing new.
    #[error("the gateway is shutting down")]
    ShuttingDown,
}

/// How safely a queued request is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Written to the store: survives a crash.
    Stored,
    /// Kept in memory while the store is unreachable; written to the store when it returns.
    Memory,
}

/// Bounds on an upstream's pending requests (`queue_max_requests`, `queue_max_bytes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueBounds {
    /// Most requests pending at once.
    pub max_requests: u64,
    /// Most body bytes pending at once.
    pub max_bytes: u64,
}

impl QueueBounds {
    /// No bound of its own (the gateway-wide bounds still apply).
    pub const UNBOUNDED: QueueBounds = QueueBounds {
        max_requests: u64::MAX,
        max_bytes: u64::MAX,
    };
}

/// Accepts requests for later delivery (implemented by the durable queue).
pub trait Enqueue: Send + Sync + 'static {
    /// Keeps `request` until its upstream can take it.
    fn enqueue(&self, request: QueuedRequest) -> BoxFuture<'_, Result<Durability, QueueError>>;

    /// [`enqueue`](Self::enqueue) unless it would pass `bounds` for its upstream
    /// ([`QueueError::OverLimit`]). The default keeps no count and ignores `bounds`: a queue
    /// that keeps requests overrides it.
    fn enqueue_within(
        &self,
        request: QueuedRequest,
        bounds: QueueBounds,
    ) -> BoxFuture<'_, Result<Durability, QueueError>> {
        let _ = bounds;
        self.enqueue(request)
    }
}

/// Sends a queued request to its upstream (implemented by the upstream client).
pub trait Deliver: Send + Sync + 'static {
    /// One attempt, through the upstream's breaker.
    fn deliver<'a>(&'a self, request: &'a QueuedRequest) -> BoxFuture<'a, Delivery>;
}

/// Why the queue's store could not do what was asked (it is down, slow or refused the query).
pub type StoreFailure = Box<dyn std::error::Error + Send + Sync>;

/// Keeps queued requests durably, shared by every replica (implemented by the store). Claims are
/// exclusive: a request claimed by one replayer is not handed to another until it is finished,
/// released, or its claim lease runs out.
pub trait QueueStore: Send + Sync + fmt::Debug + 'static {
    /// Keeps `request`; says how safely.
    fn enqueue(&self, request: QueuedRequest) -> BoxFuture<'_, Result<Durability, QueueError>>;

    /// [`enqueue`](Self::enqueue) within `bounds` for its upstream. The default ignores
    /// `bounds`: a store that counts pending requests overrides it.
    fn enqueue_within(
        &self,
        request: QueuedRequest,
        bounds: QueueBounds,
    ) -> BoxFuture<'_, Result<Durability, QueueError>> {
        let _ = bounds;
        self.enqueue(request)
    }

    /// Claims the oldest pending request of `upstream`, if any.
    fn claim_next<'a>(
        &'a self,
        upstream: &'a str,
    ) -> BoxFuture<'a, Result<Option<QueuedRequest>, StoreFailure>>;

    /// Records the final status of claimed request `id` after `attempts` attempts.
    fn finish<'a>(
        &'a self,
        id: Uuid,
        status: &'a QueueStatus,
        attempts: u32,
    ) -> BoxFuture<'a, Result<(), StoreFailure>>;

    /// Makes claimed request `id` pending again after `attempts` attempts.
    fn release(&self, id: Uuid, attempts: u32) -> BoxFuture<'_, Result<(), StoreFailure>>;

    /// Removes finished requests past their retention; how many.
    fn prune_finished(&self) -> BoxFuture<'_, Result<u64, StoreFailure>>;

    /// Extends this replica's claim on `id` while its delivery is under way. The default does
    /// nothing: a store whose claims never run out needs no renewal.
    fn renew(&self, id: Uuid) -> BoxFuture<'_, Result<(), StoreFailure>> {
        let _ = id;
        Box::pin(async { Ok(()) })
    }

    /// How long a claim lasts unless renewed; `None`: claims never run out.
    fn claim_lease(&self) -> Option<Duration> {
        None
    }
}

/// Keeps cached responses beyond the memory cache (implemented by the store).
pub trait CacheStore: Send + Sync + 'static {
    /// Stores or replaces the response for its upstream and path.
    fn put(&self, response: CachedResponse) -> BoxFuture<'_, ()>;

    /// The response stored for `upstream` and `path_and_query`, if any.
    fn get<'a>(
        &'a self,
        upstream: &'a str,
        path_and_query: &'a str,
    ) -> BoxFuture<'a, Option<CachedResponse>>;
}

impl fmt::Debug for dyn Enqueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("dyn Enqueue")
    }
}

impl fmt::Debug for dyn Deliver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("dyn Deliver")
    }
}

impl fmt::Debug for dyn CacheStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("dyn CacheStore")
    }
}
