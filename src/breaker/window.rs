//! Time-bucketed rolling window of call outcomes.
//!
//! Each bucket counter is one atomic word holding the bucket's lap (how many whole windows had
//! passed when it was written) beside its count, so a counter is checked and bumped in a single
//! compare-and-swap: a stale bucket is recycled by the first call that lands in its slot, and a
//! bucket is read only when its lap is the one the current window expects. A call older than the
//! window therefore never counts, even after a long idle spell, and no lock is taken.
//!
//! Counts that leave the window are folded into lifetime totals at the moment they are recycled,
//! so lifetime figures cost the hot path nothing.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::clock::Nanos;

/// What a recorded call counts as. A slow call is also a success, failure or timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Success = 0,
    Failure = 1,
    Timeout = 2,
    Slow = 3,
}

const KINDS: usize = 4;
/// A writer whose bucket is older than the slot's by fewer laps than this is late, not wrapped.
const LATE_WRITER_LAPS: u32 = 1 << 20;

/// Outcome counts over some span.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
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

    fn add(&mut self, kind: usize, count: u64) {
        match kind {
            0 => self.successes += count,
            1 => self.failures += count,
            2 => self.timeouts += count,
            _ => self.slow += count,
        }
    }
}

#[derive(Debug, Default)]
#[repr(align(32))]
struct Bucket {
    counters: [AtomicU64; KINDS],
}

#[derive(Debug)]
pub(crate) struct RollingWindow {
    bucket_nanos: u64,
    buckets: Box<[Bucket]>,
    retired: [AtomicU64; KINDS],
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
    pub(crate) fn new(bucket_nanos: u64, buckets: u32) -> Self {
        Self {
            bucket_nanos,
            buckets: (0..buckets).map(|_| Bucket::default()).collect(),
            retired: Default::default(),
        }
    }

    fn len(&self) -> u64 {
        self.buckets.len() as u64
    }

    /// Slot index and lap of the bucket holding `now`.
    fn position(&self, now: Nanos) -> (usize, u32) {
        let epoch = now.0 / self.bucket_nanos;
        ((epoch % self.len()) as usize, (epoch / self.len()) as u32)
    }

    /// Counts one call of `kind` at `now`.
    #[inline]
    pub(crate) fn record(&self, now: Nanos, kind: Kind) {
        let (index, lap) = self.position(now);
        let counter = &self.buckets[index].counters[kind as usize];
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
                        self.retired[kind as usize].fetch_add(count_of(word), Relaxed);
                    }
                    return;
                }
                Err(actual) => word = actual,
            }
        }
    }

    /// Counts of the calls within the window ending at `now`.
    pub(crate) fn counts(&self, now: Nanos) -> Counts {
        let epoch = now.0 / self.bucket_nanos;
        let len = self.len();
        let mut counts = Counts::default();
        for back in 0..len.min(epoch + 1) {
            let bucket_epoch = epoch - back;
            let bucket = &self.buckets[(bucket_epoch % len) as usize];
            let lap = (bucket_epoch / len) as u32;
            for (kind, counter) in bucket.counters.iter().enumerate() {
                let word = counter.load(Relaxed);
                if lap_of(word) == lap {
                    counts.add(kind, count_of(word));
                }
            }
        }
        counts
    }

    /// Every call counted since the window was created or last [`reset`](Self::reset).
    pub(crate) fn lifetime(&self) -> Counts {
        let mut counts = Counts::default();
        for (kind, retired) in self.retired.iter().enumerate() {
            counts.add(kind, retired.load(Relaxed));
        }
        for bucket in self.buckets.iter() {
            for (kind, counter) in bucket.counters.iter().enumerate() {
                counts.add(kind, count_of(counter.load(Relaxed)));
            }
        }
        counts
    }

    /// Empties the window; what it held stays in the lifetime totals.
    pub(crate) fn clear(&self) {
        for bucket in self.buckets.iter() {
            for (kind, counter) in bucket.counters.iter().enumerate() {
                let word = counter.swap(0, Relaxed);
                self.retired[kind].fetch_add(count_of(word), Relaxed);
            }
        }
    }

    /// Empties the window and the lifetime totals.
    pub(crate) fn reset(&self) {
        for bucket in self.buckets.iter() {
            for counter in &bucket.counters {
                counter.store(0, Relaxed);
            }
        }
        for retired in &self.retired {
            retired.store(0, Relaxed);
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
        window.record(at(0), Kind::Failure);
        window.record(at(5), Kind::Success);
        window.record(Nanos(9 * SECOND + SECOND - 1), Kind::Success);
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
        window.record(at(3), Kind::Timeout);
        // Exactly one lap later the same slot is current again but holds an old lap.
        assert_eq!(window.counts(at(13)).timeouts, 0);
        window.record(at(13), Kind::Timeout);
        assert_eq!(window.counts(at(13)).timeouts, 1);
        assert_eq!(window.lifetime().timeouts, 2);
    }

    #[test]
    fn late_writer_does_not_pollute_a_newer_bucket() {
        let window = RollingWindow::new(SECOND, 10);
        window.record(at(12), Kind::Success);
        // A call stamped at 2 s arrives after the slot moved on to 12 s.
        window.record(at(2), Kind::Failure);
        window.record(at(2), Kind::Success);
        let counts = window.counts(at(12));
        assert_eq!((counts.successes, counts.failures), (1, 0));
    }

    #[test]
    fn clear_keeps_lifetime_and_reset_drops_it() {
        let window = RollingWindow::new(SECOND, 4);
        for second in 0..8 {
            window.record(at(second), Kind::Success);
            window.record(at(second), Kind::Slow);
        }
        assert_eq!(window.counts(at(7)).successes, 4);
        assert_eq!(window.lifetime().successes, 8);
        window.clear();
        assert_eq!(window.counts(at(7)), Counts::default());
        assert_eq!(window.lifetime().slow, 8);
        window.record(at(7), Kind::Failure);
        assert_eq!(window.counts(at(7)).failures, 1);
        window.reset();
        assert_eq!(window.lifetime(), Counts::default());
    }
}
