//! Every rule of the breaker core (DESIGN.md "Breaker semantics"), pinned with a manual clock.
//!
//! Each test drives one rule to its exact edge and asserts exact figures, so any drift in the
//! rule makes it fail.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use breakerbox::breaker::{
    BreakerConfigBuilder, ConsecutiveFailuresWindow, Counts, Listener, Nanos, NoJitter, SplitMix,
    WindowType,
};
use breakerbox::{
    Breaker, BreakerConfig, Clock as _, ManualClock, Outcome, Registry, Rejected, State,
    Transition, TransitionReason,
};

const SECOND: u64 = 1_000_000_000;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn ms(m: u64) -> Duration {
    Duration::from_millis(m)
}

/// Records every transition it is told of.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Transition>>>);

impl Recorder {
    fn events(&self) -> Vec<Transition> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn moves(&self) -> Vec<(State, State, TransitionReason, u64)> {
        self.events()
            .iter()
            .map(|t| (t.from, t.to, t.reason, t.generation))
            .collect()
    }

    fn listener(&self) -> Arc<dyn Listener> {
        let events = Arc::clone(&self.0);
        Arc::new(move |t: &Transition| {
            events
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(t.clone());
        })
    }
}

/// Settings where only the rule under test can trip: the others are out of reach.
fn quiet() -> BreakerConfigBuilder {
    BreakerConfig::builder()
        .failure_threshold(u32::MAX)
        .minimum_calls(u32::MAX)
        .window(secs(10))
        .buckets(10)
        .open_duration(secs(30))
}

fn build(config: BreakerConfig, clock: &ManualClock) -> (Breaker, Recorder) {
    let recorder = Recorder::default();
    let breaker = Breaker::builder("dep", config)
        .clock(Arc::new(clock.clone()))
        .jitter(Arc::new(NoJitter))
        .listener(recorder.listener())
        .build();
    (breaker, recorder)
}

fn record(breaker: &Breaker, outcome: Outcome) {
    breaker.try_acquire().expect("admitted").record(outcome);
}

fn rejected(breaker: &Breaker) -> Rejected {
    match breaker.try_acquire() {
        Ok(permit) => panic!("admitted {permit:?} in {}", breaker.state()),
        Err(rejected) => rejected,
    }
}

/// Trips `breaker` by hand and moves the clock to its half-open deadline, then ticks.
fn open_then_half_open(breaker: &Breaker, clock: &ManualClock) {
    breaker.trip().expect("tripped");
    let deadline = breaker.next_deadline().expect("open");
    clock.advance_to(deadline);
    assert!(breaker.tick());
    assert_eq!(breaker.state(), State::HalfOpen);
}

fn until_half_open(breaker: &Breaker) -> Duration {
    assert_eq!(breaker.state(), State::Open);
    breaker.until_half_open().expect("open")
}

// ---------------------------------------------------------------------------------------------
// Trip rules
// ---------------------------------------------------------------------------------------------

#[test]
fn consecutive_failures_trip_exactly_at_failure_threshold() {
    let clock = ManualClock::new();
    let config = quiet().failure_threshold(3).build().expect("valid");
    let (breaker, recorder) = build(config, &clock);
    record(&breaker, Outcome::Failure);
    record(&breaker, Outcome::Failure);
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(breaker.snapshot().consecutive_failures, 2);
    record(&breaker, Outcome::Failure);
    assert_eq!(breaker.state(), State::Open);
    assert_eq!(
        recorder.moves(),
        [(
            State::Closed,
            State::Open,
            TransitionReason::ConsecutiveFailures { count: 3 },
            1
        )]
    );
}

#[test]
fn client_error_success_resets_consecutive_failures() {
    // A 4xx is the caller's fault: reported as a success, it breaks the run of failures.
    let clock = ManualClock::new();
    let config = quiet().failure_threshold(3).build().expect("valid");
    let (breaker, recorder) = build(config, &clock);
    record(&breaker, Outcome::Failure);
    record(&breaker, Outcome::Failure);
    record(&breaker, Outcome::Success);
    assert_eq!(breaker.snapshot().consecutive_failures, 0);
    record(&breaker, Outcome::Failure);
    record(&breaker, Outcome::Failure);
    assert_eq!(breaker.state(), State::Closed);
    let snapshot = breaker.snapshot();
    assert_eq!(snapshot.consecutive_failures, 2);
    assert_eq!(
        (snapshot.successful_requests, snapshot.failed_requests),
        (1, 4)
    );
    assert!(recorder.events().is_empty());
    record(&breaker, Outcome::Failure);
    assert_eq!(breaker.state(), State::Open);
}

#[test]
fn timeouts_count_as_failures_for_the_consecutive_rule() {
    let clock = ManualClock::new();
    let config = quiet().failure_threshold(3).build().expect("valid");
    let (breaker, recorder) = build(config, &clock);
    record(&breaker, Outcome::Timeout);
    record(&breaker, Outcome::Failure);
    record(&breaker, Outcome::Timeout);
    assert_eq!(breaker.state(), State::Open);
    assert_eq!(
        recorder.events()[0].reason,
        TransitionReason::ConsecutiveFailures { count: 3 }
    );
    let snapshot = breaker.snapshot();
    assert_eq!((snapshot.timeouts, snapshot.failed_requests), (2, 1));
    assert_eq!(snapshot.window.failed(), 3);
}

#[test]
fn timeouts_count_as_failures_for_the_rate_rule() {
    let clock = ManualClock::new();
    let config = quiet()
        .minimum_calls(4)
        .failure_rate_threshold(50)
        .build()
        .expect("valid");
    let (breaker, recorder) = build(config, &clock);
    record(&breaker, Outcome::Success);
    record(&breaker, Outcome::Timeout);
    record(&breaker, Outcome::Success);
    record(&breaker, Outcome::Timeout);
    assert_eq!(breaker.state(), State::Open);
    assert_eq!(
        recorder.events()[0].reason,
        TransitionReason::FailureRate {
            failed: 2,
            calls: 4
        }
    );
}

#[test]
fn failure_rate_trips_once_window_holds_minimum_calls() {
    let clock = ManualClock::new();
    let config = quiet()
        .minimum_calls(5)
        .failure_rate_threshold(60)
        .build()
        .expect("valid");
    let (breaker, recorder) = build(config, &clock);
    // 4 calls, 3 failed (75 %), but below minimum_calls: no trip.
    record(&breaker, Outcome::Failure);
    record(&breaker, Outcome::Failure);
    record(&breaker, Outcome::Success);
    record(&breaker, Outcome::Failure);
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(breaker.snapshot().failure_ratio, None);
    // The fifth call reaches minimum_calls with 4 of 5 failed (80 % >= 60 %).
    record(&breaker, Outcome::Failure);
    assert_eq!(breaker.state(), State::Open);
    assert_eq!(
        recorder.moves(),
        [(
            State::Closed,
            State::Open,
            TransitionReason::FailureRate {
                failed: 4,
                calls: 5
            },
            1
        )]
    );
}

#[test]
fn failure_rate_never_trips_below_minimum_calls() {
    let clock = ManualClock::new();
    let config = quiet()
        .minimum_calls(10)
        .failure_rate_threshold(10)
        .build()
        .expect("valid");
    let (breaker, _) = build(config, &clock);
    for _ in 0..9 {
        record(&breaker, Outcome::Failure);
    }
    assert_eq!(breaker.state(), State::Closed);
    let snapshot = breaker.snapshot();
    assert_eq!(snapshot.window.failures, 9);
    assert_eq!(snapshot.failure_ratio, None);
}

#[test]
fn failure_rate_just_below_threshold_does_not_trip() {
    let clock = ManualClock::new();
    let config = quiet()
        .minimum_calls(4)
        .failure_rate_threshold(50)
        .build()
        .expect("valid");
    let (breaker, _) = build(config, &clock);
    // 2 of 5 = 40 % after the last failure.
    for outcome in [
        Outcome::Success,
        Outcome::Success,
        Outcome::Success,
        Outcome::Failure,
        Outcome::Failure,
    ] {
        record(&breaker, outcome);
    }
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(breaker.snapshot().failure_ratio, Some(0.4));
    // 3 of 6 = 50 %: trips.
    record(&breaker, Outcome::Failure);
    assert_eq!(breaker.state(), State::Open);
}

// ---------------------------------------------------------------------------------------------
// Rolling window
// ---------------------------------------------------------------------------------------------

