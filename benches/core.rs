//! The breaker hot path beside the peer crates failsafe and recloser, measured in one run.
//!
//! Run with: `scripts/bench-core` (writes `docs/benchmarks.md`) or `cargo bench --bench core`.
//!
//! Two paths, each single-threaded and with two threads sharing one breaker:
//!
//! - `permitted`: admit one call on a closed breaker and record its success.
//! - `rejected`: one call turned away by an open breaker.
//!
//! Every crate gets the same workload through its cheapest correct per-call API (see the
//! [`Subject`] impls). Closed breakers use each crate's default settings untouched; open ones
//! differ from the defaults only in a one-hour open duration, so none turns half-open mid-run
//! (each is checked to still reject afterwards).
//!
//! What a figure means: nanoseconds per operation per thread. In `*/single` it is criterion's
//! time per iteration of one thread. In `*/two_threads` two threads, released together by a
//! barrier, each run `iters` operations on the same breaker; the wall time from the first
//! thread's start to the last thread's end (spawn and join excluded) is divided by `iters`, so
//! it is the time one operation takes on one thread while the other thread runs the same loop.
//! Perfect scaling leaves it equal to the single-threaded figure; the two threads together
//! complete two operations in that time.

// A benchmark measures wall time: it reads the system's clock.
#![allow(clippy::disallowed_methods)]

use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use breakerbox::{Breaker, BreakerConfig, Clock, CoarseClock, State, SystemClock};
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, criterion_group, criterion_main};
use failsafe::backoff::{self, EqualJittered};
use failsafe::failure_policy::{
    self, ConsecutiveFailures, FailurePolicy as _, OrElse, SuccessRateOverTimeWindow,
};

/// How long a tripped breaker stays open: far longer than any run.
const OPEN_FOR: Duration = Duration::from_secs(3600);
/// Bound on the failures fed to a breaker to trip it, so a setup mistake fails loudly.
const MAX_TRIP_CALLS: usize = 10_000;

/// One breaker crate under test.
trait Subject: Sync + Sized {
    /// The function name in every group.
    const NAME: &'static str;
    /// A closed breaker with the crate's default settings.
    fn closed() -> Self;
    /// A breaker with the defaults except a long open duration, tripped by failing calls.
    fn open() -> Self;
    /// One permitted call that succeeded; panics if the call is rejected.
    fn permitted(&self);
    /// One call on an open breaker; panics if it is admitted.
    fn rejected(&self);
}

/// Which clock a breakerbox subject reads.
trait ClockChoice: Sync {
    /// The function name in every group.
    const NAME: &'static str;
    fn clock() -> Arc<dyn Clock>;
}

/// As the gateway runs it: a [`CoarseClock`] (a cached reading refreshed every millisecond by a
/// thread), so a call reads one atomic instead of the system clock.
struct Coarse;

impl ClockChoice for Coarse {
    const NAME: &'static str = "breakerbox";
    fn clock() -> Arc<dyn Clock> {
        Arc::new(CoarseClock::new(Duration::from_millis(1)).expect("clock thread starts"))
    }
}

/// The library default, [`SystemClock`] (`std::time::Instant`, ~25 ns a read).
struct System;

impl ClockChoice for System {
    const NAME: &'static str = "breakerbox_system_clock";
    fn clock() -> Arc<dyn Clock> {
        Arc::new(SystemClock::new())
    }
}

/// breakerbox on the clock `C`.
struct Breakerbox<C>(Breaker, std::marker::PhantomData<C>);

impl<C: ClockChoice> Subject for Breakerbox<C> {
    const NAME: &'static str = C::NAME;

    fn closed() -> Self {
        let breaker = Breaker::builder("bench", BreakerConfig::default())
            .clock(C::clock())
            .build();
        Self(breaker, std::marker::PhantomData)
    }

    fn open() -> Self {
        let config = BreakerConfig::builder()
            .open_duration(OPEN_FOR)
            .build()
            .expect("valid config");
        let breaker = Breaker::builder("bench", config).clock(C::clock()).build();
        for _ in 0..MAX_TRIP_CALLS {
            if breaker.state() == State::Open {
                return Self(breaker, std::marker::PhantomData);
            }
            breaker.try_acquire().expect("closed").failure();
        }
        panic!("breakerbox did not trip");
    }

    #[inline]
    fn permitted(&self) {
        self.0
            .try_acquire()
            .expect("closed breaker admits")
            .success();
    }

    #[inline]
    fn rejected(&self) {
        assert!(self.0.try_acquire().is_err(), "open breaker rejects");
    }
}

/// failsafe's default policy (`Config::new()`): success rate over a time window, or else
/// consecutive failures, both with equal-jittered backoff.
type FailsafePolicy =
    OrElse<SuccessRateOverTimeWindow<EqualJittered>, ConsecutiveFailures<EqualJittered>>;

/// failsafe's `StateMachine`, driven through its inherent `is_call_permitted` and `on_success`.
/// `CircuitBreaker::call` is a thin wrapper over exactly these two (plus the closure), so this is
/// its cheapest correct per-call API.
struct Failsafe(failsafe::StateMachine<FailsafePolicy, ()>);

