//! The HTTP surface (axum): proxy, health, admin, chaos. Routes live here and nowhere else.

mod admin;
mod auth;
mod dispatch;
mod error;
mod health;
mod json;
mod proxy;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Extension, Router};

pub use auth::authorize;
pub use dispatch::{App, AppFuture, app};
pub use error::ApiError;
pub use json::{SnapshotJson, timestamp};

use crate::gateway::Gateway;
use crate::pipeline::ProxyOutcome;
use crate::telemetry;

/// Every route of the gateway, ready to serve (with `ConnectInfo<SocketAddr>` for
/// `X-Forwarded-For`: use `into_make_service_with_connect_info`).
pub fn router(gateway: Arc<Gateway>) -> Router {
    let body_limit = gateway.in_force().config.server.max_body_bytes;
    Router::new()
        .route("/health", get(health::live))
        .route(
            "/health/detailed",
            get(health::detailed).layer(Extension(Arc::new(health::Cache::default()))),
        )
        .route("/metrics", get(metrics))
        .route("/admin/breakers", get(admin::list))
        .route("/admin/breakers/reset-all", post(admin::reset_all))
        .route("/admin/breakers/{name}", get(admin::show))
        .route("/admin/breakers/{name}/{action}", post(admin::act))
        .route("/admin/queue", get(admin::queue))
        .route("/admin/dashboard", get(admin::dashboard))
        .route("/admin/events", get(admin::events))
        .route("/api/test/circuit-breaker/{name}", post(admin::chaos_trip))
        // [`App`] serves these without the router; the route stays for the router on its own.
        .route(dispatch::PROXY_ROUTE, any(proxy::handler))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
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

/// A route that exists, asked with a method it does not serve (axum keeps its `Allow` header).
async fn method_not_allowed(request: Request) -> ApiError {
    ApiError::method_not_allowed(format!(
        "{} is not served on {}",
        request.method(),
        request.uri().path()
    ))
}

/// `GET /metrics`: the Prometheus exposition, classic text format.
async fn metrics(State(gateway): State<Arc<Gateway>>) -> Response {
    let body = gateway.render_metrics().await;
    ([(header::CONTENT_TYPE, telemetry::CONTENT_TYPE)], body).into_response()
}

/// Refuses oversized headers (431), counts requests in flight, and hands every proxied
/// response's outcome to telemetry.
async fn guard(State(gateway): State<Arc<Gateway>>, request: Request, next: Next) -> Response {
    if let Some(refused) = refusal(&gateway, &request) {
        return refused;
    }
    let _in_flight = gateway.track_request();
    let response = next.run(request).await;
    record(&gateway, &response);
    response
}

/// 431 when the request line and headers are larger than `max_header_bytes`.
fn refusal(gateway: &Gateway, request: &Request) -> Option<Response> {
    let limit = gateway.in_force().config.server.max_header_bytes;
    let size: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum::<usize>()
        + uri_len(request.uri());
    if size > limit {
        return Some(
            ApiError::new(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "headers_too_large",
                format!("request line and headers take {size} bytes; the limit is {limit}"),
            )
            .into_response(),
        );
    }
    None
}

/// Hands a proxied response's outcome to telemetry.
fn record(gateway: &Gateway, response: &Response) {
    if let Some(outcome) = response.extensions().get::<ProxyOutcome>() {
        gateway.telemetry().record_proxy(outcome);
    }
}

/// The length of `uri` as written on the request line, counted without formatting it (this runs
/// for every request).
fn uri_len(uri: &axum::http::Uri) -> usize {
    let scheme = uri.scheme_str().map_or(0, |s| s.len() + "://".len());
    let authority = uri.authority().map_or(0, |a| a.as_str().len());
    let path_and_query = uri.path_and_query().map_or(0, |pq| pq.as_str().len());
    scheme + authority + path_and_query
}

#[cfg(test)]
mod tests {
    use super::uri_len;

    #[test]
    fn uri_length_matches_its_written_form() {
        for uri in [
            "/proxy/plex/a?b=c",
            "http://example.test:8080/x?y",
            "/",
            "*",
        ] {
            let parsed: axum::http::Uri = uri.parse().expect("valid uri");
            assert_eq!(uri_len(&parsed), parsed.to_string().len(), "{uri}");
        }
    }
}
