//! One exchange with an upstream over the shared client, within the attempt's time: the head,
//! and a short body read whole; a long body streams on under the same deadline.

use std::error::Error as _;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, Response};
use bytes::Bytes;
use http_body::{Body as _, Frame, SizeHint};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

use super::clients::HttpClient;
use crate::outcome::FailureKind;

/// An upstream's answer: a short body already read, a long one still streaming.
pub type UpstreamResponse = Response<Body>;

/// Answers with a declared length up to this many bytes are read whole before they count as
/// answered; longer ones, and those without a length, stream to the client as they come.
pub const SHORT_BODY_MAX: u64 = 64 * 1024;

/// Why an exchange got no (whole) answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ExchangeError {
    /// The deadline passed first.
    #[error("no answer within {0:?}")]
    TimedOut(Duration),
    /// The request could not be sent or its answer's head not read.
    #[error("error sending request")]
    Send(#[source] hyper_util::client::legacy::Error),
    /// A short answer's body broke off.
    #[error("error reading the answer's body")]
    Body(#[source] hyper::Error),
}

impl ExchangeError {
    /// What kind of failure it is. A connect timeout is a timeout first: the breaker counts it
    /// as one.
    pub(crate) fn kind(&self) -> FailureKind {
        match self {
            ExchangeError::TimedOut(_) => FailureKind::Timeout,
            _ if self.caused_by_timeout() => FailureKind::Timeout,
            ExchangeError::Send(err) if err.is_connect() => FailureKind::Connect,
            _ => FailureKind::Io,
        }
    }

    fn caused_by_timeout(&self) -> bool {
        let mut source = self.source();
        while let Some(cause) = source {
            if cause
                .downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
            {
                return true;
            }
            source = cause.source();
        }
        false
    }
}

/// Sends `request` and waits for the answer's head, for at most `left`.
pub(crate) async fn head(
    client: &HttpClient,
    request: Request<Full<Bytes>>,
    left: Duration,
) -> Result<Response<Incoming>, ExchangeError> {
    match tokio::time::timeout(left, client.request(request)).await {
        Ok(sent) => sent.map_err(ExchangeError::Send),
        Err(_) => Err(ExchangeError::TimedOut(left)),
    }
}

/// Sends `request` and, within `left`, waits for the answer's head and reads a short body
/// whole (see [`SHORT_BODY_MAX`]): a connection that breaks mid-body is then the upstream's
/// failure, which the breaker hears of and a fallback answers, not a broken answer passed on
/// as a success. A longer body streams under the same deadline.
pub(crate) async fn answer(
    client: &HttpClient,
    request: Request<Full<Bytes>>,
    left: Duration,
) -> Result<UpstreamResponse, ExchangeError> {
    let deadline = Instant::now() + left;
    let answer = async {
        let response = client.request(request).await.map_err(ExchangeError::Send)?;
        let (head, body) = response.into_parts();
        if body.size_hint().exact().is_none_or(|n| n > SHORT_BODY_MAX) {
            let body = Deadline {
                body,
                sleep: tokio::time::sleep_until(deadline),
                left,
            };
            return Ok(Response::from_parts(head, Body::new(body)));
        }
        let whole = body.collect().await.map_err(ExchangeError::Body)?;
        Ok(Response::from_parts(head, Body::from(whole.to_bytes())))
    };
    match tokio::time::timeout_at(deadline, answer).await {
        Ok(answered) => answered,
        Err(_) => Err(ExchangeError::TimedOut(left)),
    }
}

pin_project_lite::pin_project! {
    /// A streaming body that breaks off with an error once the call's deadline passes.
    struct Deadline {
        #[pin]
        body: Incoming,
        #[pin]
        sleep: Sleep,
        left: Duration,
    }
}

impl http_body::Body for Deadline {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::BoxError>>> {
        let this = self.project();
        if this.sleep.poll(cx).is_ready() {
            return Poll::Ready(Some(Err(ExchangeError::TimedOut(*this.left).into())));
        }
        this.body.poll_frame(cx).map_err(Into::into)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
