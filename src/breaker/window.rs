//! The windows a breaker counts outcomes in: time buckets (the default), or the last N calls
//! (`window_type = "count"`, in [`super::count_window`]).
//!
//! The time-bucketed rolling window:
//!
//! Each bucket counter is one atomic word holding the bucket's lap (how many whole windows had
//! passed when it was written) beside its count, so a counter is checked and bumped in a single
//! compare-and-swap: a stale bucket is recycled by the first call that lands in its slot, and a
//! bucket is read only when its lap is the one the current window expects. A call older than the
//! window therefore never counts, even after a long idle spell, and no lock is taken.
//!
//! Counts that leave the window are folded into lifetime totals at the moment they are recycled,
//! so lifetime figures cost the hot path nothing. Counters are striped per thread so that cores
//! calling through one breaker do not contend for the same cache line.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

use super::clock::Nanos;
use super::config::{BreakerConfig, WindowType};
use super::count_window::CountWindow;

/// What a recorded call counts as. A slow call is also a success, failure or timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tally {
    Success = 0,
    Failure = 1,
    Timeout = 2,
    Slow = 3,
}

pub(crate) const TALLIES: usize = 4;
/// A writer whose bucket is older than the slot's by fewer laps than this is late, not wrapped.
const LATE_WRITER_LAPS: u32 = 1 << 20;

/// Outcome counts over some span.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Counts {
    /// Calls that succeeded.
    pub successes: u64,
    /// Calls that failed (timeouts excluded).
    pub failures: u64,
    /// Calls that timed out.
    pub timeouts: u64,
    /// Calls slower than the slow-call threshold, whatever their outcome.
    pub slow: u64,
}

impl Counts {
    /// Calls with an outcome: successes, failures and timeouts.
    pub fn calls(&self) -> u64 {
        self.successes + self.failures + self.timeouts
    }

    /// Failures and timeouts: what the failure rate counts.
    pub fn failed(&self) -> u64 {
        self.failures + self.timeouts
    }

    pub(crate) fn add(&mut self, tally: usize, count: u64) {
        match tally {
            0 => self.successes += count,
            1 => self.failures += count,
            2 => self.timeouts += count,
            _ => self.slow += count,
        }
    }
}

/// The window of one breaker, as its configuration chose.
// One per breaker, held inline: boxing the time window would add a pointer chase to every call.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Window {
    Time(RollingWindow),
    Count(CountWindow),
}

impl Window {
    pub(crate) fn new(config: &BreakerConfig) -> Self {
        match config.window_type() {
            WindowType::Count => Window::Count(CountWindow::new(config.window_calls())),
            _ => Window::Time(RollingWindow::new(config.bucket_nanos(), config.buckets())),
        }
    }

    /// Counts one call as `tally` at `now`, and as slow too when `slow`.
    #[inline(always)]
    pub(crate) fn record(&self, now: Nanos, tally: Tally, slow: bool) {
        match self {
            Window::Time(window) => {
                window.record(now, tally);
                if slow {
                    window.record(now, Tally::Slow);
                }
            }
            Window::Count(window) => window.record(tally, slow),
        }
    }

    #[inline]
    pub(crate) fn record_rejection(&self) {
        match self {
            Window::Time(window) => window.record_rejection(),
            Window::Count(window) => window.record_rejection(),
        }
    }

    /// Counts of the calls in the window at `now`.
    pub(crate) fn counts(&self, now: Nanos) -> Counts {
        match self {
            Window::Time(window) => window.counts(now),
            Window::Count(window) => window.counts(),
        }
    }

    pub(crate) fn lifetime(&self) -> Counts {
        match self {
            Window::Time(window) => window.lifetime(),
            Window::Count(window) => window.lifetime(),
        }
    }

    pub(crate) fn rejected(&self) -> u64 {
        match self {
            Window::Time(window) => window.rejected(),
            Window::Count(window) => window.rejected(),
        }
    }

    /// Empties the window; what it held stays in the lifetime totals.
    pub(crate) fn clear(&self) {
        match self {
            Window::Time(window) => window.clear(),
            Window::Count(window) => window.clear(),
        }
    }

    /// Empties the window and the lifetime totals, rejections included.
    pub(crate) fn reset(&self) {
        match self {
            Window::Time(window) => window.reset(),
            Window::Count(window) => window.reset(),
        }
    }
}

#[derive(Debug, Default)]
#[repr(align(32))]
struct Bucket {
    counters: [AtomicU64; TALLIES],
}

/// Threads write to stripes of their own, so cores never fight over a counter's cache line.
/// A power of two.
const STRIPES: usize = 4;

static NEXT_STRIPE: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// This thread's stripe: threads are dealt stripes in turn as they first record something.
#[inline]
fn stripe() -> usize {
    STRIPE.with(|stripe| {
        let index = stripe.get();
        if index != usize::MAX {
            return index;
        }
        let index = NEXT_STRIPE.fetch_add(1, Relaxed) % STRIPES;
        stripe.set(index);
        index
    })
}

