//! The breaker against a small reference model written straight from DESIGN.md's "Breaker
//! semantics" and the module docs of `breakerbox::breaker`.
//!
//! The model is deliberately plain: the window is a list of recorded calls filtered by bucket at
//! the moment it is read, every counter is an ordinary integer, every transition is spelled out.
//! Random operation sequences run on both; after every step the breaker must agree with the
//! model on state, generation, every snapshot figure, every acquire result and every event.
//!
//! Assumptions where the spec leaves room (all as documented in `src/breaker/`):
//! - trip rules are evaluated when a closed breaker records a failure, a timeout, or a slow call
//!   while slow calls can trip (`slow_call_rate_threshold` set)
//!   (a fast success never trips);
//! - a call is slow when its duration is at least `slow_call_duration`; a slow half-open probe
//!   re-opens the breaker only when `slow_call_rate_threshold` is set;
//! - `reset` of a closed breaker clears the counters without a transition; `trip`, `force_open`
//!   and `disable` do nothing in the state they lead to, and `trip` does nothing while forced
//!   open or disabled (manual states end only with reset); `force_open` and `disable` switch
//!   between the two manual states.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use breakerbox::breaker::{Counts, Listener, Nanos, NoJitter, WindowType};
use breakerbox::{
    Breaker, BreakerConfig, Clock, ManualClock, Outcome, Permit, Snapshot, State, Transition,
    TransitionReason,
};
use proptest::prelude::*;

const MS: u64 = 1_000_000;

// ---------------------------------------------------------------------------------------------
// The reference model
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Success,
    Failure,
    Timeout,
}

/// One recorded call, as the window sees it.
#[derive(Debug, Clone, Copy)]
struct Call {
    at: u64,
    kind: Kind,
    slow: bool,
}

/// What the model remembers of a permit it handed out.
#[derive(Debug, Clone, Copy)]
struct ModelPermit {
    generation: u64,
    probe: bool,
    started: u64,
}

#[derive(Debug)]
struct Model {
    config: BreakerConfig,
    origin: SystemTime,
    state: State,
    generation: u64,
    open_until: u64,
    state_changed_at: u64,
    consecutive_failures: u32,
    consecutive_trips: u32,
    last_trip: Option<TransitionReason>,
    /// Calls since the window was last emptied (by closing or reset).
    window: Vec<Call>,
    // Lifetime totals since build or reset.
    successes: u64,
    failures: u64,
    timeouts: u64,
    slow: u64,
    rejected: u64,
    last_success: Option<u64>,
    last_failure: Option<u64>,
    // The current half-open cycle.
    probes: u32,
    probe_successes: u32,
    events: Vec<ModelTransition>,
}

/// What an acquire returned, comparable between breaker and model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admission {
    Permitted {
        probe: bool,
    },
    Rejected {
        state: State,
        retry_after: Option<Duration>,
    },
}

impl Model {
    fn new(config: BreakerConfig, origin: SystemTime) -> Self {
        Self {
            config,
            origin,
            state: State::Closed,
            generation: 0,
            open_until: 0,
            state_changed_at: 0,
            consecutive_failures: 0,
            consecutive_trips: 0,
            last_trip: None,
            window: Vec::new(),
            successes: 0,
            failures: 0,
            timeouts: 0,
            slow: 0,
            rejected: 0,
            last_success: None,
            last_failure: None,
            probes: 0,
            probe_successes: 0,
            events: Vec::new(),
        }
    }

    fn bucket_width(&self) -> u64 {
        self.config.window().as_nanos() as u64 / u64::from(self.config.buckets())
    }

