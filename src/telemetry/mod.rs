//! The one place where breaker events become logs (and, later, metrics and spans): every
//! breaker of the gateway is built with [`Telemetry::listener`].

use std::sync::Arc;

use tokio::sync::{Notify, broadcast};

use crate::breaker::{Listener, State, Transition};

/// Fans breaker transitions out to logs and to in-process subscribers (the admin event stream,
/// the deadline timer, queue replay).
#[derive(Debug, Clone)]
pub struct Telemetry {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    transitions: broadcast::Sender<Transition>,
    changed: Notify,
}

impl Telemetry {
    /// A hub keeping the last `capacity` transitions for slow subscribers.
    pub fn new(capacity: usize) -> Self {
        let (transitions, _) = broadcast::channel(capacity.max(1));
        Self {
            inner: Arc::new(Inner {
                transitions,
                changed: Notify::new(),
            }),
        }
    }

    /// The listener to attach to every breaker.
    pub fn listener(&self) -> Arc<dyn Listener> {
        Arc::new(self.clone())
    }

    /// Every transition from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Transition> {
        self.inner.transitions.subscribe()
    }

    /// Resolves after the next transition of any breaker.
    pub async fn changed(&self) {
        self.inner.changed.notified().await;
    }
}

impl Listener for Telemetry {
    fn on_transition(&self, t: &Transition) {
        // Trips and manual states at WARN, recovery and probing at INFO: one line each.
        match t.to {
            State::Open | State::ForcedOpen | State::Disabled => tracing::warn!(
                breaker = %t.breaker, from = %t.from, to = %t.to, reason = t.reason.as_str(),
                "circuit breaker {}: {} -> {} ({})", t.breaker, t.from, t.to, t.reason
            ),
            State::Closed | State::HalfOpen => tracing::info!(
                breaker = %t.breaker, from = %t.from, to = %t.to, reason = t.reason.as_str(),
                "circuit breaker {}: {} -> {} ({})", t.breaker, t.from, t.to, t.reason
            ),
        }
        // No subscriber is fine: the send only fails when nobody listens.
        let _ = self.inner.transitions.send(t.clone());
        self.inner.changed.notify_waiters();
    }
}
