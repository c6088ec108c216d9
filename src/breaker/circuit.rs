//! The breaker: admission, outcome recording and the state machine.
//!
//! The hot path touches atomics only. The state and its generation share one word, so admitting
//! a call in the closed state is a single load. Every transition happens under one small mutex
//! that re-checks the word it expects, so two threads that see the same trip condition produce
//! one transition; listeners are told after the mutex is released.

use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::*};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::clock::{Clock, Nanos, SharedReading, SystemClock, duration_nanos};
use super::config::{BreakerConfig, ConsecutiveFailuresWindow};
use super::events::{CallEvent, CallListener, CallListeners, Listener, Listeners, Transition};
use super::jitter::{Jitter, SplitMix};
use super::permit::{Outcome, Permit, Rejected, Ticket};
use super::snapshot::Snapshot;
use super::state::{State, TransitionReason, pack, unpack};
use super::window::{Counts, Tally, Window};

/// A circuit breaker guarding one dependency.
///
/// Ask for a [`Permit`] before each call and report the outcome on it; a rejected call gets a
/// [`Rejected`] value saying when to try again. See the [module docs](super) for the rules.
pub struct Breaker {
    // Read on every call.
    word: AtomicU64,
    open_until: AtomicU64,
    consecutive_failures: AtomicU32,
    /// Whether calls are timed: for the slow-call rule, or for call listeners.
    timed: bool,
    /// The clock's shared reading, when it has one, read without a dynamic call.
    reading: Option<Arc<SharedReading>>,
    window: Window,
    // Probe bookkeeping: the low 32 bits of the generation beside a count, so a permit from an
    // earlier half-open cycle can neither take nor free a slot of the current one.
    probes: AtomicU64,
    probe_successes: AtomicU64,
    last_success: AtomicU64,
    last_failure: AtomicU64,
    config: BreakerConfig,
    name: Arc<str>,
    clock: Arc<dyn Clock>,
    jitter: Arc<dyn Jitter>,
    break_duration: Option<BreakDuration>,
    listeners: Listeners,
    call_listeners: CallListeners,
    cold: Mutex<Cold>,
}

/// What a break-duration function is told about a trip (Polly's `BreakDurationGenerator`,
/// resilience4j's `IntervalFunction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Trip {
    /// 1 for the first trip since the breaker last closed, then 2, 3…
    pub consecutive: u32,
    /// Why it tripped.
    pub reason: TransitionReason,
    /// The open duration the configuration gives (`open_duration`, grown by
    /// `open_duration_multiplier` up to `open_duration_max`, with jitter).
    pub configured: Duration,
}

/// A function choosing each open duration.
#[derive(Clone)]
struct BreakDuration(Arc<dyn Fn(&Trip) -> Duration + Send + Sync>);

impl fmt::Debug for BreakDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BreakDuration(fn)")
    }
}

/// What only transitions touch.
#[derive(Debug)]
struct Cold {
    state_changed_at: Nanos,
    consecutive_trips: u32,
    last_trip: Option<TransitionReason>,
    /// When the breaker last left closed for open, until it closes again.
    tripped_at: Option<Nanos>,
    /// When it last closed after a trip, and how long after the trip.
    last_recovery: Option<(Nanos, Duration)>,
}

/// Builds a [`Breaker`] with a chosen clock, jitter source and listeners.
#[must_use]
#[derive(Debug)]
pub struct BreakerBuilder {
    name: Arc<str>,
    config: BreakerConfig,
    clock: Arc<dyn Clock>,
    jitter: Arc<dyn Jitter>,
    break_duration: Option<BreakDuration>,
    listeners: Listeners,
    call_listeners: CallListeners,
}

impl BreakerBuilder {
    /// Adds a listener told of every call's end (success, failure, timeout, ignored,
    /// rejected, and whether it was slow). Without one, calls cost one branch more, no more.
    pub fn call_listener(mut self, listener: Arc<dyn CallListener>) -> Self {
        self.call_listeners = self.call_listeners.with(listener);
        self
    }

