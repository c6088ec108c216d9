//! The breaker's states and the reasons it moves between them.

use std::fmt;
use std::time::Duration;

/// Where a breaker stands. The names are the ones used in JSON, metric labels and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum State {
    /// Calls pass; outcomes are counted and may trip the breaker.
    Closed,
    /// Calls are rejected until the open duration has passed.
    Open,
    /// A limited number of probe calls pass to test whether the dependency has recovered.
    HalfOpen,
    /// Calls are rejected until an operator resets the breaker.
    ForcedOpen,
    /// Calls always pass; outcomes are counted but never trip the breaker.
    Disabled,
}

impl State {
    /// Every state, in a stable order (for initialising metric series).
    pub const ALL: [State; 5] = [
        State::Closed,
        State::Open,
        State::HalfOpen,
        State::ForcedOpen,
        State::Disabled,
    ];

    /// The state's name: `closed`, `open`, `half_open`, `forced_open` or `disabled`.
    pub const fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half_open",
            State::ForcedOpen => "forced_open",
            State::Disabled => "disabled",
        }
    }

    pub(crate) const fn code(self) -> u64 {
        self as u64
    }

    pub(crate) const fn from_code(code: u64) -> State {
        match code {
            0 => State::Closed,
            1 => State::Open,
            2 => State::HalfOpen,
            3 => State::ForcedOpen,
            _ => State::Disabled,
        }
    }

    /// Whether calls are turned away in this state (half-open turns away only extra probes).
    pub const fn rejects(self) -> bool {
        matches!(self, State::Open | State::ForcedOpen)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a transition happened, with the figures that decided it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TransitionReason {
    /// `count` consecutive failures reached `failure_threshold`.
    ConsecutiveFailures {
        /// Consecutive failures when the breaker tripped.
        count: u32,
    },
    /// `failed` of `calls` in the window reached `failure_rate_threshold`.
    FailureRate {
        /// Failures and timeouts in the window.
        failed: u64,
        /// Calls in the window.
        calls: u64,
    },
    /// `slow` of `calls` in the window reached `slow_call_rate_threshold`.
    SlowCallRate {
        /// Slow calls in the window.
        slow: u64,
        /// Calls in the window.
        calls: u64,
    },
    /// The dependency asked to be left alone for `duration` (`Retry-After`).
    RetryAfter {
        /// How long the breaker opens for, after capping.
        duration: Duration,
    },
    /// A tripped breaker's open duration has passed.
    OpenDurationElapsed,
    /// Enough half-open probes succeeded.
    ProbesSucceeded,
    /// A half-open probe failed.
    ProbeFailed,
    /// No probe decided within `half_open_max_wait`.
    HalfOpenMaxWait,
    /// A forced-open state with an end reached it.
    ForcedOpenElapsed,
    /// An operator or program moved the breaker to half-open.
    ManualHalfOpen,
    /// An operator or program tripped the breaker on purpose.
    ManualTrip,
    /// An operator or program reset the breaker.
    Reset,
    /// An operator or program forced the breaker open.
    ForcedOpen,
    /// An operator or program disabled the breaker.
    Disabled,
}

impl TransitionReason {
    /// The reason's stable name, used as a metric label and span attribute value.
    pub const fn as_str(&self) -> &'static str {
        match self {
            TransitionReason::ConsecutiveFailures { .. } => "consecutive_failures",
            TransitionReason::FailureRate { .. } => "failure_rate",
            TransitionReason::SlowCallRate { .. } => "slow_call_rate",
            TransitionReason::RetryAfter { .. } => "retry_after",
            TransitionReason::OpenDurationElapsed => "open_duration_elapsed",
            TransitionReason::ProbesSucceeded => "probes_succeeded",
            TransitionReason::ProbeFailed => "probe_failed",
            TransitionReason::HalfOpenMaxWait => "half_open_max_wait",
            TransitionReason::ForcedOpenElapsed => "forced_open_elapsed",
            TransitionReason::ManualHalfOpen => "manual_half_open",
            TransitionReason::ManualTrip => "manual_trip",
            TransitionReason::Reset => "reset",
            TransitionReason::ForcedOpen => "forced_open",
            TransitionReason::Disabled => "disabled",
        }
    }
}

impl fmt::Display for TransitionReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransitionReason::ConsecutiveFailures { count } => {
                write!(f, "{count} consecutive failures")
            }
            TransitionReason::FailureRate { failed, calls } => {
                write!(f, "{failed} of {calls} calls failed")
            }
            TransitionReason::SlowCallRate { slow, calls } => {
                write!(f, "{slow} of {calls} calls were slow")
            }
            TransitionReason::RetryAfter { duration } => {
                write!(f, "dependency asked to retry after {duration:?}")
            }
            other => f.write_str(&other.as_str().replace('_', " ")),
        }
    }
}

/// State and generation packed in one word, so a single atomic load tells both.
pub(crate) fn pack(state: State, generation: u64) -> u64 {
    (generation << 8) | state.code()
}

pub(crate) fn unpack(word: u64) -> (State, u64) {
    (State::from_code(word & 0xff), word >> 8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packing_round_trips() {
        for state in State::ALL {
            assert_eq!(unpack(pack(state, 12345)), (state, 12345));
            assert_eq!(State::from_code(state.code()), state);
        }
    }

    #[test]
    fn reasons_read_well() {
        assert_eq!(
            TransitionReason::FailureRate {
                failed: 6,
                calls: 10
            }
            .to_string(),
            "6 of 10 calls failed"
        );
        assert_eq!(TransitionReason::ProbeFailed.to_string(), "probe failed");
        assert_eq!(TransitionReason::ProbeFailed.as_str(), "probe_failed");
    }
}
