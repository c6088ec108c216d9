//! The proxy flow, the one place where a request meets its upstream's breaker: check the path,
//! buffer the body, call (with retries), and on rejection or failure answer with the fallback.

mod answer;
mod capture;
mod fallbacks;
mod headers;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, Response, StatusCode};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use tracing::Instrument as _;

use crate::config::Fallback;
use crate::fallback::Enqueue;
use crate::fallback::cache::ResponseCache;
use crate::fallback::cache_key;
use crate::telemetry;
use crate::upstream::{CallEnd, OutgoingRequest, Upstream, is_failure};

pub use crate::outcome::{Decision, FallbackKind, ProxyOutcome};
pub use crate::upstream::{BadPath, check_tail, path_and_query};
pub(crate) use answer::json_error;
pub use answer::retry_after_secs;
pub use headers::{outgoing as outgoing_headers, strip_hop_by_hop};

/// Turns proxied requests into upstream calls and fallbacks. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Pipeline {
    cache: ResponseCache,
    queue: Option<Arc<dyn Enqueue>>,
    max_body_bytes: usize,
    trusted_proxies: Arc<[ipnet::IpNet]>,
}

/// Why the failed call is being answered by a fallback.
pub(crate) enum Cause {
    /// The breaker turned it away.
    Rejected(crate::breaker::Rejected),
    /// The upstream answered with a failure status (or 429/503 + `Retry-After`).
    Answered(crate::upstream::UpstreamResponse),
    /// No answer.
    Failed(crate::upstream::CallError),
}

impl Pipeline {
    /// A pipeline keeping responses in `cache` and handing requests to `queue` (upstreams with
    /// `fallback = "queue"` answer like `error` without one).
    pub fn new(cache: ResponseCache, queue: Option<Arc<dyn Enqueue>>) -> Self {
        Self {
            cache,
            queue,
            max_body_bytes: usize::MAX,
            trusted_proxies: Arc::new([]),
        }
    }

    /// Keeps `Forwarded`, `X-Forwarded-Host`, `X-Forwarded-Proto` and `X-Real-IP` from clients
    /// in these networks (`[server] trusted_proxies`); everyone else's are replaced.
    pub fn with_trusted_proxies(mut self, nets: impl IntoIterator<Item = ipnet::IpNet>) -> Self {
        self.trusted_proxies = nets.into_iter().collect();
        self
    }

    /// Refuses request bodies larger than `limit` with 413 (the api layer usually limits them
    /// first; this keeps the pipeline safe on its own).
    pub fn with_max_body_bytes(mut self, limit: usize) -> Self {
        self.max_body_bytes = limit;
        self
    }

    /// The response cache.
    pub fn cache(&self) -> &ResponseCache {
        &self.cache
    }

    /// Proxies `request` to `upstream`; `tail` is the raw path after `/proxy/{upstream}`
    /// (starting with `/` or empty), the request's query is kept. The [`ProxyOutcome`] is in the
    /// response's extensions.
    pub async fn proxy(
        &self,
        upstream: &Upstream,
        request: Request<Body>,
        tail: &str,
    ) -> Response<Body> {
        let (mut response, outcome) = self.proxy_with_outcome(upstream, request, tail).await;
        response.extensions_mut().insert(outcome);
        response
    }

