//! Queue replay: one attempt of a stored request through its upstream's breaker.

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method};
use futures_util::future::BoxFuture;

use super::{Deliver, QueuedRequest};
use crate::breaker::State;
use crate::outcome::{Delivery, Replay};
use crate::upstream::{CallEnd, OutgoingRequest, Upstream, is_failure};

/// The IETF draft header naming a request so that its repeats can be recognised.
const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

impl Upstream {
    /// Sends a stored request once through the breaker (never retried: the queue retries on its
    /// own schedule).
    pub async fn replay(&self, request: &QueuedRequest) -> Replay {
        // An operator disabled the breaker (calls pass unguarded): the queue waits for the
        // reset rather than replaying into an upstream nobody watches.
        if self.breaker().state() == State::Disabled {
            return Replay {
                delivery: Delivery::Rejected,
                attempts: Vec::new(),
            };
        }
        let Ok(method) = Method::from_bytes(request.method.as_bytes()) else {
            return Replay {
                delivery: Delivery::Failed {
                    reason: format!("invalid method {:?}", request.method),
                },
                attempts: Vec::new(),
            };
        };
        let mut headers = HeaderMap::with_capacity(request.headers.len());
        for (name, value) in &request.headers {
            // Stored headers came from a valid request; a row that no longer parses (edited
            // by hand, say) loses that header rather than the whole request.
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_bytes(value),
            ) {
                headers.append(name, value);
            }
        }
        // At-least-once delivery: a repeat (after a replica died between the upstream's answer
        // and the delivered mark) carries the same key, so the upstream can drop it. A key the
        // client sent itself is kept: repeats carry it just the same.
        if !headers.contains_key(IDEMPOTENCY_KEY)
            && let Ok(key) = HeaderValue::from_str(&request.id.to_string())
        {
            headers.insert(IDEMPOTENCY_KEY, key);
        }
        let outgoing = OutgoingRequest {
            method,
            path_and_query: request.path_and_query.clone(),
            headers,
            body: request.body.clone(),
        };
        let call = self.call_once(&outgoing).await;
        let delivery = match call.end {
            CallEnd::Rejected(_) => Delivery::Rejected,
            CallEnd::Failed(error) => Delivery::Failed {
                reason: format!("{}: {}", error.kind.as_str(), error.message),
            },
            CallEnd::Answered { response, outcome } if is_failure(outcome) => Delivery::Failed {
                reason: format!("upstream answered {}", response.status()),
            },
            CallEnd::Answered { response, .. } => Delivery::Delivered {
                status: response.status().as_u16(),
            },
        };
        Replay {
            delivery,
            attempts: call.attempts,
        }
    }
}

impl Deliver for Upstream {
    fn deliver<'a>(&'a self, request: &'a QueuedRequest) -> BoxFuture<'a, Delivery> {
        Box::pin(async move { self.replay(request).await.delivery })
    }
}
