//! A [`Clock`] that reads a cached time, refreshed by a background thread.
//!
//! Why: reading the system's monotonic clock costs tens of nanoseconds, more than everything
//! else a breaker does for a permitted call. Breaker decisions need no finer resolution than a
//! millisecond (buckets span seconds), so the gateway reads a value a thread refreshes every
//! `resolution`, as nginx caches its time per event-loop turn. Lives outside the pure core
//! because it starts a thread.

// The clocks are the one place that reads the system's time (clippy.toml bans it elsewhere).
#![allow(clippy::disallowed_methods)]

use std::fmt;
use std::sync::{Arc, Weak};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use crate::breaker::{Clock, Nanos, SharedReading};

/// A monotonic clock accurate to its resolution, read with one atomic load.
///
/// Clones share one refresh thread, which ends when the last clone is dropped.
#[derive(Clone)]
pub struct CoarseClock {
    shared: Arc<Shared>,
}

struct Shared {
    origin: Instant,
    reading: Arc<SharedReading>,
    resolution: Duration,
}

impl Shared {
    fn refresh(&self) -> Nanos {
        let now = Nanos(u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX));
        self.reading.advance_to(now);
        now
    }
}

impl CoarseClock {
    /// A clock refreshed every `resolution` (at least 100 µs) by a thread of its own.
    pub fn new(resolution: Duration) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            origin: Instant::now(),
            reading: Arc::new(SharedReading::new()),
            resolution: resolution.max(Duration::from_micros(100)),
        });
        let weak: Weak<Shared> = Arc::downgrade(&shared);
        thread::Builder::new()
            .name("breakerbox-clock".into())
            .spawn(move || {
                while let Some(shared) = weak.upgrade() {
                    shared.refresh();
                    let pause = shared.resolution;
                    drop(shared);
                    thread::sleep(pause);
                }
            })?;
        Ok(Self { shared })
    }

    /// How stale a reading may be, at most (plus scheduling delays of the refresh thread).
    pub fn resolution(&self) -> Duration {
        self.shared.resolution
    }
}

impl Clock for CoarseClock {
    #[inline]
    fn now(&self) -> Nanos {
        self.shared.reading.get()
    }

    fn shared_reading(&self) -> Option<Arc<SharedReading>> {
        Some(Arc::clone(&self.shared.reading))
    }

    fn wall(&self) -> SystemTime {
        SystemTime::now()
    }

    fn wall_at(&self, instant: Nanos) -> SystemTime {
        // Measure against a fresh reading so timestamps are not off by the resolution.
        let now = self.shared.refresh();
        let wall = SystemTime::now();
        if instant <= now {
            wall.checked_sub(now.saturating_duration_since(instant))
                .unwrap_or(SystemTime::UNIX_EPOCH)
        } else {
            wall + instant.saturating_duration_since(now)
        }
    }
}

impl fmt::Debug for CoarseClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CoarseClock")
            .field("resolution", &self.shared.resolution)
            .field("now", &self.now())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_never_go_back_and_follow_real_time() {
        let clock = CoarseClock::new(Duration::from_millis(1)).expect("thread starts");
        let first = clock.now();
        let started = Instant::now();
        // Wait for the refresh thread to move the reading on; bounded so a stuck thread fails.
        while clock.now() == first {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "clock never refreshed"
            );
            std::thread::yield_now();
        }
        let later = clock.now();
        assert!(later > first);
        let wall = clock.wall_at(later);
        let drift = SystemTime::now()
            .duration_since(wall)
            .unwrap_or_else(|e| e.duration());
        assert!(drift < Duration::from_secs(1), "drift {drift:?}");
    }
}
