//! The real `breakerbox` binary, started on a configuration file in a temporary folder, and
//! read through its admin API, `/metrics` and `/proc`.

use std::collections::BTreeMap;
use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_breakerbox");
pub const ADMIN_TOKEN: &str = "chaos-admin-token";

/// A temporary folder, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let path = std::env::temp_dir().join(format!("breakerbox-chaos-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&path).expect("temp dir");
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A gateway process, killed on drop if still running.
pub struct Gateway {
    child: Child,
    pub base: String,
    pub log: PathBuf,
    client: reqwest::Client,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

impl Gateway {
    /// Writes `config` (with `{listen}` and `{db}` filled in) to `dir` and serves it; returns
    /// once `/health` answers 200.
    pub async fn start(dir: &Path, config: &str) -> Gateway {
        let port = free_port();
        let text = config
            .replace("{listen}", &format!("127.0.0.1:{port}"))
            .replace("{db}", &dir.join("gateway.db").display().to_string());
        let path = dir.join("breakerbox.toml");
        std::fs::write(&path, text).expect("config written");
        let log = dir.join("gateway.log");
        let log_file = std::fs::File::create(&log).expect("log file");
        let mut command = Command::new(BIN);
        // The gateway reads every BREAKERBOX_* variable as a configuration override (the soak's
        // BREAKERBOX_CHAOS_SECS included): it gets the file alone.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("BREAKERBOX_") {
                command.env_remove(name);
            }
        }
        let child = command
            .args(["serve", "--config"])
            .arg(&path)
            .env(
                "BREAKERBOX_LOG",
                std::env::var("CHAOS_GATEWAY_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(log_file.try_clone().expect("log file"))
            .stderr(log_file)
            .spawn()
            .expect("gateway starts");
        let gateway = Gateway {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("client"),
        };
        let mut gateway = gateway;
        let started = Instant::now();
        loop {
            assert!(
                gateway.running(),
                "the gateway exited at start; log: {}",
                gateway.log_text()
            );
            if let Ok(response) = gateway.client.get(gateway.url("/health")).send().await
                && response.status() == 200
            {
                return gateway;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "gateway never became ready; log: {}",
                gateway.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running (it must not crash under chaos).
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `GET` an admin route with the admin token; the JSON body.
    pub async fn admin(&self, path: &str) -> Value {
        let response = self
            .client
            .get(self.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("admin API answers");
        assert_eq!(response.status(), 200, "{path}");
        serde_json::from_slice(&response.bytes().await.expect("admin body")).expect("admin JSON")
    }

    /// One breaker's snapshot (`data` of `GET /admin/breakers/{name}`).
    pub async fn breaker(&self, name: &str) -> Value {
        let body = self.admin(&format!("/admin/breakers/{name}")).await;
        body["data"].clone()
    }

    /// `/health/detailed`.
    pub async fn health_detailed(&self) -> Value {
        let response = self
            .client
            .get(self.url("/health/detailed"))
            .send()
            .await
            .expect("health answers");
        serde_json::from_slice(&response.bytes().await.expect("health body")).expect("health JSON")
    }

    /// `/metrics`, parsed.
    pub async fn metrics(&self) -> Metrics {
        let text = self
            .client
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("metrics answer")
            .text()
            .await
            .expect("metrics text");
        Metrics::parse(&text)
    }
}

/// Samples of the Prometheus text format: name → (labels, value).
pub struct Metrics(Vec<(String, BTreeMap<String, String>, f64)>);

impl Metrics {
    fn parse(text: &str) -> Metrics {
        let mut samples = Vec::new();
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let (series, value) = match line.rsplit_once(' ') {
                Some(pair) => pair,
                None => continue,
            };
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split(',')
                .filter_map(|pair| pair.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.trim_matches('"').to_owned()))
                .collect();
            samples.push((name.to_owned(), labels, value));
        }
        Metrics(samples)
    }

    /// The sum of `name` over the series whose labels include every pair in `having`.
    pub fn sum(&self, name: &str, having: &[(&str, &str)]) -> f64 {
        self.0
            .iter()
            .filter(|(n, labels, _)| {
                n == name
                    && having
                        .iter()
                        .all(|(k, v)| labels.get(*k).is_some_and(|x| x == v))
            })
            .map(|(_, _, value)| value)
            .sum()
    }
}
