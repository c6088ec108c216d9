//! Count-based window: the outcomes of the last N calls, whatever their age (resilience4j's
//! `COUNT_BASED` sliding window).
//!
//! Each call takes the next slot of a ring by one `fetch_add` and swaps its outcome in; the
//! outcome it pushed out is taken off the running counts. The running counts are signed so that
//! a call racing a [`clear`](CountWindow::clear) may take them below zero for an instant: every
//! swap moves exactly one outcome in and one out, so the counts always settle on the ring's
//! contents, and a read clamps the instant's dip at zero.

use std::sync::atomic::{AtomicI64, AtomicU8, AtomicU64, Ordering::Relaxed};

use super::window::{Counts, TALLIES, Tally};

/// A slot's byte: 0 for empty, else the tally plus one, with [`SLOW`] set for a slow call.
const SLOW: u8 = 0x10;

fn encode(tally: Tally, slow: bool) -> u8 {
    (tally as u8 + 1) | if slow { SLOW } else { 0 }
}

#[derive(Debug)]
pub(crate) struct CountWindow {
    slots: Box<[AtomicU8]>,
    next: AtomicU64,
    /// Outcomes in the ring now, per tally (slow calls under [`Tally::Slow`]).
    held: [AtomicI64; TALLIES],
    /// Outcomes ever recorded, per tally, since creation or the last reset.
    lifetime: [AtomicU64; TALLIES],
    rejected: AtomicU64,
}

impl CountWindow {
    /// A window of the last `calls` calls (at least 1).
    pub(crate) fn new(calls: u32) -> Self {
        debug_assert!(calls > 0);
        Self {
            slots: (0..calls.max(1)).map(|_| AtomicU8::new(0)).collect(),
            next: AtomicU64::new(0),
            held: Default::default(),
            lifetime: Default::default(),
            rejected: AtomicU64::new(0),
        }
    }

    /// Counts one call as `tally`, slow or not, pushing out the oldest once the ring is full.
    #[inline]
    pub(crate) fn record(&self, tally: Tally, slow: bool) {
        let index = self.next.fetch_add(1, Relaxed) % self.slots.len() as u64;
        let old = self.slots[index as usize].swap(encode(tally, slow), Relaxed);
        self.held[tally as usize].fetch_add(1, Relaxed);
        self.lifetime[tally as usize].fetch_add(1, Relaxed);
        if slow {
            self.held[Tally::Slow as usize].fetch_add(1, Relaxed);
            self.lifetime[Tally::Slow as usize].fetch_add(1, Relaxed);
        }
        self.forget(old);
    }

    /// Takes a slot's former outcome off the running counts.
    fn forget(&self, slot: u8) {
        if slot == 0 {
            return;
        }
        self.held[usize::from((slot & !SLOW) - 1)].fetch_sub(1, Relaxed);
        if slot & SLOW != 0 {
            self.held[Tally::Slow as usize].fetch_sub(1, Relaxed);
        }
    }

    /// Counts one rejected call (a lifetime figure only).
    #[inline]
    pub(crate) fn record_rejection(&self) {
        self.rejected.fetch_add(1, Relaxed);
    }

    /// Counts of the calls in the ring.
    pub(crate) fn counts(&self) -> Counts {
        let mut counts = Counts::default();
        for (tally, held) in self.held.iter().enumerate() {
            counts.add(tally, held.load(Relaxed).max(0).unsigned_abs());
        }
        counts
    }

    /// Every call counted since the window was created or last [`reset`](Self::reset).
    pub(crate) fn lifetime(&self) -> Counts {
        let mut counts = Counts::default();
        for (tally, count) in self.lifetime.iter().enumerate() {
            counts.add(tally, count.load(Relaxed));
        }
        counts
    }

    /// Rejected calls since the window was created or last [`reset`](Self::reset).
    pub(crate) fn rejected(&self) -> u64 {
        self.rejected.load(Relaxed)
    }

    /// Empties the ring; the lifetime totals stay.
    pub(crate) fn clear(&self) {
        for slot in self.slots.iter() {
            self.forget(slot.swap(0, Relaxed));
        }
    }

    /// Empties the ring and the lifetime totals, rejections included.
    pub(crate) fn reset(&self) {
        self.clear();
        for count in &self.lifetime {
            count.store(0, Relaxed);
        }
        self.rejected.store(0, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_exactly_the_last_n_calls() {
        let window = CountWindow::new(3);
        window.record(Tally::Failure, false);
        window.record(Tally::Failure, true);
        window.record(Tally::Success, false);
        let counts = window.counts();
        assert_eq!((counts.failures, counts.successes, counts.slow), (2, 1, 1));
        // The fourth call pushes out the first, the fifth the slow failure.
        window.record(Tally::Timeout, false);
        window.record(Tally::Success, false);
        let counts = window.counts();
        assert_eq!(
            (
                counts.failures,
                counts.successes,
                counts.timeouts,
                counts.slow
            ),
            (0, 2, 1, 0)
        );
        assert_eq!(counts.calls(), 3);
        assert_eq!(window.lifetime().calls(), 5);
        assert_eq!(window.lifetime().slow, 1);
    }

    #[test]
    fn clear_keeps_lifetime_and_reset_drops_it() {
        let window = CountWindow::new(4);
        for _ in 0..6 {
            window.record(Tally::Failure, true);
        }
        window.record_rejection();
        window.clear();
        assert_eq!(window.counts(), Counts::default());
        assert_eq!(window.lifetime().failures, 6);
        window.record(Tally::Success, false);
        assert_eq!(window.counts().calls(), 1);
        window.reset();
        assert_eq!(window.counts(), Counts::default());
        assert_eq!(window.lifetime(), Counts::default());
        assert_eq!(window.rejected(), 0);
    }

    #[test]
    fn counts_settle_on_the_ring_under_contention() {
        let window = CountWindow::new(100);
        std::thread::scope(|scope| {
            for thread in 0..4 {
                let window = &window;
                scope.spawn(move || {
                    for call in 0..10_000 {
                        let tally = if (call + thread) % 3 == 0 {
                            Tally::Failure
                        } else {
                            Tally::Success
                        };
                        window.record(tally, call % 7 == 0);
                    }
                });
            }
        });
        let counts = window.counts();
        assert_eq!(counts.calls(), 100);
        let in_ring = |wanted: u8| {
            window
                .slots
                .iter()
                .filter(|slot| slot.load(Relaxed) & !SLOW == wanted)
                .count() as u64
        };
        assert_eq!(counts.failures, in_ring(Tally::Failure as u8 + 1));
        assert_eq!(counts.successes, in_ring(Tally::Success as u8 + 1));
        let slow = window
            .slots
            .iter()
            .filter(|slot| slot.load(Relaxed) & SLOW != 0)
            .count() as u64;
        assert_eq!(counts.slow, slow);
        assert_eq!(window.lifetime().calls(), 40_000);
    }
}
