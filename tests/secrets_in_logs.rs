//! Secrets never reach the logs: the `breakerbox` binary runs at the most verbose level
//! (`BREAKERBOX_LOG=trace`, a superset of debug) in both log formats, is sent right, wrong and
//! viewer tokens on admin and proxy routes, and neither stdout nor stderr may contain a token.
//! At the default level (`info`) the same run logs no per-request span: recording one formats
//! its fields on every request.
//! Runtime: three gateway starts, about 2 s each (readiness is polled, up to 20 s).

mod proxy_support;
mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use proxy_support::TestUpstream;
use support::gateway_process::{BIN, GatewayProcess, Listen, Output};
use support::ports::free_port;
use support::temp_dir::TempDir;

const ADMIN: &str = "adm-7f3c9e1b5d2a4c6e8f0a1b3c";
const VIEWER: &str = "vw-2b4d6f8a0c1e3a5c7e9b1d3f";
const WRONG: &str = "wr-9e8d7c6b5a4f3e2d1c0b9a8f";
const UPSTREAM_SECRET: &str = "up-5a6b7c8d9e0f1a2b3c4d5e6f";

fn write_config(dir: &Path, port: u16, upstream: &TestUpstream) -> PathBuf {
    let path = dir.join("breakerbox.toml");
    let text = format!(
        r#"
[server]
listen = "127.0.0.1:{port}"

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

[upstreams.echo]
url = "http://{addr}"
"#,
        db = dir.join("gateway.db").display(),
        addr = upstream.addr,
    );
    std::fs::write(&path, text).expect("config written");
    path
}

/// Every request shape that carries a token: admin reads and actions with each token, a token
/// in odd spelling, and a proxied call whose Authorization goes to the upstream.
async fn exercise(base: &str) -> Vec<u16> {
    let client = reqwest::Client::new();
    let mut statuses = Vec::new();
    for token in [ADMIN, VIEWER, WRONG] {
        let requests = [
            client.get(format!("{base}/admin/breakers")),
            client.get(format!("{base}/admin/breakers/echo")),
            client.post(format!("{base}/admin/breakers/echo/reset")),
            client.get(format!("{base}/proxy/echo/items")),
        ];
        for request in requests {
            let response = request.bearer_auth(token).send().await.expect("answers");
            statuses.push(response.status().as_u16());
        }
    }
    let odd = client
        .get(format!("{base}/admin/breakers"))
        .header("authorization", format!("bearer   {ADMIN}  "))
        .send()
        .await
        .expect("answers");
    statuses.push(odd.status().as_u16());
    let proxied = client
        .get(format!("{base}/proxy/echo/secret"))
        .bearer_auth(UPSTREAM_SECRET)
        .send()
        .await
        .expect("answers");
    statuses.push(proxied.status().as_u16());
    statuses
}

/// Failing calls until the breaker turns them away: its trip is logged inside a request.
async fn trip(base: &str) {
    let client = reqwest::Client::new();
    for _ in 0..200 {
        let response = client
            .get(format!("{base}/proxy/echo/fail"))
            .send()
            .await
            .expect("answers");
        if response.status().as_u16() == 503 {
            return;
        }
    }
    panic!("the breaker never opened");
}

/// Runs the gateway at `level` with `format` (`None`: human-readable) and returns everything
/// it printed.
async fn logs_of_a_run(level: &str, format: Option<&str>) -> String {
    let upstream = TestUpstream::start().await;
    let dir = TempDir::new();
    let port = free_port();
    let config = write_config(&dir.0, port, &upstream);
    let output = Output::Split(dir.0.join("stdout.log"), dir.0.join("stderr.log"));
    let mut env = vec![("BREAKERBOX_LOG", level)];
    if let Some(format) = format {
        env.push(("BREAKERBOX_LOG_FORMAT", format));
    }
    let mut gateway = GatewayProcess::serve(&config, Listen::Port(port), &env, output).await;
    let statuses = exercise(&gateway.base).await;
    assert_eq!(
        statuses,
        [
            200, 200, 200, 200, 200, 200, 403, 200, 401, 401, 401, 200, 200, 200
        ],
        "admin acts, viewer reads, a wrong token gets 401; proxied calls pass"
    );
    assert!(
        upstream.seen().iter().any(|s| s
            .headers
            .get("authorization")
            .is_some_and(|v| v.as_bytes() == format!("Bearer {UPSTREAM_SECRET}").as_bytes())),
        "the proxied Authorization reached the upstream (so it went through the logged path)"
    );
    trip(&gateway.base).await;
    // SIGTERM: the gateway drains and flushes its logs.
    gateway.signal("TERM");
    gateway.wait_exit(Duration::from_secs(20)).await;
    gateway.log_text()
}

