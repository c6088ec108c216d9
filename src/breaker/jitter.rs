//! Randomness for open durations, injectable so tests are deterministic.
//!
//! Why jitter: when many breakers trip together (one dependency down for many callers), equal
//! open durations make them all probe at the same instant.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};

/// A source of fractions in `[0, 1)`.
pub trait Jitter: fmt::Debug + Send + Sync + 'static {
    /// The next fraction, at least 0 and below 1.
    fn fraction(&self) -> f64;
}

/// Always 0: open durations are exact.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoJitter;

impl Jitter for NoJitter {
    fn fraction(&self) -> f64 {
        0.0
    }
}

/// A small, fast, lock-free generator (SplitMix64); not for anything secret.
pub struct SplitMix {
    state: AtomicU64,
}

impl SplitMix {
    /// A generator that repeats the same sequence for the same seed.
    pub fn with_seed(seed: u64) -> Self {
        Self {
            state: AtomicU64::new(seed),
        }
    }
}

impl Default for SplitMix {
    /// A generator seeded differently in every process.
    fn default() -> Self {
        Self::with_seed(RandomState::new().hash_one(0x6a09_e667_u64))
    }
}

impl fmt::Debug for SplitMix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SplitMix")
    }
}

impl Jitter for SplitMix {
    fn fraction(&self) -> f64 {
        let mut z = self
            .state
            .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
            .wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        // 53 random bits make every representable fraction below 1 equally likely.
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fractions_stay_in_range_and_repeat_per_seed() {
        let a = SplitMix::with_seed(7);
        let b = SplitMix::with_seed(7);
        for _ in 0..1000 {
            let x = a.fraction();
            assert!((0.0..1.0).contains(&x));
            assert_eq!(x, b.fraction());
        }
        assert_eq!(NoJitter.fraction(), 0.0);
    }
}
