//! The pipeline's fallbacks against real loopback upstreams: cache, degraded and queue.

// Real servers and processes run in real time: waiting on them reads the system's clock.
#![allow(clippy::disallowed_methods)]

mod proxy_support;

use std::sync::atomic::Ordering::SeqCst;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::http::Request;
use breakerbox::breaker::State;
use breakerbox::fallback::cache::{CacheLimits, ResponseCache};
use breakerbox::fallback::{CachedResponse, Durability, Enqueue, QueueError, QueuedRequest};
use breakerbox::pipeline::{Decision, FallbackKind, Pipeline};
use bytes::Bytes;
use futures_util::future::BoxFuture;
use proxy_support::{
    TestUpstream, assert_error, get, json, pipeline, refused_url, send, truncating_upstream,
    upstream,
};

#[tokio::test]
async fn cache_fallback_serves_the_stored_answer_with_its_age() {
    let server = TestUpstream::start().await;
    let extra = "failure_threshold = 5\nfallback = \"cache\"\ncache_ttl = \"1h\"";
    let up = upstream("tmdb", &server.url(), extra);
    let p = pipeline();
    let (status, _, fresh, outcome) = send(
        &p,
        &up,
        get("/proxy/tmdb/switch/movie?id=7"),
        "/switch/movie",
    )
    .await;
    assert_eq!((status, outcome.decision), (200, Some(Decision::Permitted)));

    server.broken.store(true, SeqCst);
    let (status, headers, body, outcome) = send(
        &p,
        &up,
        get("/proxy/tmdb/switch/movie?id=7"),
        "/switch/movie",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body, fresh, "the stored answer, not the upstream's 500");
    assert_eq!(headers["x-breakerbox-fallback"], "cache");
    assert_eq!(headers["age"], "0");
    assert_eq!(outcome.decision, Some(Decision::Fallback));
    assert_eq!(outcome.fallback, Some(FallbackKind::Cache));

    // Another query is another entry: nothing stored, so the upstream's own 500 passes
    // (its retries trip the breaker: 3 failures before, 2 now).
    let (status, _, _, _) = send(
        &p,
        &up,
        get("/proxy/tmdb/switch/movie?id=8"),
        "/switch/movie",
    )
    .await;
    assert_eq!(status, 500);

    // Tripped: the stored answer still serves, and the upstream hears nothing.
    assert_eq!(up.breaker().state(), State::Open);
    let hits = server.hits();
    let (status, headers, body, outcome) = send(
        &p,
        &up,
        get("/proxy/tmdb/switch/movie?id=7"),
        "/switch/movie",
    )
    .await;
    assert_eq!((status, &body), (200, &fresh));
    assert_eq!(headers["x-breakerbox-fallback"], "cache");
    assert_eq!(outcome.fallback, Some(FallbackKind::Cache));
    assert_eq!(server.hits(), hits);

    // Age counts whole seconds from the stored time; past the TTL nothing is served.
    let stored = |path: &str, age: u64| CachedResponse {
        upstream: "tmdb".into(),
        path_and_query: path.into(),
        status: 200,
        headers: vec![("content-type".into(), b"text/plain".to_vec())],
        body: Bytes::from_static(b"old"),
        stored_at: SystemTime::now() - Duration::from_secs(age),
    };
    p.cache().insert(stored("/aged", 42));
    let (status, headers, body, _) = send(&p, &up, get("/proxy/tmdb/aged"), "/aged").await;
    assert_eq!((status, &body[..]), (200, &b"old"[..]));
    assert_eq!(headers["age"], "42");
    p.cache().insert(stored("/expired", 3601));
    let (status, headers, body, _) = send(&p, &up, get("/proxy/tmdb/expired"), "/expired").await;
    assert_eq!(status, 503, "expired entries are not served");
    assert_error(&body, "circuit_open");
    assert!(headers.contains_key("retry-after"));
}

