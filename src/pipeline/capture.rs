//! Keeping a successful GET answer for the cache fallback while it streams to the client.

use std::time::SystemTime;

use axum::body::{Body, HttpBody as _};
use axum::http::header::{self, HeaderMap};
use axum::http::{HeaderValue, Response};
use bytes::{Bytes, BytesMut};
use futures_util::{StreamExt, stream};

use crate::fallback::CachedResponse;
use crate::fallback::cache::ResponseCache;
use crate::fallback::cache_key::{self, VARIANT};
use crate::upstream::{OutgoingRequest, UpstreamResponse};

use super::answer::assemble;
use super::headers::{strip_hop_by_hop, to_pairs};

/// Whether a shared cache may keep this answer (RFC 9111 §3, the parts that matter for a
/// cache serving every client): 2xx, not `no-store` or `private`, not `Vary: *` (no request
/// matches it), and not an answer to an authorised request unless the upstream marked it
/// `public`.
pub(crate) fn may_store(request: &HeaderMap, response: &UpstreamResponse) -> bool {
    if !response.status().is_success() {
        return false;
    }
    if response.headers().contains_key(header::VARY)
        && cache_key::vary_names(response.headers()).is_none()
    {
        return false;
    }
    let directives = cache_control(response.headers());
    let has = |d: &str| directives.iter().any(|x| x == d);
    if has("no-store") || has("private") {
        return false;
    }
    !request.contains_key(header::AUTHORIZATION) || has("public")
}

fn cache_control(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|d| {
            let name = d.split('=').next().unwrap_or(d);
            name.trim().to_ascii_lowercase()
        })
        .collect()
}

/// Reads the answer up to the cache's entry limit, keeps it, and answers with it. An answer
/// too big to keep, or one whose body breaks, is passed on as it comes, uncached. `now` stamps
/// the kept answer; `target` is the request's key below the upstream
/// ([`cache_key::target`]).
pub(crate) async fn store_and_answer(
    cache: &ResponseCache,
    upstream: &str,
    now: SystemTime,
    (request, target): (&OutgoingRequest, String),
    response: UpstreamResponse,
) -> Response<Body> {
    let (head, body) = response.into_parts();
    let status = head.status;
    let mut headers = head.headers;
    strip_hop_by_hop(&mut headers);
    let limit = cache.limits().max_entry_bytes;
    if body.size_hint().exact().is_some_and(|n| n > limit as u64) {
        return assemble(status, headers, body);
    }
    let mut body = body.into_data_stream();
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut size = 0usize;
    while let Some(item) = body.next().await {
        match item {
            Ok(chunk) => {
                size += chunk.len();
                chunks.push(chunk);
                if size > limit {
                    let head = stream::iter(chunks.into_iter().map(Ok));
                    return assemble(status, headers, Body::from_stream(head.chain(body)));
                }
            }
            Err(err) => {
                // Hand the client what came and then the error, so it sees a broken body
                // rather than a short one that looks complete.
                let head = stream::iter(chunks.into_iter().map(Ok));
                let tail = stream::once(async move { Err(err) });
                return assemble(status, headers, Body::from_stream(head.chain(tail)));
            }
        }
    }
    let mut whole = BytesMut::with_capacity(size);
    for chunk in &chunks {
        whole.extend_from_slice(chunk);
    }
    let whole = whole.freeze();
    let mut kept = headers.clone();
    // A cookie set for one client must never be handed to another.
    kept.remove(header::SET_COOKIE);
    let mut pairs = to_pairs(&kept, &[]);
    if kept.contains_key(header::VARY) {
        // `may_store` refused `Vary: *`, so the names are there.
        let names = cache_key::vary_names(&kept).unwrap_or_default();
        let variant = cache_key::variant(&names, &request.headers);
        pairs.push((VARIANT.to_owned(), variant.into_bytes()));
    }
    cache.insert(CachedResponse {
        upstream: upstream.to_owned(),
        path_and_query: target,
        status: status.as_u16(),
        headers: pairs,
        body: whole.clone(),
        stored_at: now,
    });
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(whole.len()));
    assemble(status, headers, Body::from(whole))
}