    /// Like [`proxy`](Self::proxy), with the outcome returned alongside. The client's address
    /// (for `X-Forwarded-For`) is the request's `ConnectInfo<SocketAddr>`, if it has one.
    pub async fn proxy_with_outcome(
        &self,
        upstream: &Upstream,
        request: Request<Body>,
        tail: &str,
    ) -> (Response<Body>, ProxyOutcome) {
        let client = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0.ip());
        self.proxy_from(upstream, request, tail, client).await
    }

    /// Like [`proxy_with_outcome`](Self::proxy_with_outcome) for a request from `client`,
    /// given directly (the gateway's own connections do, rather than through an extension).
    pub async fn proxy_from(
        &self,
        upstream: &Upstream,
        request: Request<Body>,
        tail: &str,
        client: Option<IpAddr>,
    ) -> (Response<Body>, ProxyOutcome) {
        let mut outcome = ProxyOutcome::new(upstream.name());
        let response = self
            .run(upstream, request, tail, client, &mut outcome)
            .await;
        outcome.status = response.status().as_u16();
        (response, outcome)
    }

    async fn run(
        &self,
        upstream: &Upstream,
        request: Request<Body>,
        tail: &str,
        client: Option<IpAddr>,
        outcome: &mut ProxyOutcome,
    ) -> Response<Body> {
        let path_and_query = match path_and_query(tail, request.uri().query()) {
            Ok(p) => p,
            Err(bad) => {
                return refuse(
                    outcome,
                    StatusCode::BAD_REQUEST,
                    "bad_path",
                    &bad.to_string(),
                );
            }
        };
        let (parts, body) = request.into_parts();
        let body = match read_body(body, self.max_body_bytes).await {
            Ok(body) => body,
            Err(BodyError::TooLarge) => {
                let message = "the request body is larger than the gateway accepts";
                return refuse(
                    outcome,
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    message,
                );
            }
            Err(BodyError::Unreadable) => {
                let message = "the request body could not be read";
                return refuse(outcome, StatusCode::BAD_REQUEST, "bad_request", message);
            }
        };
        let request = OutgoingRequest {
            headers: headers::outgoing(
                parts.headers,
                client,
                headers::is_trusted(&self.trusted_proxies, client),
            ),
            method: parts.method,
            path_and_query,
            body,
        };
        let decision = telemetry::decision_span(upstream.breaker());
        let response = self
            .decide(upstream, &request, outcome)
            .instrument(decision.clone())
            .await;
        telemetry::record_decision(&decision, outcome.decision);
        response
    }

    /// Calls the upstream through its breaker and answers, from it or from the fallback.
    async fn decide(
        &self,
        upstream: &Upstream,
        request: &OutgoingRequest,
        outcome: &mut ProxyOutcome,
    ) -> Response<Body> {
        let call = upstream.call(request).await;
        outcome.attempts = call.attempts;
        outcome.retry_stop = call.retry_stop;
        let cause = match call.end {
            CallEnd::Answered {
                response,
                outcome: o,
            } if !is_failure(o) => {
                outcome.decision = Some(Decision::Permitted);
                return self.answered(upstream, request, response).await;
            }
            CallEnd::Answered { response, .. } => Cause::Answered(response),
            CallEnd::Rejected(rejected) => Cause::Rejected(rejected),
            CallEnd::Failed(error) => Cause::Failed(error),
        };
        self.fall_back(upstream, request, cause, outcome).await
    }

    /// A permitted, successful answer: streamed back, and kept when the upstream falls back
    /// to the cache.
    async fn answered(
        &self,
        upstream: &Upstream,
        request: &OutgoingRequest,
        response: crate::upstream::UpstreamResponse,
    ) -> Response<Body> {
        let cacheable = matches!(upstream.config().fallback, Fallback::Cache { .. })
            && request.method == Method::GET
            && capture::may_store(&request.headers, &response);
        if cacheable {
            let credentials = &upstream.config().credentials;
            let target = cache_key::target(credentials, &request.headers, &request.path_and_query);
            capture::store_and_answer(
                &self.cache,
                upstream.name(),
                upstream.breaker().clock().wall(),
                (request, target.into_owned()),
                response,
            )
            .await
        } else {
            answer::from_upstream(response)
        }
    }
}

/// An answer given before the breaker was asked.
fn refuse(
    outcome: &mut ProxyOutcome,
    status: StatusCode,
    code: &'static str,
    message: &str,
) -> Response<Body> {
    outcome.error = Some(code);
    answer::json_error(status, code, message)
}

enum BodyError {
    TooLarge,
    Unreadable,
}

/// Buffers the body so a retry or a queued replay can resend it.
async fn read_body(body: Body, limit: usize) -> Result<Bytes, BodyError> {
    let mut stream = body.into_data_stream();
    let mut buffer = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|err| {
            // A limit applied by a layer above (http-body-util's `Limited`) shows up here as a
            // read error; its message is the only mark it carries through `axum::Error`.
            if err.to_string().contains("length limit exceeded") {
                BodyError::TooLarge
            } else {
                BodyError::Unreadable
            }
        })?;
        if buffer.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge);
        }
        buffer.extend_from_slice(&chunk);
    }
    Ok(buffer.freeze())
}
