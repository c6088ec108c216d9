//! The one place where breaker events and call outcomes become logs, Prometheus metrics and
//! OpenTelemetry spans (DESIGN.md, "Metrics" and "Traces"): every breaker of the gateway is built
//! with [`Telemetry::listener`], every proxied response's [`ProxyOutcome`] goes through
//! [`Telemetry::record_proxy`], and the request, decision and attempt spans come from the helpers
//! re-exported here. [`init`] installs the subscriber (logs, and OTLP export when `OTEL_*` ask).

pub(crate) mod names;
mod recorder;
mod refresh;
mod series;
mod spans;
mod tracing_setup;
mod tracked;

use std::sync::Arc;

use crate::breaker::{Breaker, Listener, State, Transition};
use crate::outcome::{ProxyOutcome, Replay};

pub use refresh::CONTENT_TYPE;
pub use spans::{
    client_span, decision_span, inject, record_attempt, record_decision, record_response,
    server_span,
};
pub use tracing_setup::{
    DEFAULT_SERVICE_NAME, export_requested, flush_traces, init, shutdown_traces, tracing_enabled,
};

/// Counts a client connection opening (`opened`) or closing, for `breakerbox_connections_open`.
pub fn connection_open(opened: bool) {
    recorder::connection_open(opened);
}

/// Why the gateway closed a client connection itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionLimit {
    /// No whole request head within `header_read_timeout`.
    HeaderTimeout,
    /// Idle between requests past `idle_timeout`.
    IdleTimeout,
    /// Closed (the oldest idle one) or refused at `max_connections`.
    MaxConnections,
}

impl ConnectionLimit {
    /// The `reason` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HeaderTimeout => names::CLOSED_HEADER_TIMEOUT,
            Self::IdleTimeout => names::CLOSED_IDLE_TIMEOUT,
            Self::MaxConnections => names::CLOSED_MAX_CONNECTIONS,
        }
    }
}

/// Counts a client connection the gateway closed because of `limit`, and logs it at DEBUG (an
/// attacker's flood must not flood the log too).
pub fn connection_closed(limit: ConnectionLimit, peer: std::net::SocketAddr) {
    tracing::debug!(client = %peer, reason = limit.as_str(), "connection closed by a limit");
    recorder::connection_closed(limit.as_str());
}

/// Turns breaker transitions into logs, metrics and spans, and call outcomes into metrics.
/// In-process consumers of transitions (the admin event stream, the deadline timer, queue
/// replay) get them from the gateway's transition bus, not from here.
#[derive(Debug, Clone)]
pub struct Telemetry {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    metrics: tracked::Metrics,
    trips: spans::Trips,
}

impl Telemetry {
    /// Installs the process-wide Prometheus recorder if no hub has yet.
    pub fn new() -> Self {
        // Before any series is registered: handles taken without a recorder record nothing.
        recorder::handle();
        Self {
            inner: Arc::new(Inner {
                metrics: tracked::Metrics::default(),
                trips: spans::Trips::default(),
            }),
        }
    }

    /// Tracks exactly `breakers` (the configuration's) from now on: their series exist, at 0,
    /// before their first event. Call at start and after every reload; idempotent.
    pub fn track(&self, breakers: &[Arc<Breaker>]) {
        self.inner.metrics.track(breakers);
    }

    /// Records a proxied request: each attempt's outcome, latency and slowness, a rejection, the
    /// fallback that answered, retries. An upstream that is not tracked records nothing.
    pub fn record_proxy(&self, outcome: &ProxyOutcome) {
        self.inner.metrics.proxied(outcome);
    }

    /// Records a queue replay: its attempt's outcome and latency, or the breaker's refusal. A
    /// replay is a call through the breaker like a proxied one, so it counts in
    /// `breakerbox_calls_total`.
    pub fn record_replay(&self, upstream: &str, replay: &Replay) {
        self.inner.metrics.replayed(upstream, replay);
    }

    /// Counts a configuration reload, successful or refused.
    pub fn config_reloaded(&self, success: bool) {
        recorder::config_reloaded(success);
    }

    /// The listener to attach to every breaker.
    pub fn listener(&self) -> Arc<dyn Listener> {
        Arc::new(self.clone())
    }
}

impl Default for Telemetry {
    fn default() -> Self {
        Self::new()
    }
}

impl Listener for Telemetry {
    fn on_transition(&self, t: &Transition) {
        // Trips and manual states at WARN, recovery and probing at INFO: one line each, with
        // the trace of the request that caused it when spans are exported.
        let trace_id = spans::current_trace_id().map(tracing::field::display);
        match t.to {
            State::Open | State::ForcedOpen | State::Disabled => tracing::warn!(
                breaker = %t.breaker, from = %t.from, to = %t.to, reason = t.reason.as_str(),
                trace_id, "circuit breaker {}: {} -> {} ({})", t.breaker, t.from, t.to, t.reason
            ),
            State::Closed | State::HalfOpen => tracing::info!(
                breaker = %t.breaker, from = %t.from, to = %t.to, reason = t.reason.as_str(),
                trace_id, "circuit breaker {}: {} -> {} ({})", t.breaker, t.from, t.to, t.reason
            ),
        }
        self.inner.metrics.transition(t);
        self.inner.trips.transition(t);
    }
}
