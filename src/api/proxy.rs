//! `ANY /proxy/{upstream}/{*path}`: hands the request to the pipeline. The upstream name and
//! the tail are cut from the raw path as received, never from a decoded or normalised one, so
//! `%2F` or `..` cannot move a request to another upstream or out of `/proxy`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use tracing::Instrument as _;

use super::error::ApiError;
use crate::gateway::Gateway;
use crate::telemetry;

/// Splits `/proxy/NAME/rest` into `NAME` and `/rest` (or `""`).
pub(super) fn split(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/proxy/")?;
    Some(match rest.find('/') {
        Some(slash) => (&rest[..slash], &rest[slash..]),
        None => (rest, ""),
    })
}

/// The proxy handler, as the router calls it.
pub(super) async fn handler(
    State(gateway): State<Arc<Gateway>>,
    request: Request<Body>,
) -> Response {
    proxy(gateway, request).await
}

/// Proxies `request` (its path starts with `/proxy/`).
pub(super) async fn proxy(gateway: Arc<Gateway>, request: Request<Body>) -> Response {
    let path = request.uri().path().to_owned();
    let Some((name, tail)) = split(&path) else {
        return ApiError::not_found(format!("no route for {path}")).into_response();
    };
    let Some(upstream) = gateway.upstream_named(name) else {
        return ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "unknown_upstream",
            format!("no upstream is named `{name}`"),
        )
        .into_response();
    };
    let tail = tail.to_owned();
    let span = telemetry::server_span(&request, upstream.name());
    let response = gateway
        .pipeline()
        .proxy(&upstream, request, &tail)
        .instrument(span.clone())
        .await;
    telemetry::record_response(&span, response.status().as_u16());
    response
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn splits_on_the_first_raw_slash_only() {
        assert_eq!(split("/proxy/plex/library/1"), Some(("plex", "/library/1")));
        assert_eq!(split("/proxy/plex"), Some(("plex", "")));
        assert_eq!(
            split("/proxy/plex%2F..%2Fadmin/x"),
            Some(("plex%2F..%2Fadmin", "/x"))
        );
        assert_eq!(split("/admin/breakers"), None);
    }
}
