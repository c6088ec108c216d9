//! A circuit breaker for any tower [`Service`]: the [`CircuitBreakerLayer`].
//!
//! The permit is taken in `poll_ready` and moves into the response future, so a future dropped
//! before it completes (a cancelled request) reports nothing and hands back its half-open slot.
//! A rejected call never reaches the inner service, and never waits for it: while the breaker
//! turns calls away, `poll_ready` answers `Ready` at once and `call` rejects (tower's `load_shed`
//! pattern — layers above must not wait on a service that will not be called). Its error is a
//! boxed [`Rejected`], so callers test it with `err.is::<Rejected>()`.

mod classify;
mod future;
#[allow(clippy::module_inception)]
mod layer;
#[cfg(feature = "reqwest-middleware")]
mod reqwest;

use std::sync::Arc;
use std::task::{Context, Poll};

use tower_service::Service;

pub use classify::{Classify, FailOnError};
pub use future::ResponseFuture;
pub use layer::CircuitBreakerLayer;
#[cfg(feature = "reqwest-middleware")]
pub use reqwest::{BreakerMiddleware, ClassifyResponse, gateway_rules};

use crate::breaker::{Breaker, Permit, Rejected};

/// The error a [`CircuitBreaker`] service returns: the inner service's error or [`Rejected`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A [`Service`] guarded by a breaker. Built by [`CircuitBreakerLayer`].
#[derive(Debug)]
pub struct CircuitBreaker<S, C = FailOnError> {
    inner: S,
    breaker: Arc<Breaker>,
    classifier: C,
    /// The breaker's answer taken in `poll_ready`, for the next `call`.
    admission: Option<Result<Permit<Arc<Breaker>>, Rejected>>,
}

impl<S: Clone, C: Clone> Clone for CircuitBreaker<S, C> {
    /// A clone asks the breaker for itself: a permit is never shared.
    fn clone(&self) -> Self {
        Self::new(
            self.inner.clone(),
            Arc::clone(&self.breaker),
            self.classifier.clone(),
        )
    }
}

impl<S, C> CircuitBreaker<S, C> {
    /// Guards `inner` with `breaker`, judging results with `classifier`.
    pub fn new(inner: S, breaker: Arc<Breaker>, classifier: C) -> Self {
        Self {
            inner,
            breaker,
            classifier,
            admission: None,
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
        let admission = self
            .admission
            .get_or_insert_with(|| self.breaker.try_acquire_owned());
        match admission {
            // `call` will reject: nothing to wait for.
            Err(_) => Poll::Ready(Ok(())),
            // The permit is held while the inner service gets ready.
            Ok(_) => self.inner.poll_ready(cx).map_err(Into::into),
        }
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // Without a `poll_ready` first (a contract breach) the breaker is asked now.
        let admission = self
            .admission
            .take()
            .unwrap_or_else(|| self.breaker.try_acquire_owned());
        match admission {
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
