//! The gauges no event moves (failure ratio, queue depth, store degraded): refreshed every
//! second by a task of the gateway and right before each scrape, so a scrape is never staler
//! than the breakers it describes.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::{Telemetry, recorder};
use crate::gateway::Gateway;

/// How often the task refreshes the gauges (and drains histogram samples).
pub const REFRESH_EVERY: Duration = Duration::from_secs(1);

/// Longest a refresh waits for the queue depth: it asks the store, which may be slow or
/// down; a scrape must still answer (with the last figures).
const QUEUE_DEPTH_WAIT: Duration = Duration::from_millis(250);

/// The Prometheus classic text format's media type.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

impl Telemetry {
    /// Reads every breaker's snapshot, the queue depth and the store's state into the gauges.
    pub async fn refresh(&self, gateway: &Gateway) {
        // A partial count (the database not asked) would show the queue emptier than it is.
        let depth = tokio::time::timeout(QUEUE_DEPTH_WAIT, gateway.store().queue_depth())
            .await
            .ok()
            .filter(|depth| depth.complete)
            .map(|depth| depth.pending);
        self.inner
            .metrics
            .refresh(&gateway.snapshots(), depth.as_ref());
        recorder::store_degraded(gateway.store().is_degraded());
    }

    /// The exposition for `GET /metrics`, in the classic text format ([`CONTENT_TYPE`]).
    pub async fn render(&self, gateway: &Gateway) -> String {
        self.refresh(gateway).await;
        recorder::handle().map_or_else(String::new, |handle| handle.render())
    }
}

/// Refreshes the gauges of `gateway` every [`REFRESH_EVERY`] and drains recorded latencies into
/// their histograms (the exporter keeps raw samples until then), until shutdown.
pub async fn refresh_periodically(gateway: Arc<Gateway>, mut shutdown: watch::Receiver<bool>) {
    let mut every = tokio::time::interval(REFRESH_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {
                gateway.telemetry().refresh(&gateway).await;
                if let Some(handle) = recorder::handle() {
                    handle.run_upkeep();
                }
            }
            _ = shutdown.changed() => return,
        }
    }
}
