//! A gateway on 127.0.0.1 for the metrics tests, started from a configuration file (so hot
//! reload runs for real); the Prometheus parser the tests read it with is `support::prometheus`.

#![allow(dead_code, unreachable_pub)]

pub mod expect;

use std::path::PathBuf;
use std::sync::Arc;

use breakerbox::config;
use breakerbox::gateway::Gateway;

pub use crate::support::prometheus::{Labels, Scrape, labels_of};
use crate::support::served::ServedGateway;
use crate::support::temp_dir::TempDir;

/// A running gateway; stopped on [`Running::stop`].
pub struct Running {
    pub base: String,
    pub gateway: Arc<Gateway>,
    pub config_path: PathBuf,
    served: ServedGateway,
    dir: TempDir,
}

/// The configuration file's text: a SQLite store in `dir`, the `[upstreams.*]` tables given.
pub fn settings(dir: &std::path::Path, upstreams: &str) -> String {
    format!(
        r#"
[store]
url = "sqlite://{db}"

[health]
check_interval = "1h"

{upstreams}
"#,
        db = dir.join("gateway.db").display(),
    )
}

impl Running {
    /// Writes `upstreams` into a fresh configuration file and serves it on 127.0.0.1:0.
    pub async fn start(upstreams: &str) -> Self {
        let dir = TempDir::new();
        let config_path = dir.0.join("breakerbox.toml");
        std::fs::write(&config_path, settings(&dir.0, upstreams)).expect("config written");
        let config = config::load(&config_path).expect("valid config");
        let served = ServedGateway::start(config, Some(config_path.clone())).await;
        Running {
            base: served.base(),
            gateway: Arc::clone(&served.gateway),
            config_path,
            served,
            dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends `method path` and answers the status and the `X-Breakerbox-Fallback` header.
    pub async fn send(&self, method: &str, path: &str) -> (u16, Option<String>) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let response = reqwest::Client::new()
            .request(method, self.url(path))
            .send()
            .await
            .expect("gateway answers");
        let fallback = response
            .headers()
            .get("x-breakerbox-fallback")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        (response.status().as_u16(), fallback)
    }

    /// `GET /metrics`: the content type and the body.
    pub async fn scrape_raw(&self) -> (String, String) {
        let response = reqwest::get(self.url("/metrics"))
            .await
            .expect("metrics answer");
        assert_eq!(response.status().as_u16(), 200);
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        (content_type, response.text().await.expect("body"))
    }

    /// `GET /metrics`, parsed.
    pub async fn scrape(&self) -> Scrape {
        Scrape::parse(&self.scrape_raw().await.1)
    }

    /// Rewrites the configuration file (the watcher reloads it within a second or so).
    pub fn rewrite_config(&self, text: &str) {
        std::fs::write(&self.config_path, text).expect("config rewritten");
    }

    pub fn dir(&self) -> &std::path::Path {
        &self.dir.0
    }

    pub async fn stop(self) {
        self.served.stop().await;
    }
}
