//! A circuit breaker for any tower [`Service`]: the [`CircuitBreakerLayer`].
//!
//! The permit is taken in `call` and moves into the response future, so a future dropped before
//! it completes (a cancelled request) reports nothing and hands back its half-open slot. A
//! rejected call never reaches the inner service; its error is a boxed [`Rejected`], so callers
//! test it with `err.is::<Rejected>()`.

mod classify;
mod future;
#[allow(clippy::module_inception)]
mod layer;

use std::sync::Arc;
use std::task::{Context, Poll};

use tower_service::Service;

pub use classify::{Classify, FailOnError};
pub use future::ResponseFuture;
pub use layer::CircuitBreakerLayer;

use crate::breaker::{Breaker, Rejected};

/// The error a [`CircuitBreaker`] service returns: the inner service's error or [`Rejected`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A [`Service`] guarded by a breaker. Built by [`CircuitBreakerLayer`].
#[derive(Debug, Clone)]
pub struct CircuitBreaker<S, C = FailOnError> {
    inner: S,
    breaker: Arc<Breaker>,
    classifier: C,
}

impl<S, C> CircuitBreaker<S, C> {
    /// Guards `inner` with `breaker`, judging results with `classifier`.
    pub fn new(inner: S, breaker: Arc<Breaker>, classifier: C) -> Self {
        Self {
            inner,
            breaker,
            classifier,
        }
    }

    /// The breaker guarding this service.
    pub fn breaker(&self) -> &Arc<Breaker> {
        &self.breaker
    }

    /// The guarded service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, C, Request> Service<Request> for CircuitBreaker<S, C>
where
    S: Service<Request>,
    S::Error: Into<BoxError>,
    C: Classify<S::Response, S::Error> + Clone,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        match self.breaker.try_acquire_owned() {
            Ok(permit) => {
                ResponseFuture::called(self.inner.call(request), permit, self.classifier.clone())
            }
            Err(rejected) => ResponseFuture::rejected(rejected),
        }
    }
}

/// Whether an error returned by a [`CircuitBreaker`] service is a rejection.
pub fn is_rejection(error: &BoxError) -> Option<&Rejected> {
    error.downcast_ref::<Rejected>()
}
