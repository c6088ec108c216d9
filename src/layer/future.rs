//! The response future of a [`CircuitBreaker`](super::CircuitBreaker) service.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;

use super::BoxError;
use super::classify::Classify;
use crate::breaker::{Breaker, Permit, Rejected};

pin_project! {
    /// Resolves to the inner service's response, recording its outcome on the permit; or to a
    /// [`Rejected`] error at once. Dropped early, it records nothing and frees its probe slot.
    #[derive(Debug)]
    pub struct ResponseFuture<F, C> {
        #[pin]
        admission: Admission<F, C>,
    }
}

pin_project! {
    #[project = AdmissionProjection]
    #[derive(Debug)]
    enum Admission<F, C> {
        Called {
            #[pin]
            future: F,
            permit: Option<Permit<Arc<Breaker>>>,
            classifier: C,
        },
        Rejected { rejected: Option<Rejected> },
    }
}

impl<F, C> ResponseFuture<F, C> {
    pub(super) fn called(future: F, permit: Permit<Arc<Breaker>>, classifier: C) -> Self {
        Self {
            admission: Admission::Called {
                future,
                permit: Some(permit),
                classifier,
            },
        }
    }

    pub(super) fn rejected(rejected: Rejected) -> Self {
        Self {
            admission: Admission::Rejected {
                rejected: Some(rejected),
            },
        }
    }
}

impl<F, C, Response, Error> Future for ResponseFuture<F, C>
where
    F: Future<Output = Result<Response, Error>>,
    Error: Into<BoxError>,
    C: Classify<Response, Error>,
{
    type Output = Result<Response, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().admission.project() {
            AdmissionProjection::Called {
                future,
                permit,
                classifier,
            } => {
                let result = ready!(future.poll(cx));
                if let Some(permit) = permit.take() {
                    permit.record(classifier.classify(&result));
                }
                Poll::Ready(result.map_err(Into::into))
            }
            AdmissionProjection::Rejected { rejected } => match rejected.take() {
                Some(rejected) => Poll::Ready(Err(Box::new(rejected))),
                None => panic!("ResponseFuture polled after completion"),
            },
        }
    }
}
