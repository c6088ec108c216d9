//! The metric names, label values and latency buckets of DESIGN.md's "Metrics" table: the
//! contract dashboards and alert rules are written against, spelled once. The `outcome` and
//! `kind` values are the outcome vocabulary's own ([`CallOutcome`], [`FallbackKind`]).
//!
//! [`CallOutcome`]: crate::outcome::CallOutcome
//! [`FallbackKind`]: crate::outcome::FallbackKind

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
/// `breakerbox_fallbacks_total{breaker,kind}`.
pub(crate) const FALLBACKS: &str = "breakerbox_fallbacks_total";
/// `breakerbox_queue_depth{breaker}`.
pub(crate) const QUEUE_DEPTH: &str = "breakerbox_queue_depth";
/// `breakerbox_slow_calls_total{breaker}`.
pub(crate) const SLOW_CALLS: &str = "breakerbox_slow_calls_total";
/// `breakerbox_retries_total{breaker,result}`.
pub(crate) const RETRIES: &str = "breakerbox_retries_total";
/// `breakerbox_store_degraded`.
pub(crate) const STORE_DEGRADED: &str = "breakerbox_store_degraded";
/// `breakerbox_config_reloads_total{result}`.
pub(crate) const CONFIG_RELOADS: &str = "breakerbox_config_reloads_total";
/// `breakerbox_build_info{version}`: always 1.
pub(crate) const BUILD_INFO: &str = "breakerbox_build_info";
/// `breakerbox_queue_refused_total{breaker}`: requests the queue refused (503 `queue_full`).
pub(crate) const QUEUE_REFUSED: &str = "breakerbox_queue_refused_total";
/// `breakerbox_store_size_bytes`: the database's size.
pub(crate) const STORE_SIZE: &str = "breakerbox_store_size_bytes";

/// `breakerbox_connections_open`: client connections open now.
pub(crate) const CONNECTIONS_OPEN: &str = "breakerbox_connections_open";
/// `breakerbox_connections_closed_total{reason}`: client connections closed by a limit.
pub(crate) const CONNECTIONS_CLOSED: &str = "breakerbox_connections_closed_total";

/// `reason` on `breakerbox_connections_closed_total`: no whole request head within
/// `header_read_timeout`.
pub(crate) const CLOSED_HEADER_TIMEOUT: &str = "header_timeout";
/// `reason` on `breakerbox_connections_closed_total`: idle between requests past `idle_timeout`.
pub(crate) const CLOSED_IDLE_TIMEOUT: &str = "idle_timeout";
/// `reason` on `breakerbox_connections_closed_total`: closed or refused at `max_connections`.
pub(crate) const CLOSED_MAX_CONNECTIONS: &str = "max_connections";
/// Values of `reason` on `breakerbox_connections_closed_total`.
pub(crate) const CLOSED_REASONS: [&str; 3] = [
    CLOSED_HEADER_TIMEOUT,
    CLOSED_IDLE_TIMEOUT,
    CLOSED_MAX_CONNECTIONS,
];

/// `result` on `breakerbox_retries_total`: retries made.
pub(crate) const RETRY_ATTEMPTED: &str = "attempted";
/// `result` on `breakerbox_retries_total`: a retry the budget refused.
pub(crate) const RETRY_BUDGET_EXHAUSTED: &str = "budget_exhausted";
/// `result` on `breakerbox_config_reloads_total`: the new configuration is in force.
pub(crate) const RELOAD_SUCCESS: &str = "success";
/// `result` on `breakerbox_config_reloads_total`: the old configuration stays.
pub(crate) const RELOAD_FAILURE: &str = "failure";
/// Values of `result` on `breakerbox_config_reloads_total`.
pub(crate) const RELOAD_RESULTS: [&str; 2] = [RELOAD_SUCCESS, RELOAD_FAILURE];

/// Upper bounds of the latency buckets, in seconds: the OpenTelemetry HTTP advisory buckets
/// (5 ms … 10 s) with 1 ms in front, since a loopback upstream answers well under 5 ms.
pub(crate) const DURATION_BUCKETS: [f64; 15] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// Every metric with its type and `# HELP` text (`promtool check metrics` wants one).
pub(super) const DESCRIPTIONS: [(&str, MetricType, &str); 17] = [
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
        FALLBACKS,
        MetricType::Counter,
        "Answers given by a fallback instead of the upstream",
    ),
    (
        QUEUE_DEPTH,
        MetricType::Gauge,
        "Requests waiting for replay",
    ),
    (
        SLOW_CALLS,
        MetricType::Counter,
        "Permitted calls slower than slow_call_duration",
    ),
    (
        RETRIES,
        MetricType::Counter,
        "Retries attempted, and retries refused by the retry budget",
    ),
    (
        STORE_DEGRADED,
        MetricType::Gauge,
        "1 while the store is unreachable and the queue and cache live in memory",
    ),
    (
        CONFIG_RELOADS,
        MetricType::Counter,
        "Configuration reloads by result",
    ),
    (
        CONNECTIONS_OPEN,
        MetricType::Gauge,
        "Client connections open now",
    ),
    (
        CONNECTIONS_CLOSED,
        MetricType::Counter,
        "Client connections closed by a limit: header_timeout, idle_timeout, max_connections",
    ),
    (
        BUILD_INFO,
        MetricType::Gauge,
        "Always 1; the version is a label",
    ),
    (
        QUEUE_REFUSED,
        MetricType::Counter,
        "Requests the durable queue refused with 503 queue_full: a bound on pending requests or the memory buffer was reached",
    ),
    (
        STORE_SIZE,
        MetricType::Gauge,
        "Size of the database in bytes (SQLite: page_count x page_size; PostgreSQL: pg_database_size)",
    ),
];

/// A metric's type, for its description.
#[derive(Debug, Clone, Copy)]
pub(super) enum MetricType {
    Counter,
    Gauge,
    Histogram,
}
