//! A gateway on 127.0.0.1 for the metrics tests, started from a configuration file (so hot
//! reload runs for real), and a parser of the Prometheus text format the tests read it with.

#![allow(dead_code, unreachable_pub)]

pub mod expect;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use breakerbox::config;
use breakerbox::gateway::{self, Gateway};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::support::temp_dir::TempDir;

/// A running gateway; stopped on [`Running::stop`].
pub struct Running {
    pub base: String,
    pub gateway: Arc<Gateway>,
    pub config_path: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    served: tokio::task::JoinHandle<()>,
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
        let gateway = Gateway::start(config, Some(config_path.clone()))
            .await
            .expect("starts");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let (stop, stopped) = oneshot::channel::<()>();
        let serving = gateway::serve(Arc::clone(&gateway), listener, async move {
            let _ = stopped.await;
        });
        let served = tokio::spawn(async move {
            serving.await.expect("serve ends cleanly");
        });
        Running {
            base,
            gateway,
            config_path,
            stop: Some(stop),
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

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let served = std::mem::replace(&mut self.served, tokio::spawn(async {}));
        served.await.expect("served");
    }
}

/// Label name → value.
pub type Labels = BTreeMap<String, String>;

/// One scrape: every sample by metric name and labels, and every `# TYPE`.
#[derive(Debug, Default)]
pub struct Scrape {
    pub samples: BTreeMap<(String, Labels), f64>,
    pub types: BTreeMap<String, String>,
}

impl Scrape {
    /// Parses the classic text format (as much of it as the exporter writes).
    pub fn parse(text: &str) -> Self {
        let mut scrape = Scrape::default();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("TYPE line");
                scrape.types.insert(name.to_owned(), kind.to_owned());
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').expect("sample line");
            let value: f64 = value.parse().expect("sample value");
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, parse_labels(rest.strip_suffix('}').expect("}"))),
                None => (series, Labels::new()),
            };
            let previous = scrape.samples.insert((name.to_owned(), labels), value);
            assert!(previous.is_none(), "duplicate series: {line}");
        }
        scrape
    }

    /// The value of `name{labels}`, if present.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples
            .get(&(name.to_owned(), labels_of(labels)))
            .copied()
    }

    /// Every sample whose labels include `breaker="name"`.
    pub fn of_breaker(&self, breaker: &str) -> BTreeMap<(String, Labels), f64> {
        self.samples
            .iter()
            .filter(|((_, labels), _)| labels.get("breaker").map(String::as_str) == Some(breaker))
            .map(|(key, value)| (key.clone(), *value))
            .collect()
    }
}

pub fn labels_of(labels: &[(&str, &str)]) -> Labels {
    labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn parse_labels(text: &str) -> Labels {
    let mut labels = Labels::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"").expect("label key");
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next().expect("closing quote") {
                (i, '"') => break i,
                (_, '\\') => match chars.next().expect("escape").1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                (_, c) => value.push(c),
            }
        };
        labels.insert(key.trim_start_matches(',').to_owned(), value);
        rest = &after[end + 1..];
    }
    labels
}
