//! The gauges no event moves (failure ratio, queue depth, store degraded), set from figures the
//! gateway reads every second and right before each scrape, and the exposition itself.

use std::collections::BTreeMap;

use super::{Telemetry, recorder};
use crate::breaker::Snapshot;

/// The Prometheus classic text format's media type.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

impl Telemetry {
    /// Sets the gauges from every breaker's snapshot, the pending requests per upstream
    /// (`None` when they could not be counted completely: the last figures stay) and whether
    /// the store is degraded.
    pub fn refresh(
        &self,
        snapshots: &BTreeMap<String, Snapshot>,
        queue_depth: Option<&BTreeMap<String, u64>>,
        store_degraded: bool,
    ) {
        self.inner.metrics.refresh(snapshots, queue_depth);
        recorder::store_degraded(store_degraded);
    }

    /// The mean latency of `breaker`'s permitted calls since the gateway started (the same
    /// measurements as `breakerbox_call_duration_seconds`).
    pub fn average_latency(&self, breaker: &str) -> Option<std::time::Duration> {
        self.inner.metrics.average_latency(breaker)
    }

    /// Sets `breakerbox_store_size_bytes`; call when the size could be read (the last figure
    /// stays otherwise).
    pub fn store_size(&self, bytes: u64) {
        recorder::store_size(bytes);
    }

    /// Drains recorded latencies into their histograms (the exporter keeps raw samples until
    /// then); call periodically.
    pub fn upkeep(&self) {
        if let Some(handle) = recorder::handle() {
            handle.run_upkeep();
        }
    }

    /// The exposition for `GET /metrics`, in the classic text format ([`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        recorder::handle().map_or_else(String::new, |handle| handle.render())
    }
}