    /// The window at `now`: a call counts iff its bucket is one of the last `buckets` buckets,
    /// or, for a count window, iff it is one of the last `window_calls` calls.
    fn counts(&self, now: u64) -> Counts {
        let width = self.bucket_width();
        let current = now / width;
        let buckets = u64::from(self.config.buckets());
        let by_count = self.config.window_type() == WindowType::Count;
        let newest = self
            .window
            .len()
            .saturating_sub(self.config.window_calls() as usize);
        let mut counts = Counts::default();
        for (index, call) in self.window.iter().enumerate() {
            let inside = if by_count {
                index >= newest
            } else {
                call.at / width + buckets > current
            };
            if inside {
                match call.kind {
                    Kind::Success => counts.successes += 1,
                    Kind::Failure => counts.failures += 1,
                    Kind::Timeout => counts.timeouts += 1,
                }
                if call.slow {
                    counts.slow += 1;
                }
            }
        }
        counts
    }

    fn wall(&self, at: u64) -> SystemTime {
        self.origin + Duration::from_nanos(at)
    }

    /// How long the breaker stays open on entering open with this reason (no jitter).
    fn open_duration(&self, reason: TransitionReason) -> Duration {
        if let TransitionReason::RetryAfter { duration } = reason {
            return duration;
        }
        let base = self.config.open_duration();
        match self.config.open_duration_max() {
            None => base,
            Some(max) => {
                let mut grown = base;
                for _ in 1..self.consecutive_trips {
                    grown = (grown * 2).min(max);
                }
                grown.min(max)
            }
        }
    }

    fn enter(&mut self, to: State, reason: TransitionReason, now: u64) -> ModelTransition {
        let from = self.state;
        self.generation += 1;
        let mut open_until = None;
        match to {
            State::Open => {
                self.consecutive_trips += 1;
                self.last_trip = Some(reason);
                self.open_until = now + self.open_duration(reason).as_nanos() as u64;
                open_until = Some(Nanos(self.open_until));
            }
            State::HalfOpen => {
                self.probes = 0;
                self.probe_successes = 0;
            }
            State::Closed => {
                self.window.clear();
                self.consecutive_failures = 0;
                self.consecutive_trips = 0;
            }
            State::ForcedOpen | State::Disabled => {}
            other => panic!("the model does not know state {other:?}"),
        }
        self.state = to;
        self.state_changed_at = now;
        let event = ModelTransition {
            from,
            to,
            reason,
            generation: self.generation,
            at: Nanos(now),
            wall: self.wall(now),
            open_until,
        };
        self.events.push(event.clone());
        event
    }

    fn acquire(&mut self, now: u64) -> Result<ModelPermit, Admission> {
        loop {
            match self.state {
                State::Closed | State::Disabled => {
                    return Ok(ModelPermit {
                        generation: self.generation,
                        probe: false,
                        started: now,
                    });
                }
                State::Open if now < self.open_until => {
                    self.rejected += 1;
                    return Err(Admission::Rejected {
                        state: State::Open,
                        retry_after: Some(Duration::from_nanos(self.open_until - now)),
                    });
                }
                State::Open => {
                    self.enter(State::HalfOpen, TransitionReason::OpenDurationElapsed, now);
                }
                State::HalfOpen if self.probes >= self.config.half_open_max_calls() => {
                    self.rejected += 1;
                    return Err(Admission::Rejected {
                        state: State::HalfOpen,
                        retry_after: None,
                    });
                }
                State::HalfOpen => {
                    self.probes += 1;
                    return Ok(ModelPermit {
                        generation: self.generation,
                        probe: true,
                        started: now,
                    });
                }
                State::ForcedOpen => {
                    self.rejected += 1;
                    return Err(Admission::Rejected {
                        state: State::ForcedOpen,
                        retry_after: None,
                    });
                }
                other => panic!("the model does not know state {other:?}"),
            }
        }
    }

    /// A permit given back without an outcome (dropped, or ignored).
    fn release(&mut self, permit: ModelPermit) {
        if permit.probe
            && self.state == State::HalfOpen
            && permit.generation == self.generation
            && self.probes > 0
        {
            self.probes -= 1;
        }
    }

