//! The HTTP surface (axum): proxy, health, admin, chaos. Routes live here and nowhere else.

mod admin;
mod auth;
mod error;
mod health;
mod json;
mod proxy;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};

pub use auth::authorize;
pub use error::ApiError;
pub use json::{snapshot as snapshot_json, timestamp};

use crate::gateway::Gateway;

/// Every route of the gateway, ready to serve (with `ConnectInfo<SocketAddr>` for
/// `X-Forwarded-For`: use `into_make_service_with_connect_info`).
pub fn router(gateway: Arc<Gateway>) -> Router {
    let body_limit = gateway.runtime().config.server.max_body_bytes;
    Router::new()
        .route("/health", get(health::live))
        .route("/health/detailed", get(health::detailed))
        .route("/admin/breakers", get(admin::list))
        .route("/admin/breakers/reset-all", post(admin::reset_all))
        .route("/admin/breakers/{name}", get(admin::show))
        .route("/admin/breakers/{name}/{action}", post(admin::act))
        .route("/admin/queue", get(admin::queue))
        .route("/admin/events", get(admin::events))
        .route("/api/test/circuit-breaker/{name}", post(admin::chaos_trip))
        .route("/proxy/{*rest}", any(proxy::proxy))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(Arc::clone(&gateway), guard))
        // The pipeline enforces the body limit itself with a 413; this bounds every other route.
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(gateway)
}

async fn not_found(request: Request) -> ApiError {
    ApiError::not_found(format!(
        "no route for {} {}",
        request.method(),
        request.uri().path()
    ))
}

/// Refuses oversized headers (431) and counts requests in flight.
async fn guard(State(gateway): State<Arc<Gateway>>, request: Request, next: Next) -> Response {
    let limit = gateway.runtime().config.server.max_header_bytes;
    let size: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum::<usize>()
        + request.uri().to_string().len();
    if size > limit {
        return ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
            format!("request line and headers take {size} bytes; the limit is {limit}"),
        )
        .into_response();
    }
    let _in_flight = gateway.track_request();
    next.run(request).await
}
