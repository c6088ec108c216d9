//! Answering for an upstream that rejected or failed: its configured fallback first, then the
//! last resort (its own failure answer if it gave one, else a JSON 503 with `Retry-After`).

use axum::body::Body;
use axum::http::{Method, Response, StatusCode};
use uuid::Uuid;

use crate::config::Fallback;
use crate::fallback::cache_key;
use crate::fallback::degraded::degraded_response;
use crate::fallback::{Durability, QueueBounds, QueueError, QueueStatus, QueuedRequest};
use crate::upstream::{FailureKind, OutgoingRequest, Upstream};

use super::answer::{self, json_error, retry_after_secs, with_retry_after};
use super::headers::to_pairs;
use super::{Cause, Decision, FallbackKind, Pipeline, ProxyOutcome};

impl Pipeline {
    pub(crate) async fn fall_back(
        &self,
        upstream: &Upstream,
        request: &OutgoingRequest,
        cause: Cause,
        outcome: &mut ProxyOutcome,
    ) -> Response<Body> {
        match &upstream.config().fallback {
            Fallback::Cache { ttl } if request.method == Method::GET => {
                let now = upstream.breaker().clock().wall();
                let credentials = &upstream.config().credentials;
                let target =
                    cache_key::target(credentials, &request.headers, &request.path_and_query);
                let hit = self.cache.get(upstream.name(), &target, *ttl, now).await;
                if let Some(hit) = hit.filter(|hit| cache_key::serves(hit, &request.headers)) {
                    served_by(outcome, FallbackKind::Cache);
                    return answer::from_cache(hit, now);
                }
            }
            Fallback::Degraded {
                status,
                body,
                content_type,
            } => {
                served_by(outcome, FallbackKind::Degraded);
                return degraded_response(*status, body, content_type);
            }
            Fallback::Queue if !matches!(request.method, Method::GET | Method::HEAD) => {
                if let Some(answer) = self.enqueue(upstream, request, outcome).await {
                    return answer;
                }
            }
            _ => {}
        }
        last_resort(upstream, cause, outcome)
    }

    /// Queues the request: 202 when kept, 503 `queue_full` when there is no room; `None` when
    /// there is no queue or it is shutting down, so the last resort answers.
    async fn enqueue(
        &self,
        upstream: &Upstream,
        request: &OutgoingRequest,
        outcome: &mut ProxyOutcome,
    ) -> Option<Response<Body>> {
        let queue = self.queue.as_ref()?;
        let id = Uuid::now_v7();
        let queued = QueuedRequest {
            id,
            upstream: upstream.name().to_owned(),
            method: request.method.as_str().to_owned(),
            path_and_query: request.path_and_query.clone(),
            headers: to_pairs(&request.headers, &upstream.config().queue_strip_headers),
            body: request.body.clone(),
            enqueued_at: upstream.breaker().clock().wall(),
            attempts: 0,
            status: QueueStatus::Pending,
        };
        let config = upstream.config();
        let bounds = QueueBounds {
            max_requests: config.queue_max_requests,
            max_bytes: config.queue_max_bytes,
        };
        match queue.enqueue_within(queued, bounds).await {
            Ok(durability) => {
                served_by(outcome, FallbackKind::Queue);
                let durability = match durability {
                    Durability::Stored => "stored",
                    Durability::Memory => "memory",
                };
                let body = serde_json::json!({
                    "queued": true,
                    "id": id.to_string(),
                    "durability": durability,
                });
                let mut response = answer::json(StatusCode::ACCEPTED, body.to_string());
                answer::mark_fallback(&mut response, FallbackKind::Queue);
                Some(response)
            }
            Err(full @ (QueueError::Full { .. } | QueueError::OverLimit { .. })) => {
                served_by(outcome, FallbackKind::Error);
                outcome.error = Some("queue_full");
                let why = match full {
                    QueueError::OverLimit { bound } => bound,
                    other => other.to_string(),
                };
                let message = format!(
                    "upstream `{}` is unavailable and its request queue is full: {why}",
                    upstream.name()
                );
                let response = json_error(StatusCode::SERVICE_UNAVAILABLE, "queue_full", &message);
                Some(with_retry_after(
                    response,
                    retry_after_secs(upstream.breaker().until_half_open()),
                ))
            }
            Err(QueueError::ShuttingDown) => None,
        }
    }
}

fn served_by(outcome: &mut ProxyOutcome, kind: FallbackKind) {
    outcome.decision = Some(Decision::Fallback);
    outcome.fallback = Some(kind);
}

/// No fallback could answer: the upstream's own failure answer if it gave one, else our 503.
fn last_resort(upstream: &Upstream, cause: Cause, outcome: &mut ProxyOutcome) -> Response<Body> {
    let name = upstream.name();
    let (code, message, retry_after) = match cause {
        Cause::Answered(response) => {
            outcome.decision = Some(Decision::Permitted);
            return answer::from_upstream(response);
        }
        Cause::Rejected(rejected) => {
            outcome.decision = Some(Decision::Rejected);
            outcome.fallback = Some(FallbackKind::Error);
            let secs = retry_after_secs(rejected.retry_after());
            let message = format!(
                "upstream `{name}` is unavailable: its circuit breaker is {}; retry after {secs} s",
                rejected.state()
            );
            ("circuit_open", message, secs)
        }
        Cause::Failed(error) if error.kind == FailureKind::InvalidRequest => {
            outcome.error = Some("bad_path");
            let message = "the proxied path is not allowed: it would leave the upstream";
            return json_error(StatusCode::BAD_REQUEST, "bad_path", message);
        }
        Cause::Failed(error) => {
            served_by(outcome, FallbackKind::Error);
            let secs = retry_after_secs(upstream.breaker().until_half_open());
            if error.kind == FailureKind::Timeout {
                let message = format!(
                    "upstream `{name}` did not answer within {}",
                    humantime::format_duration(upstream.config().call_timeout)
                );
                ("upstream_timeout", message, secs)
            } else {
                let message = format!("upstream `{name}` could not be reached");
                ("upstream_unavailable", message, secs)
            }
        }
    };
    outcome.error = Some(code);
    let response = json_error(StatusCode::SERVICE_UNAVAILABLE, code, &message);
    with_retry_after(response, retry_after)
}
