//! Time as the breaker sees it: a monotonic reading in nanoseconds plus wall time for timestamps.
//!
//! The core never reads a system clock by itself; every decision takes `now` from a [`Clock`], so
//! tests drive time by hand with [`ManualClock`] and a runtime may supply a cheaper clock.

// The clocks are the one place that reads the system's time (clippy.toml bans it elsewhere).
#![allow(clippy::disallowed_methods)]

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// A monotonic instant: nanoseconds since the origin of the [`Clock`] that produced it.
///
/// Instants from different clocks are not comparable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Nanos(pub u64);

impl Nanos {
    /// The clock's origin.
    pub const ZERO: Nanos = Nanos(0);

    /// This instant moved forward by `duration`, saturating at the end of time.
    #[must_use]
    pub fn saturating_add(self, duration: Duration) -> Nanos {
        Nanos(self.0.saturating_add(duration_nanos(duration)))
    }

    /// The time from `earlier` to `self`, or zero when `earlier` is later.
    #[must_use]
    pub fn saturating_duration_since(self, earlier: Nanos) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl fmt::Display for Nanos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", Duration::from_nanos(self.0))
    }
}

/// A [`Duration`] in whole nanoseconds, saturating at `u64::MAX` (about 584 years).
pub(crate) fn duration_nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// A monotonic reading kept current by someone else (a refresh thread, a test), which breakers
/// read with one atomic load instead of a call through `dyn Clock`.
#[derive(Debug, Default)]
pub struct SharedReading(AtomicU64);

impl SharedReading {
    /// A reading at the origin.
    pub fn new() -> Self {
        Self::default()
    }

    /// The current reading.
    #[inline]
    pub fn get(&self) -> Nanos {
        Nanos(self.0.load(Ordering::Relaxed))
    }

    /// Moves the reading forward to `instant`; an earlier instant is ignored.
    pub fn advance_to(&self, instant: Nanos) {
        self.0.fetch_max(instant.0, Ordering::Relaxed);
    }

    /// Moves the reading forward by `duration`.
    pub fn advance(&self, duration: Duration) {
        self.0
            .fetch_add(duration_nanos(duration), Ordering::Relaxed);
    }
}

/// A source of time for breakers.
pub trait Clock: fmt::Debug + Send + Sync + 'static {
    /// The current monotonic instant. Must never go backwards.
    fn now(&self) -> Nanos;

    /// The reading `now` returns, when the clock is such a reading: breakers then load it
    /// directly on their hot path.
    fn shared_reading(&self) -> Option<Arc<SharedReading>> {
        None
    }

    /// The current wall-clock time, used only to stamp events and snapshots.
    fn wall(&self) -> SystemTime;

    /// Converts a monotonic instant of this clock into wall time.
    fn wall_at(&self, instant: Nanos) -> SystemTime {
        let now = self.now();
        let wall = self.wall();
        if instant <= now {
            wall.checked_sub(now.saturating_duration_since(instant))
                .unwrap_or(SystemTime::UNIX_EPOCH)
        } else {
            wall + instant.saturating_duration_since(now)
        }
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> Nanos {
        (**self).now()
    }
    fn shared_reading(&self) -> Option<Arc<SharedReading>> {
        (**self).shared_reading()
    }
    fn wall_at(&self, instant: Nanos) -> SystemTime {
        (**self).wall_at(instant)
    }
    fn wall(&self) -> SystemTime {
        (**self).wall()
    }
}

/// The operating system's monotonic clock (`std::time::Instant`), precise to the nanosecond.
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    origin: Instant,
}

impl SystemClock {
    /// A clock whose origin is now.
    pub fn new() -> Self {
        Self {
            origin: Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    #[inline]
    fn now(&self) -> Nanos {
        Nanos(duration_nanos(self.origin.elapsed()))
    }
    fn wall(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that moves only when told to: for tests and simulations.
///
/// Clones share the same time.
#[derive(Debug, Clone)]
pub struct ManualClock {
    inner: Arc<ManualInner>,
}

#[derive(Debug)]
struct ManualInner {
    now: Arc<SharedReading>,
    wall_origin: SystemTime,
}

impl ManualClock {
    /// A clock at its origin, whose wall time starts at the Unix epoch plus 1.7e9 seconds
    /// (November 2023), so timestamps in tests are readable.
    pub fn new() -> Self {
        Self::with_wall_origin(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000))
    }

    /// A clock at its origin whose wall time starts at `wall_origin`.
    pub fn with_wall_origin(wall_origin: SystemTime) -> Self {
        Self {
            inner: Arc::new(ManualInner {
                now: Arc::new(SharedReading::new()),
                wall_origin,
            }),
        }
    }

    /// Moves time forward by `duration`.
    pub fn advance(&self, duration: Duration) {
        self.inner.now.advance(duration);
    }

    /// Moves time forward to `instant`; an instant in the past is ignored (time never goes back).
    pub fn advance_to(&self, instant: Nanos) {
        self.inner.now.advance_to(instant);
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Nanos {
        self.inner.now.get()
    }
    fn shared_reading(&self) -> Option<Arc<SharedReading>> {
        Some(Arc::clone(&self.inner.now))
    }
    fn wall(&self) -> SystemTime {
        self.inner.wall_origin + Duration::from_nanos(self.now().0)
    }
    fn wall_at(&self, instant: Nanos) -> SystemTime {
        self.inner.wall_origin + Duration::from_nanos(instant.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_forward() {
        let clock = ManualClock::new();
        clock.advance(Duration::from_millis(5));
        clock.advance_to(Nanos(1));
        assert_eq!(clock.now(), Nanos(5_000_000));
        assert_eq!(
            clock.wall_at(Nanos(1_000_000_000)),
            clock.wall() + Duration::from_millis(995)
        );
    }

    #[test]
    fn system_clock_is_monotonic() {
        let clock = SystemClock::new();
        let a = clock.now();
        let b = clock.now();
        assert!(b >= a);
    }
}
