//! One service per connection: it refuses the requests the connection's framing tracker flagged
//! (before routing, so before any upstream) and hands the rest to the gateway's service with the
//! client's address.

use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use axum::body::Body;
use axum::http::{HeaderValue, Request, StatusCode, Version, header};
use axum::response::{IntoResponse, Response};
use futures_util::future::Either;
use hyper::body::Incoming;
use tower_service::Service;

use super::framing::RefusalReason;
use super::limits::{CountedBody, InFlight, Liveness};
use super::listener::ConnectionFraming;
use crate::api::{ApiError, App, AppFuture};

/// The gateway's service as one connection sees it.
#[derive(Debug, Clone)]
pub(super) struct Guarded {
    app: App,
    peer: SocketAddr,
    framing: Arc<ConnectionFraming>,
    liveness: Arc<Liveness>,
}

impl Guarded {
    pub(super) fn new(
        app: App,
        peer: SocketAddr,
        framing: Arc<ConnectionFraming>,
        liveness: Arc<Liveness>,
    ) -> Self {
        Self {
            app,
            peer,
            framing,
            liveness,
        }
    }
}

impl Service<Request<Incoming>> for Guarded {
    type Response = Response<CountedBody>;
    type Error = Infallible;
    type Future = Counted<Either<Ready<Result<Response, Infallible>>, AppFuture>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Service::<axum::extract::Request>::poll_ready(&mut self.app, cx)
    }

    fn call(&mut self, request: Request<Incoming>) -> Self::Future {
        // In flight from here until hyper has sent the answer's last byte: the connection is
        // not idle meanwhile, so neither the head timer nor `max_connections` cuts it.
        let in_flight = Some(self.liveness.start_request());
        let inner = if let Err(reason) = self.framing.admit() {
            Either::Left(ready(Ok(refusal(reason, self.peer))))
        } else if !host_is_single(&request) {
            Either::Left(ready(Ok(bad_host(self.peer))))
        } else {
            Either::Right(self.app.call_from(Some(self.peer), request.map(Body::new)))
        };
        Counted { inner, in_flight }
    }
}

pin_project_lite::pin_project! {
    /// A request's answer, whose body carries the request's [`InFlight`] guard.
    #[derive(Debug)]
    pub(super) struct Counted<F> {
        #[pin]
        inner: F,
        in_flight: Option<InFlight>,
    }
}

impl<F> Future for Counted<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response<CountedBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Ok(response) = ready!(this.inner.poll(cx));
        let Some(in_flight) = this.in_flight.take() else {
            // Polled after completion: a contract breach by the caller, answered without a guard.
            unreachable!("Counted polled after it completed")
        };
        Poll::Ready(Ok(response.map(|body| CountedBody::new(body, in_flight))))
    }
}

/// Whether an HTTP/1.1 request carries exactly one `Host` (RFC 9112 §3.2: a server must answer
/// 400 otherwise); HTTP/1.0 need not carry one.
fn host_is_single<B>(request: &Request<B>) -> bool {
    if request.version() != Version::HTTP_11 {
        return true;
    }
    let mut hosts = request.headers().get_all(header::HOST).iter();
    hosts.next().is_some() && hosts.next().is_none()
}

/// 400 for a request whose `Host` is missing or repeated: which authority it means is unclear,
/// and the gateway does not guess.
fn bad_host(peer: SocketAddr) -> Response {
    let message = "an HTTP/1.1 request needs exactly one Host header";
    tracing::debug!(client = %peer, "request refused before routing: {message}");
    ApiError::new(StatusCode::BAD_REQUEST, "bad_host", message).into_response()
}

/// 400 with the contract's JSON error; the connection closes after it (hyper already stopped
/// keeping it alive, and `Connection: close` says so).
fn refusal(reason: RefusalReason, peer: SocketAddr) -> Response {
    let (code, message) = match reason {
        RefusalReason::ConflictingFraming => (
            "conflicting_framing",
            "the request carries both Content-Length and Transfer-Encoding",
        ),
        RefusalReason::Unframed => ("bad_request", "the request's framing could not be followed"),
    };
    tracing::warn!(client = %peer, code, "request refused before routing: {message}");
    let mut response = ApiError::new(StatusCode::BAD_REQUEST, code, message).into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}