#[tokio::test]
async fn cache_keeps_no_private_answers() {
    let server = TestUpstream::start().await;
    let up = upstream("tmdb", &server.url(), "fallback = \"cache\"");
    let p = pipeline();
    let authorised = Request::builder()
        .uri("/proxy/tmdb/me")
        .header("authorization", "Bearer alice")
        .body(Body::empty())
        .expect("request");
    send(&p, &up, authorised, "/me").await;
    send(&p, &up, get("/proxy/tmdb/status/404"), "/status/404").await;
    send(
        &p,
        &up,
        Request::post("/x").body(Body::empty()).expect("r"),
        "/posted",
    )
    .await;
    assert!(
        p.cache().is_empty(),
        "authorised, non-2xx and non-GET answers are not kept"
    );
    send(&p, &up, get("/proxy/tmdb/public"), "/public").await;
    assert_eq!(p.cache().len(), 1);
}

#[tokio::test]
async fn degraded_fallback_answers_the_configured_response() {
    let extra = "failure_threshold = 1\nfallback = \"degraded\"\n\
                 [upstreams.hdbits.degraded]\nstatus = 200\nbody = '{\"results\":[],\"degraded\":true}'";
    let up = upstream("hdbits", &refused_url(), extra);
    let p = pipeline();
    for expected_decision in [Some(FallbackKind::Degraded), Some(FallbackKind::Degraded)] {
        let (status, headers, body, outcome) = send(&p, &up, get("/proxy/hdbits/s"), "/s").await;
        assert_eq!(status, 200);
        assert_eq!(&body[..], br#"{"results":[],"degraded":true}"#);
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(headers["x-breakerbox-fallback"], "degraded");
        assert_eq!(outcome.fallback, expected_decision);
        assert_eq!(outcome.decision, Some(Decision::Fallback));
    }
    assert_eq!(
        up.breaker().state(),
        State::Open,
        "the second answer came from a rejection"
    );
}

/// Records what it is given; refuses beyond `capacity`.
#[derive(Default)]
struct RecordingQueue {
    got: Mutex<Vec<QueuedRequest>>,
    capacity: usize,
}

impl Enqueue for RecordingQueue {
    fn enqueue(&self, request: QueuedRequest) -> BoxFuture<'_, Result<Durability, QueueError>> {
        Box::pin(async move {
            let mut got = self.got.lock().expect("lock");
            if got.len() >= self.capacity {
                return Err(QueueError::Full {
                    capacity: self.capacity,
                });
            }
            got.push(request);
            Ok(Durability::Stored)
        })
    }
}

#[tokio::test]
async fn an_answer_cut_off_mid_body_is_a_failure_the_fallback_answers() {
    let (url, hits) = truncating_upstream().await;
    let extra = "failure_threshold = 2\nfallback = \"degraded\"\n\
                 retry_budget_percent = 0\nretry_min_per_second = 0\n\
                 [upstreams.cut.degraded]\nstatus = 200\nbody = 'degraded'";
    let up = upstream("cut", &url, extra);
    let p = pipeline();
    for _ in 0..2 {
        let (status, headers, body, outcome) = send(&p, &up, get("/proxy/cut/x"), "/x").await;
        assert_eq!(status, 200);
        assert_eq!(&body[..], b"degraded", "not the broken answer");
        assert_eq!(headers["x-breakerbox-fallback"], "degraded");
        assert_eq!(outcome.fallback, Some(FallbackKind::Degraded));
    }
    assert_eq!(hits.load(SeqCst), 2);
    let snapshot = up.breaker().snapshot();
    assert_eq!(
        snapshot.failed_requests, 2,
        "each cut answer counts as a failure"
    );
    assert_eq!(snapshot.state, State::Open);
}

