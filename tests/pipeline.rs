//! The proxy pipeline against real loopback upstreams: forwarding, header and path rules, and
//! the error answers (the other fallbacks are in tests/proxy_fallbacks.rs).

// Real servers and processes run in real time: waiting on them reads the system's clock.
#![allow(clippy::disallowed_methods)]

mod proxy_support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use breakerbox::breaker::State;
use breakerbox::pipeline::{Decision, FallbackKind, ProxyOutcome};
use proxy_support::{
    NEVER_TRIPS, TestUpstream, assert_error, get, json, pipeline, refused_url, send, upstream,
    upstream_with_clock,
};

#[tokio::test]
async fn forwards_path_query_headers_and_body_unchanged() {
    let server = TestUpstream::start().await;
    let up = upstream("echo", &format!("{}/base", server.url()), NEVER_TRIPS);
    let mut request = Request::builder()
        .method("POST")
        .uri("/proxy/echo/items/a%20b?q=1&r=x%2Fy")
        .header("host", "gateway.local")
        .header("x-custom", "kept")
        .header("x-forwarded-for", "10.1.2.3")
        .body(Body::from("hello"))
        .expect("request");
    let client: SocketAddr = "192.0.2.7:5555".parse().expect("addr");
    request.extensions_mut().insert(ConnectInfo(client));
    let (status, _, body, outcome) = send(&pipeline(), &up, request, "/items/a%20b").await;
    assert_eq!(status, 200);
    let echo = json(&body);
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["path"], "/base/items/a%20b");
    assert_eq!(echo["query"], "q=1&r=x%2Fy");
    assert_eq!(echo["body"], "hello");
    let headers = &echo["headers"];
    assert_eq!(headers["host"], server.addr.to_string());
    assert_eq!(headers["x-custom"], "kept");
    assert_eq!(headers["x-forwarded-for"], "10.1.2.3, 192.0.2.7");
    assert_eq!(headers["x-forwarded-proto"], "http");
    assert_eq!(headers["x-forwarded-host"], "gateway.local");
    assert_eq!(outcome.decision, Some(Decision::Permitted));
    assert_eq!(
        (outcome.fallback, outcome.status, outcome.attempts.len()),
        (None, 200, 1)
    );
}

#[tokio::test]
async fn hop_by_hop_headers_reach_neither_side() {
    let server = TestUpstream::start().await;
    let up = upstream("hop", &server.url(), NEVER_TRIPS);
    let request = Request::builder()
        .uri("/proxy/hop/echo")
        .header("connection", "keep-alive, x-client-hop")
        .header("x-client-hop", "secret")
        .header("keep-alive", "timeout=5")
        .header("proxy-authorization", "Basic Zm9vOmJhcg==")
        .header("proxy-connection", "keep-alive")
        .header("te", "trailers")
        .header("trailer", "x-sum")
        .header("transfer-encoding", "chunked")
        .header("upgrade", "websocket")
        .header("x-end-to-end", "kept")
        .body(Body::empty())
        .expect("request");
    let (_, _, body, _) = send(&pipeline(), &up, request, "/echo").await;
    let echoed = json(&body)["headers"].clone();
    for hop in [
        "connection",
        "x-client-hop",
        "keep-alive",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ] {
        assert!(
            echoed.get(hop).is_none(),
            "{hop} reached the upstream: {echoed}"
        );
    }
    assert_eq!(echoed["x-end-to-end"], "kept");

    let (status, headers, _, _) = send(&pipeline(), &up, get("/proxy/hop/hop"), "/hop").await;
    assert_eq!(status, 200);
    for hop in [
        "connection",
        "x-hop-secret",
        "keep-alive",
        "proxy-authenticate",
        "trailer",
    ] {
        assert!(!headers.contains_key(hop), "{hop} reached the client");
    }
    assert_eq!(headers["x-end-to-end"], "kept");
}

