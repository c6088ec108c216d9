//! What the pipeline decided for one request, for the telemetry layer to turn into metrics,
//! span attributes and logs (the pipeline itself records none).

use crate::breaker::Outcome;
use crate::upstream::{Attempt, RetryStop};

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
    /// `cache`, `degraded`, `queue` or `error`, as the configuration and metrics name them.
    pub fn as_str(self) -> &'static str {
        match self {
            FallbackKind::Cache => "cache",
            FallbackKind::Degraded => "degraded",
            FallbackKind::Queue => "queue",
            FallbackKind::Error => "error",
        }
    }
}

/// The record of one proxied request. Also put into the response's extensions by
/// [`Pipeline::proxy`](super::Pipeline::proxy), so a layer above can read it.
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
    /// The last attempt's outcome as the breaker saw it.
    pub outcome: Option<Outcome>,
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
            outcome: None,
            retry_stop: None,
            error: None,
            status: 0,
        }
    }

    /// Retries made (attempts after the first).
    pub fn retries(&self) -> u32 {
        (self.attempts.len() as u32).saturating_sub(1)
    }
}
