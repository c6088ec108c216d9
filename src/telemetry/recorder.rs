//! The process-wide Prometheus recorder. The `metrics` facade has one global recorder per
//! process, so it is installed once, on first use, and every gateway of the process (tests
//! start many) renders from the same handle.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

use super::names::{
    BREAKER_DESCRIPTIONS, BUILD_INFO, CALL_DURATION, CLOSED_REASONS, CONFIG_RELOADS,
    CONNECTIONS_CLOSED, CONNECTIONS_OPEN, DESCRIPTIONS, DURATION_BUCKETS, MetricType, RECOVERY,
    RECOVERY_BUCKETS, RELOAD_FAILURE, RELOAD_RESULTS, RELOAD_SUCCESS, STORE_DEGRADED, STORE_SIZE,
};

static RECORDER: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The handle to render from, installing the recorder on the first call; `None` when another
/// recorder was installed first (then `/metrics` has nothing to say, and the log says why).
pub(super) fn handle() -> Option<&'static PrometheusHandle> {
    RECORDER.get_or_init(install).as_ref()
}

fn install() -> Option<PrometheusHandle> {
    match build().and_then(PrometheusBuilder::install_recorder) {
        Ok(handle) => {
            describe();
            metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
            metrics::gauge!(STORE_DEGRADED).set(0.0);
            for result in RELOAD_RESULTS {
                metrics::counter!(CONFIG_RELOADS, "result" => result).increment(0);
            }
            metrics::gauge!(CONNECTIONS_OPEN).set(0.0);
            for reason in CLOSED_REASONS {
                metrics::counter!(CONNECTIONS_CLOSED, "reason" => reason).increment(0);
            }
            Some(handle)
        }
        Err(error) => {
            tracing::error!(%error, "the Prometheus recorder could not be installed; /metrics will be empty");
            None
        }
    }
}

fn build() -> Result<PrometheusBuilder, BuildError> {
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(CALL_DURATION.to_owned()), &DURATION_BUCKETS)?
        .set_buckets_for_metric(Matcher::Full(RECOVERY.to_owned()), &RECOVERY_BUCKETS)
}

/// `# HELP` lines: `promtool check metrics` reports every metric without one.
fn describe() {
    for (name, kind, help) in BREAKER_DESCRIPTIONS.into_iter().chain(DESCRIPTIONS) {
        match kind {
            MetricType::Counter => metrics::describe_counter!(name, help),
            MetricType::Gauge => metrics::describe_gauge!(name, help),
            MetricType::Histogram => metrics::describe_histogram!(name, help),
        }
    }
}

/// Counts one configuration reload.
pub(super) fn config_reloaded(success: bool) {
    let result = if success {
        RELOAD_SUCCESS
    } else {
        RELOAD_FAILURE
    };
    metrics::counter!(CONFIG_RELOADS, "result" => result).increment(1);
}

/// The database's size in bytes.
pub(super) fn store_size(bytes: u64) {
    metrics::gauge!(STORE_SIZE).set(bytes as f64);
}

/// Whether the store has fallen back to memory.
pub(super) fn store_degraded(degraded: bool) {
    metrics::gauge!(STORE_DEGRADED).set(if degraded { 1.0 } else { 0.0 });
}

/// One more client connection open (`opened`) or one fewer.
pub(super) fn connection_open(opened: bool) {
    let gauge = metrics::gauge!(CONNECTIONS_OPEN);
    if opened {
        gauge.increment(1.0);
    } else {
        gauge.decrement(1.0);
    }
}

/// Counts a client connection closed by a limit (`reason`: one of [`CLOSED_REASONS`]).
pub(super) fn connection_closed(reason: &'static str) {
    metrics::counter!(CONNECTIONS_CLOSED, "reason" => reason).increment(1);
}
