//! Transition events and the one mechanism that delivers them: [`Listener`]s.
//!
//! The core never logs or exports; whoever wants to know about transitions subscribes. Listeners
//! run on the thread that caused the transition, after the breaker's lock is released.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::clock::Nanos;
use super::state::{State, TransitionReason};

/// One state change of one breaker.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Transition {
    /// The breaker's name.
    pub breaker: Arc<str>,
    /// State before.
    pub from: State,
    /// State after.
    pub to: State,
    /// Why it happened.
    pub reason: TransitionReason,
    /// The breaker's generation after the change; it grows at every transition (and at every
    /// reset, force-open or disable that leaves the state as it was), so listeners on several
    /// threads can put events back in order.
    pub generation: u64,
    /// When it happened, on the breaker's clock.
    pub at: Nanos,
    /// When it happened, in wall time.
    pub wall: SystemTime,
    /// When an open breaker will turn half-open (only when `to` is [`State::Open`]).
    pub open_until: Option<Nanos>,
    /// When `to` is [`State::Closed`] after a trip: the time from the trip (closed → open) to
    /// this close, whatever cycles of open and half-open lay between.
    pub recovery: Option<Duration>,
}

/// Receives every transition of the breakers it is attached to.
pub trait Listener: Send + Sync + 'static {
    /// Called once per transition, outside the breaker's lock. Must not block for long.
    fn on_transition(&self, transition: &Transition);
}

impl<F> Listener for F
where
    F: Fn(&Transition) + Send + Sync + 'static,
{
    fn on_transition(&self, transition: &Transition) {
        self(transition)
    }
}

/// What became of one call, for [`CallListener`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CallEvent {
    /// The call succeeded (`slow`: it took at least `slow_call_duration`).
    Success {
        /// Slower than `slow_call_duration`.
        slow: bool,
    },
    /// The call failed (an error, or a `Retry-After` answer).
    Failure {
        /// Slower than `slow_call_duration`.
        slow: bool,
    },
    /// The call ran out of time.
    Timeout {
        /// Slower than `slow_call_duration`.
        slow: bool,
    },
    /// Nothing could be concluded (reported as ignored, or the permit dropped unreported).
    Ignored,
    /// The breaker turned the call away.
    Rejected,
}

impl CallEvent {
    /// `success`, `failure`, `timeout`, `ignored` or `rejected`.
    pub const fn as_str(&self) -> &'static str {
        match self {
            CallEvent::Success { .. } => "success",
            CallEvent::Failure { .. } => "failure",
            CallEvent::Timeout { .. } => "timeout",
            CallEvent::Ignored => "ignored",
            CallEvent::Rejected => "rejected",
        }
    }

    /// Whether the call took at least `slow_call_duration`.
    pub const fn is_slow(&self) -> bool {
        matches!(
            self,
            CallEvent::Success { slow: true }
                | CallEvent::Failure { slow: true }
                | CallEvent::Timeout { slow: true }
        )
    }
}

/// Receives every call of the breakers it is attached to (beside the transitions a
/// [`Listener`] receives). Called on the caller's thread, outside any lock: must be cheap.
pub trait CallListener: Send + Sync + 'static {
    /// One call's end: `breaker` is the breaker's name, `took` how long the permitted call
    /// ran (`None` for a rejection, which never ran).
    fn on_call(&self, breaker: &str, event: CallEvent, took: Option<Duration>);
}

impl<F> CallListener for F
where
    F: Fn(&str, CallEvent, Option<Duration>) + Send + Sync + 'static,
{
    fn on_call(&self, breaker: &str, event: CallEvent, took: Option<Duration>) {
        self(breaker, event, took)
    }
}

/// The call listeners of a breaker: none unless asked for, so a breaker nobody listens to pays
/// one branch per call.
#[derive(Clone, Default)]
pub(crate) struct CallListeners(Option<Arc<[Arc<dyn CallListener>]>>);

impl CallListeners {
    pub(crate) fn with(&self, listener: Arc<dyn CallListener>) -> Self {
        let current = self.0.iter().flat_map(|all| all.iter().cloned());
        Self(Some(current.chain([listener]).collect()))
    }

    /// Whether anyone listens.
    pub(crate) fn any(&self) -> bool {
        self.0.is_some()
    }

    #[inline]
    pub(crate) fn notify(
        &self,
        breaker: &str,
        took: Option<Duration>,
        event: impl FnOnce() -> CallEvent,
    ) {
        if let Some(all) = &self.0 {
            let event = event();
            for listener in all.iter() {
                listener.on_call(breaker, event, took);
            }
        }
    }
}

impl fmt::Debug for CallListeners {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "CallListeners({})",
            self.0.as_ref().map_or(0, |all| all.len())
        )
    }
}

/// The listeners of a breaker, fixed when it is built.
#[derive(Clone, Default)]
pub(crate) struct Listeners(Arc<[Arc<dyn Listener>]>);

impl Listeners {
    /// These listeners and one more.
    pub(crate) fn with(&self, listener: Arc<dyn Listener>) -> Self {
        Self(self.0.iter().cloned().chain([listener]).collect())
    }

    pub(crate) fn notify(&self, transition: &Transition) {
        for listener in self.0.iter() {
            listener.on_transition(transition);
        }
    }
}

impl fmt::Debug for Listeners {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Listeners({})", self.0.len())
    }
}
