//! Hot reload against a real `breakerbox serve` process and its real configuration file: a file
//! emptied or written slowly in place never takes the gateway down, and a file replaced by
//! rename applies at once.
//! Runtime: three gateway starts, a few seconds each.

// Real processes and files run in real time: a slow writer's pauses and a reload's latency are
// measured on the system's clock.
#![allow(clippy::disallowed_methods)]

mod proxy_support;
mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use proxy_support::TestUpstream;
use support::gateway_process::{GatewayProcess, Listen, Output};
use support::ports::free_port;
use support::prometheus::Scrape;
use support::temp_dir::TempDir;
use support::wait::wait_until;

const ADMIN: &str = "adm-4e1f9a7c2b8d6e3f0a5c";
const LIMIT: Duration = Duration::from_secs(15);

/// A configuration with `upstreams` (name, address), all on loopback.
fn text(dir: &Path, port: u16, upstreams: &[(&str, &TestUpstream)]) -> String {
    let mut text = format!(
        r#"[server]
listen = "127.0.0.1:{port}"

[store]
url = "sqlite://{db}"

[[admin.tokens]]
name = "ops"
token = "{ADMIN}"
role = "admin"

[health]
check_interval = "1h"
"#,
        db = dir.join("gateway.db").display(),
    );
    for (name, upstream) in upstreams {
        text.push_str(&format!(
            "\n[upstreams.{name}]\nurl = \"http://{}\"\n",
            upstream.addr
        ));
    }
    text
}

struct Running {
    gateway: GatewayProcess,
    file: PathBuf,
    dir: TempDir,
    port: u16,
    client: reqwest::Client,
}

impl Running {
    async fn start(upstreams: &[(&str, &TestUpstream)]) -> Running {
        let dir = TempDir::new();
        let port = free_port();
        let file = dir.0.join("breakerbox.toml");
        std::fs::write(&file, text(&dir.0, port, upstreams)).expect("config written");
        let output = Output::Combined(dir.0.join("gateway.log"));
        let env = [("BREAKERBOX_LOG", "info")];
        let gateway = GatewayProcess::serve(&file, Listen::Port(port), &env, output).await;
        Running {
            gateway,
            file,
            dir,
            port,
            client: reqwest::Client::new(),
        }
    }

    fn text(&self, upstreams: &[(&str, &TestUpstream)]) -> String {
        text(&self.dir.0, self.port, upstreams)
    }

    async fn status(&self, path: &str) -> u16 {
        self.client
            .get(format!("{}{path}", self.gateway.base))
            .bearer_auth(ADMIN)
            .send()
            .await
            .expect("answers")
            .status()
            .as_u16()
    }

    /// `breakerbox_config_reloads_total{result}` (0 before the first).
    async fn reloads(&self, result: &str) -> f64 {
        let body = self
            .client
            .get(format!("{}/metrics", self.gateway.base))
            .bearer_auth(ADMIN)
            .send()
            .await
            .expect("answers")
            .text()
            .await
            .expect("body");
        Scrape::parse(&body)
            .get("breakerbox_config_reloads_total", &[("result", result)])
            .unwrap_or(0.0)
    }

    /// Replaces the file by rename, as editors and configuration tools do.
    fn replace(&self, text: &str) {
        let next = self.dir.0.join("breakerbox.toml.next");
        std::fs::write(&next, text).expect("written");
        std::fs::rename(&next, &self.file).expect("renamed");
    }