    fn record(
        &mut self,
        permit: ModelPermit,
        outcome: Outcome,
        elapsed: Option<Duration>,
        now: u64,
    ) {
        self.release(permit);
        if outcome == Outcome::Ignored || permit.generation != self.generation {
            return;
        }
        let slow = self.config.slow_call_duration().is_some_and(|threshold| {
            elapsed.unwrap_or(Duration::from_nanos(now - permit.started)) >= threshold
        });
        let kind = match outcome {
            Outcome::Success => Kind::Success,
            Outcome::Timeout => Kind::Timeout,
            _ => Kind::Failure,
        };
        self.window.push(Call {
            at: now,
            kind,
            slow,
        });
        match kind {
            Kind::Success => self.successes += 1,
            Kind::Failure => self.failures += 1,
            Kind::Timeout => self.timeouts += 1,
        }
        if slow {
            self.slow += 1;
        }
        if kind == Kind::Success {
            self.consecutive_failures = 0;
            self.last_success = Some(now);
        } else {
            self.consecutive_failures += 1;
            self.last_failure = Some(now);
        }
        match self.state {
            State::Closed
                if kind != Kind::Success
                    || (slow && self.config.slow_call_rate_threshold().is_some()) =>
            {
                if let Some(reason) = self.trip_reason(outcome, now) {
                    self.enter(State::Open, reason, now);
                }
            }
            State::HalfOpen => {
                let failed = kind != Kind::Success
                    || (slow && self.config.slow_call_rate_threshold().is_some());
                if failed {
                    let reason = match outcome {
                        Outcome::RetryAfter(hint) if self.config.honor_retry_after() => {
                            TransitionReason::RetryAfter {
                                duration: hint.min(self.config.retry_after_cap()),
                            }
                        }
                        _ => TransitionReason::ProbeFailed,
                    };
                    self.enter(State::Open, reason, now);
                } else {
                    self.probe_successes += 1;
                    if self.probe_successes >= self.config.half_open_success_threshold() {
                        self.enter(State::Closed, TransitionReason::ProbesSucceeded, now);
                    }
                }
            }
            _ => {}
        }
    }

    fn trip_reason(&self, outcome: Outcome, now: u64) -> Option<TransitionReason> {
        if let Outcome::RetryAfter(hint) = outcome
            && self.config.honor_retry_after()
        {
            return Some(TransitionReason::RetryAfter {
                duration: hint.min(self.config.retry_after_cap()),
            });
        }
        // A success is judged against the slow-call rule only.
        let failed = outcome != Outcome::Success;
        let counts = self.counts(now);
        let consecutive = self.consecutive_in_window(&counts);
        if failed && consecutive >= self.config.failure_threshold() {
            return Some(TransitionReason::ConsecutiveFailures { count: consecutive });
        }
        let calls = counts.calls();
        if calls < u64::from(self.config.minimum_calls()) {
            return None;
        }
        // Whole percentages compared exactly: failed / calls >= threshold / 100.
        if failed
            && counts.failed() * 100
                >= u64::from(self.config.failure_rate_threshold().get()) * calls
        {
            return Some(TransitionReason::FailureRate {
                failed: counts.failed(),
                calls,
            });
        }
        if let Some(threshold) = self.config.slow_call_rate_threshold()
            && counts.slow * 100 >= u64::from(threshold.get()) * calls
        {
            return Some(TransitionReason::SlowCallRate {
                slow: counts.slow,
                calls,
            });
        }
        None
    }

    /// Failures since the last success that lie inside the window: all of them when the window
    /// holds a success (the run came after it), else at most the window's failures.
    fn consecutive_in_window(&self, counts: &Counts) -> u32 {
        if counts.successes > 0 {
            self.consecutive_failures
        } else {
            self.consecutive_failures
                .min(u32::try_from(counts.failed()).unwrap_or(u32::MAX))
        }
    }

    fn tick(&mut self, now: u64) -> bool {
        if self.state == State::Open && now >= self.open_until {
            self.enter(State::HalfOpen, TransitionReason::OpenDurationElapsed, now);
            true
        } else {
            false
        }
    }

