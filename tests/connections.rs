//! Connections are bounded in time and number, against a real gateway on 127.0.0.1: a client
//! slow to send its request head (or silent) is closed after `header_read_timeout`, an idle
//! keep-alive after `idle_timeout`, and past `max_connections` the oldest idle connection gives
//! way so `/health` keeps answering; the connection metrics move.
//! Runtime: a few seconds (short timeouts; every wait polls with a deadline).

mod support;

use std::time::Duration;

use breakerbox::config;
use support::prometheus::Scrape;
use support::raw_http::{exchange, status_code};
use support::served::ServedGateway;
use support::temp_dir::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

const VIEWER: &str = "connections-viewer-token";

struct Running {
    served: ServedGateway,
    _dir: TempDir,
}

/// A gateway whose `[server]` table holds `server` (besides its listen address).
async fn start(server: &str) -> Running {
    let dir = TempDir::new();
    let text = format!(
        r#"
[server]
{server}

[store]
url = "sqlite://{db}"

[[admin.tokens]]
name = "dashboard"
token = "{VIEWER}"
role = "viewer"

[health]
check_interval = "1h"
"#,
        db = dir.0.join("gateway.db").display(),
    );
    let config = config::load_from_str(&text, "connections.toml", Vec::<(String, String)>::new())
        .expect("valid config");
    let served = ServedGateway::start(config, None).await;
    Running { served, _dir: dir }
}

impl Running {
    async fn connect(&self) -> TcpStream {
        TcpStream::connect(self.served.addr).await.expect("connect")
    }

    async fn closed_total(&self, reason: &str) -> f64 {
        let text = self.served.gateway.render_metrics().await;
        Scrape::parse(&text)
            .get("breakerbox_connections_closed_total", &[("reason", reason)])
            .unwrap_or(-1.0)
    }

    async fn open_connections(&self) -> f64 {
        let text = self.served.gateway.render_metrics().await;
        Scrape::parse(&text)
            .get("breakerbox_connections_open", &[])
            .unwrap_or(-1.0)
    }

    async fn health(&self) -> u16 {
        let raw = b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        let addr = self.served.addr.to_string();
        match tokio::time::timeout(Duration::from_secs(5), exchange(&addr, raw)).await {
            Ok(answer) => status_code(&answer),
            Err(_) => 0,
        }
    }
}

/// Reads until the gateway closes `stream` (an orderly close or a reset); `None` when it is
/// still open after `limit`. Returns what was read.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Vec<u8>> {
    let mut read = Vec::new();
    match tokio::time::timeout(limit, stream.read_to_end(&mut read)).await {
        Ok(_) => Some(read),
        Err(_) => None,
    }
}

/// Reads one response with a `Content-Length` body off `stream`, leaving the connection open.
async fn read_response(stream: &mut TcpStream) -> Vec<u8> {
    let mut read = Vec::new();
    let mut chunk = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(end) = read.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&read[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .expect("a Content-Length");
            if read.len() >= end + 4 + length {
                return read;
            }
        }
        let n = tokio::time::timeout_at(deadline, stream.read(&mut chunk))
            .await
            .expect("a response within 5 s")
            .expect("read");
        assert_ne!(n, 0, "closed before a whole response: {read:?}");
        read.extend_from_slice(&chunk[..n]);
    }
}

#[tokio::test]
async fn a_half_sent_request_head_is_closed_after_header_read_timeout() {
    let gateway = start("header_read_timeout = \"300ms\"").await;
    let before = gateway.closed_total("header_timeout").await;
    let mut stream = gateway.connect().await;
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("send");
    let sent = Instant::now();
    let answer = closed_within(&mut stream, Duration::from_secs(5))
        .await
        .expect("a half-sent head is closed within 5 s");
    assert!(sent.elapsed() >= Duration::from_millis(250), "closed early");
    assert_eq!(status_code(&answer), 0, "no request was answered");
    assert!(gateway.closed_total("header_timeout").await >= before + 1.0);
    gateway.served.stop().await;
}

