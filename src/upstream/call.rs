//! What one proxied call sends and what became of it, attempt by attempt, for the pipeline and
//! the telemetry layer.

use axum::http::{HeaderMap, Method};
use bytes::Bytes;

use crate::breaker::{Outcome, Rejected};

use crate::outcome::{Attempt, FailureKind, RetryStop};

/// A request ready to send: hop-by-hop headers already removed, body buffered so a retry can
/// resend it.
#[derive(Debug, Clone)]
pub struct OutgoingRequest {
    /// The method.
    pub method: Method,
    /// Path below the upstream's base URL (starting with `/` or empty) with `?query` if any;
    /// already checked not to leave the upstream.
    pub path_and_query: String,
    /// End-to-end headers to send (no `Host`: the client sets the upstream's).
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

impl OutgoingRequest {
    /// Whether the method may be sent twice with the same effect (RFC 9110 §9.2.2), so a
    /// failed attempt may be retried. POST and PATCH never are.
    pub fn is_idempotent(&self) -> bool {
        matches!(
            self.method,
            Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE
        )
    }
}

/// How a call ended.
#[derive(Debug)]
pub enum CallEnd {
    /// The upstream answered; `outcome` is what its breaker was told (a failure status or a
    /// `Retry-After` answer counts against it). The body is still to be read.
    Answered {
        /// The answer, body unread.
        response: super::UpstreamResponse,
        /// Its classification.
        outcome: Outcome,
    },
    /// The breaker turned the first attempt away: the upstream was not contacted.
    Rejected(Rejected),
    /// The last attempt got no answer.
    Failed(CallError),
}

/// Why an attempt got no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallError {
    /// The kind, which picks the error code given to clients.
    pub kind: FailureKind,
    /// A description for logs (never shown to clients).
    pub message: String,
}

/// The whole call: its end and every attempt made.
#[derive(Debug)]
pub struct Call {
    /// How it ended.
    pub end: CallEnd,
    /// Every physical attempt, in order (empty when rejected at once).
    pub attempts: Vec<Attempt>,
    /// Why no further attempt was made after a failed one, if one failed.
    pub retry_stop: Option<RetryStop>,
}

impl Call {
    /// Retries made (attempts after the first).
    pub fn retries(&self) -> u32 {
        (self.attempts.len() as u32).saturating_sub(1)
    }

    /// Whether a wanted retry was refused by the retry budget.
    pub fn budget_exhausted(&self) -> bool {
        self.retry_stop == Some(RetryStop::BudgetExhausted)
    }
}
