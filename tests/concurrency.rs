//! Many threads on one breaker: the probe cap holds, slots come back, counts stay exact.
//!
//! Bounded loops and a manual clock that never moves: no sleeps, no timing assertions.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex, PoisonError};
use std::thread;
use std::time::Duration;

use breakerbox::breaker::{Listener, NoJitter};
use breakerbox::{Breaker, BreakerConfig, ManualClock, Outcome, State, Transition};

const THREADS: usize = 8;

fn half_open_breaker(max_probes: u32) -> (Arc<Breaker>, ManualClock) {
    let clock = ManualClock::new();
    let config = BreakerConfig::builder()
        .half_open_max_calls(max_probes)
        // Never reached: the breaker stays half-open however many probes succeed.
        .half_open_success_threshold(u32::MAX)
        .open_duration(Duration::from_secs(1))
        .build()
        .expect("valid");
    let breaker = Arc::new(
        Breaker::builder("shared", config)
            .clock(Arc::new(clock.clone()))
            .jitter(Arc::new(NoJitter))
            .build(),
    );
    breaker.trip().expect("tripped");
    clock.advance(Duration::from_secs(1));
    assert!(breaker.tick());
    assert_eq!(breaker.state(), State::HalfOpen);
    (breaker, clock)
}

/// A tiny deterministic generator per thread, so each thread mixes its actions differently.
fn next(seed: &mut u64) -> u64 {
    *seed = seed
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    *seed >> 33
}

