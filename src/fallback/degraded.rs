//! The degraded answer: a fixed status, body and content type configured per upstream.

use axum::body::Body;
use axum::http::header::{CONTENT_TYPE, HeaderValue};
use axum::http::{Response, StatusCode};

/// The header naming the fallback that answered.
pub(crate) const FALLBACK_HEADER: &str = "x-breakerbox-fallback";

/// The configured answer with `X-Breakerbox-Fallback: degraded`. A status or content type the
/// configuration let through but HTTP cannot carry falls back to 200 and
/// `application/octet-stream` rather than failing the request.
pub(crate) fn degraded_response(status: u16, body: &str, content_type: &str) -> Response<Body> {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let content_type = HeaderValue::from_str(content_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    let mut response = Response::new(Body::from(body.to_owned()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, content_type);
    headers.insert(FALLBACK_HEADER, HeaderValue::from_static("degraded"));
    response
}
