//! The metric names, label values and latency buckets of one breaker (DESIGN.md's "Metrics"
//! table), spelled once for the gateway's telemetry and the `metrics` feature of in-process
//! breakers, so dashboards and alerts work for both.

/// `breakerbox_breaker_state{breaker,state}`: 1 for the current state, 0 for every other.
pub(crate) const BREAKER_STATE: &str = "breakerbox_breaker_state";
/// `breakerbox_breaker_state_since_timestamp_seconds{breaker}`: when the current state began.
pub(crate) const STATE_SINCE: &str = "breakerbox_breaker_state_since_timestamp_seconds";
/// `breakerbox_breaker_transitions_total{breaker,from,to}`.
pub(crate) const TRANSITIONS: &str = "breakerbox_breaker_transitions_total";
/// `breakerbox_calls_total{breaker,outcome}`.
pub(crate) const CALLS: &str = "breakerbox_calls_total";
/// `breakerbox_call_duration_seconds{breaker,outcome}`: latency of permitted calls.
pub(crate) const CALL_DURATION: &str = "breakerbox_call_duration_seconds";
/// `breakerbox_breaker_failure_ratio{breaker}`: 0–1, or -1 until the window holds
/// `minimum_calls`.
pub(crate) const FAILURE_RATIO: &str = "breakerbox_breaker_failure_ratio";
/// `breakerbox_slow_calls_total{breaker}`.
pub(crate) const SLOW_CALLS: &str = "breakerbox_slow_calls_total";

/// `breakerbox_breaker_recovery_seconds{breaker}`: from a trip (closed → open) to the next
/// close, recorded at the close.
pub(crate) const RECOVERY: &str = "breakerbox_breaker_recovery_seconds";

/// Upper bounds of the recovery buckets, in seconds: from one open duration of a few seconds to
/// a day-long outage.
pub(crate) const RECOVERY_BUCKETS: [f64; 14] = [
    1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 21600.0, 43200.0,
    86400.0,
];

/// Upper bounds of the latency buckets, in seconds: the OpenTelemetry HTTP advisory buckets
/// (5 ms … 10 s) with 1 ms in front, since a loopback upstream answers well under 5 ms.
pub(crate) const DURATION_BUCKETS: [f64; 15] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// The breaker metrics with their type and `# HELP` text.
pub(crate) const BREAKER_DESCRIPTIONS: [(&str, MetricType, &str); 8] = [
    (
        BREAKER_STATE,
        MetricType::Gauge,
        "1 for the breaker's current state, 0 for every other",
    ),
    (
        STATE_SINCE,
        MetricType::Gauge,
        "When the breaker's current state began, in Unix seconds",
    ),
    (TRANSITIONS, MetricType::Counter, "Breaker state changes"),
    (
        CALLS,
        MetricType::Counter,
        "Calls by outcome: success, failure, timeout, rejected",
    ),
    (
        CALL_DURATION,
        MetricType::Histogram,
        "Latency of permitted calls in seconds",
    ),
    (
        FAILURE_RATIO,
        MetricType::Gauge,
        "Failure rate over the rolling window, 0-1; -1 until the window holds minimum_calls",
    ),
    (
        SLOW_CALLS,
        MetricType::Counter,
        "Permitted calls slower than slow_call_duration",
    ),
    (
        RECOVERY,
        MetricType::Histogram,
        "Seconds from a trip (closed to open) to the next close, recorded at the close",
    ),
];

/// A metric's type, for its description.
#[derive(Debug, Clone, Copy)]
pub(crate) enum MetricType {
    Counter,
    Gauge,
    Histogram,
}
