//! Bad input at the gateway's front door, over raw TCP against a real gateway and a loopback
//! upstream: request smuggling shapes (Content-Length with Transfer-Encoding, in either order,
//! alone or pipelined after a good request) and absolute URLs where a path belongs.
//! Runtime: about a second (each case is one short connection; reads time out after 10 s).

mod proxy_support;
mod support;

use breakerbox::config;
use proxy_support::TestUpstream;
use serde_json::Value;
use support::raw_http::exchange;
use support::served::ServedGateway;
use support::temp_dir::TempDir;

const VIEWER: &str = "bad-input-viewer-token";

struct Running {
    addr: String,
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

[[admin.tokens]]
name = "dashboard"
token = "{VIEWER}"
role = "viewer"

[defaults]
failure_threshold = 100000
minimum_calls = 100000

[upstreams.echo]
url = "http://{addr}"

[health]
check_interval = "1h"
"#,
        db = dir.0.join("gateway.db").display(),
        addr = upstream.addr,
    );
    let config = config::load_from_str(&text, "bad-input.toml", Vec::<(String, String)>::new())
        .expect("valid config");
    let served = ServedGateway::start(config, None).await;
    Running {
        addr: served.addr.to_string(),
        upstream,
        served,
        _dir: dir,
    }
}

impl Running {
    /// Sends `raw` on a fresh connection and reads until the gateway closes it.
    async fn exchange(&self, raw: &str) -> Vec<Answer> {
        answers(&exchange(&self.addr, raw.as_bytes()).await)
    }

    /// One GET for the request-target `target` on its own connection: status and JSON body.
    async fn get_once(&self, target: &str) -> (u16, Value) {
        let raw = format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let answers = self.exchange(&raw).await;
        assert_eq!(answers.len(), 1, "{target}: {answers:?}");
        (answers[0].status, answers[0].json())
    }

    /// Whether the upstream received a request for `path`.
    fn reached(&self, path: &str) -> bool {
        self.upstream.seen().iter().any(|seen| seen.path == path)
    }

    async fn stop(self) {
        self.served.stop().await;
    }
}

/// One HTTP response read off the wire.
#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// Splits the bytes of a connection into responses (Content-Length or chunked bodies).
fn answers(mut bytes: &[u8]) -> Vec<Answer> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut response = httparse::Response::new(&mut headers);
        let Ok(httparse::Status::Complete(len)) = response.parse(bytes) else {
            panic!("not a response: {:?}", String::from_utf8_lossy(bytes));
        };
        let header = |name: &str| {
            response
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| String::from_utf8_lossy(h.value).into_owned())
        };
        let head = String::from_utf8_lossy(&bytes[..len]).into_owned();
        let status = response.code.expect("status");
        let mut rest = &bytes[len..];
        let body = if let Some(length) = header("content-length") {
            let length: usize = length.parse().expect("length");
            let body = rest[..length].to_vec();
            rest = &rest[length..];
            body
        } else if header("transfer-encoding").is_some() {
            let mut body = Vec::new();
            loop {
                let line_end = rest.windows(2).position(|w| w == b"\r\n").expect("size");
                let size = usize::from_str_radix(
                    std::str::from_utf8(&rest[..line_end]).expect("ascii"),
                    16,
                )
                .expect("hex");
                rest = &rest[line_end + 2..];
                if size == 0 {
                    rest = &rest[2..];
                    break;
                }
                body.extend_from_slice(&rest[..size]);
                rest = &rest[size + 2..];
            }
            body
        } else {
            std::mem::take(&mut rest).to_vec()
        };
        out.push(Answer { status, head, body });
        bytes = rest;
    }
    out
}

fn assert_refused_for_framing(answer: &Answer) {
    assert_eq!(answer.status, 400, "{answer:?}");
    let json = answer.json();
    assert_eq!(json["error"], "conflicting_framing", "{json}");
    assert!(
        json["message"]
            .as_str()
            .is_some_and(|m| m.contains("Content-Length") && m.contains("Transfer-Encoding")),
        "{json}"
    );
    assert!(
        answer
            .head
            .to_ascii_lowercase()
            .contains("connection: close"),
        "{}",
        answer.head
    );
}

