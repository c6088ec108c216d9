//! One service per connection: it refuses the requests the connection's framing tracker flagged
//! (before routing, so before any upstream) and hands the rest to the gateway's service with the
//! client's address.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::serve::IncomingStream;
use futures_util::future::Either;
use tower_service::Service;

use super::framing::RefusalReason;
use super::listener::{ConnectionFraming, FramingListener};
use crate::api::{ApiError, App, AppFuture};

/// Makes a [`Guarded`] service for each accepted connection.
#[derive(Debug, Clone)]
pub(super) struct Connections {
    app: App,
}

impl Connections {
    pub(super) fn new(app: App) -> Self {
        Self { app }
    }
}

impl Service<IncomingStream<'_, FramingListener>> for Connections {
    type Response = Guarded;
    type Error = Infallible;
    type Future = Ready<Result<Guarded, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, stream: IncomingStream<'_, FramingListener>) -> Self::Future {
        ready(Ok(Guarded {
            app: self.app.clone(),
            peer: *stream.remote_addr(),
            framing: Arc::clone(stream.io().framing()),
        }))
    }
}

/// The gateway's service as one connection sees it.
#[derive(Debug, Clone)]
pub(super) struct Guarded {
    app: App,
    peer: SocketAddr,
    framing: Arc<ConnectionFraming>,
}

impl Service<Request> for Guarded {
    type Response = Response;
    type Error = Infallible;
    type Future = Either<Ready<Result<Response, Infallible>>, AppFuture>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Service::<Request>::poll_ready(&mut self.app, cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        if let Err(reason) = self.framing.admit() {
            return Either::Left(ready(Ok(refusal(reason, self.peer))));
        }
        Either::Right(self.app.call_from(Some(self.peer), request))
    }
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