#[tokio::test]
async fn path_traversal_is_refused_before_any_upstream() {
    let server = TestUpstream::start().await;
    let up = upstream("t", &server.url(), NEVER_TRIPS);
    for tail in [
        "/../admin",
        "/%2e%2e/x",
        "/%2F..",
        "//evil.example/",
        "/a/./b",
        "/a\\b",
        "\\\\evil.example\\x",
        "/..;/admin",
        "/%252e%252e/admin",
        "http://evil.example/",
        "/ok/../../admin",
    ] {
        let (status, _, body, outcome) = send(&pipeline(), &up, get("/proxy/t/x"), tail).await;
        assert_eq!(status, 400, "{tail}");
        assert_error(&body, "bad_path");
        assert_eq!((outcome.decision, outcome.error), (None, Some("bad_path")));
    }
    assert_eq!(server.hits(), 0, "no refused path reached the upstream");
    assert_eq!(up.breaker().snapshot().total_requests, 0);
}

#[tokio::test]
async fn rejected_call_answers_circuit_open_with_the_time_left() {
    let server = TestUpstream::start().await;
    let (up, clock) = upstream_with_clock(
        "t",
        &server.url(),
        "failure_threshold = 1\nopen_duration = \"30s\"",
    );
    let p = pipeline();
    let (status, _, body, _) = send(&p, &up, get("/proxy/t/fail"), "/fail").await;
    assert_eq!(
        (status, &body[..]),
        (500, &b"boom"[..]),
        "no fallback: its own answer"
    );
    assert_eq!(up.breaker().state(), State::Open);
    clock.advance(Duration::from_millis(12_300));
    let started = Instant::now();
    let (status, headers, body, outcome) = send(&p, &up, get("/proxy/t/ok"), "/ok").await;
    assert!(started.elapsed() < Duration::from_millis(100));
    assert_eq!(status, 503);
    assert_eq!(headers["retry-after"], "18", "17.7 s left, rounded up");
    assert_eq!(headers["content-type"], "application/json");
    assert_error(&body, "circuit_open");
    assert_eq!(outcome.decision, Some(Decision::Rejected));
    assert_eq!(outcome.fallback, Some(FallbackKind::Error));
    assert!(outcome.attempts.is_empty());
    assert_eq!(server.hits(), 1, "the rejection never reached the upstream");
}

#[tokio::test]
async fn unreachable_and_slow_upstreams_get_a_json_503() {
    let up = upstream("down", &refused_url(), NEVER_TRIPS);
    let (status, headers, body, outcome) = send(&pipeline(), &up, get("/proxy/down/x"), "/x").await;
    assert_eq!(status, 503);
    assert_error(&body, "upstream_unavailable");
    assert_eq!(headers["retry-after"], "1");
    assert_eq!(outcome.fallback, Some(FallbackKind::Error));

    let server = TestUpstream::start().await;
    let extra = format!("{NEVER_TRIPS}\ncall_timeout = \"200ms\"");
    let up = upstream("slow", &server.url(), &extra);
    let started = Instant::now();
    let (status, headers, body, _) = send(&pipeline(), &up, get("/proxy/slow/slow"), "/slow").await;
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(status, 503);
    assert_error(&body, "upstream_timeout");
    assert!(headers.contains_key("retry-after"));
}

#[tokio::test]
async fn proxy_puts_the_outcome_in_the_response_extensions() {
    let server = TestUpstream::start().await;
    let up = upstream("t", &server.url(), NEVER_TRIPS);
    let response = pipeline()
        .proxy(&up, get("/proxy/t/status/204"), "/status/204")
        .await;
    let outcome = response
        .extensions()
        .get::<ProxyOutcome>()
        .expect("outcome");
    assert_eq!(
        (outcome.status, outcome.decision),
        (204, Some(Decision::Permitted))
    );
}

#[tokio::test]
async fn oversized_bodies_are_refused_before_the_breaker() {
    let server = TestUpstream::start().await;
    let up = upstream("t", &server.url(), NEVER_TRIPS);
    let p = pipeline().with_max_body_bytes(4);
    let post = Request::post("/x")
        .body(Body::from("12345"))
        .expect("request");
    let (status, _, body, _) = send(&p, &up, post, "/x").await;
    assert_eq!(status, 413);
    assert_error(&body, "body_too_large");
    assert_eq!(server.hits(), 0);
}
