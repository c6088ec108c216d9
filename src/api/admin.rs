//! `/admin`: breaker snapshots and operator actions, the request queue, and the event stream.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::{Stream, StreamExt};
use serde_json::{Map, Value, json};
use tokio_stream::wrappers::{BroadcastStream, IntervalStream};
use uuid::Uuid;

use super::auth::authorize;
use super::error::ApiError;
use super::json::{Written, queued, timestamp};
use crate::breaker::{Breaker, Transition};
use crate::config::Role;
use crate::gateway::Gateway;
use crate::store::ManualAction;

type Answer = Result<Json<Value>, ApiError>;

fn allow(gateway: &Gateway, headers: &HeaderMap, needed: Role) -> Result<(), ApiError> {
    authorize(headers, &gateway.in_force().config.admin.tokens, needed).map(|_| ())
}

fn breaker(gateway: &Gateway, name: &str) -> Result<Arc<Breaker>, ApiError> {
    gateway
        .breaker_named(name)
        .ok_or_else(|| ApiError::unknown_breaker(name))
}

fn all_snapshots(gateway: &Gateway) -> Value {
    let data: BTreeMap<String, Written> = gateway
        .snapshots()
        .iter()
        .map(|(name, s)| (name.clone(), Written::from(s)))
        .collect();
    let count = data.len();
    json!({
        "success": true,
        "data": data,
        "meta": { "timestamp": timestamp(gateway.clock().wall()), "count": count },
    })
}

fn one(breaker: &Breaker, message: Option<&str>) -> Value {
    let mut body = json!({
        "success": true,
        "data": Written::from(&breaker.snapshot()),
        "meta": { "timestamp": timestamp(breaker.clock().wall()), "name": breaker.name().as_ref() },
    });
    if let Some(message) = message {
        body["message"] = json!(message);
    }
    body
}

/// `GET /admin/breakers`
pub(super) async fn list(State(gateway): State<Arc<Gateway>>, headers: HeaderMap) -> Answer {
    allow(&gateway, &headers, Role::Viewer)?;
    Ok(Json(all_snapshots(&gateway)))
}

/// `GET /admin/dashboard`: the seed's "Dashboard Metrics" JSON, from the figures the metrics
/// use: each breaker's state, its failure rate over the window (failed ÷ calls, as
/// `breakerbox_breaker_failure_ratio` before `minimum_calls`) as a percentage with one
/// decimal, and the mean latency of its permitted calls (`breakerbox_call_duration_seconds`).
pub(super) async fn dashboard(State(gateway): State<Arc<Gateway>>, headers: HeaderMap) -> Answer {
    allow(&gateway, &headers, Role::Viewer)?;
    let (mut states, mut rates, mut times) = (Map::new(), Map::new(), Map::new());
    for (name, snapshot) in gateway.snapshots() {
        states.insert(format!("{name}_state"), json!(snapshot.state.as_str()));
        let calls = snapshot.window.calls();
        let rate = if calls == 0 {
            0.0
        } else {
            snapshot.window.failed() as f64 * 100.0 / calls as f64
        };
        rates.insert(name.clone(), json!(format!("{rate:.1}%")));
        let average = gateway.telemetry().average_latency(&name);
        let ms = average.map(|took| (took.as_secs_f64() * 10_000.0).round() / 10.0);
        times.insert(format!("{name}_avg_ms"), json!(ms));
    }
    Ok(Json(json!({
        "circuit_breakers": states,
        "failure_rates": rates,
        "response_times": times,
    })))
}