    fn operator(
        &mut self,
        to: State,
        reason: TransitionReason,
        now: u64,
    ) -> Option<ModelTransition> {
        if reason == TransitionReason::Reset {
            self.window.clear();
            self.successes = 0;
            self.failures = 0;
            self.timeouts = 0;
            self.slow = 0;
            self.rejected = 0;
            self.last_success = None;
            self.last_failure = None;
            self.consecutive_failures = 0;
            self.consecutive_trips = 0;
            self.last_trip = None;
        }
        // A manual trip does not end a manual state: only reset does.
        let manual = matches!(self.state, State::ForcedOpen | State::Disabled);
        if reason == TransitionReason::ManualTrip && manual {
            return None;
        }
        if self.state == to {
            // An operator action in the state it asks for still starts a new generation.
            self.generation += 1;
            self.probes = 0;
            self.probe_successes = 0;
            return None;
        }
        Some(self.enter(to, reason, now))
    }

    fn snapshot(&self, now: u64) -> ModelSnapshot {
        let window = self.counts(now);
        let calls = window.calls();
        let open = self.state == State::Open;
        ModelSnapshot {
            state: self.state,
            generation: self.generation,
            total_requests: self.successes + self.failures + self.timeouts + self.rejected,
            successful_requests: self.successes,
            failed_requests: self.failures,
            timeouts: self.timeouts,
            rejected_requests: self.rejected,
            slow_requests: self.slow,
            consecutive_failures: self.consecutive_in_window(&window),
            window,
            failure_ratio: (calls >= u64::from(self.config.minimum_calls()))
                .then(|| window.failed() as f64 / calls as f64),
            last_failure_time: self.last_failure.map(|at| self.wall(at)),
            last_success_time: self.last_success.map(|at| self.wall(at)),
            state_changed_at: self.wall(self.state_changed_at),
            open_until: open.then(|| self.wall(self.open_until)),
            retry_after: open.then(|| Duration::from_nanos(self.open_until.saturating_sub(now))),
            half_open_probes: if self.state == State::HalfOpen {
                self.probes
            } else {
                0
            },
            consecutive_trips: self.consecutive_trips,
            last_trip: self.last_trip,
        }
    }

    fn next_deadline(&self) -> Option<Nanos> {
        (self.state == State::Open).then_some(Nanos(self.open_until))
    }
}

// ---------------------------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Report {
    Success,
    Failure,
    Timeout,
    Ignore,
    RetryAfter(u64),
}

#[derive(Debug, Clone, Copy)]
enum Advance {
    /// A few milliseconds and nanoseconds.
    Nanos(u64),
    /// To the next bucket boundary exactly.
    NextBoundary,
    /// To one nanosecond before the next bucket boundary.
    JustBeforeBoundary,
    /// Whole buckets.
    Buckets(u64),
    /// Whole windows.
    Windows(u64),
    /// To the open deadline exactly (no-op unless open).
    ToDeadline,
    /// To one nanosecond before the open deadline.
    JustBeforeDeadline,
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Acquire,
    /// Acquire and, if permitted, report at once.
    Call {
        report: Report,
        elapsed_ms: Option<u64>,
    },
    Record {
        which: usize,
        report: Report,
        /// Report with `record_timed` and this many milliseconds.
        elapsed_ms: Option<u64>,
    },
    Drop(usize),
    Advance(Advance),
    Tick,
    Reset,
    ForceOpen,
    Disable,
    Trip,
}

/// Outcomes, failing about `failing` times in 10: some sequences mostly succeed, some mostly fail.
fn report(failing: u32) -> impl Strategy<Value = Report> {
    prop_oneof![
        (10 - failing) => Just(Report::Success),
        failing => Just(Report::Failure),
        1 => Just(Report::Timeout),
        1 => Just(Report::Ignore),
        1 => (0u64..3_000).prop_map(Report::RetryAfter),
    ]
}