#[tokio::test]
async fn a_silent_connection_is_closed_after_header_read_timeout() {
    let gateway = start("header_read_timeout = \"300ms\"").await;
    let mut stream = gateway.connect().await;
    let opened = Instant::now();
    closed_within(&mut stream, Duration::from_secs(5))
        .await
        .expect("a silent connection is closed within 5 s");
    assert!(
        opened.elapsed() >= Duration::from_millis(250),
        "closed early"
    );
    gateway.served.stop().await;
}

#[tokio::test]
async fn an_idle_keep_alive_is_closed_after_idle_timeout() {
    let gateway = start("idle_timeout = \"400ms\"").await;
    let before = gateway.closed_total("idle_timeout").await;
    let mut stream = gateway.connect().await;
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("send");
    assert_eq!(status_code(&read_response(&mut stream).await), 200);
    let answered = Instant::now();
    closed_within(&mut stream, Duration::from_secs(5))
        .await
        .expect("an idle keep-alive is closed within 5 s");
    assert!(
        answered.elapsed() >= Duration::from_millis(350),
        "closed early"
    );
    assert!(gateway.closed_total("idle_timeout").await >= before + 1.0);
    gateway.served.stop().await;
}

/// The header timeout bounds sending a head, not waiting between requests.
#[tokio::test]
async fn a_keep_alive_may_wait_longer_than_the_header_timeout_between_requests() {
    let gateway = start("header_read_timeout = \"200ms\"\nidle_timeout = \"10s\"").await;
    let mut stream = gateway.connect().await;
    let request = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
    stream.write_all(request).await.expect("send");
    assert_eq!(status_code(&read_response(&mut stream).await), 200);
    tokio::time::sleep(Duration::from_millis(600)).await; // longer than the header timeout, on purpose
    stream.write_all(request).await.expect("send again");
    assert_eq!(status_code(&read_response(&mut stream).await), 200);
    gateway.served.stop().await;
}

#[tokio::test]
async fn past_max_connections_the_oldest_idle_one_gives_way_and_health_answers() {
    let gateway = start("max_connections = 4\nheader_read_timeout = \"30s\"").await;
    let before = gateway.closed_total("max_connections").await;
    let mut silent = Vec::new();
    for _ in 0..4 {
        silent.push(gateway.connect().await);
    }
    // The accept loop sees them in order; wait until all four are counted.
    let deadline = Instant::now() + Duration::from_secs(5);
    while gateway.open_connections().await < 4.0 {
        assert!(Instant::now() < deadline, "four connections never counted");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(gateway.health().await, 200, "/health answers at the bound");
    closed_within(&mut silent[0], Duration::from_secs(5))
        .await
        .expect("the oldest silent connection gave way");
    assert!(gateway.closed_total("max_connections").await >= before + 1.0);
    gateway.served.stop().await;
}

#[tokio::test]
async fn past_max_connections_with_every_one_busy_the_new_one_is_closed_unanswered() {
    let gateway = start("max_connections = 2").await;
    let mut busy = Vec::new();
    for _ in 0..2 {
        let mut stream = gateway.connect().await;
        let request = format!(
            "GET /admin/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {VIEWER}\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.expect("send");
        let mut head = [0u8; 12];
        stream
            .read_exact(&mut head)
            .await
            .expect("a streamed answer");
        assert_eq!(&head, b"HTTP/1.1 200");
        busy.push(stream);
    }
    let mut extra = gateway.connect().await;
    // The gateway may close before or after these bytes arrive: a failed write is a close too.
    let _ = extra
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await;
    let answer = closed_within(&mut extra, Duration::from_secs(5))
        .await
        .expect("the extra connection is closed");
    assert_eq!(status_code(&answer), 0, "refused without an answer");
    // The streams in flight were not cut.
    let mut more = [0u8; 1];
    busy[0]
        .read_exact(&mut more)
        .await
        .expect("still streaming");
    drop(busy);
    gateway.served.stop().await;
}

/// The soft and hard "Max open files" of process `pid`.
fn open_files_limits(pid: u32) -> Option<(u64, u64)> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let mut numbers = line
        .split_whitespace()
        .filter_map(|word| word.parse::<u64>().ok());
    Some((numbers.next()?, numbers.next()?))
}

#[tokio::test]
async fn the_gateway_raises_its_descriptor_limit_to_the_hard_one_and_logs_both() {
    let dir = TempDir::new();
    let port = support::ports::free_port();
    let config = dir.0.join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n[store]\nurl = \"sqlite://{}\"\n[health]\ncheck_interval = \"1h\"\n",
            dir.0.join("gateway.db").display()
        ),
    )
    .expect("config");
    let log = dir.0.join("gateway.log");
    let log_file = std::fs::File::create(&log).expect("log");
    // A shell lowers the soft limit, then becomes the gateway (same pid).
    let mut child = std::process::Command::new("sh")
        .args([
            "-c",
            "ulimit -S -n 256 && exec \"$0\" serve --config \"$1\"",
        ])
        .arg(support::gateway_process::BIN)
        .arg(&config)
        .env("BREAKERBOX_LOG", "info")
        .stdout(log_file.try_clone().expect("log"))
        .stderr(log_file)
        .spawn()
        .expect("the gateway starts");
    let pid = child.id();
    let raised = support::wait::eventually(Duration::from_secs(30), || async {
        std::fs::read_to_string(&log).is_ok_and(|text| text.contains("breakerbox is serving"))
    })
    .await;
    let limits = open_files_limits(pid);
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = child.kill();
    let _ = child.wait();
    assert!(raised, "the gateway never served:\n{text}");
    let (soft, hard) = limits.expect("the limits of a running process");
    assert!(
        hard > 256,
        "the hard limit here is {hard}: nothing to raise"
    );
    assert_eq!(soft, hard, "soft limit not raised:\n{text}");
    assert!(
        text.contains("raised the open file descriptor limit")
            && text.contains("256")
            && text.contains(&hard.to_string()),
        "both limits are logged:\n{text}"
    );
}