    async fn stop(mut self) -> String {
        self.gateway.signal("TERM");
        self.gateway.wait_exit(LIMIT).await;
        self.gateway.log_text()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_file_written_over_a_good_one_is_refused_and_the_gateway_keeps_serving() {
    let echo = TestUpstream::start().await;
    let gw = Running::start(&[("echo", &echo)]).await;
    assert_eq!(gw.status("/proxy/echo/items").await, 200);
    assert_eq!(gw.status("/admin/breakers").await, 200);

    // Truncated in place, as `> breakerbox.toml` or a crashed editor leaves it.
    std::fs::write(&gw.file, "").expect("emptied");
    wait_until("the empty file's reload to be refused", LIMIT, || async {
        gw.reloads("failure").await >= 1.0
    })
    .await;
    assert_eq!(gw.reloads("success").await, 0.0);
    assert_eq!(gw.status("/proxy/echo/items").await, 200, "upstreams kept");
    assert_eq!(gw.status("/admin/breakers").await, 200, "tokens kept");

    // A file that keeps the tokens but drops every upstream is refused as well.
    let mut no_upstreams = gw.text(&[]);
    no_upstreams.push('\n');
    gw.replace(&no_upstreams);
    wait_until(
        "the upstream-less file's reload to be refused",
        LIMIT,
        || async { gw.reloads("failure").await >= 2.0 },
    )
    .await;
    assert_eq!(gw.status("/proxy/echo/items").await, 200, "upstreams kept");

    let logs = gw.stop().await;
    assert!(
        logs.contains("would remove every upstream"),
        "the log says why: {logs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_written_slowly_in_place_is_applied_once_whole() {
    let echo = TestUpstream::start().await;
    let other = TestUpstream::start().await;
    let gw = Running::start(&[("echo", &echo)]).await;
    assert_eq!(gw.status("/proxy/other/items").await, 404);

    // A writer that pauses between pieces (shorter than the settle time), for longer than
    // the watcher takes to look: every state in between is a partial file.
    let whole = gw.text(&[("echo", &echo), ("other", &other)]);
    let pieces = 24;
    let size = whole.len().div_ceil(pieces);
    let mut file = std::fs::File::create(&gw.file).expect("truncated");
    for piece in whole.as_bytes().chunks(size) {
        file.write_all(piece).expect("written");
        file.flush().expect("flushed");
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    drop(file);

    wait_until("the whole file to apply", LIMIT, || async {
        gw.status("/proxy/other/items").await == 200
    })
    .await;
    assert_eq!(gw.reloads("success").await, 1.0, "applied once");
    assert_eq!(gw.reloads("failure").await, 0.0, "no partial file was read");
    assert_eq!(gw.status("/proxy/echo/items").await, 200);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_replaced_by_rename_applies_at_once() {
    let echo = TestUpstream::start().await;
    let other = TestUpstream::start().await;
    let gw = Running::start(&[("echo", &echo)]).await;
    let with_other = gw.text(&[("echo", &echo), ("other", &other)]);
    let without = gw.text(&[("echo", &echo)]);
    let mut latencies = Vec::new();
    for round in 0..5 {
        let (text, expected) = if round % 2 == 0 {
            (&with_other, 200)
        } else {
            (&without, 404)
        };
        let started = Instant::now();
        gw.replace(text);
        wait_until("the renamed file to apply", LIMIT, || async {
            gw.status("/proxy/other/items").await == expected
        })
        .await;
        latencies.push(started.elapsed());
    }
    // Well under the settle time plus a one-second poll: a rename is applied as soon as seen.
    let slowest = latencies.iter().max().copied().unwrap_or_default();
    assert!(
        slowest < Duration::from_millis(500),
        "reload latencies after a rename: {latencies:?}"
    );
    assert_eq!(gw.reloads("success").await, 5.0);
    let logs = gw.stop().await;
    println!("reload latencies after a rename: {latencies:?}");
    assert!(logs.contains("configuration reloaded"), "{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_without_admin_tokens_serves_and_warns() {
    let echo = TestUpstream::start().await;
    let dir = TempDir::new();
    let port = free_port();
    let file = dir.0.join("breakerbox.toml");
    let without_tokens = text(&dir.0, port, &[("echo", &echo)]).replace(
        &format!("[[admin.tokens]]\nname = \"ops\"\ntoken = \"{ADMIN}\"\nrole = \"admin\"\n"),
        "",
    );
    assert!(!without_tokens.contains("admin.tokens"));
    std::fs::write(&file, without_tokens).expect("config written");
    let output = Output::Combined(dir.0.join("gateway.log"));
    let env = [("BREAKERBOX_LOG", "info")];
    let mut gateway = GatewayProcess::serve(&file, Listen::Port(port), &env, output).await;
    let proxied = reqwest::get(format!("{}/proxy/echo/items", gateway.base))
        .await
        .expect("answers");
    assert_eq!(proxied.status().as_u16(), 200);
    gateway.signal("TERM");
    gateway.wait_exit(LIMIT).await;
    let logs = gateway.log_text();
    assert!(
        logs.lines()
            .any(|l| l.contains("WARN") && l.contains("no admin token is configured")),
        "{logs}"
    );
}
