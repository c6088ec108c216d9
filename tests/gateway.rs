//! The gateway end to end: a real server on 127.0.0.1 in front of loopback upstreams that
//! misbehave on purpose, a real SQLite store, driven over HTTP with reqwest.

mod proxy_support;
mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;

use breakerbox::config;
use breakerbox::gateway::Gateway;
use futures_util::StreamExt;
use proxy_support::TestUpstream;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::prometheus::Scrape;
use support::raw_http::{exchange, status_code};
use support::served::ServedGateway;
use support::temp_dir::TempDir;
use support::wait::eventually;

const ADMIN: &str = "admin-secret-token";
const VIEWER: &str = "viewer-secret-token";

struct Running {
    base: String,
    served: ServedGateway,
    _dir: TempDir,
}

fn settings(dir: &TempDir, echo: SocketAddr, queued: SocketAddr, chaos: bool) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
max_body_bytes = 1024
max_header_bytes = 2048

[store]
url = "sqlite://{db}"

[[admin.tokens]]
name = "ops"
token = "{ADMIN}"
role = "admin"

[[admin.tokens]]
name = "dashboard"
token = "{VIEWER}"
role = "viewer"

[defaults]
failure_threshold = 2
open_duration = "400ms"
call_timeout = "2s"
retry_budget_percent = 0

[upstreams.echo]
url = "http://{echo}"
health_path = "/health"

[upstreams.qbittorrent]
url = "http://{queued}"
fallback = "queue"
failure_threshold = 1

[chaos]
enabled = {chaos}

[health]
check_interval = "1h"
detailed_cache = "1ms"
"#,
        db = dir.0.join("gateway.db").display(),
    )
}

async fn start(chaos: bool) -> (Running, TestUpstream, TestUpstream) {
    let echo = TestUpstream::start().await;
    let queued = TestUpstream::start().await;
    let dir = TempDir::new();
    let text = settings(&dir, echo.addr, queued.addr, chaos);
    let config = config::load_from_str(&text, "gateway-test.toml", Vec::<(String, String)>::new())
        .expect("valid config");
    let served = ServedGateway::start(config, None).await;
    let running = Running {
        base: served.base(),
        served,
        _dir: dir,
    };
    (running, echo, queued)
}

impl Running {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        let mut request = reqwest::Client::new().get(self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("gateway answers");
        let status = response.status();
        (status, json_of(response).await)
    }

