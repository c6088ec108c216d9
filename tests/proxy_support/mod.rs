//! Real loopback upstreams that misbehave on purpose, and helpers to build upstreams and
//! pipelines around them. Shared by tests/upstream.rs and tests/pipeline.rs.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Request, Response, StatusCode};
use breakerbox::breaker::{Breaker, ManualClock, NoJitter};
use breakerbox::config::{self, UpstreamConfig};
use breakerbox::fallback::cache::{CacheLimits, ResponseCache};
use breakerbox::pipeline::{Pipeline, ProxyOutcome};
use breakerbox::upstream::Upstream;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// One request as the upstream received it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// A loopback HTTP upstream. Routes (by first segment): `status/{code}`,
/// `retry-after/{code}/{value}`, `slow` (5 s), `delay/{ms}` (200 after `ms`), `fail` (500),
/// `flaky` (500 for the first `fail_first` requests), `switch` (500 while `broken`), `health`
/// (500 unless `healthy`), `hop` (answers with hop-by-hop headers), `vary/{names}` (echoes
/// with `Vary: {names}`, `star` standing for `*`), anything else echoes the request as JSON.
#[derive(Clone)]
pub struct TestUpstream {
    pub addr: SocketAddr,
    pub hits: Arc<AtomicUsize>,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    pub fail_first: Arc<AtomicUsize>,
    pub broken: Arc<AtomicBool>,
    pub healthy: Arc<AtomicBool>,
}

impl TestUpstream {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let upstream = TestUpstream {
            addr: listener.local_addr().expect("addr"),
            hits: Arc::default(),
            seen: Arc::default(),
            fail_first: Arc::default(),
            broken: Arc::default(),
            healthy: Arc::new(AtomicBool::new(true)),
        };
        let app = Router::new().fallback(handle).with_state(upstream.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        upstream
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn hits(&self) -> usize {
        self.hits.load(SeqCst)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }

    pub fn last(&self) -> Seen {
        self.seen().pop().expect("the upstream saw a request")
    }
}

async fn handle(State(up): State<TestUpstream>, request: Request<Body>) -> Response<Body> {
    up.hits.fetch_add(1, SeqCst);
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let path = parts.uri.path().to_owned();
    up.seen.lock().expect("lock").push(Seen {
        method: parts.method.to_string(),
        path: path.clone(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers.clone(),
        body: body.clone(),
    });
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let reply = |status: u16, body: &str| {
        Response::builder()
            .status(status)
            .header("content-type", "text/plain")
            .body(Body::from(body.to_owned()))
            .expect("response")
    };
    if let ["vary", names, ..] = segments.as_slice() {
        let names = names.replace("star", "*");
        let echo = serde_json::json!({ "accept-language": parts.headers.get("accept-language")
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()) });
        return Response::builder()
            .status(200)
            .header("vary", names)
            .body(Body::from(echo.to_string()))
            .expect("response");
    }
    match segments.as_slice() {
        ["status", code, ..] => reply(code.parse().unwrap_or(500), "status"),
        ["retry-after", code, value, ..] => {
            let value = value.replace("%20", " ");
            Response::builder()
                .status(code.parse::<u16>().unwrap_or(503))
                .header("retry-after", value)
                .body(Body::from("later"))
                .expect("response")
        }
        ["slow", ..] => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            reply(200, "slow")
        }
        ["delay", ms, ..] => {
            tokio::time::sleep(Duration::from_millis(ms.parse().unwrap_or(0))).await;
            reply(200, "delayed")
        }
        ["fail", ..] => reply(500, "boom"),
        ["flaky", ..] => {
            let failing = up
                .fail_first
                .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
                .is_ok();
            if failing {
                reply(500, "flaky")
            } else {
                reply(200, "recovered")
            }
        }
        ["switch", ..] if up.broken.load(SeqCst) => reply(500, "broken"),
        ["health", ..] if !up.healthy.load(SeqCst) => reply(500, "sick"),
        ["hop", ..] => Response::builder()
            .status(200)
            .header("connection", "x-hop-secret")
            .header("x-hop-secret", "1")
            .header("keep-alive", "timeout=5")
            .header("proxy-authenticate", "Basic")
            .header("trailer", "x-checksum")
            .header("x-end-to-end", "kept")
            .body(Body::from("hop"))
            .expect("response"),
        _ => {
            let headers: serde_json::Map<String, serde_json::Value> = parts
                .headers
                .iter()
                .map(|(n, v)| {
                    (
                        n.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into(),
                    )
                })
                .collect();
            let json = serde_json::json!({
                "method": parts.method.as_str(),
                "path": path,
                "query": parts.uri.query(),
                "headers": headers,
                "body": String::from_utf8_lossy(&body),
            });
            let mut response = reply(200, &json.to_string());
            response
                .headers_mut()
                .insert("content-type", "application/json".parse().expect("value"));
            response
        }
    }
}

