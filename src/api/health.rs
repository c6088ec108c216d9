//! `/health` (liveness: 200 while the process serves, whatever its breakers say) and
//! `/health/detailed` (every dependency, its breaker and the process figures).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use axum::extract::State;
use axum::{Extension, Json};
use serde_json::{Map, Value, json};

use super::json::timestamp;
use crate::breaker::State as BreakerState;
use crate::gateway::Gateway;
use crate::upstream::HealthStatus;

/// `GET /health`
pub(super) async fn live() -> Json<Value> {
    Json(json!({ "status": "healthy", "timestamp": timestamp(SystemTime::now()) }))
}

/// `GET /health/detailed`
pub(super) async fn detailed(
    State(gateway): State<Arc<Gateway>>,
    Extension(cache): Extension<Arc<Cache>>,
) -> Json<Value> {
    let fresh_for = gateway.in_force().config.health.detailed_cache;
    Json(cache.get_or_build(fresh_for, || build(&gateway)))
}

/// The last detailed report and when it was built: probing the page often must not load the
/// gateway, so a report is built at most once per `detailed_cache`
/// (`DETAILED_HEALTH_CACHE_SECONDS`).
#[derive(Debug, Default)]
pub(super) struct Cache(Mutex<Option<(Instant, Value)>>);

impl Cache {
    fn get_or_build(&self, fresh_for: Duration, build: impl FnOnce() -> Value) -> Value {
        let mut cached = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((at, report)) = cached.as_ref()
            && at.elapsed() < fresh_for
        {
            return report.clone();
        }
        let report = build();
        *cached = Some((Instant::now(), report.clone()));
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
        "timestamp": timestamp(SystemTime::now()),
        "services": services,
        "system": gateway.system(),
    })
}
