//! Feature `metrics`: in-process breakers exported through the [`metrics`] facade under the
//! gateway's own metric names and labels, so the shipped dashboards and alert rules work for a
//! program that embeds the library. Install any `metrics` recorder (for example
//! `metrics-exporter-prometheus`), attach [`BreakerMetrics`] to the breakers, and call
//! [`BreakerMetrics::refresh`] before each scrape for the gauges no event moves.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use super::circuit::Breaker;
use super::events::{CallEvent, CallListener, Listener, Transition};
use super::names::{
    BREAKER_DESCRIPTIONS, BREAKER_STATE, CALL_DURATION, CALLS, DURATION_BUCKETS, FAILURE_RATIO,
    MetricType, RECOVERY, RECOVERY_BUCKETS, SLOW_CALLS, STATE_SINCE, TRANSITIONS,
};
use super::state::State;

/// Exports the breakers it is attached to, as both a transition [`Listener`] and a
/// [`CallListener`]:
///
/// ```
/// use breakerbox::breaker::BreakerMetrics;
/// use breakerbox::{Breaker, BreakerConfig};
///
/// let tmdb = Breaker::builder("tmdb", BreakerConfig::default())
///     .listener(BreakerMetrics::shared())
///     .call_listener(BreakerMetrics::shared())
///     .build();
/// BreakerMetrics::describe();
/// BreakerMetrics::refresh(&tmdb); // before each scrape
/// ```
#[derive(Debug, Default, Clone, Copy)]
#[non_exhaustive]
pub struct BreakerMetrics;

/// The `outcome` label of the calls that ran.
const PERMITTED: [&str; 3] = ["success", "failure", "timeout"];

impl BreakerMetrics {
    /// The latency histogram's name, for a recorder's per-metric buckets.
    pub const CALL_DURATION: &'static str = CALL_DURATION;
    /// The gateway's latency buckets in seconds (1 ms … 10 s): give them to the recorder for
    /// [`CALL_DURATION`](Self::CALL_DURATION) so the dashboards' quantiles match.
    pub const DURATION_BUCKETS: &'static [f64] = &DURATION_BUCKETS;
    /// The recovery histogram's name.
    pub const RECOVERY: &'static str = RECOVERY;
    /// The gateway's recovery buckets in seconds (1 s … 1 day).
    pub const RECOVERY_BUCKETS: &'static [f64] = &RECOVERY_BUCKETS;

    /// A handle to attach as a listener and a call listener.
    pub fn shared() -> Arc<BreakerMetrics> {
        Arc::new(BreakerMetrics)
    }

    /// Gives every breaker metric its type and `# HELP` text; call once after installing the
    /// recorder (`promtool check metrics` wants the help).
    pub fn describe() {
        for (name, kind, help) in BREAKER_DESCRIPTIONS {
            match kind {
                MetricType::Counter => ::metrics::describe_counter!(name, help),
                MetricType::Gauge => ::metrics::describe_gauge!(name, help),
                MetricType::Histogram => ::metrics::describe_histogram!(name, help),
            }
        }
    }

    /// Sets the gauges of `breaker` from its snapshot (state, time in state, failure ratio)
    /// and makes its call counters exist at 0, so a scrape shows every series from the start.
    pub fn refresh(breaker: &Breaker) {
        let snapshot = breaker.snapshot();
        let name = &snapshot.name;
        show_state(name, snapshot.state);
        let since = snapshot
            .state_changed_at
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        ::metrics::gauge!(STATE_SINCE, "breaker" => Arc::clone(name)).set(since.as_secs_f64());
        ::metrics::gauge!(FAILURE_RATIO, "breaker" => Arc::clone(name))
            .set(snapshot.failure_ratio.unwrap_or(-1.0));
        for outcome in PERMITTED.into_iter().chain(["rejected"]) {
            ::metrics::counter!(CALLS, "breaker" => Arc::clone(name), "outcome" => outcome)
                .increment(0);
        }
        ::metrics::counter!(SLOW_CALLS, "breaker" => Arc::clone(name)).increment(0);
    }
}

/// 1 for `current`, 0 for every other state.
fn show_state(name: &Arc<str>, current: State) {
    for state in State::ALL {
        let value = if state == current { 1.0 } else { 0.0 };
        ::metrics::gauge!(BREAKER_STATE, "breaker" => Arc::clone(name), "state" => state.as_str())
            .set(value);
    }
}

impl Listener for BreakerMetrics {
    fn on_transition(&self, t: &Transition) {
        show_state(&t.breaker, t.to);
        let since = t.wall.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        ::metrics::gauge!(STATE_SINCE, "breaker" => Arc::clone(&t.breaker))
            .set(since.as_secs_f64());
        ::metrics::counter!(
            TRANSITIONS,
            "breaker" => Arc::clone(&t.breaker),
            "from" => t.from.as_str(),
            "to" => t.to.as_str()
        )
        .increment(1);
        if let Some(took) = t.recovery {
            ::metrics::histogram!(RECOVERY, "breaker" => Arc::clone(&t.breaker))
                .record(took.as_secs_f64());
        }
    }
}

impl CallListener for BreakerMetrics {
    fn on_call(&self, breaker: &str, event: CallEvent, took: Option<Duration>) {
        // An ignored call is no outcome: the gateway does not count it either.
        if event == CallEvent::Ignored {
            return;
        }
        let name = breaker.to_owned();
        let outcome = event.as_str();
        ::metrics::counter!(CALLS, "breaker" => name.clone(), "outcome" => outcome).increment(1);
        if let Some(took) = took {
            ::metrics::histogram!(CALL_DURATION, "breaker" => name.clone(), "outcome" => outcome)
                .record(took.as_secs_f64());
        }
        if event.is_slow() {
            ::metrics::counter!(SLOW_CALLS, "breaker" => name).increment(1);
        }
    }
}
