//! Retry budget: retries may add at most a share of recent requests plus a small floor.
//!
//! Why a budget and not a retry count: when an upstream degrades, "3 retries each" multiplies
//! its load by four exactly when it can least take it. Finagle and Envoy bound retries by a
//! share of recent traffic instead, so retries help with sporadic failures and fade out in an
//! outage. Counters live in one-second slots over a ten-second window; the hot path is atomics,
//! and only the rotation of a stale slot takes a (tiny) lock.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use tokio::time::Instant;

/// Number of one-second slots, i.e. the window in seconds.
const SLOTS: usize = 10;

/// How far back the budget looks.
pub const RETRY_BUDGET_WINDOW: Duration = Duration::from_secs(SLOTS as u64);

#[derive(Debug, Default)]
struct Slot {
    /// The second this slot counts for, plus one (0: never used).
    second: AtomicU64,
    requests: AtomicU64,
    retries: AtomicU64,
}

/// Retries allowed: at most `percent` % of the requests of the last ten seconds plus
/// `min_per_second` per second of the window. Uses tokio's clock, so tests can pause it.
#[derive(Debug)]
pub struct RetryBudget {
    percent: u64,
    reserve: u64,
    origin: Instant,
    slots: [Slot; SLOTS],
    rotation: Mutex<()>,
}

impl RetryBudget {
    /// A budget of `percent` % of recent requests plus `min_per_second`; `percent = 0`
    /// disables retries altogether (as the configuration documents).
    pub fn new(percent: u8, min_per_second: u32) -> Self {
        let reserve = if percent == 0 {
            0
        } else {
            u64::from(min_per_second) * SLOTS as u64
        };
        Self {
            percent: u64::from(percent.min(100)),
            reserve,
            origin: Instant::now(),
            slots: Default::default(),
            rotation: Mutex::new(()),
        }
    }

    /// Counts one request (not one attempt): what the budget is a share of.
    pub fn deposit(&self) {
        self.current().requests.fetch_add(1, Relaxed);
    }

    /// Takes one retry from the budget; `false` when the budget is spent.
    ///
    /// Concurrent callers may overdraw by at most one retry each, which is harmless: the budget
    /// is a bound on load, not an account.
    pub fn try_withdraw(&self) -> bool {
        let (requests, retries) = self.totals();
        if retries >= requests * self.percent / 100 + self.reserve {
            return false;
        }
        self.current().retries.fetch_add(1, Relaxed);
        true
    }

    /// Retries that could be taken now.
    pub fn remaining(&self) -> u64 {
        let (requests, retries) = self.totals();
        (requests * self.percent / 100 + self.reserve).saturating_sub(retries)
    }

    fn second(&self) -> u64 {
        Instant::now()
            .saturating_duration_since(self.origin)
            .as_secs()
    }

    /// The slot of the current second, cleared first if it still holds an older second.
    fn current(&self) -> &Slot {
        let second = self.second();
        let slot = &self.slots[(second % SLOTS as u64) as usize];
        if slot.second.load(Relaxed) != second + 1 {
            // A poisoned lock only means another thread panicked mid-rotation; the counters are
            // still valid numbers, so carry on.
            let _guard = self.rotation.lock().unwrap_or_else(|e| e.into_inner());
            if slot.second.load(Relaxed) != second + 1 {
                slot.requests.store(0, Relaxed);
                slot.retries.store(0, Relaxed);
                slot.second.store(second + 1, Relaxed);
            }
        }
        slot
    }

    /// Requests and retries over the window.
    fn totals(&self) -> (u64, u64) {
        let now = self.second() + 1;
        self.slots
            .iter()
            .filter(|s| {
                let at = s.second.load(Relaxed);
                at != 0 && at <= now && now - at < SLOTS as u64
            })
            .fold((0, 0), |(req, ret), s| {
                (
                    req + s.requests.load(Relaxed),
                    ret + s.retries.load(Relaxed),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn floor_is_min_per_second_times_the_window() {
        let budget = RetryBudget::new(20, 1);
        let granted = (0..100).filter(|_| budget.try_withdraw()).count();
        assert_eq!(granted, 10);
        assert!(!budget.try_withdraw());
    }

    #[tokio::test(start_paused = true)]
    async fn share_of_requests_adds_to_the_floor() {
        let budget = RetryBudget::new(20, 0);
        assert!(!budget.try_withdraw(), "no traffic, no floor: no retry");
        for _ in 0..50 {
            budget.deposit();
        }
        let granted = (0..100).filter(|_| budget.try_withdraw()).count();
        assert_eq!(granted, 10, "20 % of 50");
    }

    #[tokio::test(start_paused = true)]
    async fn zero_percent_disables_retries_even_with_a_floor() {
        let budget = RetryBudget::new(0, 3);
        for _ in 0..100 {
            budget.deposit();
        }
        assert!(!budget.try_withdraw());
    }

    #[tokio::test(start_paused = true)]
    async fn spent_budget_refills_as_the_window_moves_on() {
        let budget = RetryBudget::new(10, 0);
        for _ in 0..30 {
            budget.deposit();
        }
        assert_eq!((0..10).filter(|_| budget.try_withdraw()).count(), 3);
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(budget.remaining(), 0, "still inside the window");
        for _ in 0..20 {
            budget.deposit();
        }
        assert_eq!(budget.remaining(), 2, "10 % of 50, 3 spent");
        tokio::time::advance(Duration::from_secs(5)).await;
        // The first second's requests and retries have left the window; the later ones remain.
        assert_eq!(budget.remaining(), 2);
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(budget.remaining(), 0, "nothing recent, nothing to share");
    }
}