fn assert_no_secret(logs: &str, format: &str) {
    // The logs are really verbose (so the check means something): per-request spans are in.
    assert!(logs.contains("breakerbox is serving"), "{format}: {logs}");
    assert!(
        logs.contains("/proxy/echo"),
        "{format}: request spans are logged"
    );
    assert!(logs.lines().count() > 20, "{format}: trace level is on");
    for secret in [ADMIN, VIEWER, WRONG, UPSTREAM_SECRET] {
        // Also a fragment, in case a line were cut or a value partly masked.
        for needle in [secret, &secret[..12]] {
            if let Some(line) = logs.lines().find(|line| line.contains(needle)) {
                panic!("{format}: a token reached the logs: {line}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_never_reach_the_logs_in_either_format() {
    let human = logs_of_a_run("trace", None).await;
    assert_no_secret(&human, "human");
    let json = logs_of_a_run("trace", Some("json")).await;
    assert!(
        json.lines()
            .filter(|l| !l.trim().is_empty())
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()),
        "json format prints JSON lines"
    );
    assert_no_secret(&json, "json");
}

#[test]
fn check_config_never_prints_a_token() {
    let dir = TempDir::new();
    let good = dir.0.join("good.toml");
    std::fs::write(
        &good,
        format!("[[admin.tokens]]\nname = \"ops\"\ntoken = \"{ADMIN}\"\nrole = \"admin\"\n"),
    )
    .expect("write");
    let broken = [
        format!("[[admin.tokens]]\nname = \"ops\"\ntoken = \"{ADMIN}\" junk\n"),
        format!("[[admin.tokens]]\nname = \"ops\"\ntoken = \"{ADMIN}\n"),
        format!("[admin]\ntokens = [{{ name = \"ops\", token = \"{ADMIN}\" role = \"admin\" }}]\n"),
        format!("[[admin.tokens]]\nname = \"ops\"\ntoken = \"\"\"\n{ADMIN}\n"),
        format!("[store]\nurl = \"postgres://app:{ADMIN}@127.0.0.1/db\n"),
        format!("[store]\nurl = \"postgres://app:{ADMIN}@127.0.0.1/db\" x\n"),
    ];
    let mut files = vec![good];
    for (i, text) in broken.iter().enumerate() {
        let path = dir.0.join(format!("broken-{i}.toml"));
        std::fs::write(&path, text).expect("write");
        files.push(path);
    }
    for (i, file) in files.iter().enumerate() {
        let output = std::process::Command::new(BIN)
            .arg("check-config")
            .arg(file)
            .output()
            .expect("runs");
        assert_eq!(output.status.success(), i == 0, "{}", file.display());
        let printed = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(!printed.trim().is_empty());
        assert!(
            !printed.contains(&ADMIN[..12]),
            "{}: the secret was printed: {printed}",
            file.display()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_spans_stay_out_of_the_logs_at_info() {
    let logs = logs_of_a_run("info", None).await;
    assert!(logs.contains("breakerbox is serving"), "{logs}");
    assert!(
        logs.contains("operator action"),
        "info events are in: {logs}"
    );
    for span_field in [
        "/proxy/echo",
        "http.request.method",
        "breakerbox.breaker.state",
    ] {
        assert!(
            !logs.contains(span_field),
            "no request span at info ({span_field}): {logs}"
        );
    }
}