    async fn post(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        let mut request = reqwest::Client::new().post(self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("gateway answers");
        let status = response.status();
        (status, json_of(response).await)
    }

    async fn state(&self, breaker: &str) -> String {
        let (_, body) = self
            .get(&format!("/admin/breakers/{breaker}"), Some(VIEWER))
            .await;
        body["data"]["state"].as_str().unwrap_or("?").to_owned()
    }

    async fn stop(self) {
        self.served.stop().await;
    }
}

/// The status of a GET sent as raw bytes, path untouched.
async fn raw_status(base: &str, path: &str) -> u16 {
    let addr = base.trim_start_matches("http://");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    status_code(&exchange(addr, request.as_bytes()).await)
}

/// The status line's code for `raw`, sent byte for byte.
async fn raw_request_status(base: &str, raw: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(raw.as_bytes()).await.expect("send");
    let mut answer = Vec::new();
    // Whatever arrived within 5 s: the gateway need not close this connection.
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    status_code(&answer)
}

/// The body as JSON (`Null` when it is not JSON).
async fn json_of(response: reqwest::Response) -> Value {
    let bytes = response.bytes().await.expect("body");
    serde_json::from_slice(&bytes).unwrap_or(Value::Null)
}

#[tokio::test]
async fn health_stays_up_while_detailed_health_reports_the_open_breaker() {
    let (gw, echo, _queued) = start(false).await;
    let (status, body) = gw.get("/health", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "healthy");
    assert!(body["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')));

    echo.broken.store(true, SeqCst);
    for _ in 0..2 {
        let (status, _) = gw.get("/proxy/echo/switch", None).await;
        assert_eq!(
            status,
            StatusCode::INTERNAL_SERVER_ERROR,
            "the upstream's own 500 passes"
        );
    }
    assert_eq!(gw.state("echo").await, "open");
    let (status, _) = gw.get("/health", None).await;
    assert_eq!(status, StatusCode::OK, "liveness never follows a breaker");

    let (status, body) = gw.get("/health/detailed", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "degraded");
    let echo_service = &body["services"]["echo"];
    assert_eq!(echo_service["circuit_breaker"], "open");
    assert_eq!(echo_service["status"], "unhealthy");
    assert_eq!(echo_service["failure_count"], 2);
    let database = &body["services"]["database"];
    assert_eq!(database["circuit_breaker"], "closed");
    assert!(database["connection_pool_idle"].as_u64().is_some());
    assert!(database["connection_pool_active"].as_u64().is_some());
    let system = &body["system"];
    for key in [
        "memory_usage_mb",
        "cpu_usage_percent",
        "uptime_seconds",
        "active_connections",
    ] {
        assert!(system[key].is_number(), "system.{key} in {system}");
    }
    gw.stop().await;
}

#[tokio::test]
async fn open_breaker_rejects_with_retry_after_and_turns_half_open_without_traffic() {
    let (gw, echo, _queued) = start(false).await;
    echo.broken.store(true, SeqCst);
    for _ in 0..2 {
        gw.get("/proxy/echo/switch", None).await;
    }
    let switch_hits = |echo: &TestUpstream| {
        echo.seen
            .lock()
            .expect("seen")
            .iter()
            .filter(|s| s.path == "/switch")
            .count()
    };
    let hits = switch_hits(&echo);
    assert_eq!(hits, 2);
    let response = reqwest::get(gw.url("/proxy/echo/switch"))
        .await
        .expect("answer");
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert_eq!(retry_after, 1, "400 ms left rounds up to 1 s");
    let body: Value = json_of(response).await;
    assert_eq!(body["error"], "circuit_open");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert_eq!(
        switch_hits(&echo),
        hits,
        "a rejection never reaches the upstream"
    );

    // Nothing is sent; the deadline timer alone moves the breaker on.
    assert!(
        eventually(Duration::from_secs(5), || async {
            gw.state("echo").await == "half_open"
        })
        .await,
        "open → half_open on time with no traffic"
    );
    echo.broken.store(false, SeqCst);
    let (status, _) = gw.get("/proxy/echo/switch", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(gw.state("echo").await, "closed");
    gw.stop().await;
}

#[tokio::test]
async fn admin_routes_need_the_right_token() {
    let (gw, _echo, _queued) = start(false).await;
    let response = reqwest::get(gw.url("/admin/breakers"))
        .await
        .expect("answer");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    let (status, body) = gw.get("/admin/breakers", Some("not-a-token")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthorized"))
    );

    let (status, body) = gw.get("/admin/breakers", Some(VIEWER)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["success"], true);
    assert_eq!(body["meta"]["count"], 3);
    let names: Vec<&str> = body["data"]
        .as_object()
        .expect("map")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(names, ["database", "echo", "qbittorrent"]);
    let echo = &body["data"]["echo"];
    for key in [
        "state",
        "total_requests",
        "successful_requests",
        "failed_requests",
        "timeouts",
        "rejected_requests",
        "slow_requests",
        "consecutive_failures",
        "error_rate",
        "last_failure_time",
        "last_success_time",
        "state_changed_at",
    ] {
        assert!(echo.get(key).is_some(), "snapshot field {key} in {echo}");
    }

    let (status, body) = gw
        .post("/admin/breakers/echo/force-open", Some(VIEWER))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );
    let (status, body) = gw.get("/admin/breakers/nope", Some(VIEWER)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("unknown_breaker"))
    );

    let (status, body) = gw
        .post("/admin/breakers/echo/force-open", Some(ADMIN))
        .await;
    assert_eq!(
        (status, body["data"]["state"].as_str()),
        (StatusCode::OK, Some("forced_open"))
    );
    let (status, body) = gw.get("/proxy/echo/anything", None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("circuit_open"))
    );
    let (_, body) = gw.post("/admin/breakers/echo/disable", Some(ADMIN)).await;
    assert_eq!(body["data"]["state"], "disabled");
    let (_, body) = gw.post("/admin/breakers/reset-all", Some(ADMIN)).await;
    assert_eq!(body["data"]["echo"]["state"], "closed");
    assert_eq!(
        body["data"]["echo"]["rejected_requests"], 0,
        "reset clears counters"
    );
    gw.stop().await;
}

#[tokio::test]
async fn chaos_route_exists_only_when_enabled() {
    let (gw, _echo, _queued) = start(false).await;
    let (status, _) = gw.post("/api/test/circuit-breaker/echo", Some(ADMIN)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    gw.stop().await;

    let (gw, _echo, _queued) = start(true).await;
    let (status, _) = gw
        .post("/api/test/circuit-breaker/echo", Some(VIEWER))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = gw.post("/api/test/circuit-breaker/echo", Some(ADMIN)).await;
    assert_eq!(
        (status, body["data"]["state"].as_str()),
        (StatusCode::OK, Some("open"))
    );
    gw.stop().await;
}

#[tokio::test]
async fn bad_requests_get_precise_answers() {
    let (gw, echo, _queued) = start(false).await;
    let (status, body) = gw.get("/proxy/nope/x", None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("unknown_upstream"))
    );
    let (status, body) = gw.get("/nowhere", None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    // Sent byte for byte: an HTTP client library would normalise `..` away before sending.
    for path in [
        "/proxy/echo/../admin/breakers",
        "/proxy/echo/%2e%2e/admin",
        "/proxy/echo/%2F..%2Fadmin",
        "/proxy/echo//evil.example/x",
        "/proxy/echo/a/./b",
    ] {
        assert_eq!(raw_status(&gw.base, path).await, 400, "{path}");
    }
    assert_eq!(raw_status(&gw.base, "/proxy/../admin/breakers").await, 404);
    let reached: Vec<String> = echo
        .seen
        .lock()
        .expect("seen")
        .iter()
        .map(|s| s.path.clone())
        .collect();
    assert!(
        reached.iter().all(|path| path == "/health"),
        "only the health probe reached the upstream, not {reached:?}"
    );

    let big_header = "x".repeat(4096);
    let response = reqwest::Client::new()
        .get(gw.url("/health"))
        .header("x-big", big_header)
        .send()
        .await
        .expect("answer");
    assert_eq!(
        response.status(),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    );
    let response = reqwest::Client::new()
        .post(gw.url("/proxy/echo/upload"))
        .body(vec![b'a'; 4096])
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    gw.stop().await;
}

#[tokio::test]
async fn queued_request_is_replayed_once_when_the_breaker_closes() {
    let (gw, _echo, queued) = start(false).await;
    queued.broken.store(true, SeqCst);
    let response = reqwest::Client::new()
        .post(gw.url("/proxy/qbittorrent/switch?add=1"))
        .body("magnet:?xt=urn:btih:demo")
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let body: Value = json_of(response).await;
    assert_eq!(body["queued"], true);
    let id = body["id"].as_str().expect("id").to_owned();

    let (status, listing) = gw.get("/admin/queue", Some(VIEWER)).await;
    assert_eq!(status, StatusCode::OK);
    let entries = listing["data"]["qbittorrent"].as_array().expect("entries");
    let entry = entries
        .iter()
        .find(|e| e["id"] == id.as_str())
        .expect("listed");
    assert_eq!(
        (entry["method"].as_str(), entry["status"].as_str()),
        (Some("POST"), Some("pending"))
    );
    assert_eq!(entry["path"], "/switch?add=1");

    queued.broken.store(false, SeqCst);
    let delivered = |queued: TestUpstream| async move {
        queued
            .seen
            .lock()
            .expect("seen")
            .iter()
            .filter(|s| s.method == "POST" && s.body.as_ref() == b"magnet:?xt=urn:btih:demo")
            .count()
    };
    let first_posts = delivered(queued.clone()).await;
    assert_eq!(
        first_posts, 1,
        "the original attempt reached the upstream once"
    );
    // The replayer is woken when the breaker turns half-open (400 ms after the trip): its
    // first delivery is the probe. Before, it waited for its 5 s poll.
    assert!(
        eventually(Duration::from_secs(3), || {
            let queued = queued.clone();
            async move { delivered(queued).await == 2 }
        })
        .await,
        "replayed as soon as the breaker turned half-open, not at the next poll"
    );
    let (_, listing) = gw.get("/admin/queue", Some(VIEWER)).await;
    let entry = listing["data"]["qbittorrent"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["id"] == id.as_str()).cloned())
        .expect("still listed");
    assert_eq!(entry["status"], "delivered");
    assert_eq!(delivered(queued.clone()).await, 2, "delivered exactly once");
    let keys: Vec<Option<String>> = queued
        .seen
        .lock()
        .expect("seen")
        .iter()
        .filter(|s| s.method == "POST")
        .map(|s| {
            s.headers
                .get("idempotency-key")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(
        keys,
        [None, Some(id.clone())],
        "the replay carries the queue id as its Idempotency-Key; the original attempt none"
    );

    // The replay is a call through the breaker like any other: counted with its outcome.
    let text = reqwest::get(gw.url("/metrics"))
        .await
        .expect("/metrics answers")
        .text()
        .await
        .expect("metrics text");
    let calls = |outcome: &str| {
        Scrape::parse(&text)
            .get(
                "breakerbox_calls_total",
                &[("breaker", "qbittorrent"), ("outcome", outcome)],
            )
            .unwrap_or(0.0)
    };
    assert_eq!(calls("failure"), 1.0, "the original attempt");
    assert_eq!(calls("success"), 1.0, "the replay");
    gw.stop().await;
}

#[tokio::test]
async fn event_stream_carries_transitions() {
    let (gw, _echo, _queued) = start(true).await;
    let response = reqwest::Client::new()
        .get(gw.url("/admin/events"))
        .bearer_auth(VIEWER)
        .send()
        .await
        .expect("stream opens");
    assert_eq!(response.status(), StatusCode::OK);
    let mut stream = response.bytes_stream();
    gw.post("/api/test/circuit-breaker/echo", Some(ADMIN)).await;
    let mut seen = String::new();
    let found = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(chunk) = stream.next().await {
            seen.push_str(&String::from_utf8_lossy(&chunk.expect("chunk")));
            if seen.contains("event: transition") && seen.contains("\"to\":\"open\"") {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    assert!(found, "no transition event in {seen}");
    assert!(seen.contains("\"reason\":\"manual_trip\""));
    drop(stream);
    gw.stop().await;
}

/// What a test started from a configuration file must keep alive: its directory and upstreams.
type Kept = (TempDir, TestUpstream, TestUpstream);

/// A gateway started from a configuration file (for reloads): the gateway, the file, its text.
async fn start_from_file() -> (Arc<Gateway>, std::path::PathBuf, String, Kept) {
    let echo = TestUpstream::start().await;
    let queued = TestUpstream::start().await;
    let dir = TempDir::new();
    let path = dir.0.join("breakerbox.toml");
    let text = settings(&dir, echo.addr, queued.addr, false);
    std::fs::write(&path, &text).expect("write config");
    let config = config::load(&path).expect("valid");
    let gateway = Gateway::start(config, Some(path.clone()))
        .await
        .expect("starts");
    (gateway, path, text, (dir, echo, queued))
}

#[tokio::test]
async fn reload_applies_a_valid_file_and_keeps_the_last_good_one() {
    let (gateway, path, text, _kept) = start_from_file().await;
    let tasks = gateway.spawn_tasks();
    let kept = gateway.upstream_named("qbittorrent").expect("configured");
    let threshold = |gateway: &Gateway| {
        gateway.in_force().upstreams["echo"]
            .config()
            .breaker
            .failure_threshold()
    };
    assert_eq!(threshold(&gateway), 2);

    // The file watcher picks up a valid change: echo gets a new breaker, qbittorrent keeps its.
    let changed = text.replace(
        "[upstreams.echo]\n",
        "[upstreams.echo]\nfailure_threshold = 7\n",
    );
    std::fs::write(&path, &changed).expect("rewrite");
    assert!(
        eventually(Duration::from_secs(10), || async {
            threshold(&gateway) == 7
        })
        .await,
        "valid change applied"
    );
    assert!(Arc::ptr_eq(
        &kept,
        &gateway.upstream_named("qbittorrent").expect("kept")
    ));

    // A broken file is refused and the running configuration stays.
    std::fs::write(
        &path,
        changed.replace("failure_threshold = 7", "failure_threshold = 0"),
    )
    .expect("rewrite");
    let refused = gateway.reload();
    let message = refused.expect_err("refused").to_string();
    assert!(
        message.contains("upstreams.echo.failure_threshold"),
        "{message}"
    );
    assert_eq!(threshold(&gateway), 7);

    gateway.shutdown().await;
    for task in tasks {
        task.await.expect("task ends");
    }
}

#[tokio::test]
async fn a_reload_keeps_the_breaker_of_an_upstream_whose_breaker_settings_did_not_change() {
    let (gateway, path, text, _kept) = start_from_file().await;
    let before = gateway.upstream_named("echo").expect("configured");
    before.breaker().force_open();

    // Only the probe path changes: a new upstream around the same breaker, still forced open.
    std::fs::write(
        &path,
        text.replace("health_path = \"/health\"", "health_path = \"/ready\""),
    )
    .expect("rewrite");
    gateway.reload().expect("valid change");
    let after = gateway.upstream_named("echo").expect("configured");
    assert!(!Arc::ptr_eq(&before, &after), "new settings: new upstream");
    assert!(Arc::ptr_eq(before.breaker(), after.breaker()));
    assert_eq!(after.breaker().state(), breakerbox::State::ForcedOpen);
    let named = gateway.breaker_named("echo").expect("tracked");
    assert!(Arc::ptr_eq(&named, after.breaker()));

    gateway.shutdown().await;
}

#[tokio::test]
async fn conflicting_content_lengths_are_refused_before_any_upstream() {
    let (gw, echo, _queued) = start(false).await;
    let doubled = "POST /proxy/echo/smuggle HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\
                   Content-Length: 5\r\nConnection: close\r\n\r\nabcde";
    assert_eq!(raw_request_status(&gw.base, doubled).await, 400);
    let reached = echo
        .seen
        .lock()
        .expect("seen")
        .iter()
        .any(|s| s.path == "/smuggle");
    assert!(
        !reached,
        "a request with conflicting lengths never reaches the upstream"
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_trip_and_recovery_show_in_the_seed_s_dashboard_json_and_the_recovery_fields() {
    let (gw, echo, _queued) = start(false).await;
    let (status, _) = gw.get("/admin/dashboard", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(gw.get("/proxy/echo/hello", None).await.0, StatusCode::OK);
    echo.broken.store(true, SeqCst);
    for _ in 0..2 {
        gw.get("/proxy/echo/switch", None).await;
    }
    let (status, board) = gw.get("/admin/dashboard", Some(VIEWER)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(board["circuit_breakers"]["echo_state"], "open", "{board}");
    assert_eq!(board["circuit_breakers"]["qbittorrent_state"], "closed");
    assert_eq!(
        board["failure_rates"]["echo"], "66.7%",
        "2 of the window's 3 calls failed"
    );
    assert_eq!(board["failure_rates"]["qbittorrent"], "0.0%");
    assert!(
        board["response_times"]["echo_avg_ms"].as_f64().is_some(),
        "{board}"
    );
    assert_eq!(
        board["response_times"]["qbittorrent_avg_ms"],
        Value::Null,
        "never called"
    );
    let keys: Vec<&str> = board
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        ["circuit_breakers", "failure_rates", "response_times"]
    );

    assert!(
        eventually(Duration::from_secs(5), || async {
            gw.state("echo").await == "half_open"
        })
        .await
    );
    echo.broken.store(false, SeqCst);
    assert_eq!(gw.get("/proxy/echo/switch", None).await.0, StatusCode::OK);
    let (_, board) = gw.get("/admin/dashboard", Some(VIEWER)).await;
    assert_eq!(board["circuit_breakers"]["echo_state"], "closed");
    assert_eq!(
        board["failure_rates"]["echo"], "0.0%",
        "a close starts the window afresh"
    );

    let (_, shown) = gw.get("/admin/breakers/echo", Some(VIEWER)).await;
    let took = shown["data"]["last_recovery_seconds"]
        .as_f64()
        .expect("recovered");
    assert!(took >= 0.4, "at least the open duration: {took}");
    assert!(shown["data"]["last_recovered_at"].is_string());
    let (_, health) = gw.get("/health/detailed", None).await;
    assert_eq!(
        health["services"]["echo"]["last_recovery_seconds"],
        json!(took)
    );
    let scrape = Scrape::parse(
        &reqwest::get(gw.url("/metrics"))
            .await
            .expect("scraped")
            .text()
            .await
            .expect("body"),
    );
    assert_eq!(
        scrape.get(
            "breakerbox_breaker_recovery_seconds_count",
            &[("breaker", "echo")]
        ),
        Some(1.0)
    );
    gw.stop().await;
}
