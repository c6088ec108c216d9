//! The answers the pipeline builds: the upstream's, streamed; a cached one; our JSON errors.

use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::{Response, StatusCode};

use crate::fallback::CachedResponse;
use crate::fallback::degraded::FALLBACK_HEADER;
use crate::outcome::FallbackKind;
use crate::upstream::UpstreamResponse;

use super::headers::strip_hop_by_hop;

/// A JSON error exactly `{"error": code, "message": text}`: the one error body of the HTTP
/// surface, for the api's errors and the pipeline's alike.
pub(crate) fn json_error(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    /// Serialised straight from the fields (no intermediate `Value` map); field order as above.
    #[derive(serde::Serialize)]
    struct ErrorBody<'a> {
        error: &'a str,
        message: &'a str,
    }
    let body = serde_json::to_string(&ErrorBody {
        error: code,
        message,
    })
    .unwrap_or_default();
    json(status, body)
}

pub(crate) fn json(status: StatusCode, body: String) -> Response<Body> {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Whole seconds for `Retry-After`: rounded up, at least 1 (0 would invite a retry storm).
pub fn retry_after_secs(left: Option<Duration>) -> u64 {
    let Some(left) = left else { return 1 };
    let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
    secs.max(1)
}

pub(crate) fn with_retry_after(mut response: Response<Body>, secs: u64) -> Response<Body> {
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    response
}

pub(crate) fn mark_fallback(response: &mut Response<Body>, kind: FallbackKind) {
    response
        .headers_mut()
        .insert(FALLBACK_HEADER, HeaderValue::from_static(kind.as_str()));
}

/// The upstream's answer with its body streamed, hop-by-hop headers removed.
pub(crate) fn from_upstream(response: UpstreamResponse) -> Response<Body> {
    let (head, body) = response.into_parts();
    let mut headers = head.headers;
    strip_hop_by_hop(&mut headers);
    assemble(head.status, headers, body)
}

pub(crate) fn assemble(status: StatusCode, headers: HeaderMap, body: Body) -> Response<Body> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// A stored response with `X-Breakerbox-Fallback: cache` and `Age` (whole seconds since it was
/// stored).
pub(crate) fn from_cache(cached: CachedResponse, now: SystemTime) -> Response<Body> {
    let status = StatusCode::from_u16(cached.status).unwrap_or(StatusCode::OK);
    let mut headers = HeaderMap::with_capacity(cached.headers.len() + 2);
    for (name, value) in &cached.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value),
        ) {
            headers.append(name, value);
        }
    }
    strip_hop_by_hop(&mut headers);
    // The body is whole: its length is known again; the stored Age is stale by now.
    headers.remove(header::CONTENT_LENGTH);
    let age = now
        .duration_since(cached.stored_at)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    headers.insert(header::AGE, HeaderValue::from(age));
    let mut response = assemble(status, headers, Body::from(cached.body));
    mark_fallback(&mut response, FallbackKind::Cache);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_error_is_exactly_error_then_message() {
        let response = json_error(StatusCode::SERVICE_UNAVAILABLE, "circuit_open", "a \"b\"\n");
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        let body = futures_util::FutureExt::now_or_never(axum::body::to_bytes(
            response.into_body(),
            usize::MAX,
        ))
        .expect("a whole body is ready")
        .expect("readable");
        assert_eq!(
            &body[..],
            br#"{"error":"circuit_open","message":"a \"b\"\n"}"#
        );
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(None), 1);
        assert_eq!(retry_after_secs(Some(Duration::ZERO)), 1);
        assert_eq!(retry_after_secs(Some(Duration::from_millis(1))), 1);
        assert_eq!(retry_after_secs(Some(Duration::from_secs(30))), 30);
        assert_eq!(retry_after_secs(Some(Duration::from_millis(29_001))), 30);
    }
}