/// One thread group's share of the counters.
#[derive(Debug)]
#[repr(align(64))]
struct Stripe {
    buckets: Box<[Bucket]>,
    retired: [AtomicU64; TALLIES],
    rejected: AtomicU64,
}

#[derive(Debug)]
pub(crate) struct RollingWindow {
    bucket_nanos: u64,
    len: u64,
    /// The last bucket a call landed in, as `lap << 16 | index`: a hint that spares the hot
    /// path the divisions that locate a bucket.
    cursor: AtomicU64,
    stripes: [Stripe; STRIPES],
}

fn pack(lap: u32, count: u32) -> u64 {
    (u64::from(lap) << 32) | u64::from(count)
}

fn lap_of(word: u64) -> u32 {
    (word >> 32) as u32
}

fn count_of(word: u64) -> u64 {
    word & u64::from(u32::MAX)
}

impl RollingWindow {
    /// A window of `buckets` (at most 65,535) buckets of `bucket_nanos` each.
    pub(crate) fn new(bucket_nanos: u64, buckets: u32) -> Self {
        debug_assert!(bucket_nanos > 0 && (1..=0xffff).contains(&buckets));
        Self {
            bucket_nanos,
            len: u64::from(buckets),
            cursor: AtomicU64::new(0),
            stripes: std::array::from_fn(|_| Stripe {
                buckets: (0..buckets).map(|_| Bucket::default()).collect(),
                retired: Default::default(),
                rejected: AtomicU64::new(0),
            }),
        }
    }

    /// Slot index and lap of the bucket holding `now`.
    #[inline]
    fn position(&self, now: Nanos) -> (usize, u32) {
        let cursor = self.cursor.load(Relaxed);
        let (lap, index) = ((cursor >> 16) as u32, cursor & 0xffff);
        let start = (u64::from(lap) * self.len + index).wrapping_mul(self.bucket_nanos);
        if now.0.wrapping_sub(start) < self.bucket_nanos {
            return (index as usize, lap);
        }
        self.locate(now)
    }

    #[cold]
    fn locate(&self, now: Nanos) -> (usize, u32) {
        let epoch = now.0 / self.bucket_nanos;
        let (index, lap) = (epoch % self.len, (epoch / self.len) as u32);
        self.cursor.store((u64::from(lap) << 16) | index, Relaxed);
        (index as usize, lap)
    }

    /// Counts one call as `tally` at `now`.
    #[inline(always)]
    pub(crate) fn record(&self, now: Nanos, tally: Tally) {
        let (index, lap) = self.position(now);
        // The mask lets the compiler drop the bounds check: STRIPES is a power of two.
        let stripe = &self.stripes[stripe() & (STRIPES - 1)];
        let counter = &stripe.buckets[index].counters[tally as usize];
        let mut word = counter.load(Relaxed);
        loop {
            let slot_lap = lap_of(word);
            let next = if slot_lap == lap {
                if count_of(word) == u64::from(u32::MAX) {
                    return;
                }
                word + 1
            } else if slot_lap.wrapping_sub(lap) < LATE_WRITER_LAPS {
                // The slot already moved on to a later window: this call is older than the
                // window and must not count in it.
                return;
            } else {
                pack(lap, 1)
            };
            match counter.compare_exchange_weak(word, next, Relaxed, Relaxed) {
                Ok(_) => {
                    if slot_lap != lap {
                        stripe.retired[tally as usize].fetch_add(count_of(word), Relaxed);
                    }
                    return;
                }
                Err(actual) => word = actual,
            }
        }
    }

    /// Counts one rejected call (a lifetime figure only: rejections are not outcomes).
    #[inline]
    pub(crate) fn record_rejection(&self) {
        self.stripes[stripe() & (STRIPES - 1)]
            .rejected
            .fetch_add(1, Relaxed);
    }

    /// Counts of the calls within the window ending at `now`.
    pub(crate) fn counts(&self, now: Nanos) -> Counts {
        let epoch = now.0 / self.bucket_nanos;
        let mut counts = Counts::default();
        for back in 0..self.len.min(epoch + 1) {
            let bucket_epoch = epoch - back;
            let index = (bucket_epoch % self.len) as usize;
            let lap = (bucket_epoch / self.len) as u32;
            for stripe in &self.stripes {
                for (tally, counter) in stripe.buckets[index].counters.iter().enumerate() {
                    let word = counter.load(Relaxed);
                    if lap_of(word) == lap {
                        counts.add(tally, count_of(word));
                    }
                }
            }
        }
        counts
    }

    /// Every call counted since the window was created or last [`reset`](Self::reset).
    pub(crate) fn lifetime(&self) -> Counts {
        let mut counts = Counts::default();
        for stripe in &self.stripes {
            for (tally, retired) in stripe.retired.iter().enumerate() {
                counts.add(tally, retired.load(Relaxed));
            }
            for bucket in stripe.buckets.iter() {
                for (tally, counter) in bucket.counters.iter().enumerate() {
                    counts.add(tally, count_of(counter.load(Relaxed)));
                }
            }
        }
        counts
    }

