//! The vocabulary of what happened to a request, shared by the rooms that act (pipeline,
//! upstream, fallback) and the one that reports (telemetry): the breaker decision, which fallback
//! answered, each physical attempt and why retrying stopped, a queue delivery. Each value's
//! label string is defined here, once.

use std::time::Duration;

use crate::breaker::Outcome;

/// The breaker decision (`breakerbox.breaker.decision`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    /// The upstream's own answer reached the client (a failure status it sent included, when
    /// no fallback could answer instead).
    Permitted,
    /// The breaker turned the call away and the client got the `circuit_open` error.
    Rejected,
    /// A fallback answered instead of the upstream (after a rejection or a failed call).
    Fallback,
}

impl Decision {
    /// `permitted`, `rejected` or `fallback`.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Permitted => "permitted",
            Decision::Rejected => "rejected",
            Decision::Fallback => "fallback",
        }
    }
}

/// Which fallback answered (`breakerbox_fallbacks_total{kind}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FallbackKind {
    /// A cached response.
    Cache,
    /// The configured degraded answer.
    Degraded,
    /// The request was queued (202).
    Queue,
    /// A 503 error answer (`circuit_open`, `upstream_unavailable`, `upstream_timeout`,
    /// `queue_full`): every fallback's last resort.
    Error,
}

impl FallbackKind {
    /// Every kind, in declaration order (so `kind as usize` indexes it).
    pub const ALL: [FallbackKind; 4] = [
        FallbackKind::Cache,
        FallbackKind::Degraded,
        FallbackKind::Queue,
        FallbackKind::Error,
    ];

    /// `cache`, `degraded`, `queue` or `error`, as the configuration, the metrics and the
    /// `X-Breakerbox-Fallback` header name them.
    pub const fn as_str(self) -> &'static str {
        match self {
            FallbackKind::Cache => "cache",
            FallbackKind::Degraded => "degraded",
            FallbackKind::Queue => "queue",
            FallbackKind::Error => "error",
        }
    }

    /// The kind [`as_str`](Self::as_str) names `label`.
    pub fn from_label(label: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == label)
    }
}

/// How a call ended, as `breakerbox_calls_total{outcome}` counts it: a permitted call by what
/// its breaker was told, or a rejection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallOutcome {
    /// The breaker was told [`Outcome::Success`].
    Success,
    /// The breaker was told [`Outcome::Failure`] or [`Outcome::RetryAfter`].
    Failure,
    /// The breaker was told [`Outcome::Timeout`].
    Timeout,
    /// The breaker turned the call away.
    Rejected,
}

impl CallOutcome {
    /// The outcomes of permitted calls (the ones `breakerbox_call_duration_seconds` carries),
    /// in declaration order (so `outcome as usize` indexes it).
    pub const PERMITTED: [CallOutcome; 3] = [
        CallOutcome::Success,
        CallOutcome::Failure,
        CallOutcome::Timeout,
    ];

    /// How a permitted call that ended with `outcome` counts; `None` for an ignored one, which
    /// the breaker does not record either.
    pub fn of(outcome: Outcome) -> Option<Self> {
        match outcome {
            Outcome::Success => Some(CallOutcome::Success),
            // A Retry-After answer is a failure the upstream asked us to back off from.
            Outcome::Failure | Outcome::RetryAfter(_) => Some(CallOutcome::Failure),
            Outcome::Timeout => Some(CallOutcome::Timeout),
            Outcome::Ignored => None,
        }
    }

    /// `success`, `failure`, `timeout` or `rejected`.
    pub const fn as_str(self) -> &'static str {
        match self {
            CallOutcome::Success => "success",
            CallOutcome::Failure => "failure",
            CallOutcome::Timeout => "timeout",
            CallOutcome::Rejected => "rejected",
        }
    }
}

/// The record of one proxied request. Also put into the response's extensions by
/// `Pipeline::proxy`, so a layer above can read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyOutcome {
    /// The upstream's (and its breaker's) name.
    pub upstream: String,
    /// The breaker decision; `None` when the request was refused before reaching the breaker
    /// (bad path, unreadable or oversized body).
    pub decision: Option<Decision>,
    /// The fallback that answered, if one did.
    pub fallback: Option<FallbackKind>,
    /// Every physical attempt (empty when rejected or refused).
    pub attempts: Vec<Attempt>,
    /// Why a failed attempt was not retried.
    pub retry_stop: Option<RetryStop>,
    /// The error code given to the client, if the answer is one of ours.
    pub error: Option<&'static str>,
    /// The status the client got.
    pub status: u16,
}

