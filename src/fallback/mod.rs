//! What the gateway answers when an upstream cannot: a cached response, a degraded answer, a
//! queued request replayed later, or a clear error.

pub mod records;

pub use records::{CachedResponse, QueueStatus, QueuedRequest};
