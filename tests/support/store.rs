//! Store fixtures: configuration, queued requests, a recording `Deliver`, bounded waiting.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use breakerbox::Breaker;
use breakerbox::config::{self, DATABASE_BREAKER, StoreConfig};
use breakerbox::fallback::{Deliver, Delivery, QueueStatus, QueuedRequest};
use breakerbox::store::Store;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use uuid::Uuid;

/// `[store]` for `url`: trips after 1 failure, probes again after 200 ms, 2 s per call.
pub fn store_config(url: &str) -> StoreConfig {
    let text = format!(
        "[store]\nurl = {url:?}\nfailure_threshold = 1\nopen_duration = \"200ms\"\n\
         call_timeout = \"2s\"\n"
    );
    let no_env = std::iter::empty::<(String, String)>();
    config::load_from_str(&text, "store-test.toml", no_env)
        .expect("valid store config")
        .store
}

/// The `database` breaker for `config`.
pub fn database_breaker(config: &StoreConfig) -> Arc<Breaker> {
    Arc::new(Breaker::new(DATABASE_BREAKER, config.breaker.clone()))
}

/// A pending POST for `upstream`, numbered `n` in its path.
pub fn request(upstream: &str, n: usize) -> QueuedRequest {
    QueuedRequest {
        id: Uuid::now_v7(),
        upstream: upstream.to_owned(),
        method: "POST".to_owned(),
        path_and_query: format!("/api/v2/torrents/add?n={n}"),
        headers: vec![
            ("content-type".to_owned(), b"application/json".to_vec()),
            ("x-binary".to_owned(), vec![0, 159, 255]),
        ],
        body: Bytes::from(format!("{{\"n\":{n}}}")),
        enqueued_at: SystemTime::now(),
        attempts: 0,
        status: QueueStatus::Pending,
    }
}

/// A `Deliver` that records every request it is handed and answers from a script (then 200).
#[derive(Debug, Default)]
pub struct Recorder {
    seen: Mutex<Vec<QueuedRequest>>,
    script: Mutex<Vec<Delivery>>,
}

impl Recorder {
    /// Answers the next attempts with `script`, in order, then `Delivered { 200 }`.
    pub fn scripted(script: Vec<Delivery>) -> Arc<Recorder> {
        let mut script = script;
        script.reverse();
        Arc::new(Recorder {
            seen: Mutex::new(Vec::new()),
            script: Mutex::new(script),
        })
    }

    /// Ids of every request handed over, in order.
    pub fn ids(&self) -> Vec<Uuid> {
        self.seen
            .lock()
            .expect("lock")
            .iter()
            .map(|r| r.id)
            .collect()
    }

    /// Every request handed over, in order.
    pub fn seen(&self) -> Vec<QueuedRequest> {
        self.seen.lock().expect("lock").clone()
    }
}

impl Deliver for Recorder {
    fn deliver<'a>(&'a self, request: &'a QueuedRequest) -> BoxFuture<'a, Delivery> {
        self.seen.lock().expect("lock").push(request.clone());
        let answer = self.script.lock().expect("lock").pop();
        Box::pin(async move { answer.unwrap_or(Delivery::Delivered { status: 200 }) })
    }
}

/// A store on the SQLite database at `url`, guarded by its own `database` breaker.
pub async fn open(url: &str) -> Store {
    let config = store_config(url);
    Store::connect(&config, database_breaker(&config))
        .await
        .expect("open the SQLite store")
}
