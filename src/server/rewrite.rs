//! hyper answers a request head it cannot parse itself (400, 414 or 431), with an empty body
//! and before any service runs. On a connection whose framing tracker found such a head, that
//! answer is swapped on its way out for the contract's `{"error","message"}` JSON.
//!
//! Why on the wire: hyper offers no hook for these answers. The swap is looked for only on a
//! connection already flagged unparseable, and only for hyper's exact shape (an empty body and
//! no `content-type`), so an answer the gateway or an upstream wrote is never touched.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::http::StatusCode;
use axum::response::IntoResponse;
use futures_util::FutureExt as _;
use tokio::io::AsyncWrite;

use crate::api::ApiError;

/// hyper's own error heads: status line, and the code and message that replace them.
const HYPER_ERRORS: [(&[u8], StatusCode, &str, &str); 3] = [
    (
        b"HTTP/1.1 400 Bad Request\r\n",
        StatusCode::BAD_REQUEST,
        "bad_request",
        "the request head could not be parsed",
    ),
    (
        b"HTTP/1.1 431 Request Header Fields Too Large\r\n",
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "headers_too_large",
        "the request head is larger than the gateway reads",
    ),
    (
        b"HTTP/1.1 414 URI Too Long\r\n",
        StatusCode::URI_TOO_LONG,
        "uri_too_long",
        "the request target is longer than the gateway reads",
    ),
];

/// Where hyper's own error head starts in `buf`, how long it is, and what replaces it.
pub(super) fn find_hyper_error(buf: &[u8]) -> Option<(usize, usize, Vec<u8>)> {
    let mut from = 0;
    while let Some(offset) = find(&buf[from..], b"HTTP/1.1 4") {
        let start = from + offset;
        let rest = &buf[start..];
        for (line, status, code, message) in HYPER_ERRORS {
            if !rest.starts_with(line) {
                continue;
            }
            let Some(end) = find(rest, b"\r\n\r\n") else {
                continue;
            };
            let head = rest[..end + 2].to_ascii_lowercase();
            if find(&head, b"\r\ncontent-length: 0\r\n").is_some()
                && find(&head, b"\r\ncontent-type:").is_none()
            {
                return Some((start, end + 4, json_answer(status, code, message)));
            }
        }
        from = start + 1;
    }
    None
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// The whole answer on the wire: the api's JSON error, and `Connection: close` (hyper closes
/// after its own error answers).
fn json_answer(status: StatusCode, code: &'static str, message: &str) -> Vec<u8> {
    let response = ApiError::new(status, code, message).into_response();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .now_or_never()
        .and_then(Result::ok)
        .unwrap_or_default();
    let mut bytes = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        status.as_str(),
        status.canonical_reason().unwrap_or(""),
        body.len()
    )
    .into_bytes();
    bytes.extend_from_slice(&body);
    bytes
}

/// A replacement being written in place of `consumed` bytes of hyper's.
#[derive(Debug)]
pub(super) struct Replacement {
    bytes: Vec<u8>,
    written: usize,
    consumed: usize,
}

impl Replacement {
    pub(super) fn new(bytes: Vec<u8>, consumed: usize) -> Self {
        Self {
            bytes,
            written: 0,
            consumed,
        }
    }

    /// Writes the rest of the replacement; ready with the number of hyper's bytes it stands for.
    pub(super) fn poll_drain<W: AsyncWrite + Unpin>(
        &mut self,
        out: &mut W,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        while self.written < self.bytes.len() {
            let n = ready!(Pin::new(&mut *out).poll_write(cx, &self.bytes[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        Poll::Ready(Ok(self.consumed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hyper_s_empty_error_heads_are_found() {
        let hyper = b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\ndate: Thu, 03 Dec 2026 19:15:40 GMT\r\n\r\n";
        let mut after_answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".to_vec();
        after_answer.extend_from_slice(hyper);
        let (start, len, json) = find_hyper_error(&after_answer).expect("found");
        assert_eq!(
            (start, len),
            (after_answer.len() - hyper.len(), hyper.len())
        );
        let text = String::from_utf8(json).expect("utf-8");
        assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{text}");
        assert!(
            text.ends_with(
                r#"{"error":"bad_request","message":"the request head could not be parsed"}"#
            ),
            "{text}"
        );

        let ours = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 0\r\n\r\n";
        assert!(find_hyper_error(ours).is_none());
        let with_body = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 10\r\n\r\n";
        assert!(find_hyper_error(with_body).is_none());
    }
}
