//! The JSON shapes of DESIGN.md's HTTP surface.

use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use crate::breaker::Snapshot;
use crate::fallback::QueuedRequest;

/// RFC 3339 with milliseconds, UTC.
pub fn timestamp(at: SystemTime) -> String {
    humantime::format_rfc3339_millis(at).to_string()
}

fn optional(at: Option<SystemTime>) -> Value {
    at.map_or(Value::Null, |at| Value::String(timestamp(at)))
}

fn seconds(duration: Option<Duration>) -> Value {
    duration.map_or(Value::Null, |d| json!(d.as_secs_f64()))
}

/// A breaker's snapshot: the contract's fields first, then the extras operators asked for.
pub fn snapshot(s: &Snapshot) -> Value {
    json!({
        "state": s.state.as_str(),
        "total_requests": s.total_requests,
        "successful_requests": s.successful_requests,
        "failed_requests": s.failed_requests,
        "timeouts": s.timeouts,
        "rejected_requests": s.rejected_requests,
        "slow_requests": s.slow_requests,
        "consecutive_failures": s.consecutive_failures,
        "error_rate": (s.error_rate() * 100.0).round() / 100.0,
        "last_failure_time": optional(s.last_failure_time),
        "last_success_time": optional(s.last_success_time),
        "state_changed_at": timestamp(s.state_changed_at),
        "failure_ratio": s.failure_ratio,
        "window": {
            "calls": s.window.calls(),
            "successes": s.window.successes,
            "failures": s.window.failures,
            "timeouts": s.window.timeouts,
            "slow": s.window.slow,
        },
        "open_until": optional(s.open_until),
        "retry_after_seconds": seconds(s.retry_after),
        "half_open_probes": s.half_open_probes,
        "consecutive_trips": s.consecutive_trips,
        "last_trip_reason": s.last_trip.map(|r| r.as_str()),
        "generation": s.generation,
    })
}

/// One queued request as `GET /admin/queue` lists it (no body, no headers: they may be private).
pub(super) fn queued(request: &QueuedRequest) -> Value {
    let mut entry = json!({
        "id": request.id.to_string(),
        "upstream": request.upstream,
        "method": request.method,
        "path": request.path_and_query,
        "enqueued_at": timestamp(request.enqueued_at),
        "attempts": request.attempts,
        "status": request.status.as_str(),
        "body_bytes": request.body.len(),
    });
    match &request.status {
        crate::fallback::QueueStatus::Delivered { status } => {
            entry["upstream_status"] = json!(status);
        }
        crate::fallback::QueueStatus::Failed { reason } => entry["reason"] = json!(reason),
        crate::fallback::QueueStatus::Pending => {}
    }
    entry
}
