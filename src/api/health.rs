//! `/health` (liveness: 200 while the process serves, whatever its breakers say) and
//! `/health/detailed` (every dependency, its breaker and the process figures).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::State;
use axum::{Extension, Json};
use serde_json::{Map, Value, json};

use super::json::timestamp;
use crate::breaker::{Nanos, State as BreakerState};
use crate::gateway::Gateway;
use crate::upstream::HealthStatus;

/// `GET /health`
pub(super) async fn live(State(gateway): State<Arc<Gateway>>) -> Json<Value> {
    Json(json!({ "status": "healthy", "timestamp": timestamp(gateway.clock().wall()) }))
}

/// `GET /health/detailed`
pub(super) async fn detailed(
    State(gateway): State<Arc<Gateway>>,
    Extension(cache): Extension<Arc<Cache>>,
) -> Json<Value> {
    let fresh_for = gateway.in_force().config.health.detailed_cache;
    let now = gateway.clock().now();
    Json(cache.get_or_build(now, fresh_for, || build(&gateway)))
}

/// The last detailed report and when it was built: probing the page often must not load the
/// gateway, so a report is built at most once per `detailed_cache`
/// (`DETAILED_HEALTH_CACHE_SECONDS`).
#[derive(Debug, Default)]
pub(super) struct Cache(Mutex<Option<(Nanos, Value)>>);

impl Cache {
    /// The report built at most `fresh_for` before `now` (on the breakers' clock), or a new one.
    fn get_or_build(
        &self,
        now: Nanos,
        fresh_for: Duration,
        build: impl FnOnce() -> Value,
    ) -> Value {
        let mut cached = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((at, report)) = cached.as_ref()
            && now.saturating_duration_since(*at) < fresh_for
        {
            return report.clone();
        }
        let report = build();
        *cached = Some((now, report.clone()));
        report
    }
}

fn service_status(breaker: BreakerState, probe: HealthStatus) -> &'static str {
    match (breaker, probe) {
        (BreakerState::Closed | BreakerState::Disabled, HealthStatus::Healthy) => "healthy",
        (BreakerState::Closed | BreakerState::Disabled, HealthStatus::Unknown) => "healthy",
        (BreakerState::Closed | BreakerState::Disabled, HealthStatus::Unhealthy) => "unhealthy",
        (BreakerState::HalfOpen, _) => "recovering",
        (BreakerState::Open | BreakerState::ForcedOpen, _) => "unhealthy",
    }
}

fn build(gateway: &Gateway) -> Value {
    let mut services = Map::new();
    let mut degraded = false;
    for (name, upstream) in &gateway.in_force().upstreams {
        let snapshot = upstream.breaker().snapshot();
        let health = upstream.health();
        let status = service_status(snapshot.state, health.status);
        degraded |= status != "healthy";
        services.insert(
            name.clone(),
            json!({
                "status": status,
                "circuit_breaker": snapshot.state.as_str(),
                "last_check": health.last_check.map(timestamp),
                "failure_count": snapshot.consecutive_failures,
                "response_time_ms": health.response_time_ms,
                "last_recovery_seconds": snapshot.last_recovery.map(|took| took.as_secs_f64()),
                "last_recovered_at": snapshot.last_recovered_at.map(timestamp),
            }),
        );
    }
    let store = gateway.store();
    let snapshot = gateway.database_breaker().snapshot();
    let pool = store.pool_stats();
    let store_status = if store.is_degraded() {
        "unhealthy"
    } else {
        service_status(snapshot.state, HealthStatus::Healthy)
    };
    degraded |= store_status != "healthy";
    services.insert(
        "database".into(),
        json!({
            "status": store_status,
            "circuit_breaker": snapshot.state.as_str(),
            "last_check": snapshot.last_success_time.max(snapshot.last_failure_time).map(timestamp),
            "failure_count": snapshot.consecutive_failures,
            "response_time_ms": Value::Null,
            "kind": format!("{:?}", store.kind()).to_lowercase(),
            "connection_pool_active": pool.active,
            "connection_pool_idle": pool.idle,
        }),
    );
    json!({
        "status": if degraded { "degraded" } else { "healthy" },
        "timestamp": timestamp(gateway.clock().wall()),
        "services": services,
        "system": gateway.system(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_is_built_at_most_once_per_cache_period() {
        let cache = Cache::default();
        let fresh_for = Duration::from_secs(10);
        let at = |seconds: u64| Nanos(seconds * 1_000_000_000);
        let report = |n: u64| move || json!(n);
        assert_eq!(cache.get_or_build(at(1), fresh_for, report(1)), json!(1));
        assert_eq!(cache.get_or_build(at(10), fresh_for, report(2)), json!(1));
        assert_eq!(cache.get_or_build(at(11), fresh_for, report(3)), json!(3));
        let never = Duration::ZERO;
        assert_eq!(cache.get_or_build(at(11), never, report(4)), json!(4));
    }
}