fn advance() -> impl Strategy<Value = Advance> {
    prop_oneof![
        3 => (0u64..3_000_000_000).prop_map(Advance::Nanos),
        2 => Just(Advance::NextBoundary),
        1 => Just(Advance::JustBeforeBoundary),
        2 => (1u64..4).prop_map(Advance::Buckets),
        1 => (1u64..3).prop_map(Advance::Windows),
        4 => Just(Advance::ToDeadline),
        1 => Just(Advance::JustBeforeDeadline),
    ]
}

fn op(failing: u32) -> impl Strategy<Value = Op> {
    let elapsed = prop::option::weighted(
        0.5,
        prop_oneof![
            Just(0u64),
            Just(1),
            Just(10),
            Just(100),
            Just(250),
            Just(1_000),
            0u64..2_000
        ],
    );
    prop_oneof![
        12 => Just(Op::Acquire),
        15 => (any::<usize>(), report(failing), elapsed.clone())
            .prop_map(|(which, report, elapsed_ms)| Op::Record { which, report, elapsed_ms }),
        20 => (report(failing), elapsed)
            .prop_map(|(report, elapsed_ms)| Op::Call { report, elapsed_ms }),
        3 => any::<usize>().prop_map(Op::Drop),
        12 => advance().prop_map(Op::Advance),
        3 => Just(Op::Tick),
        2 => Just(Op::Reset),
        1 => Just(Op::ForceOpen),
        1 => Just(Op::Disable),
        1 => Just(Op::Trip),
    ]
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    (1u32..10).prop_flat_map(|failing| prop::collection::vec(op(failing), 1..60))
}

prop_compose! {
    fn config()(
        failure_threshold in prop_oneof![2 => 1u32..6, 1 => Just(1_000)],
        failure_rate_threshold in prop_oneof![Just(1u8), Just(34), Just(50), Just(67), Just(100), 1u8..=100],
        minimum_calls in 1u32..8,
        buckets in 1u32..6,
        bucket_ms in prop_oneof![Just(1u64), Just(10), Just(100), Just(250), Just(1_000)],
        open_ms in 1u64..4_000,
        growth in prop::option::of(1u32..9),
        jitter in 0u8..=100,
        half_open_max_calls in 1u32..4,
        half_open_success_threshold in 1u32..4,
        slow_ms in prop::option::weighted(0.6, prop_oneof![Just(1u64), Just(10), Just(100), Just(250), Just(1_000), 1u64..1_500]),
        slow_rate in prop::option::of(prop_oneof![Just(25u8), Just(50), Just(100), 1u8..=100]),
        honor_retry_after in any::<bool>(),
        window_calls in prop::option::weighted(0.3, 1u32..12),
    ) -> BreakerConfig {
        // A count window must be able to hold `minimum_calls` and a run of `failure_threshold`.
        let (window_type, calls) = match window_calls {
            Some(calls) => (WindowType::Count, calls),
            None => (WindowType::Time, 100),
        };
        let fits = |n: u32| if window_calls.is_some() { n.min(calls) } else { n };
        BreakerConfig::builder()
            .window_type(window_type)
            .window_calls(calls)
            .failure_threshold(fits(failure_threshold))
            .failure_rate_threshold(failure_rate_threshold)
            .minimum_calls(fits(minimum_calls))
            .window(Duration::from_millis(bucket_ms * u64::from(buckets)))
            .buckets(buckets)
            .open_duration(Duration::from_millis(open_ms))
            .open_duration_max(growth.map(|k| Duration::from_millis(open_ms) * k))
            .jitter(jitter)
            .half_open_max_calls(half_open_max_calls)
            .half_open_success_threshold(half_open_success_threshold)
            .slow_call_duration(slow_ms.map(Duration::from_millis))
            .slow_call_rate_threshold(slow_ms.and(slow_rate))
            .honor_retry_after(honor_retry_after)
            .build()
            .expect("generated configs are valid")
    }
}

// ---------------------------------------------------------------------------------------------
// Running both side by side
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Transition>>>);

