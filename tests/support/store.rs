//! Store fixtures: configuration, queued requests, a recording `Deliver`, bounded waiting.

// Real servers and processes run in real time: waiting on them reads the system's clock.
#![allow(clippy::disallowed_methods)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use breakerbox::Breaker;
use breakerbox::config::{self, DATABASE_BREAKER, StoreConfig};
use breakerbox::fallback::{Deliver, Delivery, QueueStatus, QueuedRequest};
use breakerbox::store::{Store, StoreOptions};
use bytes::Bytes;
use futures_util::future::BoxFuture;
use uuid::Uuid;

use super::wait::wait_until;

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
    open_with(url, StoreOptions::default()).await
}

/// [`open`] with `options`.
pub async fn open_with(url: &str, options: StoreOptions) -> Store {
    let config = store_config(url);
    Store::connect_with(&config, database_breaker(&config), options)
        .await
        .expect("open the SQLite store")
}

/// Finished requests are pruned beyond the newest `keep` and past the retention; pending ones
/// never are. `connect` opens the same database with the options it is given.
pub async fn check_finished_pruning<F, Fut>(connect: F)
where
    F: Fn(StoreOptions) -> Fut,
    Fut: Future<Output = Store>,
{
    let keep = 3;
    let store = connect(StoreOptions::default().finished_keep(keep)).await;
    let reqs: Vec<_> = (0..7).map(|n| request("pruned", n)).collect();
    for r in &reqs {
        store.enqueue(r.clone()).await.expect("enqueue");
    }
    let mut finished = Vec::new();
    for _ in 0..5 {
        let r = store
            .claim_next("pruned")
            .await
            .expect("claim")
            .expect("one");
        store
            .finish(r.id, &QueueStatus::Delivered { status: 200 }, 1)
            .await
            .expect("finish");
        finished.push(r.id);
    }
    // Within the retention: only the finished requests beyond the newest `keep` go.
    assert_eq!(store.prune_finished().await.expect("prune"), 2);
    assert_eq!(store.prune_finished().await.expect("prune again"), 0);
    let listed: Vec<Uuid> = store
        .queue_entries(100)
        .await
        .iter()
        .map(|r| r.id)
        .collect();
    let mut expected: Vec<Uuid> = finished[2..].to_vec();
    expected.extend(reqs[5..].iter().map(|r| r.id));
    assert_eq!(
        listed, expected,
        "the newest finished ones and the pending ones, in id order"
    );

    // Past a 1 ms retention every finished request goes; the pending ones stay, in order.
    let short = connect(StoreOptions::default().finished_retention(Duration::from_millis(1))).await;
    let probe = short.clone();
    wait_until("finished requests pruned", Duration::from_secs(10), || {
        let store = probe.clone();
        async move {
            store.prune_finished().await.expect("prune");
            store.queue_entries(100).await.len() == 2
        }
    })
    .await;
    let pending: Vec<Uuid> = short
        .queue_entries(100)
        .await
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(pending, vec![reqs[5].id, reqs[6].id]);
    assert_eq!(short.queue_depth().await.pending["pruned"], 2);
    let next = short
        .claim_next("pruned")
        .await
        .expect("claim")
        .expect("one");
    assert_eq!(next.id, reqs[5].id);
}