#[test]
fn call_exactly_one_window_old_no_longer_counts() {
    // 10 s window in 1 s buckets; the call lands at the start of bucket 0.
    let clock = ManualClock::new();
    let (breaker, _) = build(quiet().build().expect("valid"), &clock);
    record(&breaker, Outcome::Failure);
    clock.advance(Duration::from_nanos(10 * SECOND - 1));
    assert_eq!(breaker.snapshot().window.failures, 1);
    clock.advance(Duration::from_nanos(1));
    assert_eq!(breaker.snapshot().window, Counts::default());
    // Lifetime totals keep it.
    assert_eq!(breaker.snapshot().failed_requests, 1);
}

#[test]
fn bucket_expires_whole_at_its_boundary() {
    // A call 500 ms into bucket 0 leaves with its bucket at 10 s, not at 10.5 s.
    let clock = ManualClock::new();
    let (breaker, _) = build(quiet().build().expect("valid"), &clock);
    clock.advance(ms(500));
    record(&breaker, Outcome::Timeout);
    clock.advance_to(Nanos(10 * SECOND - 1));
    assert_eq!(breaker.snapshot().window.timeouts, 1);
    clock.advance_to(Nanos(10 * SECOND));
    assert_eq!(breaker.snapshot().window.timeouts, 0);
}

#[test]
fn expired_call_no_longer_helps_reach_minimum_calls() {
    let config = quiet()
        .minimum_calls(2)
        .failure_rate_threshold(100)
        .build()
        .expect("valid");
    // Second failure a nanosecond before the first one's bucket expires: trips.
    let clock = ManualClock::new();
    let (breaker, _) = build(config.clone(), &clock);
    record(&breaker, Outcome::Failure);
    clock.advance(Duration::from_nanos(10 * SECOND - 1));
    record(&breaker, Outcome::Failure);
    assert_eq!(breaker.state(), State::Open);
    // Exactly one window later: the first failure is gone, one call is not enough.
    let clock = ManualClock::new();
    let (breaker, _) = build(config, &clock);
    record(&breaker, Outcome::Failure);
    clock.advance(secs(10));
    record(&breaker, Outcome::Failure);
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(breaker.snapshot().window.failures, 1);
}

#[test]
fn idle_longer_than_a_window_forgets_every_call() {
    let clock = ManualClock::new();
    let config = quiet()
        .minimum_calls(3)
        .failure_rate_threshold(100)
        .build()
        .expect("valid");
    let (breaker, _) = build(config, &clock);
    clock.advance(secs(3));
    record(&breaker, Outcome::Failure);
    record(&breaker, Outcome::Failure);
    // Exactly one lap later the same bucket slot is current again: it must read empty.
    clock.advance(secs(10));
    assert_eq!(breaker.snapshot().window, Counts::default());
    record(&breaker, Outcome::Failure);
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(breaker.snapshot().window.failures, 1);
    // Idle for 2.5 windows.
    clock.advance(ms(25_000));
    assert_eq!(breaker.snapshot().window, Counts::default());
    record(&breaker, Outcome::Failure);
    record(&breaker, Outcome::Failure);
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(breaker.snapshot().failed_requests, 5);
}

// ---------------------------------------------------------------------------------------------
// Slow calls
// ---------------------------------------------------------------------------------------------

fn slow_config(rate: Option<u8>) -> BreakerConfig {
    quiet()
        .minimum_calls(2)
        .failure_rate_threshold(100)
        .slow_call_duration(Some(secs(1)))
        .slow_call_rate_threshold(rate)
        .build()
        .expect("valid")
}

#[test]
fn slow_call_rate_trips_when_set() {
    let clock = ManualClock::new();
    let (breaker, recorder) = build(slow_config(Some(50)), &clock);
    let permit = breaker.try_acquire().expect("closed");
    permit.record_timed(Outcome::Success, secs(1));
    // One slow call of one: below minimum_calls.
    assert_eq!(breaker.state(), State::Closed);
    let permit = breaker.try_acquire().expect("closed");
    permit.record_timed(Outcome::Success, secs(5));
    assert_eq!(breaker.state(), State::Open);
    assert_eq!(
        recorder.events()[0].reason,
        TransitionReason::SlowCallRate { slow: 2, calls: 2 }
    );
    let snapshot = breaker.snapshot();
    assert_eq!(
        (snapshot.slow_requests, snapshot.successful_requests),
        (2, 2)
    );
}

#[test]
fn slow_call_rate_below_threshold_does_not_trip() {
    let clock = ManualClock::new();
    let (breaker, _) = build(slow_config(Some(50)), &clock);
    for elapsed in [ms(999), ms(10), ms(1000)] {
        breaker
            .try_acquire()
            .expect("closed")
            .record_timed(Outcome::Success, elapsed);
    }
    // 1 slow of 3.
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(breaker.snapshot().window.slow, 1);
}

#[test]
fn slow_calls_never_trip_when_rate_unset() {
    let clock = ManualClock::new();
    let (breaker, recorder) = build(slow_config(None), &clock);
    for _ in 0..20 {
        breaker
            .try_acquire()
            .expect("closed")
            .record_timed(Outcome::Success, secs(60));
    }
    assert_eq!(breaker.state(), State::Closed);
    assert!(recorder.events().is_empty());
    assert_eq!(breaker.snapshot().slow_requests, 20);
}

#[test]
fn slowness_is_measured_on_the_breaker_clock() {
    let clock = ManualClock::new();
    let (breaker, _) = build(slow_config(None), &clock);
    let permit = breaker.try_acquire().expect("closed");
    clock.advance(Duration::from_nanos(SECOND - 1));
    permit.success();
    assert_eq!(breaker.snapshot().slow_requests, 0);
    // Exactly the threshold counts as slow.
    let permit = breaker.try_acquire().expect("closed");
    clock.advance(secs(1));
    permit.failure();
    let snapshot = breaker.snapshot();
    assert_eq!(snapshot.slow_requests, 1);
    assert_eq!(snapshot.window.slow, 1);
}

#[test]
fn caller_measured_duration_overrides_the_clock() {
    let clock = ManualClock::new();
    let (breaker, _) = build(slow_config(None), &clock);
    let permit = breaker.try_acquire().expect("closed");
    clock.advance(secs(5));
    // The caller says the call itself was quick (it queued before starting).
    permit.record_timed(Outcome::Success, ms(10));
    assert_eq!(breaker.snapshot().slow_requests, 0);
}

#[test]
fn slow_calls_are_not_tracked_without_slow_call_duration() {
    let clock = ManualClock::new();
    let (breaker, _) = build(quiet().build().expect("valid"), &clock);
    let permit = breaker.try_acquire().expect("closed");
    permit.record_timed(Outcome::Success, secs(3600));
    let permit = breaker.try_acquire().expect("closed");
    clock.advance(secs(3600));
    permit.success();
    assert_eq!(breaker.snapshot().slow_requests, 0);
}

// ---------------------------------------------------------------------------------------------
// Open and half-open
// ---------------------------------------------------------------------------------------------

#[test]
fn open_turns_half_open_exactly_at_open_duration_on_try_acquire() {
    let clock = ManualClock::new();
    let config = quiet().failure_threshold(1).build().expect("valid");
    let (breaker, recorder) = build(config, &clock);
    clock.advance(secs(5));
    record(&breaker, Outcome::Failure);
    clock.advance(Duration::from_nanos(30 * SECOND - 1));
    let rejection = rejected(&breaker);
    assert_eq!(rejection.state(), State::Open);
    assert_eq!(rejection.retry_after(), Some(Duration::from_nanos(1)));
    clock.advance(Duration::from_nanos(1));
    let probe = breaker.try_acquire().expect("half-open probe");
    assert!(probe.is_probe());
    assert_eq!(breaker.state(), State::HalfOpen);
    let last = recorder.events().pop().expect("event");
    assert_eq!(
        (last.from, last.to, last.reason, last.generation, last.at),
        (
            State::Open,
            State::HalfOpen,
            TransitionReason::OpenDurationElapsed,
            2,
            Nanos(35 * SECOND)
        )
    );
    drop(probe);
}

#[test]
fn tick_turns_open_half_open_without_traffic() {
    let clock = ManualClock::new();
    let config = quiet().failure_threshold(1).build().expect("valid");
    let (breaker, recorder) = build(config, &clock);
    record(&breaker, Outcome::Failure);
    clock.advance(Duration::from_nanos(30 * SECOND - 1));
    assert!(!breaker.tick());
    assert_eq!(breaker.state(), State::Open);
    clock.advance(Duration::from_nanos(1));
    assert!(breaker.tick());
    assert_eq!(breaker.state(), State::HalfOpen);
    assert!(!breaker.tick(), "nothing more is due");
    assert_eq!(
        recorder.moves(),
        [
            (
                State::Closed,
                State::Open,
                TransitionReason::ConsecutiveFailures { count: 1 },
                1
            ),
            (
                State::Open,
                State::HalfOpen,
                TransitionReason::OpenDurationElapsed,
                2
            ),
        ]
    );
    // The snapshot says half-open too, without any call having been made.
    assert_eq!(breaker.snapshot().state, State::HalfOpen);
    assert_eq!(breaker.snapshot().rejected_requests, 0);
}

