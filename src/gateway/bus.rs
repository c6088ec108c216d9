//! The gateway's own delivery of breaker transitions to its tasks: every event to those that
//! need each one (the admin event stream, the history, queue replay), and a generation counter
//! for loops that only need to look again (the deadline timer).
//!
//! Why a `watch` for the counter: it remembers that a change happened even when nobody was
//! waiting at that moment, so a transition landing between a loop's look and its wait still
//! wakes it (a `Notify::notify_waiters` would be lost there).

use tokio::sync::{broadcast, watch};

use crate::breaker::{Listener, Transition};

/// Fans every transition out to in-process subscribers; attach it to every breaker.
#[derive(Debug)]
pub struct TransitionBus {
    events: broadcast::Sender<Transition>,
    generation: watch::Sender<u64>,
}

impl TransitionBus {
    /// A bus keeping the last `capacity` transitions for slow subscribers.
    pub fn new(capacity: usize) -> Self {
        let (events, _) = broadcast::channel(capacity.max(1));
        let (generation, _) = watch::channel(0);
        Self { events, generation }
    }

    /// Every transition from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Transition> {
        self.events.subscribe()
    }

    /// A counter that moves at every transition: `changed()` resolves if one happened since
    /// the receiver last marked the value seen.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }
}

impl Listener for TransitionBus {
    fn on_transition(&self, transition: &Transition) {
        // No subscriber is fine: the send only fails when nobody listens.
        let _ = self.events.send(transition.clone());
        self.generation.send_modify(|generation| *generation += 1);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::breaker::{Breaker, BreakerConfig};

    #[tokio::test]
    async fn a_change_before_the_wait_is_still_seen() {
        let bus = Arc::new(TransitionBus::new(4));
        let mut changes = bus.changes();
        let mut events = bus.subscribe();
        let breaker = Breaker::builder("b", BreakerConfig::default())
            .listener(Arc::clone(&bus) as Arc<dyn Listener>)
            .build();
        changes.borrow_and_update();
        breaker.trip();
        changes.changed().await.expect("the bus lives");
        let event = events.recv().await.expect("one event");
        assert_eq!(event.breaker.as_ref(), "b");
    }
}