/// A server that reads a request and closes the connection without answering; counts them.
pub async fn closing_upstream() -> (String, Arc<AtomicUsize>) {
    cutting_upstream(b"", false).await
}

/// A server that reads a request, sends a 200 head declaring 64 bytes and 10 of them, then
/// resets the connection (SO_LINGER 0); counts them.
pub async fn truncating_upstream() -> (String, Arc<AtomicUsize>) {
    let partial: &[u8] =
        b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 64\r\n\r\n0123456789";
    cutting_upstream(partial, true).await
}

/// A server that reads each request, writes `partial` and ends the connection (with a reset
/// when `reset`); counts the connections.
async fn cutting_upstream(partial: &'static [u8], reset: bool) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&hits);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            counter.fetch_add(1, SeqCst);
            let mut buf = [0u8; 4096];
            let _ = socket.read(&mut buf).await;
            let _ = socket.write_all(partial).await;
            let _ = socket.flush().await;
            if reset {
                let _ = socket.set_zero_linger();
            }
        }
    });
    (format!("http://{addr}"), hits)
}

/// A loopback address nothing listens on.
pub fn refused_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    format!("http://{addr}")
}

/// The `[upstreams.NAME]` table `url` + `extra`, through the real configuration loader.
pub fn config(name: &str, url: &str, extra: &str) -> UpstreamConfig {
    let text = format!("[upstreams.{name}]\nurl = \"{url}\"\n{extra}\n");
    let no_env: [(&str, &str); 0] = [];
    match config::load_from_str(&text, "test.toml", no_env) {
        Ok(mut config) => config.upstreams.remove(name).expect("the upstream"),
        Err(err) => panic!("test config must load: {err}"),
    }
}

/// An upstream with its own breaker on the system clock, without jitter.
pub fn upstream(name: &str, url: &str, extra: &str) -> Arc<Upstream> {
    let config = config(name, url, extra);
    let breaker = Breaker::builder(name, config.breaker.clone())
        .jitter(Arc::new(NoJitter))
        .build();
    Arc::new(Upstream::new(config, Arc::new(breaker)).expect("client"))
}

/// An upstream whose breaker runs on a manual clock.
pub fn upstream_with_clock(name: &str, url: &str, extra: &str) -> (Arc<Upstream>, ManualClock) {
    let config = config(name, url, extra);
    let clock = ManualClock::new();
    let breaker = Breaker::builder(name, config.breaker.clone())
        .jitter(Arc::new(NoJitter))
        .clock(Arc::new(clock.clone()))
        .build();
    let upstream = Upstream::new(config, Arc::new(breaker)).expect("client");
    (Arc::new(upstream), clock)
}

/// Breaker settings that never trip in a test's lifetime.
pub const NEVER_TRIPS: &str = "failure_threshold = 100000\nminimum_calls = 100000";

pub fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).expect("status")
}

// Driving a pipeline directly (tests/pipeline.rs, tests/proxy_fallbacks.rs).

pub fn pipeline() -> Pipeline {
    Pipeline::new(ResponseCache::new(CacheLimits::default()), None)
}

pub fn get(uri: &str) -> Request<Body> {
    Request::builder()
        .uri(uri)
        .body(Body::empty())
        .expect("request")
}

pub async fn send(
    pipeline: &Pipeline,
    upstream: &Upstream,
    request: Request<Body>,
    tail: &str,
) -> (u16, axum::http::HeaderMap, Bytes, ProxyOutcome) {
    let (response, outcome): (Response<Body>, _) =
        pipeline.proxy_with_outcome(upstream, request, tail).await;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    (status, headers, body, outcome)
}

pub fn json(body: &Bytes) -> Value {
    serde_json::from_slice(body).expect("JSON body")
}

/// Asserts the body is exactly `{"error": code, "message": …}`.
pub fn assert_error(body: &Bytes, code: &str) {
    let value = json(body);
    let object = value.as_object().expect("an object");
    assert_eq!(object.len(), 2, "{value}");
    assert_eq!(object["error"], code, "{value}");
    assert!(object["message"].is_string());
}