#[test]
fn next_deadline_is_when_open_turns_half_open() {
    let clock = ManualClock::new();
    let config = quiet().failure_threshold(1).build().expect("valid");
    let (breaker, recorder) = build(config, &clock);
    assert_eq!(breaker.next_deadline(), None);
    clock.advance(secs(7));
    record(&breaker, Outcome::Failure);
    let deadline = Nanos(37 * SECOND);
    assert_eq!(breaker.next_deadline(), Some(deadline));
    assert_eq!(recorder.events()[0].open_until, Some(deadline));
    clock.advance(secs(10));
    assert_eq!(breaker.next_deadline(), Some(deadline));
    clock.advance_to(deadline);
    assert!(breaker.tick());
    assert_eq!(breaker.next_deadline(), None);
}

#[test]
fn rejection_retry_after_is_time_left_until_half_open() {
    let clock = ManualClock::new();
    let config = quiet().failure_threshold(1).build().expect("valid");
    let (breaker, _) = build(config, &clock);
    record(&breaker, Outcome::Failure);
    assert_eq!(rejected(&breaker).retry_after(), Some(secs(30)));
    clock.advance(secs(5));
    assert_eq!(rejected(&breaker).retry_after(), Some(secs(25)));
    clock.advance(ms(24_750));
    let rejection = rejected(&breaker);
    assert_eq!(rejection.retry_after(), Some(ms(250)));
    assert_eq!(rejection.state(), State::Open);
    assert_eq!(breaker.snapshot().retry_after, Some(ms(250)));
    assert_eq!(breaker.snapshot().rejected_requests, 3);
}

#[test]
fn half_open_admits_at_most_half_open_max_calls() {
    let clock = ManualClock::new();
    let config = quiet()
        .half_open_max_calls(2)
        .half_open_success_threshold(5)
        .build()
        .expect("valid");
    let (breaker, _) = build(config, &clock);
    open_then_half_open(&breaker, &clock);
    let a = breaker.try_acquire().expect("probe 1");
    let b = breaker.try_acquire().expect("probe 2");
    assert!(a.is_probe() && b.is_probe());
    let rejection = rejected(&breaker);
    assert_eq!(
        (rejection.state(), rejection.retry_after()),
        (State::HalfOpen, None)
    );
    let snapshot = breaker.snapshot();
    assert_eq!(snapshot.half_open_probes, 2);
    assert_eq!(snapshot.rejected_requests, 1);
    a.success();
    b.success();
}

#[test]
fn dropped_probe_frees_its_slot_and_records_nothing() {
    let clock = ManualClock::new();
    let config = quiet().half_open_max_calls(1).build().expect("valid");
    let (breaker, _) = build(config, &clock);
    open_then_half_open(&breaker, &clock);
    let probe = breaker.try_acquire().expect("probe");
    assert!(breaker.try_acquire().is_err());
    drop(probe);
    assert_eq!(breaker.snapshot().half_open_probes, 0);
    let probe = breaker.try_acquire().expect("slot freed by drop");
    assert_eq!(breaker.state(), State::HalfOpen);
    let snapshot = breaker.snapshot();
    assert_eq!(snapshot.window.calls(), 0);
    assert_eq!(snapshot.total_requests, 1, "only the one rejection");
    drop(probe);
}

#[test]
fn ignored_probe_frees_its_slot_and_records_nothing() {
    let clock = ManualClock::new();
    let config = quiet().half_open_max_calls(1).build().expect("valid");
    let (breaker, _) = build(config, &clock);
    open_then_half_open(&breaker, &clock);
    let probe = breaker.try_acquire().expect("probe");
    assert!(breaker.try_acquire().is_err());
    probe.ignore();
    assert_eq!(breaker.state(), State::HalfOpen);
    let probe = breaker.try_acquire().expect("slot freed by ignore");
    probe.record(Outcome::Ignored);
    let snapshot = breaker.snapshot();
    assert_eq!(snapshot.window.calls(), 0);
    assert_eq!(
        (snapshot.successful_requests, snapshot.failed_requests),
        (0, 0)
    );
    assert_eq!(snapshot.half_open_probes, 0);
}

#[test]
fn half_open_success_threshold_successes_close() {
    let clock = ManualClock::new();
    let config = quiet()
        .half_open_max_calls(1)
        .half_open_success_threshold(3)
        .build()
        .expect("valid");
    let (breaker, recorder) = build(config, &clock);
    open_then_half_open(&breaker, &clock);
    for _ in 0..2 {
        breaker.try_acquire().expect("probe").success();
        assert_eq!(breaker.state(), State::HalfOpen);
    }
    breaker.try_acquire().expect("probe").success();
    assert_eq!(breaker.state(), State::Closed);
    let last = recorder.events().pop().expect("event");
    assert_eq!(
        (last.from, last.to, last.reason, last.generation),
        (
            State::HalfOpen,
            State::Closed,
            TransitionReason::ProbesSucceeded,
            3
        )
    );
    // Closing starts a fresh window; lifetime totals stay.
    let snapshot = breaker.snapshot();
    assert_eq!(snapshot.window, Counts::default());
    assert_eq!(snapshot.successful_requests, 3);
    assert_eq!(snapshot.consecutive_trips, 0);
}

#[test]
fn any_probe_failure_reopens() {
    for outcome in [
        Outcome::Failure,
        Outcome::Timeout,
        Outcome::RetryAfter(secs(1)),
    ] {
        let clock = ManualClock::new();
        let config = quiet()
            .half_open_max_calls(3)
            .half_open_success_threshold(3)
            .build()
            .expect("valid");
        let (breaker, recorder) = build(config, &clock);
        open_then_half_open(&breaker, &clock);
        let a = breaker.try_acquire().expect("probe");
        let b = breaker.try_acquire().expect("probe");
        let c = breaker.try_acquire().expect("probe");
        a.success();
        b.success();
        c.record(outcome);
        assert_eq!(breaker.state(), State::Open, "{outcome:?}");
        let last = recorder.events().pop().expect("event");
        assert_eq!(
            (last.from, last.to, last.reason, last.generation),
            (
                State::HalfOpen,
                State::Open,
                TransitionReason::ProbeFailed,
                3
            ),
            "{outcome:?}"
        );
        assert_eq!(until_half_open(&breaker), secs(30), "{outcome:?}");
    }
}

#[test]
fn slow_probe_reopens_when_slowness_can_trip() {
    let clock = ManualClock::new();
    let config = quiet()
        .slow_call_duration(Some(secs(1)))
        .slow_call_rate_threshold(Some(50))
        .build()
        .expect("valid");
    let (breaker, recorder) = build(config, &clock);
    open_then_half_open(&breaker, &clock);
    breaker
        .try_acquire()
        .expect("probe")
        .record_timed(Outcome::Success, secs(2));
    assert_eq!(breaker.state(), State::Open);
    assert_eq!(
        recorder.events().pop().expect("event").reason,
        TransitionReason::ProbeFailed
    );
}

// ---------------------------------------------------------------------------------------------
// Open duration growth, jitter, Retry-After
// ---------------------------------------------------------------------------------------------

fn fail_probe(breaker: &Breaker, clock: &ManualClock) {
    clock.advance_to(breaker.next_deadline().expect("open"));
    breaker.try_acquire().expect("probe").failure();
}

#[test]
fn open_duration_doubles_per_consecutive_trip_up_to_max() {
    let clock = ManualClock::new();
    let config = quiet()
        .failure_threshold(1)
        .open_duration(secs(10))
        .open_duration_max(Some(secs(35)))
        .build()
        .expect("valid");
    let (breaker, recorder) = build(config, &clock);
    record(&breaker, Outcome::Failure);
    assert_eq!(until_half_open(&breaker), secs(10));
    let mut grown = Vec::new();
    for _ in 0..3 {
        fail_probe(&breaker, &clock);
        grown.push(until_half_open(&breaker));
    }
    assert_eq!(grown, [secs(20), secs(35), secs(35)]);
    assert_eq!(breaker.snapshot().consecutive_trips, 4);
    let opened: Vec<_> = recorder
        .events()
        .iter()
        .filter(|t| t.to == State::Open)
        .map(|t| t.open_until.expect("open").0 - t.at.0)
        .collect();
    assert_eq!(opened, [10 * SECOND, 20 * SECOND, 35 * SECOND, 35 * SECOND]);
}