#[test]
fn half_open_never_holds_more_than_max_probes() {
    const MAX_PROBES: u32 = 3;
    const ROUNDS: usize = 20_000;
    let (breaker, _clock) = half_open_breaker(MAX_PROBES);
    let in_flight = Arc::new(AtomicU32::new(0));
    let peak = Arc::new(AtomicU32::new(0));
    let admitted = Arc::new(AtomicU64::new(0));
    let successes = Arc::new(AtomicU64::new(0));
    let barrier = Arc::new(Barrier::new(THREADS));

    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let breaker = Arc::clone(&breaker);
            let in_flight = Arc::clone(&in_flight);
            let peak = Arc::clone(&peak);
            let admitted = Arc::clone(&admitted);
            let successes = Arc::clone(&successes);
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || {
                let mut seed = t as u64 + 1;
                let mut held = Vec::new();
                barrier.wait();
                for _ in 0..ROUNDS {
                    if let Ok(permit) = breaker.try_acquire() {
                        assert!(permit.is_probe());
                        let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                        assert!(now <= MAX_PROBES, "{now} probes in flight");
                        peak.fetch_max(now, Ordering::SeqCst);
                        admitted.fetch_add(1, Ordering::Relaxed);
                        held.push(permit);
                    }
                    // Give back some held probes, each in one of the three ways. The in-flight
                    // count drops before the slot is freed, so it never over-counts.
                    while !held.is_empty() && !next(&mut seed).is_multiple_of(3) {
                        let permit = held.swap_remove(0);
                        in_flight.fetch_sub(1, Ordering::SeqCst);
                        match next(&mut seed) % 3 {
                            0 => drop(permit),
                            1 => permit.ignore(),
                            _ => {
                                permit.success();
                                successes.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                }
                for permit in held {
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                    drop(permit);
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("worker");
    }

    assert_eq!(in_flight.load(Ordering::SeqCst), 0);
    assert!(peak.load(Ordering::SeqCst) >= 1);
    assert!(admitted.load(Ordering::Relaxed) >= u64::from(MAX_PROBES));
    let snapshot = breaker.snapshot();
    assert_eq!(snapshot.state, State::HalfOpen);
    assert_eq!(snapshot.generation, 2, "no transition while hammered");
    assert_eq!(snapshot.half_open_probes, 0, "every slot came back");
    assert_eq!(
        snapshot.successful_requests,
        successes.load(Ordering::Relaxed)
    );
    assert_eq!(
        snapshot.total_requests,
        successes.load(Ordering::Relaxed) + snapshot.rejected_requests
    );
    assert_eq!(
        snapshot.rejected_requests + admitted.load(Ordering::Relaxed),
        (THREADS * ROUNDS) as u64
    );

    // Exactly MAX_PROBES probes can be taken again, and not one more.
    let probes: Vec<_> = (0..MAX_PROBES)
        .map(|_| breaker.try_acquire().expect("slot free"))
        .collect();
    let rejected = breaker.try_acquire().expect_err("cap reached");
    assert_eq!(rejected.state(), State::HalfOpen);
    assert_eq!(breaker.snapshot().half_open_probes, MAX_PROBES);
    drop(probes);
}

#[test]
fn concurrent_probe_racers_take_exactly_the_free_slots() {
    // All threads race for the same few slots at once, many times over.
    const MAX_PROBES: u32 = 2;
    const ROUNDS: usize = 500;
    let (breaker, _clock) = half_open_breaker(MAX_PROBES);
    let barrier = Arc::new(Barrier::new(THREADS));
    let wins: Vec<Arc<AtomicU32>> = (0..ROUNDS).map(|_| Arc::new(AtomicU32::new(0))).collect();
    let wins = Arc::new(wins);
    let workers: Vec<_> = (0..THREADS)
        .map(|_| {
            let breaker = Arc::clone(&breaker);
            let barrier = Arc::clone(&barrier);
            let wins = Arc::clone(&wins);
            thread::spawn(move || {
                for round in wins.iter() {
                    barrier.wait();
                    let permit = breaker.try_acquire();
                    if permit.is_ok() {
                        round.fetch_add(1, Ordering::SeqCst);
                    }
                    // Everyone has tried before anyone gives a slot back.
                    barrier.wait();
                    drop(permit);
                    barrier.wait();
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("worker");
    }
    for (round, won) in wins.iter().enumerate() {
        assert_eq!(won.load(Ordering::SeqCst), MAX_PROBES, "round {round}");
    }
    let snapshot = breaker.snapshot();
    assert_eq!(snapshot.half_open_probes, 0);
    assert_eq!(
        snapshot.rejected_requests,
        (ROUNDS * (THREADS - MAX_PROBES as usize)) as u64
    );
}

#[test]
fn concurrent_outcomes_in_closed_state_are_counted_exactly() {
    const ROUNDS: u64 = 10_000;
    let clock = ManualClock::new();
    let config = BreakerConfig::builder()
        .failure_threshold(u32::MAX)
        .minimum_calls(u32::MAX)
        .slow_call_duration(Some(Duration::from_millis(100)))
        .build()
        .expect("valid");
    let breaker = Arc::new(
        Breaker::builder("shared", config)
            .clock(Arc::new(clock.clone()))
            .build(),
    );
    let barrier = Arc::new(Barrier::new(THREADS));
    let workers: Vec<_> = (0..THREADS)
        .map(|_| {
            let breaker = Arc::clone(&breaker);
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || {
                barrier.wait();
                for i in 0..ROUNDS {
                    let permit = breaker.try_acquire().expect("closed");
                    match i % 5 {
                        0 | 1 => permit.success(),
                        2 => permit.failure(),
                        3 => permit.timeout(),
                        _ => permit.record_timed(Outcome::Success, Duration::from_secs(1)),
                    }
                    if i % 7 == 0 {
                        // Dropped and ignored permits count for nothing.
                        drop(breaker.try_acquire().expect("closed"));
                        breaker.try_acquire().expect("closed").ignore();
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("worker");
    }
    let per_kind = ROUNDS / 5 * THREADS as u64;
    let snapshot = breaker.snapshot();
    assert_eq!(snapshot.state, State::Closed);
    assert_eq!(
        (
            snapshot.successful_requests,
            snapshot.failed_requests,
            snapshot.timeouts,
            snapshot.slow_requests,
            snapshot.rejected_requests,
            snapshot.total_requests
        ),
        (3 * per_kind, per_kind, per_kind, per_kind, 0, 5 * per_kind)
    );
    // The clock never moved: the window holds every call.
    assert_eq!(snapshot.window.calls(), 5 * per_kind);
    assert_eq!(snapshot.window.slow, per_kind);
}

#[derive(Default)]
struct Count(Mutex<Vec<Transition>>);

impl Listener for Count {
    fn on_transition(&self, transition: &Transition) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(transition.clone());
    }
}

#[test]
fn racing_failures_trip_once_and_notify_once() {
    for _ in 0..50 {
        let clock = ManualClock::new();
        let listener = Arc::new(Count::default());
        let config = BreakerConfig::builder()
            .failure_threshold(1)
            .build()
            .expect("valid");
        let breaker = Arc::new(
            Breaker::builder("shared", config)
                .clock(Arc::new(clock.clone()))
                .jitter(Arc::new(NoJitter))
                .listener(Arc::clone(&listener) as Arc<dyn Listener>)
                .build(),
        );
        // Every thread holds a permit from the closed state, then all fail together.
        let permits: Vec<_> = (0..THREADS)
            .map(|_| breaker.try_acquire_owned().expect("closed"))
            .collect();
        let barrier = Arc::new(Barrier::new(THREADS));
        let workers: Vec<_> = permits
            .into_iter()
            .map(|permit| {
                let barrier = Arc::clone(&barrier);
                thread::spawn(move || {
                    barrier.wait();
                    permit.failure();
                })
            })
            .collect();
        for worker in workers {
            worker.join().expect("worker");
        }
        let events = listener
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!((events[0].from, events[0].to), (State::Closed, State::Open));
        assert_eq!(breaker.snapshot().generation, 1);
        assert_eq!(breaker.state(), State::Open);
    }
}
