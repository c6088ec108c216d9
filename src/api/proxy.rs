//! `ANY /proxy/{upstream}/{*path}`: hands the request to the pipeline. The upstream name and
//! the tail are cut from the raw path as received, never from a decoded or normalised one, so
//! `%2F` or `..` cannot move a request to another upstream or out of `/proxy`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use tracing::Instrument as _;

use super::error::ApiError;
use crate::gateway::Gateway;
use crate::pipeline::ProxyOutcome;
use crate::telemetry;

/// Splits `/proxy/NAME/rest` into `NAME` and `/rest` (or `""`).
pub(super) fn split(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/proxy/")?;
    Some(match rest.find('/') {
        Some(slash) => (&rest[..slash], &rest[slash..]),
        None => (rest, ""),
    })
}

/// The proxy handler, as the router calls it: the client's address is the request's
/// `ConnectInfo<SocketAddr>`, the outcome goes into the response's extensions.
pub(super) async fn handler(
    State(gateway): State<Arc<Gateway>>,
    request: Request<Body>,
) -> Response {
    let client = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip());
    let (mut response, outcome) = proxy(gateway, request, client).await;
    if let Some(outcome) = outcome {
        response.extensions_mut().insert(outcome);
    }
    response
}

/// Proxies `request` (its path starts with `/proxy/`) from `client`; the outcome is there when
/// the request named an upstream.
pub(super) async fn proxy(
    gateway: Arc<Gateway>,
    request: Request<Body>,
    client: Option<IpAddr>,
) -> (Response, Option<ProxyOutcome>) {
    if let Some(refused) = refused_method(request.method()) {
        return (refused, None);
    }
    let path = request.uri().path().to_owned();
    let Some((name, tail)) = split(&path) else {
        let error = ApiError::not_found(format!("no route for {path}"));
        return (error.into_response(), None);
    };
    let Some(upstream) = gateway.upstream_named(name) else {
        let error = ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "unknown_upstream",
            format!("no upstream is named `{name}`"),
        );
        return (error.into_response(), None);
    };
    let tail = tail.to_owned();
    let span = telemetry::server_span(&request, upstream.name());
    let (response, outcome) = gateway
        .pipeline()
        .proxy_from(&upstream, request, &tail, client)
        .instrument(span.clone())
        .await;
    telemetry::record_response(&span, response.status().as_u16());
    (response, Some(outcome))
}

/// The methods a proxied request may use, for the `Allow` header of a refusal.
const PROXIED_METHODS: &str = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";

/// 405 for `CONNECT` (a tunnel the gateway does not open, and a request no upstream should see
/// nor the queue replay) and `TRACE` (it echoes the request, credentials included), before any
/// breaker, cache or queue.
fn refused_method(method: &Method) -> Option<Response> {
    if method != Method::CONNECT && method != Method::TRACE {
        return None;
    }
    let message = format!("{method} is not proxied");
    let mut response = ApiError::method_not_allowed(message).into_response();
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(PROXIED_METHODS));
    Some(response)
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
