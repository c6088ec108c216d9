//! The gauges no event moves (failure ratio, queue depth, store degraded, store size): refreshed every
//! second by a task of the gateway and right before each scrape, so a scrape is never staler
//! than the breakers it describes.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::Gateway;
use crate::config::Fallback;

/// How often the task refreshes the gauges (and drains histogram samples).
const REFRESH_EVERY: Duration = Duration::from_secs(1);

/// How often the store's cache table is pruned to its bounds and TTLs: between two prunes it
/// may hold what a few seconds of write-behind add.
const CACHE_PRUNE_EVERY: Duration = Duration::from_secs(5);

/// Longest a refresh waits for the queue depth: it asks the store, which may be slow or
/// down; a scrape must still answer (with the last figures).
const QUEUE_DEPTH_WAIT: Duration = Duration::from_millis(250);

impl Gateway {
    /// Reads every breaker's snapshot, the queue depth and the store's state into the gauges.
    pub async fn refresh_gauges(&self) {
        // A partial count (the database not asked) would show the queue emptier than it is.
        let depth = tokio::time::timeout(QUEUE_DEPTH_WAIT, self.store.queue_depth())
            .await
            .ok()
            .filter(|depth| depth.complete)
            .map(|depth| depth.pending);
        self.telemetry
            .refresh(&self.snapshots(), depth.as_ref(), self.store.is_degraded());
        if let Ok(Ok(bytes)) = tokio::time::timeout(QUEUE_DEPTH_WAIT, self.store.size_bytes()).await
        {
            self.telemetry.store_size(bytes);
        }
    }

    /// Prunes the store's cache table: rows past their upstream's `cache_ttl`, then the least
    /// recently used beyond `[store] cache_max_entries` / `cache_max_bytes`.
    pub async fn prune_cache(&self) {
        let in_force = self.in_force();
        let ttls: Vec<(String, Duration)> = in_force
            .config
            .upstreams
            .values()
            .filter_map(|u| match u.fallback {
                Fallback::Cache { ttl } => Some((u.name.clone(), ttl)),
                _ => None,
            })
            .collect();
        match self.store.prune_cache(&ttls).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(pruned = n, "cached responses deleted"),
            Err(e) => tracing::debug!(error = %e, "pruning the cache table postponed"),
        }
    }

    /// The exposition for `GET /metrics`, its gauges refreshed first.
    pub async fn render_metrics(&self) -> String {
        self.refresh_gauges().await;
        self.telemetry.render()
    }
}

/// Refreshes the gauges of `gateway` every [`REFRESH_EVERY`] and drains recorded latencies into
/// their histograms, until shutdown.
pub(super) async fn refresh_periodically(
    gateway: Arc<Gateway>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut every = tokio::time::interval(REFRESH_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut prune = tokio::time::interval(CACHE_PRUNE_EVERY);
    prune.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {
                gateway.refresh_gauges().await;
                gateway.telemetry.upkeep();
            }
            _ = prune.tick() => gateway.prune_cache().await,
            _ = shutdown.changed() => return,
        }
    }
}