impl Subject for Failsafe {
    const NAME: &'static str = "failsafe";

    fn closed() -> Self {
        Self(failsafe::Config::new().build())
    }

    fn open() -> Self {
        // The default policy spelled out (failsafe 1.3: success rate 0.8 over 30 s with at least
        // 5 requests, or else 5 consecutive failures) with only the backoff lengthened: the
        // default first backoff is 5–10 s, shorter than one benchmark.
        let backoff = || backoff::equal_jittered(OPEN_FOR, OPEN_FOR);
        let policy = failure_policy::success_rate_over_time_window(
            0.8,
            5,
            Duration::from_secs(30),
            backoff(),
        )
        .or_else(failure_policy::consecutive_failures(5, backoff()));
        let subject = Self(failsafe::Config::new().failure_policy(policy).build());
        for _ in 0..MAX_TRIP_CALLS {
            if !subject.0.is_call_permitted() {
                return subject;
            }
            subject.0.on_error();
        }
        panic!("failsafe did not trip");
    }

    #[inline]
    fn permitted(&self) {
        assert!(self.0.is_call_permitted(), "closed breaker admits");
        self.0.on_success();
    }

    #[inline]
    fn rejected(&self) {
        assert!(!self.0.is_call_permitted(), "open breaker rejects");
    }
}

/// recloser through `call`, its only synchronous per-call API.
struct Recloser(recloser::Recloser);

impl Subject for Recloser {
    const NAME: &'static str = "recloser";

    fn closed() -> Self {
        Self(recloser::Recloser::default())
    }

    fn open() -> Self {
        let subject = Self(recloser::Recloser::custom().open_wait(OPEN_FOR).build());
        for _ in 0..MAX_TRIP_CALLS {
            if let Err(recloser::Error::Rejected) = subject.0.call(|| Err::<(), ()>(())) {
                return subject;
            }
        }
        panic!("recloser did not trip");
    }

    #[inline]
    fn permitted(&self) {
        assert!(
            self.0.call(|| Ok::<(), ()>(())).is_ok(),
            "closed breaker admits"
        );
    }

    #[inline]
    fn rejected(&self) {
        assert!(
            matches!(
                self.0.call(|| Ok::<(), ()>(())),
                Err(recloser::Error::Rejected)
            ),
            "open breaker rejects"
        );
    }
}

#[derive(Clone, Copy)]
enum Path {
    Permitted,
    Rejected,
}

#[derive(Clone, Copy)]
enum Threads {
    Single,
    Two,
}

/// Runs `op` `iters` times on each of two threads released together; returns the wall time from
/// the first thread's start to the last thread's end. Works for any `iters`, 1 included.
fn on_two_threads(iters: u64, op: impl Fn() + Sync) -> Duration {
    let barrier = Barrier::new(2);
    let run = || {
        barrier.wait();
        let start = Instant::now();
        for _ in 0..iters {
            op();
        }
        (start, Instant::now())
    };
    let ((start_a, end_a), (start_b, end_b)) = thread::scope(|scope| {
        let a = scope.spawn(run);
        let b = scope.spawn(run);
        (
            a.join().expect("bench thread"),
            b.join().expect("bench thread"),
        )
    });
    end_a.max(end_b) - start_a.min(start_b)
}

fn measure<S: Subject>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    subject: &S,
    op: impl Fn(&S) + Sync,
    threads: Threads,
) {
    match threads {
        Threads::Single => group.bench_function(S::NAME, |b| b.iter(|| op(black_box(subject)))),
        Threads::Two => group.bench_function(S::NAME, |b| {
            b.iter_custom(|iters| on_two_threads(iters, || op(black_box(subject))))
        }),
    };
}

fn run<S: Subject>(group: &mut BenchmarkGroup<'_, WallTime>, path: Path, threads: Threads) {
    match path {
        Path::Permitted => measure(group, &S::closed(), S::permitted, threads),
        Path::Rejected => {
            let subject = S::open();
            measure(group, &subject, S::rejected, threads);
            // Still open after the run: the figure measured rejections only.
            subject.rejected();
        }
    }
}

fn bench_path(c: &mut Criterion, path: Path) {
    let path_name = match path {
        Path::Permitted => "permitted",
        Path::Rejected => "rejected",
    };
    for (threads, threads_name) in [(Threads::Single, "single"), (Threads::Two, "two_threads")] {
        let mut group = c.benchmark_group(format!("{path_name}/{threads_name}"));
        run::<Breakerbox<Coarse>>(&mut group, path, threads);
        run::<Breakerbox<System>>(&mut group, path, threads);
        run::<Failsafe>(&mut group, path, threads);
        run::<Recloser>(&mut group, path, threads);
        group.finish();
    }
}

fn permitted(c: &mut Criterion) {
    bench_path(c, Path::Permitted);
}

fn rejected(c: &mut Criterion) {
    bench_path(c, Path::Rejected);
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30)
}

criterion_group! {
    name = core;
    config = config();
    targets = permitted, rejected
}
criterion_main!(core);
