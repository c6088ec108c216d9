//! Waiting for a condition with a deadline, polled in real time (real servers, real processes).

// Real servers and processes run in real time: waiting on them reads the system's clock.
#![allow(clippy::disallowed_methods)]

use std::future::Future;
use std::time::{Duration, Instant};

/// Polls `check` every 20 ms until it holds (`true`) or `limit` passes (`false`).
pub async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    while started.elapsed() < limit {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// [`eventually`], panicking with `what` if `condition` does not hold within `limit`.
pub async fn wait_until<F, Fut>(what: &str, limit: Duration, condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    assert!(
        eventually(limit, condition).await,
        "timed out after {limit:?} waiting for {what}"
    );
}
