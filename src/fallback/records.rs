//! The records fallbacks keep: shared by the fallbacks that make them and the store that keeps
//! them.

use std::time::SystemTime;

use bytes::Bytes;
use uuid::Uuid;

/// A request accepted for later delivery (fallback `queue`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedRequest {
    /// Time-ordered id (UUID v7), given to the client in the 202 answer.
    pub id: Uuid,
    /// The upstream it is for.
    pub upstream: String,
    /// HTTP method, e.g. `POST`.
    pub method: String,
    /// Path below the upstream's url, with the query string if any (e.g. `/api/v2/torrents/add?x=1`).
    pub path_and_query: String,
    /// End-to-end request headers, in order (hop-by-hop headers already removed).
    pub headers: Vec<(String, Vec<u8>)>,
    /// The request body.
    pub body: Bytes,
    /// When it was accepted.
    pub enqueued_at: SystemTime,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// Where it stands.
    pub status: QueueStatus,
}

/// Where a queued request stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueStatus {
    /// Waiting for its upstream's breaker to close.
    Pending,
    /// Delivered; the upstream answered with this status.
    Delivered {
        /// The upstream's HTTP status.
        status: u16,
    },
    /// Given up on (the upstream refused it with a 4xx, or it could not be replayed).
    Failed {
        /// Why.
        reason: String,
    },
}

impl QueueStatus {
    /// The status name used in JSON and in the store: `pending`, `delivered` or `failed`.
    pub fn as_str(&self) -> &'static str {
        match self {
            QueueStatus::Pending => "pending",
            QueueStatus::Delivered { .. } => "delivered",
            QueueStatus::Failed { .. } => "failed",
        }
    }
}

/// A successful GET response kept to answer for its upstream while it is down (fallback `cache`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedResponse {
    /// The upstream that gave it.
    pub upstream: String,
    /// Path with query string: together with `upstream`, the cache key.
    pub path_and_query: String,
    /// HTTP status (2xx).
    pub status: u16,
    /// End-to-end response headers, in order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The response body.
    pub body: Bytes,
    /// When it was received from the upstream (the `Age` header counts from here).
    pub stored_at: SystemTime,
}

impl CachedResponse {
    /// What keeping it costs, in bytes: body, headers and key. The cache's byte bounds
    /// (`cache_max_bytes`) count this, in memory and in the store alike.
    pub fn size(&self) -> usize {
        let headers: usize = self.headers.iter().map(|(n, v)| n.len() + v.len()).sum();
        self.body.len() + headers + self.upstream.len() + self.path_and_query.len()
    }
}
