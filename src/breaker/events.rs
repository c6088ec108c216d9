//! Transition events and the one mechanism that delivers them: [`Listener`]s.
//!
//! The core never logs or exports; whoever wants to know about transitions subscribes. Listeners
//! run on the thread that caused the transition, after the breaker's lock is released.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

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
