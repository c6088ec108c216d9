//! The tower [`Layer`] that wraps services in a [`CircuitBreaker`].

use std::sync::Arc;

use tower_layer::Layer;

use super::CircuitBreaker;
use super::classify::FailOnError;
use crate::breaker::Breaker;

/// Applies one breaker to the services it wraps (every service it wraps shares the breaker).
#[derive(Debug, Clone)]
pub struct CircuitBreakerLayer<C = FailOnError> {
    breaker: Arc<Breaker>,
    classifier: C,
}

impl CircuitBreakerLayer {
    /// A layer counting every `Err` as a failure and every `Ok` as a success.
    pub fn new(breaker: Arc<Breaker>) -> Self {
        Self {
            breaker,
            classifier: FailOnError,
        }
    }
}

impl<C> CircuitBreakerLayer<C> {
    /// The same layer judging results with `classifier`, for example to count a 5xx response
    /// as a failure or a client's cancellation as ignored.
    pub fn with_classifier<D>(self, classifier: D) -> CircuitBreakerLayer<D> {
        CircuitBreakerLayer {
            breaker: self.breaker,
            classifier,
        }
    }
}

impl<S, C: Clone> Layer<S> for CircuitBreakerLayer<C> {
    type Service = CircuitBreaker<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreaker::new(inner, Arc::clone(&self.breaker), self.classifier.clone())
    }
}