impl Listener for Recorder {
    fn on_transition(&self, transition: &Transition) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(transition.clone());
    }
}

impl Recorder {
    fn events(&self) -> Vec<Transition> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// A transition as the model sees it: every field of [`Transition`] but the breaker's name (the
/// library's type cannot be built outside it: it is `non_exhaustive`).
#[derive(Debug, Clone, PartialEq)]
struct ModelTransition {
    from: State,
    to: State,
    reason: TransitionReason,
    generation: u64,
    at: Nanos,
    wall: SystemTime,
    open_until: Option<Nanos>,
}

/// Events compared without the breaker's name (the model has its own).
fn unnamed(events: Vec<Transition>) -> Vec<ModelTransition> {
    events
        .into_iter()
        .map(|t| ModelTransition {
            from: t.from,
            to: t.to,
            reason: t.reason,
            generation: t.generation,
            at: t.at,
            wall: t.wall,
            open_until: t.open_until,
        })
        .collect()
}

/// A snapshot as the model sees it: every field of [`Snapshot`] but the breaker's name.
#[derive(Debug, Clone, PartialEq)]
struct ModelSnapshot {
    state: State,
    generation: u64,
    total_requests: u64,
    successful_requests: u64,
    failed_requests: u64,
    timeouts: u64,
    rejected_requests: u64,
    slow_requests: u64,
    consecutive_failures: u32,
    window: Counts,
    failure_ratio: Option<f64>,
    last_failure_time: Option<SystemTime>,
    last_success_time: Option<SystemTime>,
    state_changed_at: SystemTime,
    open_until: Option<SystemTime>,
    retry_after: Option<Duration>,
    half_open_probes: u32,
    consecutive_trips: u32,
    last_trip: Option<TransitionReason>,
}

fn unnamed_snapshot(s: Snapshot) -> ModelSnapshot {
    ModelSnapshot {
        state: s.state,
        generation: s.generation,
        total_requests: s.total_requests,
        successful_requests: s.successful_requests,
        failed_requests: s.failed_requests,
        timeouts: s.timeouts,
        rejected_requests: s.rejected_requests,
        slow_requests: s.slow_requests,
        consecutive_failures: s.consecutive_failures,
        window: s.window,
        failure_ratio: s.failure_ratio,
        last_failure_time: s.last_failure_time,
        last_success_time: s.last_success_time,
        state_changed_at: s.state_changed_at,
        open_until: s.open_until,
        retry_after: s.retry_after,
        half_open_probes: s.half_open_probes,
        consecutive_trips: s.consecutive_trips,
        last_trip: s.last_trip,
    }
}

fn outcome_of(report: Report) -> Outcome {
    match report {
        Report::Success => Outcome::Success,
        Report::Failure => Outcome::Failure,
        Report::Timeout => Outcome::Timeout,
        Report::Ignore => Outcome::Ignored,
        Report::RetryAfter(ms) => Outcome::RetryAfter(Duration::from_millis(ms)),
    }
}

fn advance_by(model: &Model, now: u64, how: Advance) -> u64 {
    let width = model.bucket_width();
    let window = model.config.window().as_nanos() as u64;
    match how {
        Advance::Nanos(n) => n,
        Advance::NextBoundary => width - now % width,
        Advance::JustBeforeBoundary => (width - now % width).saturating_sub(1),
        Advance::Buckets(k) => k * width,
        Advance::Windows(k) => k * window,
        Advance::ToDeadline => model
            .next_deadline()
            .map_or(0, |at| at.0.saturating_sub(now)),
        Advance::JustBeforeDeadline => model
            .next_deadline()
            .map_or(0, |at| at.0.saturating_sub(now).saturating_sub(1)),
    }
}

type Held = (Permit<Arc<Breaker>>, ModelPermit);

/// Acquires on both; they must agree on the admission.
fn acquire_both(
    breaker: &Arc<Breaker>,
    model: &mut Model,
    now: u64,
    step: usize,
) -> Result<Option<Held>, TestCaseError> {
    let real = breaker
        .try_acquire_owned()
        .map_err(|rejected| Admission::Rejected {
            state: rejected.state(),
            retry_after: rejected.retry_after(),
        });
    match (real, model.acquire(now)) {
        (Ok(permit), Ok(model_permit)) => {
            prop_assert_eq!(
                Admission::Permitted {
                    probe: permit.is_probe()
                },
                Admission::Permitted {
                    probe: model_permit.probe
                },
                "step {}: acquire",
                step
            );
            Ok(Some((permit, model_permit)))
        }
        (Err(real), Err(expected)) => {
            prop_assert_eq!(real, expected, "step {}: acquire", step);
            Ok(None)
        }
        (real, expected) => Err(TestCaseError::fail(format!(
            "step {step}: acquire gave {:?}, model {:?}",
            real.map(|p| p.is_probe()),
            expected.map(|p| p.probe)
        ))),
    }
}

fn run(config: BreakerConfig, ops: &[Op]) -> Result<Model, TestCaseError> {
    let clock = ManualClock::new();
    let recorder = Recorder::default();
    let breaker = Arc::new(
        Breaker::builder("model", config.clone())
            .clock(Arc::new(clock.clone()))
            .jitter(Arc::new(NoJitter))
            .listener(Arc::new(recorder.clone()))
            .build(),
    );
    let mut model = Model::new(config, clock.wall_at(Nanos::ZERO));
    let mut held: Vec<Held> = Vec::new();

    for (step, &op) in ops.iter().enumerate() {
        let now = clock.now().0;
        match op {
            Op::Acquire => {
                if let Some(pair) = acquire_both(&breaker, &mut model, now, step)? {
                    held.push(pair);
                }
            }
            Op::Call { report, elapsed_ms } => {
                if let Some((permit, model_permit)) = acquire_both(&breaker, &mut model, now, step)?
                {
                    let outcome = outcome_of(report);
                    let elapsed = elapsed_ms.map(Duration::from_millis);
                    match elapsed {
                        Some(elapsed) => permit.record_timed(outcome, elapsed),
                        None => permit.record(outcome),
                    }
                    model.record(model_permit, outcome, elapsed, now);
                }
            }
            Op::Record {
                which,
                report,
                elapsed_ms,
            } => {
                if !held.is_empty() {
                    let (permit, model_permit) = held.swap_remove(which % held.len());
                    let outcome = outcome_of(report);
                    let elapsed = elapsed_ms.map(Duration::from_millis);
                    match elapsed {
                        Some(elapsed) => permit.record_timed(outcome, elapsed),
                        None => permit.record(outcome),
                    }
                    model.record(model_permit, outcome, elapsed, now);
                }
            }
            Op::Drop(which) => {
                if !held.is_empty() {
                    let (permit, model_permit) = held.swap_remove(which % held.len());
                    drop(permit);
                    model.release(model_permit);
                }
            }
            Op::Advance(how) => {
                clock.advance(Duration::from_nanos(advance_by(&model, now, how)));
            }
            Op::Tick => {
                let real = breaker.tick();
                prop_assert_eq!(real, model.tick(now), "step {}: tick", step);
            }
            Op::Reset => {
                let real = breaker.reset().map(|t| t.generation);
                let expected = model
                    .operator(State::Closed, TransitionReason::Reset, now)
                    .map(|t| t.generation);
                prop_assert_eq!(real, expected, "step {}: reset", step);
            }
            Op::ForceOpen => {
                let real = breaker.force_open().map(|t| t.generation);
                let expected = model
                    .operator(State::ForcedOpen, TransitionReason::ForcedOpen, now)
                    .map(|t| t.generation);
                prop_assert_eq!(real, expected, "step {}: force_open", step);
            }
            Op::Disable => {
                let real = breaker.disable().map(|t| t.generation);
                let expected = model
                    .operator(State::Disabled, TransitionReason::Disabled, now)
                    .map(|t| t.generation);
                prop_assert_eq!(real, expected, "step {}: disable", step);
            }
            Op::Trip => {
                let real = breaker.trip().map(|t| t.generation);
                let expected = model
                    .operator(State::Open, TransitionReason::ManualTrip, now)
                    .map(|t| t.generation);
                prop_assert_eq!(real, expected, "step {}: trip", step);
            }
        }

        let now = clock.now().0;
        // A read applies the transition that is due (an open breaker past its deadline reads
        // half-open), so the model applies it too before comparing.
        model.tick(now);
        prop_assert_eq!(breaker.state(), model.state, "step {}: {:?}", step, op);
        prop_assert_eq!(
            breaker.next_deadline(),
            model.next_deadline(),
            "step {}: {:?}",
            step,
            op
        );
        let snapshot = unnamed_snapshot(breaker.snapshot());
        prop_assert_eq!(snapshot, model.snapshot(now), "step {}: {:?}", step, op);
        prop_assert_eq!(
            unnamed(recorder.events()),
            model.events.clone(),
            "step {}: {:?}",
            step,
            op
        );
    }
    Ok(model)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn breaker_agrees_with_reference_model(
        config in config(),
        ops in ops(),
    ) {
        run(config, &ops)?;
    }
}

/// A hand-picked sequence through every state, so the model itself is known to move.
#[test]
fn model_walks_every_state() {
    let config = BreakerConfig::builder()
        .failure_threshold(2)
        .window(Duration::from_secs(1))
        .buckets(10)
        .open_duration(Duration::from_millis(500))
        .open_duration_max(Some(Duration::from_secs(2)))
        .build()
        .expect("valid");
    let ops = [
        Op::Acquire,
        Op::Acquire,
        Op::Record {
            which: 0,
            report: Report::Failure,
            elapsed_ms: None,
        },
        Op::Record {
            which: 0,
            report: Report::Timeout,
            elapsed_ms: None,
        },
        Op::Acquire,
        Op::Advance(Advance::JustBeforeDeadline),
        Op::Tick,
        Op::Advance(Advance::Nanos(1)),
        Op::Tick,
        Op::Acquire,
        Op::Record {
            which: 0,
            report: Report::Failure,
            elapsed_ms: None,
        },
        Op::Advance(Advance::ToDeadline),
        Op::Acquire,
        Op::Record {
            which: 0,
            report: Report::Success,
            elapsed_ms: Some(5),
        },
        Op::ForceOpen,
        Op::Reset,
        Op::Disable,
        Op::Trip,
        Op::Reset,
        Op::Trip,
        Op::Advance(Advance::Windows(2)),
        Op::Acquire,
        Op::Drop(0),
    ];
    let model = match run(config, &ops) {
        Ok(model) => model,
        Err(err) => panic!("{err}"),
    };
    let moves: Vec<(State, TransitionReason, u64)> = model
        .events
        .iter()
        .map(|t| (t.to, t.reason, t.at.0 / MS))
        .collect();
    assert_eq!(
        moves,
        [
            (
                State::Open,
                TransitionReason::ConsecutiveFailures { count: 2 },
                0
            ),
            (State::HalfOpen, TransitionReason::OpenDurationElapsed, 500),
            (State::Open, TransitionReason::ProbeFailed, 500),
            (
                State::HalfOpen,
                TransitionReason::OpenDurationElapsed,
                1_500
            ),
            (State::Closed, TransitionReason::ProbesSucceeded, 1_500),
            (State::ForcedOpen, TransitionReason::ForcedOpen, 1_500),
            (State::Closed, TransitionReason::Reset, 1_500),
            (State::Disabled, TransitionReason::Disabled, 1_500),
            (State::Closed, TransitionReason::Reset, 1_500),
            (State::Open, TransitionReason::ManualTrip, 1_500),
            (
                State::HalfOpen,
                TransitionReason::OpenDurationElapsed,
                3_500
            ),
        ]
    );
    assert_eq!(model.state, State::HalfOpen);
}
