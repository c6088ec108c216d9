//! The `breakerbox` binary as operators run it: `check-config`, and `serve` stopped by SIGTERM
//! (drains in-flight calls, keeps the queue) or killed with SIGKILL (loses nothing accepted).

mod proxy_support;
mod support;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;

use proxy_support::TestUpstream;
use support::gateway_process::{BIN, GatewayProcess, Listen, Output};
use support::ports::free_port;
use support::temp_dir::TempDir;
use support::wait::eventually;

fn write_config(dir: &Path, port: u16, upstream: &TestUpstream) -> PathBuf {
    let path = dir.join("breakerbox.toml");
    let text = format!(
        r#"
[server]
listen = "127.0.0.1:{port}"

[store]
url = "sqlite://{db}"

[defaults]
failure_threshold = 1
open_duration = "300ms"
call_timeout = "10s"
retry_budget_percent = 0

[upstreams.echo]
url = "http://{addr}"
fallback = "queue"
"#,
        db = dir.join("gateway.db").display(),
        addr = upstream.addr,
    );
    std::fs::write(&path, text).expect("config written");
    path
}

/// `serve` on `config` (listening on `port`), ready to answer.
async fn serve(config: &Path, port: u16) -> GatewayProcess {
    let env = [("BREAKERBOX_LOG", "warn")];
    GatewayProcess::serve(config, Listen::Port(port), &env, Output::Discard).await
}

fn posts(upstream: &TestUpstream, body: &str) -> usize {
    upstream
        .seen
        .lock()
        .expect("seen")
        .iter()
        .filter(|s| s.method == "POST" && s.body.as_ref() == body.as_bytes())
        .count()
}

#[test]
fn check_config_prints_the_effective_config_or_the_precise_error() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/breakerbox.toml");
    let output = std::process::Command::new(BIN)
        .arg("check-config")
        .arg(&example)
        .output()
        .expect("runs");
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    for preset in [
        "plex",
        "overseerr",
        "uptime-kuma",
        "tmdb",
        "hdbits",
        "qbittorrent",
    ] {
        assert!(
            stdout.contains(&format!("[upstreams.{preset}]")),
            "{preset} in {stdout}"
        );
    }
    assert!(!stdout.contains("demo-admin-token"), "secrets are redacted");

    let dir = TempDir::new();
    let bad = dir.0.join("bad.toml");
    std::fs::write(&bad, "[defaults]\nfailure_rate_threshold = 150\n").expect("write");
    let output = std::process::Command::new(BIN)
        .arg("check-config")
        .arg(&bad)
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("bad.toml"), "{stderr}");
    assert!(
        stderr.contains("defaults.failure_rate_threshold = 150"),
        "{stderr}"
    );
}

#[tokio::test]
async fn sigterm_drains_in_flight_calls_and_keeps_the_queue() {
    let upstream = TestUpstream::start().await;
    let dir = TempDir::new();
    let port = free_port();
    let config = write_config(&dir.0, port, &upstream);
    let mut gateway = serve(&config, port).await;

    // A call in flight when SIGTERM arrives (the upstream takes 5 s to answer).
    let slow = tokio::spawn(reqwest::get(format!("{}/proxy/echo/slow", gateway.base)));
    assert!(
        eventually(Duration::from_secs(5), || async {
            upstream
                .seen
                .lock()
                .expect("seen")
                .iter()
                .any(|s| s.path == "/slow")
        })
        .await,
        "the slow call reached the upstream"
    );
    // A request queued while the upstream fails, not yet replayed at SIGTERM.
    upstream.broken.store(true, SeqCst);
    let queued = reqwest::Client::new()
        .post(format!("{}/proxy/echo/switch", gateway.base))
        .body("kept-across-restart")
        .send()
        .await
        .expect("answer");
    assert_eq!(queued.status(), 202);

    gateway.signal("TERM");
    let answer = slow
        .await
        .expect("task")
        .expect("the in-flight call is answered");
    assert_eq!(answer.status(), 200, "drained, not cut off");
    let status = gateway.wait_exit(Duration::from_secs(20)).await;
    assert!(status.success(), "clean exit, got {status}");

    // Back up with a healthy upstream: the kept request is delivered exactly once.
    // (Failed replay attempts while the upstream was still broken may have reached it; the
    // gateway is gone now, so everything from here on is the restarted one's doing.)
    upstream.broken.store(false, SeqCst);
    let before = posts(&upstream, "kept-across-restart");
    assert!(before >= 1);
    let _gateway = serve(&config, port).await;
    assert!(
        eventually(Duration::from_secs(20), || async {
            posts(&upstream, "kept-across-restart") == before + 1
        })
        .await,
        "replayed after the restart"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        posts(&upstream, "kept-across-restart"),
        before + 1,
        "exactly once"
    );
}

#[tokio::test]
async fn sigkill_loses_no_accepted_request() {
    let upstream = TestUpstream::start().await;
    let dir = TempDir::new();
    let port = free_port();
    let config = write_config(&dir.0, port, &upstream);
    let mut gateway = serve(&config, port).await;
    upstream.broken.store(true, SeqCst);
    let client = reqwest::Client::new();
    let count = 20;
    for i in 0..count {
        let answer = client
            .post(format!("{}/proxy/echo/switch", gateway.base))
            .body(format!("order-{i}"))
            .send()
            .await
            .expect("answer");
        assert_eq!(answer.status(), 202, "request {i} accepted");
    }
    gateway.signal("KILL");
    let status = gateway.wait_exit(Duration::from_secs(5)).await;
    assert!(!status.success());

    upstream.broken.store(false, SeqCst);
    let before: Vec<usize> = (0..count)
        .map(|i| posts(&upstream, &format!("order-{i}")))
        .collect();
    let _gateway = serve(&config, port).await;
    let delivered = |upstream: &TestUpstream| {
        (0..count)
            .filter(|i| posts(upstream, &format!("order-{i}")) > before[*i])
            .count()
    };
    assert!(
        eventually(Duration::from_secs(30), || async {
            delivered(&upstream) == count
        })
        .await,
        "every accepted request replayed after SIGKILL: {} of {count}",
        delivered(&upstream)
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (i, earlier) in before.iter().enumerate() {
        assert_eq!(
            posts(&upstream, &format!("order-{i}")),
            earlier + 1,
            "request {i} replayed exactly once"
        );
    }
}