/// A pipeline whose queue records what it is given and holds one request.
fn queueing_pipeline() -> (Arc<RecordingQueue>, Pipeline) {
    let queue = Arc::new(RecordingQueue {
        capacity: 1,
        ..Default::default()
    });
    let p = Pipeline::new(
        ResponseCache::new(CacheLimits::default()),
        Some(queue.clone() as Arc<dyn Enqueue>),
    );
    (queue, p)
}

#[tokio::test]
async fn queue_strip_headers_never_reach_the_queue() {
    let (queue, p) = queueing_pipeline();
    let up = upstream(
        "qbittorrent",
        &refused_url(),
        "fallback = \"queue\"\nqueue_strip_headers = [\"Authorization\", \"X-Session\"]",
    );
    let request = Request::builder()
        .method("POST")
        .uri("/proxy/qbittorrent/api/v2/torrents/add")
        .header("authorization", "Bearer secret-token")
        .header("x-session", "s3cr3t")
        .header("x-api-key", "k")
        .body(Body::from("urls=magnet:abc"))
        .expect("request");
    let (status, _, _, _) = send(&p, &up, request, "/api/v2/torrents/add").await;
    assert_eq!(status, 202);
    let got = queue.got.lock().expect("lock").clone();
    let [queued] = got.as_slice() else {
        panic!("one queued request: {got:?}")
    };
    let names: Vec<&str> = queued.headers.iter().map(|(n, _)| n.as_str()).collect();
    assert!(names.contains(&"x-api-key"), "{names:?}");
    assert!(
        !names.contains(&"authorization") && !names.contains(&"x-session"),
        "stripped headers are never stored: {names:?}"
    );
}

#[tokio::test]
async fn queue_fallback_hands_the_whole_request_to_the_queue() {
    let (queue, p) = queueing_pipeline();
    let up = upstream("qbittorrent", &refused_url(), "fallback = \"queue\"");
    let request = Request::builder()
        .method("POST")
        .uri("/proxy/qbittorrent/api/v2/torrents/add?category=tv")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-api-key", "k")
        .header("connection", "close")
        .body(Body::from("urls=magnet:abc"))
        .expect("request");
    let (status, headers, body, outcome) = send(&p, &up, request, "/api/v2/torrents/add").await;
    assert_eq!(status, 202);
    assert_eq!(headers["x-breakerbox-fallback"], "queue");
    let answer = json(&body);
    assert_eq!(answer["queued"], true);
    assert_eq!(answer["durability"], "stored");
    assert_eq!(outcome.fallback, Some(FallbackKind::Queue));

    let got = queue.got.lock().expect("lock").clone();
    let [queued] = got.as_slice() else {
        panic!("one queued request: {got:?}")
    };
    assert_eq!(answer["id"], queued.id.to_string());
    assert_eq!(queued.id.get_version_num(), 7);
    assert_eq!(queued.upstream, "qbittorrent");
    assert_eq!(queued.method, "POST");
    assert_eq!(queued.path_and_query, "/api/v2/torrents/add?category=tv");
    assert_eq!(queued.body, "urls=magnet:abc");
    let header = |name: &str| {
        queued
            .headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    };
    assert_eq!(header("x-api-key"), Some(&b"k"[..]));
    assert_eq!(
        header("content-type"),
        Some(&b"application/x-www-form-urlencoded"[..])
    );
    assert_eq!(header("connection"), None);

    // GET cannot be queued: the error answer.
    let (status, _, body, _) = send(&p, &up, get("/proxy/qbittorrent/api"), "/api").await;
    assert_eq!(status, 503);
    assert_error(&body, "upstream_unavailable");

    // A full queue says so.
    let post = Request::post("/x").body(Body::from("b")).expect("request");
    let (status, headers, body, outcome) = send(&p, &up, post, "/api/v2/torrents/add").await;
    assert_eq!(status, 503);
    assert_error(&body, "queue_full");
    assert!(headers.contains_key("retry-after"));
    assert_eq!(outcome.error, Some("queue_full"));
}
