//! The real `breakerbox` binary, started on a configuration file in a temporary folder, and
//! read through its admin API, `/metrics` and `/proc`.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use super::support::gateway_process::{GatewayProcess, Listen, Output};
use super::support::ports::free_port;
use super::support::prometheus::Scrape;
pub use super::support::temp_dir::TempDir;

pub const ADMIN_TOKEN: &str = "chaos-admin-token";

/// A gateway process (killed on drop if still running) and a client for its API.
pub struct Gateway {
    process: GatewayProcess,
    pub base: String,
    client: reqwest::Client,
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
        let level = std::env::var("CHAOS_GATEWAY_LOG").unwrap_or_else(|_| "warn".into());
        let env = [("BREAKERBOX_LOG", level.as_str())];
        let output = Output::Combined(dir.join("gateway.log"));
        let process = GatewayProcess::serve(&path, Listen::Port(port), &env, output).await;
        Gateway {
            base: process.base.clone(),
            process,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("client"),
        }
    }

    pub fn url(&self, path: &str) -> String {
        self.process.url(path)
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Whether the process is still running (it must not crash under chaos).
    pub fn running(&mut self) -> bool {
        self.process.running()
    }

    pub fn log_text(&self) -> String {
        self.process.log_text()
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

/// One `/metrics` scrape, summed over series for the chaos checks.
pub struct Metrics(Scrape);

impl Metrics {
    fn parse(text: &str) -> Metrics {
        Metrics(Scrape::parse(text))
    }

    /// The sum of `name` over the series whose labels include every pair in `having`.
    pub fn sum(&self, name: &str, having: &[(&str, &str)]) -> f64 {
        self.0
            .samples
            .iter()
            .filter(|((n, labels), _)| {
                n == name
                    && having
                        .iter()
                        .all(|(k, v)| labels.get(*k).is_some_and(|x| x == v))
            })
            .map(|(_, value)| value)
            .sum()
    }
}