    /// Chooses each open duration with `f` instead of the configuration's growth (a trip that
    /// honours `Retry-After` still opens for that long).
    pub fn break_duration(mut self, f: impl Fn(&Trip) -> Duration + Send + Sync + 'static) -> Self {
        self.break_duration = Some(BreakDuration(Arc::new(f)));
        self
    }

    /// The clock the breaker reads (default: [`SystemClock`]).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The randomness for grown open durations (default: [`SplitMix`]).
    pub fn jitter(mut self, jitter: Arc<dyn Jitter>) -> Self {
        self.jitter = jitter;
        self
    }

    /// Adds a listener told of every transition.
    pub fn listener(mut self, listener: Arc<dyn Listener>) -> Self {
        self.listeners = self.listeners.with(listener);
        self
    }

    pub(crate) fn listeners(mut self, listeners: &Listeners, calls: &CallListeners) -> Self {
        self.listeners = listeners.clone();
        self.call_listeners = calls.clone();
        self
    }

    /// The breaker, closed.
    pub fn build(self) -> Breaker {
        let now = self.clock.now();
        Breaker {
            word: AtomicU64::new(pack(State::Closed, 0)),
            open_until: AtomicU64::new(0),
            consecutive_failures: AtomicU32::new(0),
            timed: self.config.slow_call_duration().is_some() || self.call_listeners.any(),
            reading: self.clock.shared_reading(),
            window: Window::new(&self.config),
            probes: AtomicU64::new(0),
            probe_successes: AtomicU64::new(0),
            last_success: AtomicU64::new(0),
            last_failure: AtomicU64::new(0),
            config: self.config,
            name: self.name,
            clock: self.clock,
            jitter: self.jitter,
            break_duration: self.break_duration,
            listeners: self.listeners,
            call_listeners: self.call_listeners,
            cold: Mutex::new(Cold {
                state_changed_at: now,
                consecutive_trips: 0,
                last_trip: None,
                tripped_at: None,
                last_recovery: None,
            }),
        }
    }
}

fn tagged(generation: u64, count: u32) -> u64 {
    (generation << 32) | u64::from(count)
}

fn tag_matches(word: u64, generation: u64) -> bool {
    (word >> 32) == (generation & u64::from(u32::MAX))
}

/// A timestamp stored so that 0 means "never".
fn stamp(now: Nanos) -> u64 {
    now.0.saturating_add(1)
}

fn unstamp(stored: u64) -> Option<Nanos> {
    stored.checked_sub(1).map(Nanos)
}

impl Breaker {
    /// A breaker on the system clock with no listeners.
    pub fn new(name: impl Into<Arc<str>>, config: BreakerConfig) -> Breaker {
        Self::builder(name, config).build()
    }

    /// A builder for a breaker with its own clock, jitter or listeners.
    pub fn builder(name: impl Into<Arc<str>>, config: BreakerConfig) -> BreakerBuilder {
        BreakerBuilder {
            name: name.into(),
            config,
            clock: Arc::new(SystemClock::new()),
            jitter: Arc::new(SplitMix::default()),
            break_duration: None,
            listeners: Listeners::default(),
            call_listeners: CallListeners::default(),
        }
    }

    #[inline]
    fn now(&self) -> Nanos {
        match &self.reading {
            Some(reading) => reading.get(),
            None => self.clock.now(),
        }
    }

