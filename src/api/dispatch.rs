//! The service that serves every request: a proxied request goes straight to the proxy handler
//! behind the same guard, everything else through the router. Routing a proxied request through
//! the router (route lookup, path parameters, a boxed service cloned per request, the middleware
//! layers) cost more instructions than the pipeline's own work (docs/benchmarks.md).

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::response::Response;
use axum::routing::future::RouteFuture;
use futures_util::FutureExt as _;
use futures_util::future::{BoxFuture, Either};
use http_body::Body as _;
use tower_service::Service;

use crate::gateway::Gateway;

/// The route the router gives proxied requests; [`App`] serves exactly the paths it matches
/// without the router (a test compares the two).
pub(super) const PROXY_ROUTE: &str = "/proxy/{*rest}";

/// Every route of the gateway as one service (with `ConnectInfo<SocketAddr>` in the request's
/// extensions for `X-Forwarded-For`). Cheap to clone.
#[derive(Debug, Clone)]
pub struct App {
    router: Router,
    gateway: Arc<Gateway>,
}

/// The future of one request served by [`App`].
pub type AppFuture =
    Either<RouteFuture<Infallible>, BoxFuture<'static, Result<Response, Infallible>>>;

/// The gateway's HTTP service.
pub fn app(gateway: Arc<Gateway>) -> App {
    App {
        router: super::router(Arc::clone(&gateway)),
        gateway,
    }
}

impl Service<Request> for App {
    type Response = Response;
    type Error = Infallible;
    type Future = AppFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Service::<Request>::poll_ready(&mut self.router, cx)
    }

    fn call(&mut self, request: Request) -> AppFuture {
        let client = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0);
        self.call_from(client, request)
    }
}

impl App {
    /// Serves `request` from `client`: a proxied request takes the address as given (no
    /// extension needed), every other one finds it as `ConnectInfo<SocketAddr>`.
    pub fn call_from(&mut self, client: Option<SocketAddr>, mut request: Request) -> AppFuture {
        if !is_proxied(request.uri().path()) {
            if let Some(client) = client {
                request.extensions_mut().insert(ConnectInfo(client));
            }
            return Either::Left(self.router.call(request));
        }
        let gateway = Arc::clone(&self.gateway);
        let client = client.map(|address| address.ip());
        Either::Right(proxied(gateway, request, client).map(Ok).boxed())
    }
}

/// Whether the router would hand `path` to the proxy handler: `/proxy/` and at least one more
/// character (its catch-all matches nothing empty).
fn is_proxied(path: &str) -> bool {
    path.strip_prefix("/proxy/")
        .is_some_and(|rest| !rest.is_empty())
}

/// What the router does for a proxied request: the guard, the handler, and what axum does to a
/// handler's answer (a `Content-Length` when the body's size is known, no body for `HEAD`).
async fn proxied(gateway: Arc<Gateway>, request: Request, client: Option<IpAddr>) -> Response {
    if let Some(refused) = super::refusal(&gateway, &request) {
        return refused;
    }
    let _in_flight = gateway.track_request();
    let is_head = request.method() == Method::HEAD;
    let (mut response, outcome) = super::proxy::proxy(Arc::clone(&gateway), request, client).await;
    // CONNECT never gets here successfully: the proxy handler refuses it.
    let size = response.body().size_hint().exact();
    set_content_length(size, response.headers_mut());
    if is_head {
        *response.body_mut() = Body::empty();
    }
    if let Some(outcome) = &outcome {
        gateway.telemetry().record_proxy(outcome);
    }
    response
}

/// axum's rule: a body of known size gets a `Content-Length` unless the handler set one.
fn set_content_length(size: Option<u64>, headers: &mut HeaderMap) {
    if headers.contains_key(header::CONTENT_LENGTH) {
        return;
    }
    if let Some(size) = size {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    }
}

#[cfg(test)]
mod tests {
    use axum::routing::any;
    use tower::ServiceExt as _;

    use super::*;

    /// The paths served without the router are exactly those the router gives the proxy route.
    #[tokio::test]
    async fn proxied_paths_are_the_ones_the_proxy_route_matches() {
        let router = Router::new()
            .route("/health", any(|| async { "other" }))
            .route(PROXY_ROUTE, any(|| async { "proxy" }))
            .fallback(|| async { "other" });
        for path in [
            "/proxy/",
            "/proxy",
            "/proxyx/a",
            "/proxy/a",
            "/proxy//",
            "/proxy//a",
            "/proxy/a/b/",
            "/proxy/%2F..",
            "/proxy/a?b=c",
            "/Proxy/a",
            "/health",
            "/",
        ] {
            let request = Request::builder()
                .uri(path)
                .body(Body::empty())
                .expect("a request");
            let parsed = request.uri().path().to_owned();
            let response = router.clone().oneshot(request).await.expect("infallible");
            let body = axum::body::to_bytes(response.into_body(), 64)
                .await
                .expect("a body");
            assert_eq!(
                &body[..] == b"proxy",
                is_proxied(&parsed),
                "{path} ({parsed})"
            );
        }
    }

    #[test]
    fn a_known_size_gets_a_content_length_unless_one_is_set() {
        let mut headers = HeaderMap::new();
        set_content_length(Some(0), &mut headers);
        assert_eq!(headers[header::CONTENT_LENGTH], "0");
        let mut headers = HeaderMap::new();
        set_content_length(Some(1234), &mut headers);
        assert_eq!(headers[header::CONTENT_LENGTH], "1234");
        set_content_length(Some(1), &mut headers);
        assert_eq!(headers[header::CONTENT_LENGTH], "1234");
        let mut headers = HeaderMap::new();
        set_content_length(None, &mut headers);
        assert!(headers.is_empty());
    }
}