#[test]
fn open_duration_growth_resets_after_closing() {
    let clock = ManualClock::new();
    let config = quiet()
        .failure_threshold(1)
        .open_duration(secs(10))
        .open_duration_max(Some(secs(100)))
        .build()
        .expect("valid");
    let (breaker, _) = build(config, &clock);
    record(&breaker, Outcome::Failure);
    fail_probe(&breaker, &clock);
    assert_eq!(until_half_open(&breaker), secs(20));
    clock.advance_to(breaker.next_deadline().expect("open"));
    breaker.try_acquire().expect("probe").success();
    assert_eq!(breaker.state(), State::Closed);
    record(&breaker, Outcome::Failure);
    assert_eq!(until_half_open(&breaker), secs(10));
}

#[test]
fn open_duration_is_fixed_without_open_duration_max() {
    let clock = ManualClock::new();
    let config = quiet()
        .failure_threshold(1)
        .jitter(100)
        .build()
        .expect("valid");
    let recorder = Recorder::default();
    let breaker = Breaker::builder("dep", config)
        .clock(Arc::new(clock.clone()))
        .jitter(Arc::new(SplitMix::with_seed(1)))
        .listener(recorder.listener())
        .build();
    record(&breaker, Outcome::Failure);
    for _ in 0..5 {
        assert_eq!(until_half_open(&breaker), secs(30));
        fail_probe(&breaker, &clock);
    }
}

#[test]
fn jitter_cuts_open_duration_within_configured_percent() {
    let clock = ManualClock::new();
    let config = quiet()
        .open_duration(secs(10))
        .open_duration_max(Some(secs(40)))
        .jitter(20)
        .build()
        .expect("valid");
    let breaker = Breaker::builder("dep", config)
        .clock(Arc::new(clock.clone()))
        .jitter(Arc::new(SplitMix::with_seed(42)))
        .build();
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..200 {
        // First trip: 10 s less at most 20 %; second: 20 s less at most 20 %.
        breaker.trip().expect("tripped");
        let first = until_half_open(&breaker);
        assert!(first > secs(8) && first <= secs(10), "{first:?}");
        fail_probe(&breaker, &clock);
        let second = until_half_open(&breaker);
        assert!(second > secs(16) && second <= secs(20), "{second:?}");
        seen.insert(first);
        breaker.reset().expect("reset");
    }
    assert!(seen.len() > 100, "jitter varies: {} distinct", seen.len());

    // Zero jitter: exact even with a random source.
    let config = quiet()
        .open_duration(secs(10))
        .open_duration_max(Some(secs(40)))
        .jitter(0)
        .build()
        .expect("valid");
    let breaker = Breaker::builder("dep", config)
        .clock(Arc::new(clock.clone()))
        .jitter(Arc::new(SplitMix::with_seed(42)))
        .build();
    breaker.trip().expect("tripped");
    assert_eq!(until_half_open(&breaker), secs(10));
    fail_probe(&breaker, &clock);
    assert_eq!(until_half_open(&breaker), secs(20));
}

#[test]
fn honored_retry_after_opens_for_the_hint() {
    let clock = ManualClock::new();
    let config = quiet()
        .failure_threshold(5)
        .honor_retry_after(true)
        .build()
        .expect("valid");
    let (breaker, recorder) = build(config, &clock);
    record(&breaker, Outcome::RetryAfter(secs(12)));
    assert_eq!(until_half_open(&breaker), secs(12));
    assert_eq!(rejected(&breaker).retry_after(), Some(secs(12)));
    assert_eq!(
        recorder.moves(),
        [(
            State::Closed,
            State::Open,
            TransitionReason::RetryAfter { duration: secs(12) },
            1
        )]
    );
    assert_eq!(breaker.snapshot().failed_requests, 1);
}

#[test]
fn retry_after_hint_is_capped() {
    // Capped by open_duration_max when set...
    let clock = ManualClock::new();
    let config = quiet()
        .honor_retry_after(true)
        .open_duration_max(Some(secs(300)))
        .build()
        .expect("valid");
    let (breaker, recorder) = build(config, &clock);
    record(&breaker, Outcome::RetryAfter(secs(3600)));
    assert_eq!(until_half_open(&breaker), secs(300));
    assert_eq!(
        recorder.events()[0].reason,
        TransitionReason::RetryAfter {
            duration: secs(300)
        }
    );
    // ...and by open_duration otherwise.
    let config = quiet().honor_retry_after(true).build().expect("valid");
    let (breaker, _) = build(config, &clock);
    record(&breaker, Outcome::RetryAfter(secs(3600)));
    assert_eq!(until_half_open(&breaker), secs(30));
}

#[test]
fn honored_retry_after_on_a_probe_reopens_for_the_hint() {
    let clock = ManualClock::new();
    let config = quiet().honor_retry_after(true).build().expect("valid");
    let (breaker, recorder) = build(config, &clock);
    open_then_half_open(&breaker, &clock);
    breaker
        .try_acquire()
        .expect("probe")
        .record(Outcome::RetryAfter(secs(7)));
    assert_eq!(until_half_open(&breaker), secs(7));
    assert_eq!(
        recorder.events().pop().expect("event").reason,
        TransitionReason::RetryAfter { duration: secs(7) }
    );
}

#[test]
fn retry_after_is_a_plain_failure_when_not_honored() {
    let clock = ManualClock::new();
    let config = quiet().failure_threshold(2).build().expect("valid");
    let (breaker, recorder) = build(config, &clock);
    record(&breaker, Outcome::RetryAfter(secs(5)));
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(breaker.snapshot().failed_requests, 1);
    record(&breaker, Outcome::RetryAfter(secs(5)));
    assert_eq!(until_half_open(&breaker), secs(30));
    assert_eq!(
        recorder.events()[0].reason,
        TransitionReason::ConsecutiveFailures { count: 2 }
    );
}

// ---------------------------------------------------------------------------------------------
// Generations
// ---------------------------------------------------------------------------------------------

#[test]
fn late_outcome_from_before_a_trip_decides_nothing() {
    let clock = ManualClock::new();
    let config = quiet()
        .failure_threshold(1)
        .half_open_max_calls(2)
        .half_open_success_threshold(1)
        .build()
        .expect("valid");
    let (breaker, recorder) = build(config, &clock);
    let slow_success = breaker.try_acquire().expect("closed");
    let slow_failure = breaker.try_acquire().expect("closed");
    record(&breaker, Outcome::Failure);
    clock.advance(secs(30));
    assert!(breaker.tick());
    let before = breaker.snapshot();
    assert_eq!(before.generation, 2);

    // A success from generation 0 would close a half-open breaker with threshold 1.
    slow_success.success();
    assert_eq!(breaker.state(), State::HalfOpen);
    // A failure from generation 0 would re-open it.
    slow_failure.failure();
    assert_eq!(breaker.state(), State::HalfOpen);
    let after = breaker.snapshot();
    assert_eq!(after.generation, 2);
    assert_eq!(
        (
            after.successful_requests,
            after.failed_requests,
            after.consecutive_failures
        ),
        // The one failure counted is 30 s old, outside the 10 s window: no longer consecutive.
        (0, 1, 0),
        "late outcomes are not counted"
    );
    assert_eq!(after.window, before.window);
    assert_eq!(recorder.events().len(), 2);
    // Both probe slots are still free.
    let a = breaker.try_acquire().expect("probe");
    let b = breaker.try_acquire().expect("probe");
    a.ignore();
    b.ignore();
}

#[test]
fn late_probe_from_an_earlier_half_open_cycle_decides_nothing() {
    let clock = ManualClock::new();
    let config = quiet()
        .half_open_max_calls(2)
        .half_open_success_threshold(1)
        .build()
        .expect("valid");
    let (breaker, recorder) = build(config, &clock);
    open_then_half_open(&breaker, &clock);
    let late = breaker.try_acquire().expect("probe of cycle 1");
    breaker.try_acquire().expect("probe").failure();
    assert_eq!(breaker.state(), State::Open);
    fail_probe_deadline_tick(&breaker, &clock);
    let held = breaker.try_acquire().expect("probe of cycle 2");
    late.success();
    assert_eq!(breaker.state(), State::HalfOpen);
    assert_eq!(
        breaker.snapshot().half_open_probes,
        1,
        "late permit freed nothing"
    );
    let other = breaker.try_acquire().expect("second slot of cycle 2");
    assert!(breaker.try_acquire().is_err());
    assert_eq!(recorder.events().len(), 4);
    drop(held);
    other.success();
    assert_eq!(breaker.state(), State::Closed);
}