impl ProxyOutcome {
    pub(crate) fn new(upstream: &str) -> Self {
        Self {
            upstream: upstream.to_owned(),
            decision: None,
            fallback: None,
            attempts: Vec::new(),
            retry_stop: None,
            error: None,
            status: 0,
        }
    }

    /// What the breaker was told about the last attempt, if one was made.
    pub fn last_attempt_outcome(&self) -> Option<Outcome> {
        self.attempts.last().map(|attempt| attempt.outcome)
    }

    /// Retries made (attempts after the first).
    pub fn retries(&self) -> u32 {
        (self.attempts.len() as u32).saturating_sub(1)
    }
}

/// One physical attempt: a permit taken and an outcome recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    /// 0 for the first attempt, then 1, 2…: `http.request.resend_count`.
    pub number: u32,
    /// What the breaker was told.
    pub outcome: Outcome,
    /// The upstream's status, if it answered.
    pub status: Option<u16>,
    /// Why it did not answer, if it did not.
    pub failure: Option<FailureKind>,
    /// Time until the answer (its headers; its whole body too when short, see
    /// `upstream::SHORT_BODY_MAX`) or the error.
    pub duration: Duration,
    /// Whether the permit was a half-open probe.
    pub probe: bool,
}

/// Why a call made no further attempt after a failed one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryStop {
    /// The method is not idempotent, or retries are disabled for this call.
    NotRetryable,
    /// Every allowed attempt was made.
    MaxAttempts,
    /// The retry budget was spent (`breakerbox_retries_total{result="budget_exhausted"}`).
    BudgetExhausted,
    /// The breaker turned the retry away.
    BreakerRejected,
    /// Too little of the call timeout was left for another attempt.
    Deadline,
}

/// Why an attempt got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// The connection could not be made (refused, unreachable, DNS).
    Connect,
    /// The attempt ran out of time (connecting or waiting for the answer).
    Timeout,
    /// The connection broke during the exchange (reset, closed early, bad response).
    Io,
    /// The request could not be sent at all (its URL would leave the upstream); the breaker is
    /// not involved.
    InvalidRequest,
}

impl FailureKind {
    /// A short name for logs and labels: `connect`, `timeout`, `io`, `invalid_request`.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Connect => "connect",
            FailureKind::Timeout => "timeout",
            FailureKind::Io => "io",
            FailureKind::InvalidRequest => "invalid_request",
        }
    }

    /// What the breaker is told about it.
    pub fn outcome(self) -> Outcome {
        match self {
            FailureKind::Timeout => Outcome::Timeout,
            FailureKind::Connect | FailureKind::Io => Outcome::Failure,
            FailureKind::InvalidRequest => Outcome::Ignored,
        }
    }
}

/// What became of one delivery attempt of a queued request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// The upstream answered (any status that is not a failure for its breaker).
    Delivered {
        /// The upstream's HTTP status.
        status: u16,
    },
    /// The upstream's breaker turned the attempt away: stop replaying, try again when it closes.
    Rejected,
    /// The attempt failed (connection error, timeout, failure status): keep it pending.
    Failed {
        /// What went wrong.
        reason: String,
    },
}

/// One replay: what it means for the queue, and what the breaker saw, for telemetry.
#[derive(Debug)]
pub struct Replay {
    /// The queue's view of the attempt.
    pub delivery: Delivery,
    /// The physical attempt, if one was made (none when the breaker turned the replay away
    /// ([`Delivery::Rejected`]) or the stored request could not be sent).
    pub attempts: Vec<Attempt>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_arrays_are_in_declaration_order() {
        for (i, kind) in FallbackKind::ALL.into_iter().enumerate() {
            assert_eq!(kind as usize, i, "{kind:?}");
            assert_eq!(FallbackKind::from_label(kind.as_str()), Some(kind));
        }
        for (i, outcome) in CallOutcome::PERMITTED.into_iter().enumerate() {
            assert_eq!(outcome as usize, i, "{outcome:?}");
        }
        assert_eq!(FallbackKind::from_label("Cache"), None);
    }
}