    /// The breaker's name.
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// The breaker's settings.
    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }

    /// The clock the breaker reads.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The current state. A transition that is due is applied first (an open breaker past its
    /// deadline reads half-open), so a read never reports a state that has ended, whether or not
    /// a runtime calls [`tick`](Self::tick) on time.
    pub fn state(&self) -> State {
        // A read applies the transition that is due first (`tick` is a load or two when none is).
        self.tick();
        unpack(self.word.load(Acquire)).0
    }

    /// Asks to make a call. The permit must be given the call's outcome; dropped without one,
    /// the call counts as ignored.
    #[inline]
    pub fn try_acquire(&self) -> Result<Permit<&Breaker>, Rejected> {
        // Kept small enough to inline into the caller, so the ticket never leaves registers.
        let word = self.word.load(Acquire);
        if !self.timed && unpack(word).0 == State::Closed {
            return Ok(Permit::new(self, Ticket::closed(unpack(word).1)));
        }
        self.admit().map(|ticket| Permit::new(self, ticket))
    }

    /// Like [`try_acquire`](Self::try_acquire), with a permit that owns a handle to the breaker
    /// (for futures that must be `'static`).
    #[inline]
    pub fn try_acquire_owned(self: &Arc<Self>) -> Result<Permit<Arc<Breaker>>, Rejected> {
        self.admit()
            .map(|ticket| Permit::new(Arc::clone(self), ticket))
    }

    /// When the breaker will next change state by itself (an open breaker turning half-open, a
    /// half-open one re-opening past `half_open_max_wait`), so a runtime can wake exactly then
    /// and call [`tick`](Self::tick).
    pub fn next_deadline(&self) -> Option<Nanos> {
        match unpack(self.word.load(Acquire)).0 {
            State::Open => Some(Nanos(self.open_until.load(Acquire))),
            State::HalfOpen if self.config.half_open_max_wait().is_some() => {
                Some(Nanos(self.open_until.load(Acquire)))
            }
            State::ForcedOpen => self.forced_until(),
            _ => None,
        }
    }

    /// Time left until an open breaker turns half-open: what its rejections give as
    /// `Retry-After`. `None` unless open; zero once the deadline has passed and before the next
    /// call or [`tick`](Self::tick) applies it.
    pub fn until_half_open(&self) -> Option<Duration> {
        let state = unpack(self.word.load(Acquire)).0;
        self.until_half_open_at(state, self.now())
    }

    /// [`until_half_open`](Self::until_half_open) for a breaker read as `state` at `now`.
    fn until_half_open_at(&self, state: State, now: Nanos) -> Option<Duration> {
        let until = match state {
            State::Open => Nanos(self.open_until.load(Acquire)),
            State::ForcedOpen => self.forced_until()?,
            _ => return None,
        };
        Some(until.saturating_duration_since(now))
    }

    /// Applies the transition that is due by now, if any; returns whether one happened.
    pub fn tick(&self) -> bool {
        let word = self.word.load(Acquire);
        let Some((to, reason)) = self.due(unpack(word).0) else {
            return false;
        };
        let now = self.now();
        now.0 >= self.open_until.load(Acquire) && self.transition(word, to, reason, now)
    }

    /// The transition a breaker in `state` makes by itself when its deadline passes, if any.
    /// (`open_until` holds the deadline of either: the end of the open duration, or of the
    /// half-open wait.)
    fn due(&self, state: State) -> Option<(State, TransitionReason)> {
        match state {
            State::Open => Some((State::HalfOpen, TransitionReason::OpenDurationElapsed)),
            State::HalfOpen if self.config.half_open_max_wait().is_some() => {
                Some((State::Open, TransitionReason::HalfOpenMaxWait))
            }
            State::ForcedOpen if self.forced_until().is_some() => {
                Some((State::HalfOpen, TransitionReason::ForcedOpenElapsed))
            }
            _ => None,
        }
    }

    /// The end of a forced-open state, if it has one (read only while forced open).
    fn forced_until(&self) -> Option<Nanos> {
        let until = self.open_until.load(Acquire);
        (until != u64::MAX).then_some(Nanos(until))
    }

    fn admit(&self) -> Result<Ticket, Rejected> {
        // Each pass either admits, rejects, or follows a transition made meanwhile; transitions
        // are finite, so this ends.
        loop {
            let word = self.word.load(Acquire);
            let (state, generation) = unpack(word);
            match state {
                State::Closed | State::Disabled => return Ok(self.ticket(generation, false)),
                State::Open => {
                    let now = self.now();
                    let left = self.until_half_open_at(State::Open, now);
                    if left.is_some_and(|left| !left.is_zero()) {
                        return Err(self.reject(State::Open, left));
                    }
                    self.transition(
                        word,
                        State::HalfOpen,
                        TransitionReason::OpenDurationElapsed,
                        now,
                    );
                }
                State::HalfOpen => {
                    if self.config.half_open_max_wait().is_some()
                        && self.now().0 >= self.open_until.load(Acquire)
                    {
                        self.tick();
                        continue;
                    }
                    let probes = self.probes.load(Acquire);
                    if !tag_matches(probes, generation) {
                        continue;
                    }
                    if probes as u32 >= self.config.half_open_max_calls() {
                        return Err(self.reject(State::HalfOpen, None));
                    }
                    if self
                        .probes
                        .compare_exchange_weak(probes, probes + 1, AcqRel, Relaxed)
                        .is_ok()
                    {
                        return Ok(self.ticket(generation, true));
                    }
                }
                State::ForcedOpen => {
                    let now = self.now();
                    match self.until_half_open_at(State::ForcedOpen, now) {
                        Some(left) if left.is_zero() => {
                            self.tick();
                        }
                        left => return Err(self.reject(State::ForcedOpen, left)),
                    }
                }
            }
        }
    }

    #[inline]
    fn ticket(&self, generation: u64, probe: bool) -> Ticket {
        let started = if self.timed { self.now() } else { Nanos::ZERO };
        Ticket {
            generation,
            probe,
            started,
        }
    }

    fn reject(&self, state: State, retry_after: Option<Duration>) -> Rejected {
        self.window.record_rejection();
        self.call_listeners
            .notify(&self.name, None, || CallEvent::Rejected);
        Rejected::new(state, retry_after)
    }

    /// Hands back a probe slot of the ticket's half-open cycle, if it still is the current one.
    fn release_probe(&self, ticket: &Ticket) {
        if !ticket.probe {
            return;
        }
        let mut probes = self.probes.load(Acquire);
        while tag_matches(probes, ticket.generation) && probes as u32 > 0 {
            match self
                .probes
                .compare_exchange_weak(probes, probes - 1, AcqRel, Acquire)
            {
                Ok(_) => return,
                Err(actual) => probes = actual,
            }
        }
    }

    pub(crate) fn release(&self, ticket: &Ticket) {
        self.release_probe(ticket);
        let took = self.took(ticket, None, self.now());
        self.call_listeners
            .notify(&self.name, took, || CallEvent::Ignored);
    }

    #[inline]
    pub(crate) fn record(&self, ticket: &Ticket, outcome: Outcome, elapsed: Option<Duration>) {
        let now = self.now();
        let word = self.word.load(Acquire);
        // The common case first: a plain success in the cycle that admitted it.
        if outcome == Outcome::Success
            && !ticket.probe
            && !self.timed
            && word == pack(State::Closed, ticket.generation)
        {
            self.count(now, outcome, false);
            return;
        }
        self.release_probe(ticket);
        let took = self.took(ticket, elapsed, now);
        if outcome == Outcome::Ignored {
            self.call_listeners
                .notify(&self.name, took, || CallEvent::Ignored);
            return;
        }
        let slow = self.is_slow(ticket, elapsed, now);
        // Told even when late: the call happened, though it decides nothing any more.
        self.call_listeners
            .notify(&self.name, took, || match outcome {
                Outcome::Success => CallEvent::Success { slow },
                Outcome::Timeout => CallEvent::Timeout { slow },
                _ => CallEvent::Failure { slow },
            });
        let (state, generation) = unpack(word);
        if generation != ticket.generation {
            // A late outcome from an earlier cycle decides nothing in this one.
            return;
        }
        self.count(now, outcome, slow);
        match state {
            State::Closed
                if outcome != Outcome::Success
                    || (slow && self.config.slow_call_rate_threshold().is_some()) =>
            {
                if let Some(reason) = self.trip_reason(now, outcome) {
                    self.transition(word, State::Open, reason, now);
                }
            }
            State::HalfOpen => self.judge_probe(word, outcome, slow, now),
            _ => {}
        }
    }

    /// How long the call took, when calls are timed.
    fn took(&self, ticket: &Ticket, elapsed: Option<Duration>, now: Nanos) -> Option<Duration> {
        elapsed.or_else(|| {
            self.timed
                .then(|| now.saturating_duration_since(ticket.started))
        })
    }

    fn is_slow(&self, ticket: &Ticket, elapsed: Option<Duration>, now: Nanos) -> bool {
        match self.config.slow_call_duration() {
            None => false,
            Some(threshold) => {
                elapsed.unwrap_or_else(|| now.saturating_duration_since(ticket.started))
                    >= threshold
            }
        }
    }

    #[inline(always)]
    fn count(&self, now: Nanos, outcome: Outcome, slow: bool) {
        let tally = match outcome {
            Outcome::Success => Tally::Success,
            Outcome::Timeout => Tally::Timeout,
            Outcome::Failure | Outcome::RetryAfter(_) => Tally::Failure,
            Outcome::Ignored => return,
        };
        self.window.record(now, tally, slow);
        let (last, stamped) = if tally == Tally::Success {
            if self.consecutive_failures.load(Relaxed) != 0 {
                self.consecutive_failures.store(0, Relaxed);
            }
            (&self.last_success, stamp(now))
        } else {
            self.consecutive_failures.fetch_add(1, Relaxed);
            (&self.last_failure, stamp(now))
        };
        // Skip the store when the clock has not moved, to keep the line shared between cores.
        if last.load(Relaxed) != stamped {
            last.store(stamped, Relaxed);
        }
    }

    /// The rule that trips a closed breaker after this outcome, if any. A success never trips
    /// on the failure rules (as in gobreaker and Polly): only a failure is judged against the
    /// consecutive-failure and failure-rate rules, so whether a breaker trips never depends on
    /// how long a success took. A slow success is judged against the slow-call rule only.
    fn trip_reason(&self, now: Nanos, outcome: Outcome) -> Option<TransitionReason> {
        if let Outcome::RetryAfter(hint) = outcome
            && self.config.honor_retry_after()
        {
            return Some(TransitionReason::RetryAfter {
                duration: hint.min(self.config.retry_after_cap()),
            });
        }
        let failed = outcome != Outcome::Success;
        let counts = self.window.counts(now);
        let consecutive = self.consecutive_failures(&counts);
        if failed && consecutive >= self.config.failure_threshold() {
            return Some(TransitionReason::ConsecutiveFailures { count: consecutive });
        }
        let calls = counts.calls();
        if calls < u64::from(self.config.minimum_calls()) {
            return None;
        }
        if failed
            && self
                .config
                .failure_rate_threshold()
                .reached_by(counts.failed(), calls)
        {
            return Some(TransitionReason::FailureRate {
                failed: counts.failed(),
                calls,
            });
        }
        match self.config.slow_call_rate_threshold() {
            Some(threshold) if threshold.reached_by(counts.slow, calls) => {
                Some(TransitionReason::SlowCallRate {
                    slow: counts.slow,
                    calls,
                })
            }
            _ => None,
        }
    }

    /// The consecutive failures that count towards `failure_threshold`, given the window's
    /// counts now. A run of failures has no success in it, so when the window holds a success
    /// the whole run came after it and lies inside the window; when it holds none, the run's
    /// part inside the window is the window's failures.
    fn consecutive_failures(&self, window: &Counts) -> u32 {
        let run = self.consecutive_failures.load(Relaxed);
        match self.config.consecutive_failures_window() {
            ConsecutiveFailuresWindow::Unbounded => run,
            ConsecutiveFailuresWindow::Window if window.successes > 0 => run,
            ConsecutiveFailuresWindow::Window => {
                run.min(u32::try_from(window.failed()).unwrap_or(u32::MAX))
            }
        }
    }

    /// A half-open probe's outcome: enough successes close, any failure re-opens. A slow probe
    /// counts as failed when slowness can trip the breaker.
    fn judge_probe(&self, word: u64, outcome: Outcome, slow: bool, now: Nanos) {
        let (_, generation) = unpack(word);
        let failed = match outcome {
            Outcome::Success => slow && self.config.slow_call_rate_threshold().is_some(),
            _ => true,
        };
        if failed {
            let reason = match outcome {
                Outcome::RetryAfter(hint) if self.config.honor_retry_after() => {
                    TransitionReason::RetryAfter {
                        duration: hint.min(self.config.retry_after_cap()),
                    }
                }
                _ => TransitionReason::ProbeFailed,
            };
            self.transition(word, State::Open, reason, now);
            return;
        }
        let mut successes = self.probe_successes.load(Acquire);
        loop {
            if !tag_matches(successes, generation) {
                return;
            }
            match self.probe_successes.compare_exchange_weak(
                successes,
                successes + 1,
                AcqRel,
                Acquire,
            ) {
                Ok(_) => break,
                Err(actual) => successes = actual,
            }
        }
        if successes as u32 + 1 >= self.config.half_open_success_threshold() {
            self.transition(word, State::Closed, TransitionReason::ProbesSucceeded, now);
        }
    }

    fn lock(&self) -> MutexGuard<'_, Cold> {
        // The guarded data stays consistent even if a listener panicked elsewhere.
        self.cold.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Moves from the state in `expected` (state and generation) to `to`. Returns false, doing
    /// nothing, when another thread changed the state first.
    fn transition(&self, expected: u64, to: State, reason: TransitionReason, now: Nanos) -> bool {
        let event = {
            let mut cold = self.lock();
            if self.word.load(Acquire) != expected {
                return false;
            }
            self.enter(&mut cold, expected, to, reason, now, None)
        };
        self.listeners.notify(&event);
        true
    }

    /// Moves from whatever the state is to `to` (operator actions). Returns the transition, or
    /// `None` when the breaker already was in `to` (counters are cleared on reset regardless),
    /// or when a manual trip meets a manual state, which only an operator's reset may end.
    ///
    /// A reset, force-open or disable starts a new generation even when the state stays as it
    /// was, so outcomes of calls admitted before it are dropped (gobreaker's rule): a reset breaker
    /// starts clean, whatever its state was.
    ///
    /// `until` ends a forced-open state by itself (it then turns half-open); `None`: only an
    /// operator ends it.
    fn transition_from_any(
        &self,
        to: State,
        reason: TransitionReason,
        until: Option<Nanos>,
    ) -> Option<Transition> {
        let now = self.now();
        let event = {
            let mut cold = self.lock();
            let word = self.word.load(Acquire);
            if reason == TransitionReason::Reset {
                self.clear_counters(&mut cold);
            }
            let (from, generation) = unpack(word);
            let manual = matches!(from, State::ForcedOpen | State::Disabled);
            if reason == TransitionReason::ManualTrip && manual {
                return None;
            }
            if from == to {
                if to == State::ForcedOpen {
                    self.open_until
                        .store(until.map_or(u64::MAX, |at| at.0), Release);
                }
                self.renew_generation(from, generation);
                return None;
            }
            self.enter(&mut cold, word, to, reason, now, until)
        };
        self.listeners.notify(&event);
        Some(event)
    }

    /// Starts a new generation in the same state: earlier permits' outcomes and probe slots no
    /// longer count. Runs under the transition lock; tells no listener (nothing changed state).
    fn renew_generation(&self, state: State, generation: u64) {
        let generation = generation + 1;
        self.probes.store(tagged(generation, 0), Release);
        self.probe_successes.store(tagged(generation, 0), Release);
        self.word.store(pack(state, generation), Release);
    }

    /// Sets up `to` and publishes it. Runs under the transition lock. `until` is the end of a
    /// forced-open state, if it has one.
    fn enter(
        &self,
        cold: &mut Cold,
        from_word: u64,
        to: State,
        reason: TransitionReason,
        now: Nanos,
        until: Option<Nanos>,
    ) -> Transition {
        let (from, generation) = unpack(from_word);
        let generation = generation + 1;
        let mut open_until = None;
        let mut recovery = None;
        // Retag the probe counters in every transition, so a thread that read the old state
        // cannot take a probe slot once the breaker has moved on.
        self.probes.store(tagged(generation, 0), Release);
        self.probe_successes.store(tagged(generation, 0), Release);
        match to {
            State::Open => {
                cold.consecutive_trips = cold.consecutive_trips.saturating_add(1);
                cold.last_trip = Some(reason);
                // Recovery runs from the first trip to the next close, whatever cycles of open
                // and half-open lie between.
                cold.tripped_at.get_or_insert(now);
                let until = now.saturating_add(self.open_duration(cold.consecutive_trips, reason));
                self.open_until.store(until.0, Release);
                open_until = Some(until);
            }
            State::Closed => {
                self.window.clear();
                self.consecutive_failures.store(0, Relaxed);
                cold.consecutive_trips = 0;
                if let Some(tripped_at) = cold.tripped_at.take() {
                    let took = now.saturating_duration_since(tripped_at);
                    cold.last_recovery = Some((now, took));
                    recovery = Some(took);
                }
            }
            State::HalfOpen => {
                if let Some(wait) = self.config.half_open_max_wait() {
                    self.open_until.store(now.saturating_add(wait).0, Release);
                }
            }
            State::ForcedOpen => {
                // No end: the deadline no clock reaches.
                self.open_until
                    .store(until.map_or(u64::MAX, |at| at.0), Release);
            }
            State::Disabled => {}
        }
        cold.state_changed_at = now;
        self.word.store(pack(to, generation), Release);
        Transition {
            breaker: Arc::clone(&self.name),
            from,
            to,
            reason,
            generation,
            at: now,
            wall: self.clock.wall_at(now),
            open_until,
            recovery,
        }
    }

    /// How long the `trips`-th consecutive trip keeps the breaker open.
    fn open_duration(&self, trips: u32, reason: TransitionReason) -> Duration {
        if let TransitionReason::RetryAfter { duration } = reason {
            return duration;
        }
        let configured = self.configured_open_duration(trips);
        match &self.break_duration {
            Some(BreakDuration(choose)) => choose(&Trip {
                consecutive: trips,
                reason,
                configured,
            }),
            None => configured,
        }
    }

    /// `open_duration` grown by `open_duration_multiplier` per consecutive trip up to
    /// `open_duration_max`, with jitter.
    fn configured_open_duration(&self, trips: u32) -> Duration {
        let base = self.config.open_duration();
        let Some(max) = self.config.open_duration_max() else {
            return base;
        };
        let steps = trips.saturating_sub(1);
        let factor = self.config.open_duration_multiplier();
        let grown = if factor == 2.0 {
            // Doubling stays in integers: exact for any duration.
            duration_nanos(base).saturating_mul(1u64 << steps.min(63))
        } else {
            let grown = duration_nanos(base) as f64 * factor.powi(steps.min(4096) as i32);
            // `as` saturates: an overflowing product is the maximum.
            grown as u64
        }
        .min(duration_nanos(max));
        let cut = grown as f64 * f64::from(self.config.jitter()) / 100.0 * self.jitter.fraction();
        Duration::from_nanos(grown - (cut as u64).min(grown - 1))
    }

    fn clear_counters(&self, cold: &mut Cold) {
        self.window.reset();
        self.consecutive_failures.store(0, Relaxed);
        self.last_success.store(0, Relaxed);
        self.last_failure.store(0, Relaxed);
        cold.consecutive_trips = 0;
        cold.last_trip = None;
    }

    /// Back to closed with every counter cleared; ends forced-open and disabled.
    pub fn reset(&self) -> Option<Transition> {
        self.transition_from_any(State::Closed, TransitionReason::Reset, None)
    }

    /// Trips the breaker now, as if its dependency had failed (the open duration applies).
    /// Does nothing while forced open or disabled: those end only with [`reset`](Self::reset).
    pub fn trip(&self) -> Option<Transition> {
        self.transition_from_any(State::Open, TransitionReason::ManualTrip, None)
    }

    /// Rejects every call until [`reset`](Self::reset).
    pub fn force_open(&self) -> Option<Transition> {
        self.transition_from_any(State::ForcedOpen, TransitionReason::ForcedOpen, None)
    }

    /// Rejects every call for `duration` (a maintenance window), then turns half-open so probes
    /// decide; [`reset`](Self::reset) ends it sooner. Forced open already, the new end replaces
    /// the old one.
    pub fn force_open_for(&self, duration: Duration) -> Option<Transition> {
        self.force_open_until(self.now().saturating_add(duration))
    }

    /// [`force_open_for`](Self::force_open_for) until the breaker's clock reads `instant`.
    pub fn force_open_until(&self, instant: Nanos) -> Option<Transition> {
        self.transition_from_any(
            State::ForcedOpen,
            TransitionReason::ForcedOpen,
            Some(instant),
        )
    }

    /// Turns the breaker half-open now, whatever its state: the next calls are probes that
    /// close or re-open it (an operator's "try it now").
    pub fn half_open(&self) -> Option<Transition> {
        self.transition_from_any(State::HalfOpen, TransitionReason::ManualHalfOpen, None)
    }

    /// Lets every call pass, still counting outcomes, until [`reset`](Self::reset).
    pub fn disable(&self) -> Option<Transition> {
        self.transition_from_any(State::Disabled, TransitionReason::Disabled, None)
    }

    /// Every figure of the breaker at this moment.
    pub fn snapshot(&self) -> Snapshot {
        // A read applies the transition that is due first (`tick` is a load or two when none is).
        self.tick();
        let now = self.now();
        let (cold_changed_at, consecutive_trips, last_trip, last_recovery) = {
            let cold = self.lock();
            (
                cold.state_changed_at,
                cold.consecutive_trips,
                cold.last_trip,
                cold.last_recovery,
            )
        };
        let (state, generation) = unpack(self.word.load(Acquire));
        let lifetime = self.window.lifetime();
        let rejected = self.window.rejected();
        let window = self.window.counts(now);
        let open_until = match state {
            State::Open => Some(Nanos(self.open_until.load(Acquire))),
            State::ForcedOpen => self.forced_until(),
            _ => None,
        };
        let probes = self.probes.load(Acquire);
        Snapshot {
            name: Arc::clone(&self.name),
            state,
            generation,
            total_requests: lifetime.calls() + rejected,
            successful_requests: lifetime.successes,
            failed_requests: lifetime.failures,
            timeouts: lifetime.timeouts,
            rejected_requests: rejected,
            slow_requests: lifetime.slow,
            consecutive_failures: self.consecutive_failures(&window),
            window,
            failure_ratio: failure_ratio(&window, self.config.minimum_calls()),
            last_failure_time: unstamp(self.last_failure.load(Relaxed))
                .map(|at| self.clock.wall_at(at)),
            last_success_time: unstamp(self.last_success.load(Relaxed))
                .map(|at| self.clock.wall_at(at)),
            state_changed_at: self.clock.wall_at(cold_changed_at),
            open_until: open_until.map(|at| self.clock.wall_at(at)),
            retry_after: self.until_half_open_at(state, now),
            half_open_probes: if state == State::HalfOpen && tag_matches(probes, generation) {
                probes as u32
            } else {
                0
            },
            consecutive_trips,
            last_trip,
            last_recovery: last_recovery.map(|(_, took)| took),
            last_recovered_at: last_recovery.map(|(at, _)| self.clock.wall_at(at)),
        }
    }
}

/// Failed share of the window's calls, or `None` until the window holds `minimum_calls`.
fn failure_ratio(window: &Counts, minimum_calls: u32) -> Option<f64> {
    let calls = window.calls();
    (calls >= u64::from(minimum_calls) && calls > 0).then(|| window.failed() as f64 / calls as f64)
}

impl fmt::Debug for Breaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Breaker")
            .field("name", &self.name)
            // As stored: formatting must not apply a transition (and call listeners).
            .field("state", &unpack(self.word.load(Acquire)).0)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}