fn fail_probe_deadline_tick(breaker: &Breaker, clock: &ManualClock) {
    clock.advance_to(breaker.next_deadline().expect("open"));
    assert!(breaker.tick());
}

// ---------------------------------------------------------------------------------------------
// Manual states and operator actions
// ---------------------------------------------------------------------------------------------

#[test]
fn forced_open_rejects_until_reset() {
    let clock = ManualClock::new();
    let (breaker, recorder) = build(quiet().build().expect("valid"), &clock);
    let forced = breaker.force_open().expect("transition");
    assert_eq!(
        (forced.from, forced.to, forced.reason, forced.generation),
        (
            State::Closed,
            State::ForcedOpen,
            TransitionReason::ForcedOpen,
            1
        )
    );
    assert_eq!(breaker.force_open(), None, "already forced open");
    for _ in 0..3 {
        let rejection = rejected(&breaker);
        assert_eq!(
            (rejection.state(), rejection.retry_after()),
            (State::ForcedOpen, None)
        );
        clock.advance(secs(3600));
        assert!(!breaker.tick());
        assert_eq!(breaker.next_deadline(), None);
    }
    assert_eq!(breaker.state(), State::ForcedOpen);
    let reset = breaker.reset().expect("transition");
    assert_eq!((reset.from, reset.to), (State::ForcedOpen, State::Closed));
    assert!(breaker.try_acquire().is_ok());
    assert_eq!(recorder.events().len(), 2);
}

#[test]
fn manual_trip_does_not_end_forced_open() {
    // Regression: trip() used to turn forced_open into open, which then recovered by itself.
    let clock = ManualClock::new();
    let (breaker, recorder) = build(quiet().build().expect("valid"), &clock);
    breaker.force_open().expect("transition");
    assert_eq!(breaker.trip(), None);
    assert_eq!(breaker.state(), State::ForcedOpen);
    assert_eq!(breaker.next_deadline(), None);
    clock.advance(secs(3600));
    assert!(!breaker.tick());
    assert_eq!(rejected(&breaker).state(), State::ForcedOpen);
    assert_eq!(recorder.events().len(), 1);
}

#[test]
fn manual_trip_does_not_end_disabled() {
    // Regression: trip() used to turn disabled into open, rejecting calls that must pass.
    let clock = ManualClock::new();
    let (breaker, recorder) = build(quiet().build().expect("valid"), &clock);
    breaker.disable().expect("transition");
    assert_eq!(breaker.trip(), None);
    assert_eq!(breaker.state(), State::Disabled);
    record(&breaker, Outcome::Failure);
    assert_eq!(breaker.snapshot().consecutive_trips, 0);
    assert_eq!(recorder.events().len(), 1);
}

#[test]
fn disabled_passes_all_calls_counts_outcomes_never_trips() {
    let clock = ManualClock::new();
    let config = BreakerConfig::builder()
        .failure_threshold(1)
        .minimum_calls(1)
        .failure_rate_threshold(1)
        .build()
        .expect("valid");
    let (breaker, recorder) = build(config, &clock);
    breaker.disable().expect("transition");
    for _ in 0..50 {
        record(&breaker, Outcome::Failure);
        record(&breaker, Outcome::Timeout);
    }
    assert_eq!(breaker.state(), State::Disabled);
    let snapshot = breaker.snapshot();
    assert_eq!(
        (
            snapshot.failed_requests,
            snapshot.timeouts,
            snapshot.consecutive_failures,
            snapshot.total_requests,
            snapshot.rejected_requests
        ),
        (50, 50, 100, 100, 0)
    );
    assert_eq!(snapshot.window.failed(), 100);
    assert_eq!(recorder.moves().len(), 1);
    assert!(!breaker.tick());
    breaker.reset().expect("transition");
    assert_eq!(breaker.state(), State::Closed);
    record(&breaker, Outcome::Failure);
    assert_eq!(
        breaker.state(),
        State::Open,
        "enabled again, the rules apply"
    );
}

#[test]
fn reset_clears_every_counter() {
    let clock = ManualClock::new();
    let config = quiet()
        .failure_threshold(2)
        .slow_call_duration(Some(ms(100)))
        .build()
        .expect("valid");
    let (breaker, recorder) = build(config, &clock);
    breaker
        .try_acquire()
        .expect("closed")
        .record_timed(Outcome::Success, secs(1));
    record(&breaker, Outcome::Timeout);
    record(&breaker, Outcome::Failure);
    let _ = rejected(&breaker);
    let before = breaker.snapshot();
    assert_eq!(
        (
            before.total_requests,
            before.slow_requests,
            before.consecutive_trips
        ),
        (4, 1, 1)
    );
    clock.advance(secs(2));
    let reset = breaker.reset().expect("transition");
    assert_eq!(
        (reset.from, reset.to, reset.reason, reset.generation),
        (State::Open, State::Closed, TransitionReason::Reset, 2)
    );
    let after = breaker.snapshot();
    assert_eq!(after.state, State::Closed);
    assert_eq!(
        (
            after.total_requests,
            after.successful_requests,
            after.failed_requests,
            after.timeouts,
            after.rejected_requests,
            after.slow_requests,
            after.consecutive_failures,
            after.consecutive_trips
        ),
        (0, 0, 0, 0, 0, 0, 0, 0)
    );
    assert_eq!(after.window, Counts::default());
    assert_eq!(
        (
            after.last_failure_time,
            after.last_success_time,
            after.last_trip
        ),
        (None, None, None)
    );
    assert_eq!(recorder.events().len(), 2);
}

#[test]
fn reset_of_a_closed_breaker_clears_counters_without_a_transition() {
    let clock = ManualClock::new();
    let (breaker, recorder) = build(quiet().build().expect("valid"), &clock);
    record(&breaker, Outcome::Failure);
    record(&breaker, Outcome::Success);
    assert_eq!(breaker.reset(), None);
    let snapshot = breaker.snapshot();
    // The reset starts generation 1 (calls admitted before it no longer count), with no event.
    assert_eq!((snapshot.generation, snapshot.total_requests), (1, 0));
    assert!(recorder.events().is_empty());
}

