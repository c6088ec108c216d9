//! One configured upstream: its breaker, outcome classification, retries within a budget, and
//! its active health probe, calling through an HTTP client shared with the other upstreams.

mod budget;
mod call;
mod classify;
mod clients;
mod exchange;
mod health;
mod path;
mod target;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, Uri};
use tokio::time::Instant;
use tracing::Instrument as _;

use crate::breaker::{Breaker, Jitter, Outcome, SplitMix};
use crate::config::UpstreamConfig;
use crate::telemetry;

pub use crate::outcome::{Attempt, FailureKind, Replay, RetryStop};
pub use budget::{RETRY_BUDGET_WINDOW, RetryBudget};
pub use call::{Call, CallEnd, CallError, OutgoingRequest};
pub use classify::{classify_status, is_failure, parse_http_date, parse_retry_after};
pub use clients::{ClientError, HttpClients};
pub use exchange::{SHORT_BODY_MAX, UpstreamResponse};
pub use health::{HEALTH_CHECK_INTERVAL, HealthReport, HealthStatus, ProbeHandle};
pub use path::{BadPath, check_tail, path_and_query};

/// Most attempts one call makes (the first plus two retries), budget permitting.
pub const MAX_ATTEMPTS: u32 = 3;
/// Backoff before the first retry; doubled for each further one, with jitter.
const BACKOFF_BASE: Duration = Duration::from_millis(10);
/// Longest backoff between two attempts.
const BACKOFF_MAX: Duration = Duration::from_millis(100);

/// The HTTP client of an upstream could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the HTTP client of upstream `{upstream}`: {source}")]
pub struct UpstreamError {
    upstream: String,
    #[source]
    source: ClientError,
}

/// One configured upstream. Cheap to share behind an `Arc`; the breaker is the caller's (the
/// registry owns it), the client and its connection pool are shared (see [`HttpClients`]).
#[derive(Debug)]
pub struct Upstream {
    config: UpstreamConfig,
    breaker: Arc<Breaker>,
    client: clients::HttpClient,
    /// `config.url`, parsed once.
    base: target::BaseUrl,
    budget: RetryBudget,
    jitter: SplitMix,
    health: Mutex<HealthReport>,
}

impl Upstream {
    /// An upstream calling `config.url` through `breaker`, with a client of its own.
    pub fn new(config: UpstreamConfig, breaker: Arc<Breaker>) -> Result<Upstream, UpstreamError> {
        Self::sharing(config, breaker, &HttpClients::new())
    }

    /// An upstream calling `config.url` through `breaker`, with the client of `clients` that
    /// suits its settings.
    pub fn sharing(
        config: UpstreamConfig,
        breaker: Arc<Breaker>,
        clients: &HttpClients,
    ) -> Result<Upstream, UpstreamError> {
        let client = clients
            .get(config.call_timeout)
            .map_err(|source| UpstreamError {
                upstream: config.name.clone(),
                source,
            })?;
        Ok(Upstream {
            budget: RetryBudget::new(config.retry_budget_percent, config.retry_min_per_second),
            base: target::BaseUrl::new(config.url.as_str()),
            config,
            breaker,
            client,
            jitter: SplitMix::default(),
            health: Mutex::new(HealthReport::unknown()),
        })
    }

    /// The upstream's name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Its configuration.
    pub fn config(&self) -> &UpstreamConfig {
        &self.config
    }

    /// Its breaker.
    pub fn breaker(&self) -> &Arc<Breaker> {
        &self.breaker
    }

    /// Its retry budget.
    pub fn retry_budget(&self) -> &RetryBudget {
        &self.budget
    }

    /// Sends `request`, retrying an idempotent one that failed while the retry budget, the
    /// breaker and the call timeout allow. The whole call, retries and backoff included, ends
    /// within the upstream's `call_timeout`.
    pub async fn call(&self, request: &OutgoingRequest) -> Call {
        self.budget.deposit();
        self.run(request, request.is_idempotent()).await
    }

    /// One attempt, never retried (queue replay retries on its own schedule).
    pub async fn call_once(&self, request: &OutgoingRequest) -> Call {
        self.run(request, false).await
    }

    async fn run(&self, request: &OutgoingRequest, retryable: bool) -> Call {
        let mut attempts = Vec::new();
        let uri = match self.target(&request.path_and_query) {
            Ok(target) => target,
            Err(error) => return finished(CallEnd::Failed(error), attempts, None),
        };
        let timeout = self.config.call_timeout;
        let deadline = Instant::now() + timeout;
        let mut number = 0u32;
        // The previous attempt's end, kept so a retry the breaker refuses can still answer.
        let mut previous: Option<CallEnd> = None;
        loop {
            let permit = match self.breaker.try_acquire() {
                Ok(permit) => permit,
                Err(rejected) => {
                    return match previous {
                        None => finished(CallEnd::Rejected(rejected), attempts, None),
                        Some(end) => finished(end, attempts, Some(RetryStop::BreakerRejected)),
                    };
                }
            };
            // Free the previous answer's connection before the next attempt needs one.
            drop(previous.take());
            let probe = permit.is_probe();
            let started = Instant::now();
            let left = deadline.saturating_duration_since(started);
            let (end, attempt) = self.attempt(request, &uri, left, number, probe).await;
            permit.record_timed(attempt.outcome, attempt.duration);
            attempts.push(attempt);
            // Only plain failures are retried: a Retry-After answer asked us to back off, and a
            // timeout has used the call's time.
            if !matches!(attempt.outcome, Outcome::Failure | Outcome::Timeout) {
                return finished(end, attempts, None);
            }
            if !retryable {
                return finished(end, attempts, Some(RetryStop::NotRetryable));
            }
            if number + 1 >= MAX_ATTEMPTS {
                return finished(end, attempts, Some(RetryStop::MaxAttempts));
            }
            let backoff = self.backoff(number);
            // A retry needs a fair share of the call timeout to be worth making.
            if deadline.saturating_duration_since(Instant::now() + backoff) < timeout / 4 {
                return finished(end, attempts, Some(RetryStop::Deadline));
            }
            if !self.budget.try_withdraw() {
                return finished(end, attempts, Some(RetryStop::BudgetExhausted));
            }
            previous = Some(end);
            tokio::time::sleep(backoff).await;
            number += 1;
        }
    }

