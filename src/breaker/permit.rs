//! Permits, outcomes and rejections: what a caller holds around one call.

use std::borrow::Borrow;
use std::fmt;
use std::time::Duration;

use super::circuit::Breaker;
use super::clock::Nanos;
use super::state::State;

/// How a permitted call ended, as far as the breaker is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// The dependency did its job (for HTTP: any status outside the failure set, 4xx included).
    Success,
    /// The dependency failed (connection error, a status in the failure set).
    Failure,
    /// The call ran out of time.
    Timeout,
    /// The dependency failed and asked to be left alone for this long (`Retry-After` on 429 or
    /// 503). With `honor_retry_after` the breaker opens for that long, capped.
    RetryAfter(Duration),
    /// Nothing can be concluded (the caller went away, the call was cancelled): nothing is
    /// recorded and a half-open probe slot is handed back.
    Ignored,
}

/// What a permit remembers of its admission.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket {
    pub(crate) generation: u64,
    pub(crate) probe: bool,
    pub(crate) started: Nanos,
}

impl Ticket {
    /// A closed-state admission with no start time (slow calls not tracked).
    #[inline]
    pub(crate) fn closed(generation: u64) -> Self {
        Self {
            generation,
            probe: false,
            started: Nanos::ZERO,
        }
    }
}

/// Leave to make one call. Report the outcome with one of its methods; a permit dropped without
/// an outcome (a cancelled future, a panic) counts as [`Outcome::Ignored`] and frees its
/// half-open slot, so cancellation can never wedge a breaker.
///
/// `B` is `&Breaker` from [`Breaker::try_acquire`] or `Arc<Breaker>` from
/// [`Breaker::try_acquire_owned`].
#[must_use = "a permit must be given the call's outcome"]
pub struct Permit<B: Borrow<Breaker>> {
    breaker: B,
    ticket: Ticket,
    settled: bool,
}

impl<B: Borrow<Breaker>> Permit<B> {
    pub(crate) fn new(breaker: B, ticket: Ticket) -> Self {
        Self {
            breaker,
            ticket,
            settled: false,
        }
    }

    /// The breaker that issued this permit.
    pub fn breaker(&self) -> &Breaker {
        self.breaker.borrow()
    }

    /// Whether this call is a half-open probe.
    pub fn is_probe(&self) -> bool {
        self.ticket.probe
    }

    /// Reports the outcome; with slow-call tracking on, the duration is measured from the
    /// permit's issue on the breaker's clock.
    #[inline]
    pub fn record(mut self, outcome: Outcome) {
        self.settled = true;
        self.breaker.borrow().record(&self.ticket, outcome, None);
    }

    /// Reports the outcome with the call's duration as the caller measured it.
    pub fn record_timed(mut self, outcome: Outcome, elapsed: Duration) {
        self.settled = true;
        self.breaker
            .borrow()
            .record(&self.ticket, outcome, Some(elapsed));
    }

    /// Reports a success.
    #[inline]
    pub fn success(self) {
        self.record(Outcome::Success);
    }

    /// Reports a failure.
    pub fn failure(self) {
        self.record(Outcome::Failure);
    }

    /// Reports a timeout.
    pub fn timeout(self) {
        self.record(Outcome::Timeout);
    }

    /// Reports that nothing can be concluded from this call.
    pub fn ignore(self) {
        self.record(Outcome::Ignored);
    }
}

impl<B: Borrow<Breaker>> Drop for Permit<B> {
    fn drop(&mut self) {
        if !self.settled {
            self.breaker.borrow().release(&self.ticket);
        }
    }
}

impl<B: Borrow<Breaker>> fmt::Debug for Permit<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("breaker", self.breaker().name())
            .field("generation", &self.ticket.generation)
            .field("probe", &self.ticket.probe)
            .finish()
    }
}

/// A call the breaker turned away. A plain value: cheap to make, no backtrace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejected {
    state: State,
    retry_after: Option<Duration>,
}

impl Rejected {
    pub(crate) fn new(state: State, retry_after: Option<Duration>) -> Self {
        Self { state, retry_after }
    }

    /// The state that rejected the call: open, forced open, or half-open with every probe slot
    /// taken.
    pub fn state(&self) -> State {
        self.state
    }

    /// Time left until the breaker turns half-open; `None` when it depends on other calls
    /// (half-open) or on an operator (forced open).
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "circuit breaker is {}", self.state)?;
        if let Some(after) = self.retry_after {
            write!(f, "; retry after {after:?}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Rejected {}
