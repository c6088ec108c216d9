//! The metric names, label values and latency buckets of DESIGN.md's "Metrics" table: the
//! contract dashboards and alert rules are written against, spelled once. The `outcome` and
//! `kind` values are the outcome vocabulary's own ([`CallOutcome`], [`FallbackKind`]).
//!
//! [`CallOutcome`]: crate::outcome::CallOutcome
//! [`FallbackKind`]: crate::outcome::FallbackKind

pub(crate) use crate::breaker::names::{
    BREAKER_DESCRIPTIONS, BREAKER_STATE, CALL_DURATION, CALLS, DURATION_BUCKETS, FAILURE_RATIO,
    MetricType, RECOVERY, RECOVERY_BUCKETS, SLOW_CALLS, STATE_SINCE, TRANSITIONS,
};
/// `breakerbox_fallbacks_total{breaker,kind}`.
pub(crate) const FALLBACKS: &str = "breakerbox_fallbacks_total";
/// `breakerbox_queue_depth{breaker}`.
pub(crate) const QUEUE_DEPTH: &str = "breakerbox_queue_depth";
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

/// Every gateway-level metric with its type and `# HELP` text (`promtool check metrics` wants
/// one); the breakers' own are [`BREAKER_DESCRIPTIONS`].
pub(super) const DESCRIPTIONS: [(&str, MetricType, &str); 10] = [
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
