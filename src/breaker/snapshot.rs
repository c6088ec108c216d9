//! A breaker's figures at one moment, for admin APIs, health reports and metrics.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::state::{State, TransitionReason};
use super::window::Counts;

/// Every figure of one breaker at one moment. Lifetime totals count since the breaker was built
/// or last reset; `window` and the rates cover the rolling window only.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Snapshot {
    /// The breaker's name.
    pub name: Arc<str>,
    /// Current state.
    pub state: State,
    /// Transitions so far.
    pub generation: u64,
    /// Calls with an outcome plus rejected calls.
    pub total_requests: u64,
    /// Calls that succeeded.
    pub successful_requests: u64,
    /// Calls that failed (timeouts excluded).
    pub failed_requests: u64,
    /// Calls that timed out.
    pub timeouts: u64,
    /// Calls turned away.
    pub rejected_requests: u64,
    /// Calls slower than `slow_call_duration`.
    pub slow_requests: u64,
    /// Failures and timeouts since the last success.
    pub consecutive_failures: u32,
    /// Outcome counts over the rolling window.
    pub window: Counts,
    /// Failed share of the window's calls, 0–1; `None` until the window holds `minimum_calls`.
    pub failure_ratio: Option<f64>,
    /// When the last failure or timeout was recorded.
    pub last_failure_time: Option<SystemTime>,
    /// When the last success was recorded.
    pub last_success_time: Option<SystemTime>,
    /// When the current state began.
    pub state_changed_at: SystemTime,
    /// When an open breaker turns half-open.
    pub open_until: Option<SystemTime>,
    /// Time left until an open breaker turns half-open.
    pub retry_after: Option<Duration>,
    /// Half-open probes in flight.
    pub half_open_probes: u32,
    /// Trips since the breaker last closed.
    pub consecutive_trips: u32,
    /// Why the breaker last tripped (kept until it is reset).
    pub last_trip: Option<TransitionReason>,
    /// How long the last recovery took: from the trip (closed → open) to the next close.
    pub last_recovery: Option<Duration>,
    /// When the breaker last closed after a trip.
    pub last_recovered_at: Option<SystemTime>,
}

impl Snapshot {
    /// Failed share of the window's calls in percent (0 with no calls).
    pub fn error_rate(&self) -> f64 {
        let calls = self.window.calls();
        if calls == 0 {
            0.0
        } else {
            self.window.failed() as f64 * 100.0 / calls as f64
        }
    }
}