/// `GET /admin/breakers/{name}`
pub(super) async fn show(
    State(gateway): State<Arc<Gateway>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Answer {
    allow(&gateway, &headers, Role::Viewer)?;
    Ok(Json(one(&*breaker(&gateway, &name)?, None)))
}

/// `POST /admin/breakers/{name}/{action}`: `reset`, `force-open` or `disable`.
pub(super) async fn act(
    State(gateway): State<Arc<Gateway>>,
    Path((name, action)): Path<(String, String)>,
    headers: HeaderMap,
) -> Answer {
    allow(&gateway, &headers, Role::Admin)?;
    let (action, message) = match action.as_str() {
        "reset" => (
            ManualAction::Reset,
            "circuit breaker reset: closed, counters cleared",
        ),
        "force-open" => (
            ManualAction::ForceOpen { until: None },
            "circuit breaker forced open until reset",
        ),
        "disable" => (
            ManualAction::Disable,
            "circuit breaker disabled until reset: every call passes",
        ),
        other => {
            return Err(ApiError::not_found(format!(
                "unknown action `{other}` (reset, force-open, disable)"
            )));
        }
    };
    // Checked before acting, so an unknown name answers 404 and touches nothing.
    breaker(&gateway, &name)?;
    let breaker = gateway
        .manual_action(&name, action)
        .await
        .ok_or_else(|| ApiError::unknown_breaker(&name))?;
    tracing::info!(breaker = %name, action = action.as_str(), "operator action");
    Ok(Json(one(&breaker, Some(message))))
}

/// `POST /admin/breakers/reset-all`
pub(super) async fn reset_all(State(gateway): State<Arc<Gateway>>, headers: HeaderMap) -> Answer {
    allow(&gateway, &headers, Role::Admin)?;
    for breaker in gateway.breakers() {
        gateway
            .manual_action(breaker.name(), ManualAction::Reset)
            .await;
    }
    tracing::info!(action = "reset-all", "operator action");
    let mut body = all_snapshots(&gateway);
    body["message"] = json!("every circuit breaker reset");
    Ok(Json(body))
}

/// `POST /api/test/circuit-breaker/{name}`: trips the breaker (only with `[chaos] enabled`).
pub(super) async fn chaos_trip(
    State(gateway): State<Arc<Gateway>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Answer {
    if !gateway.in_force().config.chaos.enabled {
        return Err(ApiError::not_found(
            "the chaos route is off ([chaos] enabled = false)",
        ));
    }
    allow(&gateway, &headers, Role::Admin)?;
    let breaker = breaker(&gateway, &name)?;
    breaker.trip();
    tracing::warn!(breaker = %name, "circuit breaker tripped through the chaos route");
    Ok(Json(one(&breaker, Some("circuit breaker tripped"))))
}

/// Requests listed per page of `GET /admin/queue` unless `limit` says otherwise, and the most.
const QUEUE_PAGE: usize = 100;
const QUEUE_PAGE_MAX: usize = 1000;

/// `limit` (1 to [`QUEUE_PAGE_MAX`]) and `after` (the last id of the previous page).
fn page_of(query: &BTreeMap<String, String>) -> Result<(usize, Option<Uuid>), ApiError> {
    let bad = |message: String| ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message);
    let limit = match query.get("limit") {
        None => QUEUE_PAGE,
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=QUEUE_PAGE_MAX).contains(&n) => n,
            _ => {
                return Err(bad(format!(
                    "limit is {text:?}: expected a whole number from 1 to {QUEUE_PAGE_MAX}"
                )));
            }
        },
    };
    let after = match query.get("after") {
        None => None,
        Some(text) => Some(Uuid::parse_str(text).map_err(|_| {
            bad(format!(
                "after is {text:?}: expected a queued request's id (meta.next of the previous page)"
            ))
        })?),
    };
    Ok((limit, after))
}

/// `GET /admin/queue?limit=N&after=ID`: one page of queued requests in id order; `meta.next`
/// is the `after` of the next page (`null` on the last).
pub(super) async fn queue(
    State(gateway): State<Arc<Gateway>>,
    Query(query): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Answer {
    allow(&gateway, &headers, Role::Viewer)?;
    let (limit, after) = page_of(&query)?;
    let listing = gateway.store().queue_listing(after, limit).await;
    let depth = gateway.store().queue_depth().await;
    let mut by_upstream = Map::new();
    for entry in &listing.entries {
        if let Some(list) = by_upstream
            .entry(entry.upstream.clone())
            .or_insert_with(|| json!([]))
            .as_array_mut()
        {
            list.push(queued(entry));
        }
    }
    Ok(Json(json!({
        "success": true,
        "data": by_upstream,
        "meta": {
            "timestamp": timestamp(gateway.clock().wall()),
            "pending": depth.pending,
            // `false` while the database could not be asked: `pending` then counts only the
            // requests held in memory.
            "pending_complete": depth.complete,
            // `false` while the database could not be read: `data` then lists only the
            // requests held in memory, and `next` says nothing about the database's.
            "complete": listing.complete,
            "next": listing.next.map(|id| id.to_string()),
            "limit": limit,
            "store_degraded": gateway.store().is_degraded(),
        },
    })))
}

/// `GET /admin/events`: one `transition` event per state change and a `snapshot` of every
/// breaker each second, as server-sent events.
pub(super) async fn events(
    State(gateway): State<Arc<Gateway>>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    allow(&gateway, &headers, Role::Viewer)?;
    let transitions = BroadcastStream::new(gateway.transitions().subscribe())
        .filter_map(|t| async move { t.ok().map(|t| transition_event(&t)) });
    let ticker = tokio::time::interval(Duration::from_secs(1));
    let snapshots = IntervalStream::new(ticker).map(move |_| {
        Event::default()
            .event("snapshot")
            .data(all_snapshots(&gateway)["data"].to_string())
    });
    let stream = futures_util::stream::select(transitions, snapshots).map(Ok);
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

fn transition_event(t: &Transition) -> Event {
    Event::default().event("transition").data(
        json!({
            "breaker": t.breaker.as_ref(),
            "from": t.from.as_str(),
            "to": t.to.as_str(),
            "reason": t.reason.as_str(),
            "detail": t.reason.to_string(),
            "generation": t.generation,
            "at": timestamp(t.wall),
        })
        .to_string(),
    )
}