#[tokio::test]
async fn content_length_with_transfer_encoding_is_refused_in_either_order() {
    let gw = start().await;
    let cl_first = "POST /proxy/echo/cl-first HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\
                    Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    let te_first = "POST /proxy/echo/te-first HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\
                    Content-Length: 5\r\n\r\n0\r\n\r\n";
    for raw in [cl_first, te_first] {
        let answers = gw.exchange(raw).await;
        assert_eq!(answers.len(), 1, "{answers:?}");
        assert_refused_for_framing(&answers[0]);
    }
    assert!(!gw.reached("/cl-first") && !gw.reached("/te-first"));
    assert_eq!(gw.upstream.hits(), 0, "the upstream was never contacted");
    gw.stop().await;
}

#[tokio::test]
async fn chunked_alone_and_length_alone_still_pass() {
    let gw = start().await;
    let chunked = "POST /proxy/echo/chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
                   5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n\
                   POST /proxy/echo/sized HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\
                   Connection: close\r\n\r\nabc";
    let answers = gw.exchange(chunked).await;
    let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [200, 200], "{answers:?}");
    assert_eq!(answers[0].json()["body"], "hello world");
    assert_eq!(answers[1].json()["body"], "abc");
    assert!(gw.reached("/chunked") && gw.reached("/sized"));
    gw.stop().await;
}

#[tokio::test]
async fn a_conflicting_request_pipelined_after_a_good_one_is_refused_alone() {
    let gw = start().await;
    // The first body is itself shaped like a conflicting request: only real heads count.
    let decoy = "POST /proxy/echo/decoy HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
    let raw = format!(
        "POST /proxy/echo/first HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{decoy}\
         GET /proxy/echo/second HTTP/1.1\r\nHost: x\r\n\r\n\
         POST /proxy/echo/third HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\
         Content-Length: 48\r\n\r\n0\r\n\r\n\
         GET /proxy/echo/fourth HTTP/1.1\r\nHost: x\r\n\r\n",
        decoy.len()
    );
    let answers = gw.exchange(&raw).await;
    let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [200, 200, 400], "{answers:?}");
    assert_eq!(answers[0].json()["body"], decoy);
    assert_refused_for_framing(&answers[2]);
    assert!(gw.reached("/first") && gw.reached("/second"));
    assert!(!gw.reached("/third") && !gw.reached("/fourth") && !gw.reached("/decoy"));
    assert_eq!(gw.upstream.hits(), 2);
    gw.stop().await;
}

#[tokio::test]
async fn absolute_urls_never_leave_their_upstream_or_reach_admin() {
    let gw = start().await;
    // An absolute URL or authority inside the proxied path is refused before any upstream.
    for target in [
        "/proxy/echo/http://evil.example/x",
        "/proxy/echo//evil.example/x",
        "/proxy/echo/https:/%2Fevil.example/x",
        "/proxy/echo/..//evil.example/admin",
    ] {
        let (status, json) = gw.get_once(target).await;
        assert_eq!(
            (status, json["error"].as_str()),
            (400, Some("bad_path")),
            "{target}"
        );
    }
    // A request-target in absolute form is routed by its path alone: the authority in it is
    // never contacted, and /admin still wants a token.
    let (status, json) = gw.get_once("http://evil.example/proxy/echo/abs").await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["path"], "/abs");
    assert_eq!(json["headers"]["host"], gw.upstream.addr.to_string());
    // The gateway's connection gives the client's address to the pipeline.
    assert_eq!(json["headers"]["x-forwarded-for"], "127.0.0.1");
    let admin = format!("http://{}/admin/breakers", gw.addr);
    let (status, json) = gw.get_once(&admin).await;
    assert_eq!(
        (status, json["error"].as_str()),
        (401, Some("unauthorized"))
    );
    let (status, _) = gw
        .get_once("http://evil.example/proxy/echo/../../admin/breakers")
        .await;
    assert_eq!(status, 400);
    // A path starting with `//` is not a proxy path at all.
    let (status, _) = gw.get_once("//evil.example/proxy/echo/x").await;
    assert_eq!(status, 404);
    assert_eq!(
        gw.upstream.hits(),
        1,
        "only the absolute-form proxy request reached it"
    );
    gw.stop().await;
}
