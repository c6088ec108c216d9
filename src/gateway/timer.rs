//! Wakes exactly when an open breaker is due to turn half-open, so its state (and the state
//! gauge, and the alerts) change on time even when no request arrives.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::breaker::Registry;

/// Slack past a deadline: the breakers' clock is refreshed every millisecond.
const SLACK: Duration = Duration::from_millis(2);

/// Ticks `breakers` at each deadline; `changes` moves at every transition (the bus's counter).
pub(super) async fn run(
    breakers: Arc<Registry>,
    mut changes: watch::Receiver<u64>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        // Seen before the deadline is read: a transition from here on leaves `changed()`
        // ready, so a trip landing before the wait below still wakes it.
        changes.borrow_and_update();
        let next = breakers.next_deadline();
        let wait =
            next.map(|deadline| deadline.saturating_duration_since(breakers.clock().now()) + SLACK);
        tokio::select! {
            () = sleep_or_forever(wait) => {
                breakers.tick();
            }
            // A transition may have set an earlier deadline: look again.
            changed = changes.changed() => if changed.is_err() { return },
            _ = shutdown.changed() => return,
        }
    }
}

async fn sleep_or_forever(wait: Option<Duration>) {
    match wait {
        Some(wait) => tokio::time::sleep(wait).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Mutex, PoisonError};
    use std::time::SystemTime;

    use super::*;
    use crate::breaker::{Breaker, BreakerConfig, Clock, Listener, Nanos, State};
    use crate::gateway::TransitionBus;

    /// Tokio's (paused) time, which trips a chosen breaker the first time it is read once
    /// armed: the timer reads the clock right after it computes its next deadline and before
    /// it waits, which is where a trip from another thread can land.
    #[derive(Debug)]
    struct TrippingClock {
        origin: tokio::time::Instant,
        armed: Mutex<Option<Arc<Breaker>>>,
    }

    impl Clock for TrippingClock {
        fn now(&self) -> Nanos {
            let armed = self
                .armed
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            if let Some(breaker) = armed {
                breaker.trip();
            }
            Nanos(u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX))
        }

        fn wall(&self) -> SystemTime {
            SystemTime::UNIX_EPOCH
        }
    }

    fn open_for(seconds: u64) -> BreakerConfig {
        BreakerConfig::builder()
            .open_duration(Duration::from_secs(seconds))
            .build()
            .expect("valid")
    }

    #[tokio::test(start_paused = true)]
    async fn a_trip_between_deadline_and_wait_is_not_missed() {
        let clock = Arc::new(TrippingClock {
            origin: tokio::time::Instant::now(),
            armed: Mutex::new(None),
        });
        let bus = Arc::new(TransitionBus::new(16));
        let breakers = Arc::new(
            Registry::builder(BreakerConfig::default())
                .clock(Arc::clone(&clock) as Arc<dyn Clock>)
                .listener(Arc::clone(&bus) as Arc<dyn Listener>)
                .breaker("far", open_for(600))
                .breaker("near", open_for(1))
                .build(),
        );
        // An open breaker far off makes the timer read the clock to know how long to sleep.
        breakers.get_or_create("far").trip();
        let near = breakers.get_or_create("near");
        *clock.armed.lock().unwrap_or_else(PoisonError::into_inner) = Some(Arc::clone(&near));
        let (stop, shutdown) = watch::channel(false);
        let timer = tokio::spawn(run(Arc::clone(&breakers), bus.changes(), shutdown));

        tokio::time::sleep(Duration::from_millis(900)).await;
        // Read without applying due transitions (`state()` would apply them itself): only the
        // timer may have moved the breaker.
        assert!(
            near.next_deadline().is_some(),
            "tripped by the timer's own read, still open"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            near.next_deadline(),
            None,
            "half-open on time, with no traffic, by the timer"
        );
        assert_eq!(near.state(), State::HalfOpen);
        stop.send_replace(true);
        timer.await.expect("timer ends");
    }
}