    /// Rejected calls since the window was created or last [`reset`](Self::reset).
    pub(crate) fn rejected(&self) -> u64 {
        self.stripes
            .iter()
            .map(|stripe| stripe.rejected.load(Relaxed))
            .sum()
    }

    /// Empties the window; what it held stays in the lifetime totals.
    pub(crate) fn clear(&self) {
        for stripe in &self.stripes {
            for bucket in stripe.buckets.iter() {
                for (tally, counter) in bucket.counters.iter().enumerate() {
                    let word = counter.swap(0, Relaxed);
                    stripe.retired[tally].fetch_add(count_of(word), Relaxed);
                }
            }
        }
    }

    /// Empties the window and the lifetime totals, rejections included.
    pub(crate) fn reset(&self) {
        for stripe in &self.stripes {
            for bucket in stripe.buckets.iter() {
                for counter in &bucket.counters {
                    counter.store(0, Relaxed);
                }
            }
            for retired in &stripe.retired {
                retired.store(0, Relaxed);
            }
            stripe.rejected.store(0, Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;

    fn at(seconds: u64) -> Nanos {
        Nanos(seconds * SECOND)
    }

    #[test]
    fn counts_only_calls_inside_the_window() {
        // 10 s window, 1 s buckets.
        let window = RollingWindow::new(SECOND, 10);
        window.record(at(0), Tally::Failure);
        window.record(at(5), Tally::Success);
        window.record(Nanos(9 * SECOND + SECOND - 1), Tally::Success);
        assert_eq!(window.counts(Nanos(10 * SECOND - 1)).calls(), 3);
        // At 10 s the bucket of second 0 has left the window.
        let counts = window.counts(at(10));
        assert_eq!((counts.successes, counts.failures), (2, 0));
        assert_eq!(window.counts(at(15)).calls(), 1);
        assert_eq!(window.counts(at(20)).calls(), 0);
        assert_eq!(window.lifetime().calls(), 3);
    }

    #[test]
    fn idle_slots_never_resurface() {
        let window = RollingWindow::new(SECOND, 10);
        window.record(at(3), Tally::Timeout);
        // Exactly one lap later the same slot is current again but holds an old lap.
        assert_eq!(window.counts(at(13)).timeouts, 0);
        window.record(at(13), Tally::Timeout);
        assert_eq!(window.counts(at(13)).timeouts, 1);
        assert_eq!(window.lifetime().timeouts, 2);
    }

    #[test]
    fn late_writer_does_not_pollute_a_newer_bucket() {
        let window = RollingWindow::new(SECOND, 10);
        window.record(at(12), Tally::Success);
        // A call stamped at 2 s arrives after the slot moved on to 12 s.
        window.record(at(2), Tally::Failure);
        window.record(at(2), Tally::Success);
        let counts = window.counts(at(12));
        assert_eq!((counts.successes, counts.failures), (1, 0));
    }

    #[test]
    fn clear_keeps_lifetime_and_reset_drops_it() {
        let window = RollingWindow::new(SECOND, 4);
        for second in 0..8 {
            window.record(at(second), Tally::Success);
            window.record(at(second), Tally::Slow);
        }
        assert_eq!(window.counts(at(7)).successes, 4);
        assert_eq!(window.lifetime().successes, 8);
        window.clear();
        assert_eq!(window.counts(at(7)), Counts::default());
        assert_eq!(window.lifetime().slow, 8);
        window.record(at(7), Tally::Failure);
        assert_eq!(window.counts(at(7)).failures, 1);
        window.record_rejection();
        assert_eq!(window.rejected(), 1);
        window.reset();
        assert_eq!(window.lifetime(), Counts::default());
        assert_eq!(window.rejected(), 0);
    }

    #[test]
    fn threads_on_other_stripes_add_up() {
        let window = RollingWindow::new(SECOND, 10);
        std::thread::scope(|scope| {
            for _ in 0..STRIPES + 1 {
                scope.spawn(|| {
                    for _ in 0..1000 {
                        window.record(at(3), Tally::Success);
                        window.record_rejection();
                    }
                });
            }
        });
        let expected = 1000 * (STRIPES as u64 + 1);
        assert_eq!(window.counts(at(3)).successes, expected);
        assert_eq!(window.lifetime().successes, expected);
        assert_eq!(window.rejected(), expected);
    }

    #[test]
    fn cursor_follows_time_both_ways() {
        let window = RollingWindow::new(SECOND, 10);
        window.record(at(25), Tally::Failure);
        // A late caller still stamped in an earlier bucket must not use the newer cursor.
        window.record(Nanos(24 * SECOND + 5), Tally::Failure);
        window.record(Nanos(26 * SECOND - 1), Tally::Failure);
        let counts = window.counts(at(25));
        assert_eq!(counts.failures, 3);
        assert_eq!(window.counts(at(34)).failures, 2);
        assert_eq!(window.counts(at(35)).failures, 0);
    }
}