/// The flood the bound exists for: with a 1,024 descriptor limit, 1,100 silent connections
/// used to starve the gateway until `/health` timed out.
#[tokio::test]
async fn eleven_hundred_silent_connections_under_a_1024_descriptor_limit_leave_health_answering() {
    // This test's own side needs more than 1,100 descriptors.
    let own = rlimit::increase_nofile_limit(4096).expect("descriptor limit");
    assert!(own >= 1_200, "this process may open only {own} descriptors");
    let dir = TempDir::new();
    let port = support::ports::free_port();
    let config = dir.0.join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n[store]\nurl = \"sqlite://{}\"\n[health]\ncheck_interval = \"1h\"\n",
            dir.0.join("gateway.db").display()
        ),
    )
    .expect("config");
    // Soft and hard limit 1,024: the gateway cannot raise it.
    let mut child = std::process::Command::new("sh")
        .args(["-c", "ulimit -n 1024 && exec \"$0\" serve --config \"$1\""])
        .arg(support::gateway_process::BIN)
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the gateway starts");
    let addr = format!("127.0.0.1:{port}");
    let health = || async {
        let raw = b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        match tokio::time::timeout(Duration::from_secs(5), exchange(&addr, raw)).await {
            Ok(answer) => status_code(&answer),
            Err(_) => 0,
        }
    };
    let up = support::wait::eventually(Duration::from_secs(30), || async {
        TcpStream::connect(&addr).await.is_ok()
    })
    .await;
    let mut silent = Vec::new();
    if up {
        for _ in 0..1_100 {
            match TcpStream::connect(&addr).await {
                Ok(stream) => silent.push(stream),
                Err(error) => panic!("connect {}: {error}", silent.len() + 1),
            }
        }
    }
    let status = if up { health().await } else { 0 };
    let _ = child.kill();
    let _ = child.wait();
    assert!(up, "the gateway never listened");
    assert_eq!(status, 200, "/health with 1,100 silent connections open");
}