#[test]
fn manual_trip_opens_for_open_duration() {
    let clock = ManualClock::new();
    let (breaker, recorder) = build(quiet().build().expect("valid"), &clock);
    clock.advance(secs(1));
    let trip = breaker.trip().expect("transition");
    assert_eq!(
        (
            trip.from,
            trip.to,
            trip.reason,
            trip.generation,
            trip.open_until
        ),
        (
            State::Closed,
            State::Open,
            TransitionReason::ManualTrip,
            1,
            Some(Nanos(31 * SECOND))
        )
    );
    assert_eq!(breaker.trip(), None, "already open");
    assert_eq!(until_half_open(&breaker), secs(30));
    let snapshot = breaker.snapshot();
    assert_eq!(snapshot.last_trip, Some(TransitionReason::ManualTrip));
    assert_eq!(snapshot.consecutive_trips, 1);
    assert_eq!(recorder.events().len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Snapshot and listeners
// ---------------------------------------------------------------------------------------------

#[test]
fn snapshot_reports_exact_figures() {
    let origin = SystemTime::UNIX_EPOCH + secs(1_000_000);
    let clock = ManualClock::with_wall_origin(origin);
    let config = quiet()
        .failure_threshold(3)
        .minimum_calls(4)
        .failure_rate_threshold(100)
        .build()
        .expect("valid");
    let (breaker, _) = build(config, &clock);
    let fresh = breaker.snapshot();
    assert_eq!(fresh.state_changed_at, origin);
    assert_eq!(fresh.error_rate(), 0.0);
    assert_eq!(
        (fresh.last_failure_time, fresh.last_success_time),
        (None, None)
    );

    clock.advance(secs(1));
    record(&breaker, Outcome::Success);
    clock.advance(secs(1));
    record(&breaker, Outcome::Failure);
    clock.advance(secs(1));
    record(&breaker, Outcome::Timeout);
    let mid = breaker.snapshot();
    assert_eq!(mid.failure_ratio, None, "3 calls < minimum_calls 4");
    assert!((mid.error_rate() - 200.0 / 3.0).abs() < 1e-9);
    assert_eq!(mid.last_success_time, Some(origin + secs(1)));
    assert_eq!(mid.last_failure_time, Some(origin + secs(3)));

    clock.advance(secs(1));
    record(&breaker, Outcome::Failure);
    assert_eq!(breaker.state(), State::Open, "3 consecutive failures");
    clock.advance(secs(1));
    let _ = rejected(&breaker);
    let _ = rejected(&breaker);
    let snapshot = breaker.snapshot();
    assert_eq!(snapshot.name.as_ref(), "dep");
    assert_eq!(
        (
            snapshot.total_requests,
            snapshot.successful_requests,
            snapshot.failed_requests,
            snapshot.timeouts,
            snapshot.rejected_requests,
            snapshot.consecutive_failures
        ),
        (6, 1, 2, 1, 2, 3)
    );
    assert_eq!(snapshot.failure_ratio, Some(0.75));
    assert_eq!(snapshot.error_rate(), 75.0);
    assert_eq!(snapshot.state_changed_at, origin + secs(4));
    assert_eq!(snapshot.open_until, Some(origin + secs(34)));
    assert_eq!(snapshot.retry_after, Some(secs(29)));
    assert_eq!(snapshot.last_failure_time, Some(origin + secs(4)));
    assert_eq!(snapshot.generation, 1);
    assert_eq!(
        snapshot.last_trip,
        Some(TransitionReason::ConsecutiveFailures { count: 3 })
    );
}

#[test]
fn every_transition_reaches_each_listener_once() {
    let origin = SystemTime::UNIX_EPOCH + secs(2_000_000);
    let clock = ManualClock::with_wall_origin(origin);
    let first = Recorder::default();
    let second = Recorder::default();
    let config = quiet().failure_threshold(1).build().expect("valid");
    let breaker = Breaker::builder("dep", config)
        .clock(Arc::new(clock.clone()))
        .jitter(Arc::new(NoJitter))
        .listener(first.listener())
        .listener(second.listener())
        .build();
    record(&breaker, Outcome::Failure); // closed -> open
    clock.advance(secs(30));
    assert!(breaker.tick()); // open -> half_open
    assert!(!breaker.tick());
    breaker.try_acquire().expect("probe").failure(); // half_open -> open
    clock.advance(secs(30));
    breaker.try_acquire().expect("probe").success(); // open -> half_open -> closed
    breaker.force_open(); // closed -> forced_open
    breaker.force_open(); // no transition, a new generation
    breaker.reset(); // forced_open -> closed
    breaker.reset(); // no transition, a new generation
    breaker.disable(); // closed -> disabled
    breaker.trip(); // nothing: disabled ends only with reset
    breaker.reset(); // disabled -> closed
    breaker.trip(); // closed -> open
    breaker.reset(); // open -> closed

    use State::*;
    use TransitionReason as R;
    let expected = vec![
        (Closed, Open, R::ConsecutiveFailures { count: 1 }, 1),
        (Open, HalfOpen, R::OpenDurationElapsed, 2),
        (HalfOpen, Open, R::ProbeFailed, 3),
        (Open, HalfOpen, R::OpenDurationElapsed, 4),
        (HalfOpen, Closed, R::ProbesSucceeded, 5),
        (Closed, ForcedOpen, R::ForcedOpen, 6),
        (ForcedOpen, Closed, R::Reset, 8),
        (Closed, Disabled, R::Disabled, 10),
        (Disabled, Closed, R::Reset, 11),
        (Closed, Open, R::ManualTrip, 12),
        (Open, Closed, R::Reset, 13),
    ];
    assert_eq!(first.moves(), expected);
    assert_eq!(second.events(), first.events());
    let events = first.events();
    assert!(events.iter().all(|t| t.breaker.as_ref() == "dep"));
    let at: Vec<u64> = events.iter().map(|t| t.at.0 / SECOND).collect();
    assert_eq!(at, [0, 30, 30, 60, 60, 60, 60, 60, 60, 60, 60]);
    assert!(
        events
            .iter()
            .all(|t| t.wall == origin + Duration::from_nanos(t.at.0))
    );
    let open_until: Vec<Option<u64>> = events
        .iter()
        .map(|t| t.open_until.map(|n| n.0 / SECOND))
        .collect();
    assert_eq!(
        open_until,
        [
            Some(30),
            None,
            Some(60),
            None,
            None,
            None,
            None,
            None,
            None,
            Some(90),
            None
        ]
    );
    assert_eq!(breaker.snapshot().generation, 13);
}

// ---------------------------------------------------------------------------------------------
// Registry
// ---------------------------------------------------------------------------------------------

fn registry(clock: &ManualClock, recorder: &Recorder) -> Registry {
    let defaults = quiet().failure_threshold(5).build().expect("valid");
    let plex = defaults
        .to_builder()
        .failure_threshold(3)
        .open_duration(secs(10))
        .build()
        .expect("valid");
    Registry::builder(defaults)
        .breaker("plex", plex)
        .clock(Arc::new(clock.clone()))
        .jitter(Arc::new(NoJitter))
        .listener(recorder.listener())
        .build()
}

#[test]
fn registry_applies_overrides_and_defaults() {
    let clock = ManualClock::new();
    let recorder = Recorder::default();
    let registry = registry(&clock, &recorder);
    assert_eq!(
        registry.len(),
        1,
        "overridden breakers exist from the start"
    );
    let plex = registry.get("plex").expect("created at build");
    assert_eq!(plex.config().failure_threshold(), 3);
    assert_eq!(plex.config().open_duration(), secs(10));
    let tmdb = registry.get_or_create("tmdb");
    assert_eq!(tmdb.config(), registry.defaults());
    assert_eq!(tmdb.config().failure_threshold(), 5);
    for _ in 0..3 {
        record(&plex, Outcome::Failure);
        record(&tmdb, Outcome::Failure);
    }
    assert_eq!((plex.state(), tmdb.state()), (State::Open, State::Closed));
    let names: Vec<_> = recorder
        .events()
        .iter()
        .map(|t| t.breaker.to_string())
        .collect();
    assert_eq!(names, ["plex"]);
}

#[test]
fn registry_get_finds_only_existing_breakers() {
    let clock = ManualClock::new();
    let registry = registry(&clock, &Recorder::default());
    assert!(registry.get("tmdb").is_none());
    assert_eq!(registry.len(), 1);
    let created = registry.get_or_create("tmdb");
    let again = registry.get_or_create("tmdb");
    let found = registry.get("tmdb").expect("now exists");
    assert!(Arc::ptr_eq(&created, &again));
    assert!(Arc::ptr_eq(&created, &found));
    assert_eq!(registry.len(), 2);
    let plex = registry.get_or_create("plex");
    assert!(Arc::ptr_eq(&plex, &registry.get("plex").expect("exists")));
    assert_eq!(registry.len(), 2);
}

#[test]
fn registry_holds_ten_thousand_breakers() {
    let clock = ManualClock::new();
    let registry = registry(&clock, &Recorder::default());
    let created: Vec<_> = (0..10_000)
        .map(|i| registry.get_or_create(&format!("dep-{i:05}")))
        .collect();
    assert_eq!(registry.len(), 10_001);
    for (i, breaker) in created.iter().enumerate() {
        let found = registry.get(&format!("dep-{i:05}")).expect("exists");
        assert!(Arc::ptr_eq(breaker, &found));
        assert_eq!(found.name().as_ref(), format!("dep-{i:05}"));
    }
    let all = registry.breakers();
    assert_eq!(all.len(), 10_001);
    assert!(all.windows(2).all(|w| w[0].name() < w[1].name()));
    assert_eq!(registry.snapshots().len(), 10_001);
}

#[test]
fn registry_deadlines_and_ticks_span_every_breaker() {
    let clock = ManualClock::new();
    let recorder = Recorder::default();
    let registry = registry(&clock, &recorder);
    let tmdb = registry.get_or_create("tmdb"); // open 30 s
    let plex = registry.get("plex").expect("exists"); // open 10 s
    assert_eq!(registry.next_deadline(), None);
    tmdb.trip().expect("tripped");
    clock.advance(secs(5));
    plex.trip().expect("tripped");
    assert_eq!(registry.next_deadline(), Some(Nanos(15 * SECOND)));
    clock.advance(Duration::from_nanos(10 * SECOND - 1));
    assert_eq!(registry.tick(), 0);
    clock.advance(Duration::from_nanos(1));
    assert_eq!(registry.tick(), 1);
    assert_eq!((plex.state(), tmdb.state()), (State::HalfOpen, State::Open));
    assert_eq!(registry.next_deadline(), Some(Nanos(30 * SECOND)));
    clock.advance(secs(15));
    assert_eq!(registry.tick(), 1);
    assert_eq!(registry.tick(), 0);
    assert_eq!(registry.next_deadline(), None);
    registry.reset_all();
    assert!(
        registry
            .breakers()
            .iter()
            .all(|b| b.state() == State::Closed)
    );
    assert_eq!(recorder.events().len(), 6);
}

#[test]
fn slow_success_without_slow_rate_rule_never_trips() {
    let clock = ManualClock::new();
    let config = quiet()
        .minimum_calls(2)
        .failure_rate_threshold(50)
        .slow_call_duration(Some(ms(100)))
        .build()
        .expect("valid");
    let (breaker, _) = build(config, &clock);
    record(&breaker, Outcome::Failure);
    // 1 failed of 2 calls reaches 50 %, but a success (slow or not) never trips by itself.
    breaker
        .try_acquire()
        .expect("admitted")
        .record_timed(Outcome::Success, ms(500));
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(breaker.snapshot().slow_requests, 1);
    record(&breaker, Outcome::Failure);
    assert_eq!(breaker.state(), State::Open);
}

// ---------------------------------------------------------------------------------------------
// Generations: every operator action starts one
// ---------------------------------------------------------------------------------------------

#[test]
fn reset_of_a_closed_breaker_drops_outcomes_of_calls_admitted_before_it() {
    let clock = ManualClock::new();
    let config = quiet().failure_threshold(2).build().expect("valid");
    let (breaker, recorder) = build(config, &clock);
    let before = [
        breaker.try_acquire().expect("closed"),
        breaker.try_acquire().expect("closed"),
    ];
    let generation = breaker.snapshot().generation;
    assert_eq!(breaker.reset(), None, "already closed: no transition");
    assert!(
        breaker.snapshot().generation > generation,
        "a reset starts a new generation even when closed"
    );
    for permit in before {
        permit.failure();
    }
    let after = breaker.snapshot();
    assert_eq!(after.state, State::Closed, "late failures cannot trip it");
    assert_eq!((after.consecutive_failures, after.failed_requests), (0, 0));
    assert!(recorder.events().is_empty());
    // Calls admitted after the reset count as usual.
    record(&breaker, Outcome::Failure);
    record(&breaker, Outcome::Failure);
    assert_eq!(breaker.state(), State::Open);
}

#[test]
fn force_open_or_disable_again_starts_a_new_generation() {
    let clock = ManualClock::new();
    let config = quiet().failure_threshold(1).build().expect("valid");
    let (breaker, _) = build(config, &clock);
    breaker.disable().expect("transition");
    let admitted = breaker.try_acquire().expect("disabled: every call passes");
    assert_eq!(breaker.disable(), None, "already disabled: no transition");
    admitted.failure();
    assert_eq!(
        breaker.snapshot().failed_requests,
        0,
        "an outcome of the earlier generation is dropped"
    );
    breaker.force_open().expect("transition");
    let generation = breaker.snapshot().generation;
    assert_eq!(breaker.force_open(), None);
    assert!(breaker.snapshot().generation > generation);
}

// ---------------------------------------------------------------------------------------------
// A success never trips: the failure rules are judged on failures only
// ---------------------------------------------------------------------------------------------

/// Minimum 5 calls at 50 %, a slow-call rule configured but out of reach (100 %).
fn rate_with_slow_rule() -> BreakerConfig {
    quiet()
        .minimum_calls(5)
        .failure_rate_threshold(50)
        .slow_call_duration(Some(ms(100)))
        .slow_call_rate_threshold(Some(100))
        .build()
        .expect("valid")
}

#[test]
fn a_success_never_trips_whatever_its_latency() {
    for latency in [ms(1), secs(1)] {
        let clock = ManualClock::new();
        let (breaker, _) = build(rate_with_slow_rule(), &clock);
        for _ in 0..3 {
            record(&breaker, Outcome::Failure);
        }
        breaker
            .try_acquire()
            .expect("closed")
            .record_timed(Outcome::Success, ms(1));
        breaker
            .try_acquire()
            .expect("closed")
            .record_timed(Outcome::Success, latency);
        assert_eq!(
            breaker.state(),
            State::Closed,
            "3 failures then 2 successes, the last taking {latency:?}: a success does not trip"
        );
    }
}

#[test]
fn the_failure_that_reaches_the_rate_trips_it() {
    let clock = ManualClock::new();
    let (breaker, _) = build(rate_with_slow_rule(), &clock);
    for _ in 0..2 {
        record(&breaker, Outcome::Success);
    }
    for _ in 0..2 {
        record(&breaker, Outcome::Failure);
    }
    assert_eq!(
        breaker.state(),
        State::Closed,
        "4 calls: below minimum_calls"
    );
    record(&breaker, Outcome::Failure);
    assert_eq!(
        breaker.state(),
        State::Open,
        "2 successes then 3 failures: 60 %"
    );
}

// ---------------------------------------------------------------------------------------------
// Reads reflect due transitions
// ---------------------------------------------------------------------------------------------

#[test]
fn state_and_snapshot_never_report_an_open_state_past_its_deadline() {
    let clock = ManualClock::new();
    let (breaker, recorder) = build(quiet().build().expect("valid"), &clock);
    breaker.trip().expect("tripped");
    clock.advance(secs(30));
    // Nobody called `tick()`: the read applies the due transition itself.
    assert_eq!(breaker.state(), State::HalfOpen);
    assert_eq!(recorder.moves().last().map(|m| m.1), Some(State::HalfOpen));

    breaker.try_acquire().expect("probe").failure();
    clock.advance(secs(30));
    let snapshot = breaker.snapshot();
    assert_eq!(snapshot.state, State::HalfOpen);
    assert_eq!(snapshot.retry_after, None);
}

// ---------------------------------------------------------------------------------------------
// half_open_max_wait: a probe that never reports cannot stall the breaker
// ---------------------------------------------------------------------------------------------

#[test]
fn a_probe_held_past_half_open_max_wait_reopens_the_breaker() {
    let clock = ManualClock::new();
    let config = quiet()
        .half_open_max_wait(Some(secs(5)))
        .build()
        .expect("valid");
    let (breaker, recorder) = build(config, &clock);
    open_then_half_open(&breaker, &clock);
    let stale = breaker.try_acquire().expect("the one probe");
    let _ = rejected(&breaker);
    assert_eq!(
        breaker.next_deadline(),
        Some(Nanos(clock.now().0 + secs(5).as_nanos() as u64)),
        "a half-open breaker with a bounded wait has a deadline a runtime can wake for"
    );
    clock.advance(secs(5));
    assert!(breaker.tick(), "the wait is over: re-opened");
    assert_eq!(breaker.state(), State::Open);
    assert_eq!(
        recorder.moves().last().map(|m| m.2),
        Some(TransitionReason::HalfOpenMaxWait)
    );
    // The stale probe's late outcome belongs to an earlier generation: it decides nothing.
    stale.success();
    assert_eq!(breaker.state(), State::Open);
    // The next cycle has its own probe slot.
    clock.advance(breaker.until_half_open().expect("open"));
    breaker.try_acquire().expect("a fresh probe").success();
    assert_eq!(breaker.state(), State::Closed);
}

#[test]
fn without_half_open_max_wait_a_held_probe_keeps_the_breaker_half_open() {
    let clock = ManualClock::new();
    let (breaker, _) = build(quiet().build().expect("valid"), &clock);
    open_then_half_open(&breaker, &clock);
    let _held = breaker.try_acquire().expect("probe");
    clock.advance(secs(3600));
    assert_eq!(breaker.next_deadline(), None);
    assert!(!breaker.tick());
    assert_eq!(breaker.state(), State::HalfOpen);
}

// ---------------------------------------------------------------------------------------------
// Consecutive failures expire with the window
// ---------------------------------------------------------------------------------------------

#[test]
fn consecutive_failures_spread_over_hours_do_not_trip() {
    let clock = ManualClock::new();
    let config = quiet().failure_threshold(3).build().expect("valid");
    let (breaker, _) = build(config, &clock);
    for _ in 0..5 {
        record(&breaker, Outcome::Failure);
        clock.advance(secs(3600));
    }
    assert_eq!(
        breaker.state(),
        State::Closed,
        "one failure an hour, window 10 s: never three within the window"
    );
    assert_eq!(breaker.snapshot().consecutive_failures, 0);
    // Three within the window still trip.
    for _ in 0..3 {
        record(&breaker, Outcome::Failure);
        clock.advance(secs(1));
    }
    assert_eq!(breaker.state(), State::Open);
}

#[test]
fn consecutive_failures_after_a_success_in_the_window_all_count() {
    let clock = ManualClock::new();
    let config = quiet().failure_threshold(3).build().expect("valid");
    let (breaker, _) = build(config, &clock);
    record(&breaker, Outcome::Success);
    record(&breaker, Outcome::Failure);
    record(&breaker, Outcome::Failure);
    assert_eq!(breaker.snapshot().consecutive_failures, 2);
    clock.advance(secs(9));
    record(&breaker, Outcome::Failure);
    assert_eq!(breaker.state(), State::Open);
}

#[test]
fn unbounded_consecutive_failures_keep_the_old_rule() {
    let clock = ManualClock::new();
    let config = quiet()
        .failure_threshold(3)
        .consecutive_failures_window(ConsecutiveFailuresWindow::Unbounded)
        .build()
        .expect("valid");
    let (breaker, _) = build(config, &clock);
    for _ in 0..2 {
        record(&breaker, Outcome::Failure);
        clock.advance(secs(3600));
    }
    record(&breaker, Outcome::Failure);
    assert_eq!(breaker.state(), State::Open);
}

// ---------------------------------------------------------------------------------------------
// Open-duration growth other than doubling
// ---------------------------------------------------------------------------------------------

#[test]
fn open_duration_grows_by_the_configured_multiplier() {
    let clock = ManualClock::new();
    let config = quiet()
        .failure_threshold(1)
        .open_duration(secs(10))
        .open_duration_max(Some(secs(40)))
        .open_duration_multiplier(1.5)
        .build()
        .expect("valid");
    let (breaker, _) = build(config, &clock);
    record(&breaker, Outcome::Failure);
    let mut grown = vec![until_half_open(&breaker)];
    for _ in 0..4 {
        fail_probe(&breaker, &clock);
        grown.push(until_half_open(&breaker));
    }
    assert_eq!(
        grown,
        [secs(10), secs(15), ms(22_500), ms(33_750), secs(40)]
    );
}

#[test]
fn an_open_duration_multiplier_below_one_is_refused() {
    for bad in [0.5, f64::NAN, f64::INFINITY, 1000.0] {
        let err = quiet()
            .open_duration_multiplier(bad)
            .build()
            .expect_err("refused");
        assert_eq!(err.field(), "open_duration_multiplier");
    }
}

#[test]
fn a_break_duration_function_decides_each_open_duration() {
    let clock = ManualClock::new();
    let config = quiet().failure_threshold(1).build().expect("valid");
    let breaker = Breaker::builder("dep", config)
        .clock(Arc::new(clock.clone()))
        .break_duration(|trip: &breakerbox::breaker::Trip| secs(u64::from(trip.consecutive) * 7))
        .build();
    record(&breaker, Outcome::Failure);
    assert_eq!(until_half_open(&breaker), secs(7));
    fail_probe(&breaker, &clock);
    assert_eq!(until_half_open(&breaker), secs(14));
}

// ---------------------------------------------------------------------------------------------
// Manual states with an end, and a manual move to half-open
// ---------------------------------------------------------------------------------------------

#[test]
fn force_open_for_rejects_until_its_end_then_probes() {
    let clock = ManualClock::new();
    let (breaker, recorder) = build(quiet().build().expect("valid"), &clock);
    let forced = breaker.force_open_for(secs(90)).expect("transition");
    assert_eq!(
        (forced.to, forced.reason),
        (State::ForcedOpen, TransitionReason::ForcedOpen)
    );
    assert_eq!(rejected(&breaker).retry_after(), Some(secs(90)));
    assert_eq!(
        breaker.next_deadline(),
        Some(Nanos(secs(90).as_nanos() as u64)),
        "a runtime can wake for its end"
    );
    clock.advance(secs(89));
    assert_eq!(rejected(&breaker).retry_after(), Some(secs(1)));
    clock.advance(secs(1));
    assert_eq!(
        breaker.state(),
        State::HalfOpen,
        "its end hands over to the probes"
    );
    assert_eq!(
        recorder.moves().last().map(|m| m.2),
        Some(TransitionReason::ForcedOpenElapsed)
    );
    breaker.try_acquire().expect("probe").success();
    assert_eq!(breaker.state(), State::Closed);
}

#[test]
fn force_open_until_an_instant_and_untimed_force_open_never_ends_alone() {
    let clock = ManualClock::new();
    let (breaker, _) = build(quiet().build().expect("valid"), &clock);
    breaker
        .force_open_until(Nanos(secs(10).as_nanos() as u64))
        .expect("transition");
    clock.advance(secs(10));
    assert!(breaker.tick());
    assert_eq!(breaker.state(), State::HalfOpen);

    breaker.force_open().expect("transition");
    assert_eq!(breaker.next_deadline(), None);
    assert_eq!(rejected(&breaker).retry_after(), None);
    clock.advance(secs(3600));
    assert!(!breaker.tick());
    assert_eq!(breaker.state(), State::ForcedOpen);
}

#[test]
fn half_open_moves_any_breaker_to_probing_now() {
    let clock = ManualClock::new();
    let config = quiet().failure_threshold(1).build().expect("valid");
    let (breaker, _) = build(config, &clock);
    record(&breaker, Outcome::Failure);
    assert_eq!(breaker.state(), State::Open);
    let moved = breaker.half_open().expect("transition");
    assert_eq!((moved.from, moved.to), (State::Open, State::HalfOpen));
    assert_eq!(moved.reason, TransitionReason::ManualHalfOpen);
    breaker.try_acquire().expect("probe").success();
    assert_eq!(breaker.state(), State::Closed);
}

#[test]
fn a_count_window_rates_the_last_n_calls_whatever_their_age() {
    let clock = ManualClock::new();
    let config = quiet()
        .window_type(WindowType::Count)
        .window_calls(4)
        .minimum_calls(4)
        .failure_threshold(4)
        .failure_rate_threshold(50)
        .build()
        .expect("valid");
    let (breaker, recorder) = build(config, &clock);
    // One call an hour: a 10 s time window would never hold four of them.
    for outcome in [Outcome::Failure, Outcome::Success, Outcome::Success] {
        record(&breaker, outcome);
        clock.advance(secs(3600));
    }
    assert_eq!(breaker.snapshot().window.calls(), 3);
    // The fourth call fills the window: 1 failure of 4 is below 50 %.
    record(&breaker, Outcome::Success);
    assert_eq!(breaker.state(), State::Closed);
    // The fifth pushes the first failure out: 1 of the last 4 is a failure again, then 2 of 4.
    record(&breaker, Outcome::Failure);
    let window = breaker.snapshot().window;
    assert_eq!((window.failures, window.successes), (1, 3));
    assert_eq!(breaker.state(), State::Closed);
    clock.advance(secs(3600));
    record(&breaker, Outcome::Failure);
    assert_eq!(breaker.state(), State::Open);
    assert_eq!(
        recorder.moves()[0].2,
        TransitionReason::FailureRate {
            failed: 2,
            calls: 4
        }
    );
}

#[test]
fn a_count_window_bounds_consecutive_failures_by_its_calls() {
    let clock = ManualClock::new();
    let config = quiet()
        .window_type(WindowType::Count)
        .window_calls(3)
        .minimum_calls(3)
        .failure_rate_threshold(100)
        .failure_threshold(3)
        .build()
        .expect("valid");
    let (breaker, _) = build(config, &clock);
    record(&breaker, Outcome::Failure);
    record(&breaker, Outcome::Failure);
    clock.advance(secs(86_400));
    // Age does not matter to a count window: a day later the third failure still trips.
    record(&breaker, Outcome::Failure);
    assert_eq!(breaker.state(), State::Open);
}

#[test]
fn recovery_runs_from_the_trip_to_the_next_close_across_failed_probes() {
    let clock = ManualClock::new();
    let config = quiet().failure_threshold(1).build().expect("valid");
    let (breaker, recorder) = build(config, &clock);
    assert_eq!(breaker.snapshot().last_recovery, None);
    clock.advance(secs(5));
    record(&breaker, Outcome::Failure);
    clock.advance(secs(30));
    assert_eq!(breaker.state(), State::HalfOpen);
    record(&breaker, Outcome::Failure);
    clock.advance(secs(30));
    clock.advance(secs(15));
    record(&breaker, Outcome::Success);
    assert_eq!(breaker.state(), State::Closed);
    let events = recorder.events();
    let close = events.last().expect("closed");
    assert_eq!((close.to, close.recovery), (State::Closed, Some(secs(75))));
    assert!(
        events[..events.len() - 1]
            .iter()
            .all(|t| t.recovery.is_none()),
        "only a close after a trip carries a recovery"
    );
    let snapshot = breaker.snapshot();
    assert_eq!(snapshot.last_recovery, Some(secs(75)));
    assert_eq!(
        snapshot.last_recovered_at,
        Some(clock.wall_at(Nanos(80 * SECOND)))
    );
    // A manual force-open ended by a reset never tripped: no recovery to tell.
    breaker.force_open();
    breaker.reset();
    assert_eq!(recorder.events().last().map(|t| t.recovery), Some(None));
    assert_eq!(
        breaker.snapshot().last_recovery,
        Some(secs(75)),
        "the last one stays"
    );
}