    /// One physical attempt with `left` of the call's time, in its own client span whose
    /// context the request carries (`traceparent`).
    async fn attempt(
        &self,
        request: &OutgoingRequest,
        uri: &Uri,
        left: Duration,
        number: u32,
        probe: bool,
    ) -> (CallEnd, Attempt) {
        let span = telemetry::client_span(&request.method, uri, number);
        let mut headers = request.headers.clone();
        telemetry::inject(&span, &mut headers);
        let (end, attempt) = self
            .send(request, headers, uri, left, number, probe)
            .instrument(span.clone())
            .await;
        telemetry::record_attempt(&span, &attempt);
        (end, attempt)
    }

    async fn send(
        &self,
        request: &OutgoingRequest,
        headers: HeaderMap,
        uri: &Uri,
        left: Duration,
        number: u32,
        probe: bool,
    ) -> (CallEnd, Attempt) {
        let started = Instant::now();
        let outgoing = self
            .base
            .request(&request.method, uri, headers, &request.body);
        let sent = exchange::answer(&self.client, outgoing, left).await;
        let duration = started.elapsed();
        let mut attempt = Attempt {
            number,
            outcome: Outcome::Success,
            status: None,
            failure: None,
            duration,
            probe,
        };
        match sent {
            Ok(response) => {
                let status = response.status();
                let outcome = classify_status(
                    &self.config,
                    status,
                    response.headers(),
                    self.breaker.clock().wall(),
                );
                attempt.outcome = outcome;
                attempt.status = Some(status.as_u16());
                (CallEnd::Answered { response, outcome }, attempt)
            }
            Err(err) => {
                let kind = err.kind();
                attempt.outcome = kind.outcome();
                attempt.failure = Some(kind);
                let message = error_chain(&err);
                (CallEnd::Failed(CallError { kind, message }), attempt)
            }
        }
    }

    /// Exponential backoff with "equal jitter": half fixed, half random, so retries from many
    /// callers spread out but never come back at once.
    fn backoff(&self, retry: u32) -> Duration {
        let full = BACKOFF_BASE
            .saturating_mul(1 << retry.min(16))
            .min(BACKOFF_MAX);
        let half = full / 2;
        half + half.mul_f64(self.jitter.fraction())
    }

    /// The request target for `path_and_query`: the URL [`Upstream::url`] gives, as the client
    /// takes it. A path of plain characters is appended as text, without building the URL.
    fn target(&self, path_and_query: &str) -> Result<Uri, CallError> {
        let (tail, query) = match path_and_query.split_once('?') {
            Some((tail, query)) => (tail, Some(query)),
            None => (path_and_query, None),
        };
        if path::check(tail, query).is_ok()
            && let Some(uri) = self.base.verbatim(tail, query)
        {
            return Ok(uri);
        }
        let url = self.url(path_and_query)?;
        self.base.uri(&url).map_err(|e| CallError {
            kind: FailureKind::InvalidRequest,
            message: format!("path {path_and_query:?} refused: {e}"),
        })
    }

    /// The upstream's URL for `path_and_query`, appended as is (never normalised). Refuses a
    /// result that would leave the upstream: a second line of defence behind the pipeline's
    /// path check, also for queued requests read back from the store.
    pub fn url(&self, path_and_query: &str) -> Result<reqwest::Url, CallError> {
        let invalid = |why: &str| CallError {
            kind: FailureKind::InvalidRequest,
            message: format!("path {path_and_query:?} refused: {why}"),
        };
        // The same rules as for proxied paths: queued requests come back from the store.
        let (tail, query) = match path_and_query.split_once('?') {
            Some((tail, query)) => (tail, Some(query)),
            None => (path_and_query, None),
        };
        path::check(tail, query).map_err(|bad| invalid(bad.reason()))?;
        let base = &self.config.url;
        let url = self
            .base
            .join(base.as_str(), base.path(), tail, query)
            .map_err(|e| invalid(&e))?;
        let same_host = url
            .host_str()
            .is_some_and(|h| h.eq_ignore_ascii_case(base.host()));
        let same_port = url.port_or_known_default() == Some(base.port());
        let under_base = base.path().is_empty()
            || url.path() == base.path()
            || url
                .path()
                .strip_prefix(base.path())
                .is_some_and(|rest| rest.starts_with('/'));
        if !(same_host && same_port && under_base)
            || url.username() != ""
            || url.fragment().is_some()
        {
            return Err(invalid("would leave the upstream"));
        }
        Ok(url)
    }
}

fn finished(end: CallEnd, attempts: Vec<Attempt>, retry_stop: Option<RetryStop>) -> Call {
    Call {
        end,
        attempts,
        retry_stop,
    }
}

/// The error with its causes, e.g. "error sending request: connection refused".
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
