//! Feature `tracing`: each transition of an in-process breaker as a `breaker.transition` span
//! with the gateway's attribute names (`breakerbox.breaker.name`, `.from`, `.to`, `.reason`,
//! `.generation`), a child of the span current where the transition happened (the call that
//! tripped it), so a trace shows why a later call was rejected.

use std::sync::Arc;

use super::events::{Listener, Transition};

/// Emits the spans; attach it with [`BreakerBuilder::listener`](super::BreakerBuilder::listener)
/// or [`RegistryBuilder::listener`](super::RegistryBuilder::listener).
#[derive(Debug, Default, Clone, Copy)]
#[non_exhaustive]
pub struct TransitionSpans;

impl TransitionSpans {
    /// A handle to attach as a listener.
    pub fn shared() -> Arc<TransitionSpans> {
        Arc::new(TransitionSpans)
    }
}

impl Listener for TransitionSpans {
    fn on_transition(&self, t: &Transition) {
        let span = tracing::info_span!(
            "breaker.transition",
            breakerbox.breaker.name = &*t.breaker,
            breakerbox.breaker.from = t.from.as_str(),
            breakerbox.breaker.to = t.to.as_str(),
            breakerbox.breaker.reason = t.reason.as_str(),
            breakerbox.breaker.generation = t.generation,
        );
        span.in_scope(|| {
            tracing::info!(
                breaker = &*t.breaker,
                from = t.from.as_str(),
                to = t.to.as_str(),
                reason = %t.reason,
                "breaker transition"
            );
        });
    }
}
