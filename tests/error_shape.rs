//! Every error answer has the contract's shape, `{"error","message"}` JSON, against a real
//! gateway over raw TCP: a method a route does not serve (405), `CONNECT` and `TRACE` through
//! `/proxy` (405, before any breaker or queue: the upstream never sees them), an HTTP/1.1
//! request without exactly one `Host` (400), and heads hyper itself refuses (400).
//! Runtime: about a second.

mod proxy_support;
mod support;

use breakerbox::config;
use proxy_support::TestUpstream;
use serde_json::Value;
use support::raw_http::exchange;
use support::served::ServedGateway;
use support::temp_dir::TempDir;

struct Running {
    upstream: TestUpstream,
    served: ServedGateway,
    _dir: TempDir,
}

async fn start() -> Running {
    let upstream = TestUpstream::start().await;
    let dir = TempDir::new();
    let text = format!(
        r#"
[store]
url = "sqlite://{db}"

[upstreams.echo]
url = "http://{addr}"

# Down: a request that reached its pipeline would be queued (202) for replay.
[upstreams.later]
url = "{down}"
fallback = "queue"

[health]
check_interval = "1h"
"#,
        db = dir.0.join("gateway.db").display(),
        addr = upstream.addr,
        down = proxy_support::refused_url(),
    );
    let config = config::load_from_str(&text, "error-shape.toml", Vec::<(String, String)>::new())
        .expect("valid config");
    let served = ServedGateway::start(config, None).await;
    Running {
        upstream,
        served,
        _dir: dir,
    }
}

/// One answer: its status, head and body as JSON (`Null` when the body is not JSON).
#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
    json: Value,
}

impl Running {
    /// Sends `raw` (which asks for `Connection: close` or is refused) and reads the answer.
    async fn send(&self, raw: &str) -> Answer {
        let bytes = exchange(&self.served.addr.to_string(), raw.as_bytes()).await;
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or(0);
        Answer {
            status,
            head: head.to_owned(),
            json: serde_json::from_str(body).unwrap_or(Value::Null),
        }
    }
}

#[track_caller]
fn assert_error(answer: &Answer, status: u16, code: &str) {
    assert_eq!(answer.status, status, "{answer:?}");
    assert_eq!(answer.json["error"], code, "{answer:?}");
    assert!(answer.json["message"].is_string(), "{answer:?}");
    assert!(
        answer
            .head
            .to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{answer:?}"
    );
}

#[tokio::test]
async fn a_method_a_route_does_not_serve_gets_405_json() {
    let gateway = start().await;
    let answer = gateway
        .send("POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        .await;
    assert_error(&answer, 405, "method_not_allowed");
    gateway.served.stop().await;
}

#[tokio::test]
async fn connect_and_trace_through_proxy_are_refused_before_the_upstream() {
    let gateway = start().await;
    for (method, upstream) in [
        ("CONNECT", "echo"),
        ("TRACE", "echo"),
        ("CONNECT", "later"),
        ("TRACE", "later"),
    ] {
        let raw = format!(
            "{method} /proxy/{upstream}/tunnel HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        );
        let answer = gateway.send(&raw).await;
        assert_error(&answer, 405, "method_not_allowed");
        assert!(
            answer.head.to_ascii_lowercase().contains("\r\nallow: "),
            "{answer:?}"
        );
    }
    assert_eq!(gateway.upstream.hits(), 0, "the upstream saw them");
    let queue = gateway
        .served
        .gateway
        .render_metrics()
        .await
        .lines()
        .filter(|line| line.starts_with("breakerbox_queue_depth{breaker=\"later\"}"))
        .map(str::to_owned)
        .collect::<Vec<_>>();
    assert!(
        queue.iter().all(|line| line.ends_with(" 0")),
        "queued: {queue:?}"
    );
    gateway.served.stop().await;
}

#[tokio::test]
async fn http_1_1_without_exactly_one_host_gets_400_json() {
    let gateway = start().await;
    let missing = gateway
        .send("GET /health HTTP/1.1\r\nConnection: close\r\n\r\n")
        .await;
    assert_error(&missing, 400, "bad_host");
    let two = gateway
        .send("GET /proxy/echo/a HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n")
        .await;
    assert_error(&two, 400, "bad_host");
    assert_eq!(gateway.upstream.hits(), 0, "the upstream saw it");
    // HTTP/1.0 has no Host requirement.
    let old = gateway.send("GET /health HTTP/1.0\r\n\r\n").await;
    assert_eq!(old.status, 200, "{old:?}");
    gateway.served.stop().await;
}

#[tokio::test]
async fn a_head_hyper_cannot_parse_gets_400_json() {
    let gateway = start().await;
    let answer = gateway
        .send("GET /health HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n")
        .await;
    assert_error(&answer, 400, "bad_request");
    gateway.served.stop().await;
}

#[tokio::test]
async fn a_head_longer_than_hyper_reads_gets_431_json() {
    let gateway = start().await;
    // Exactly as many bytes as hyper buffers for a head, none of them ending it: hyper reads
    // them all, so the close that follows its answer cannot reset the connection.
    let limit = breakerbox::server::framing::MAX_HEAD_BYTES;
    let mut raw = String::from("GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ");
    raw.push_str(&"a".repeat(limit - raw.len()));
    let answer = gateway.send(&raw).await;
    assert_error(&answer, 431, "headers_too_large");
    gateway.served.stop().await;
}

#[tokio::test]
async fn an_unparseable_head_pipelined_after_a_good_request_is_answered_after_it() {
    let gateway = start().await;
    let bytes = exchange(
        &gateway.served.addr.to_string(),
        b"GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /health HTTP/1.1\r\nno colon\r\n\r\n",
    )
    .await;
    let text = String::from_utf8_lossy(&bytes);
    let first = text
        .find("HTTP/1.1 200 OK")
        .expect("the good request is answered");
    let second = text
        .find("HTTP/1.1 400 Bad Request")
        .expect("then the bad one");
    assert!(first < second, "{text}");
    assert!(
        text.ends_with(
            r#"{"error":"bad_request","message":"the request head could not be parsed"}"#
        ),
        "{text}"
    );
    gateway.served.stop().await;
}
