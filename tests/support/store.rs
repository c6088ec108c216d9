//! Store fixtures: configuration, queued requests, a recording `Deliver`, bounded waiting.

// Real servers and processes run in real time: waiting on them reads the system's clock.
#![allow(clippy::disallowed_methods)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use breakerbox::Breaker;
use breakerbox::config::{self, DATABASE_BREAKER, StoreConfig};
use breakerbox::fallback::{
    CachedResponse, Deliver, Delivery, Durability, QueueBounds, QueueError, QueueStatus,
    QueuedRequest,
};
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

/// [`open_with`] taking its URL by value, for closures that open the same database again.
pub async fn open_with_owned(url: String, options: StoreOptions) -> Store {
    open_with(&url, options).await
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

/// A cached response of `tmdb` for `path`, stored `age` ago, with a 100-byte body.
pub fn cached(path: &str, age: Duration) -> CachedResponse {
    CachedResponse {
        upstream: "tmdb".into(),
        path_and_query: path.into(),
        status: 200,
        headers: vec![("content-type".into(), b"text/plain".to_vec())],
        body: Bytes::from(vec![b'x'; 100]),
        stored_at: SystemTime::now() - age,
    }
}

/// The cache table is pruned past each upstream's TTL, then beyond its bounds, least recently
/// used first (a read counts as a use). `connect` opens the same, empty database.
pub async fn check_cache_pruning<F, Fut>(connect: F)
where
    F: Fn(StoreOptions) -> Fut,
    Fut: Future<Output = Store>,
{
    let one = cached("/0", Duration::ZERO).size() as u64;
    let store = connect(StoreOptions::default().cache_max(3, 100 * one)).await;
    let ttl = [("tmdb".to_owned(), Duration::from_secs(3600))];
    for n in 0..5 {
        store
            .put_cached(&cached(&format!("/{n}"), Duration::ZERO))
            .await
            .expect("put");
        // Uses are told apart by the millisecond.
        let before = SystemTime::now();
        wait_until(
            "the clock moves on",
            Duration::from_secs(1),
            || async move {
                SystemTime::now()
                    .duration_since(before)
                    .is_ok_and(|d| d >= Duration::from_millis(2))
            },
        )
        .await;
    }
    assert!(store.get_cached("tmdb", "/0").await.expect("get").is_some());
    assert_eq!(store.prune_cache(&ttl).await.expect("prune"), 2);
    let kept = |store: Store| async move {
        let mut kept = Vec::new();
        for n in 0..6 {
            let path = format!("/{n}");
            if store
                .get_cached("tmdb", &path)
                .await
                .expect("get")
                .is_some()
            {
                kept.push(path);
            }
        }
        kept
    };
    assert_eq!(kept(store.clone()).await, ["/0", "/3", "/4"], "/0 was read");

    // By bytes: room for two.
    let store = connect(StoreOptions::default().cache_max(100, 2 * one)).await;
    assert_eq!(store.prune_cache(&ttl).await.expect("prune"), 1);
    assert_eq!(kept(store.clone()).await.len(), 2);

    // Past the TTL.
    store
        .put_cached(&cached("/5", Duration::from_secs(7200)))
        .await
        .expect("put");
    assert_eq!(store.prune_cache(&ttl).await.expect("prune"), 1);
    assert!(store.get_cached("tmdb", "/5").await.expect("get").is_none());
}

/// The queue's bounds, per upstream and gateway-wide, hold against what is pending; a finished
/// request frees its room; a store opened again counts what is pending already; the listing
/// pages by id. `connect` opens the same, empty database.
pub async fn check_queue_bounds<F, Fut>(connect: F)
where
    F: Fn(StoreOptions) -> Fut,
    Fut: Future<Output = Store>,
{
    let options = || StoreOptions::default().queue_max(4, 1_000_000);
    let store = connect(options()).await;
    let own = QueueBounds {
        max_requests: 3,
        max_bytes: 1_000_000,
    };
    let a: Vec<_> = (0..3).map(|n| request("a", n)).collect();
    for r in &a {
        assert_eq!(
            store.enqueue_within(r.clone(), own).await,
            Ok(Durability::Stored)
        );
    }
    let refused = store.enqueue_within(request("a", 3), own).await;
    assert!(
        matches!(&refused, Err(QueueError::OverLimit { bound }) if bound.contains("queue_max_requests = 3")),
        "{refused:?}"
    );
    store.enqueue(request("b", 0)).await.expect("room in all");
    let refused = store.enqueue(request("b", 1)).await;
    assert!(
        matches!(&refused, Err(QueueError::OverLimit { bound }) if bound.contains("queue_max_requests = 4")),
        "{refused:?}"
    );
    let first = store.claim_next("a").await.expect("claim").expect("one");
    store
        .finish(first.id, &QueueStatus::Delivered { status: 200 }, 1)
        .await
        .expect("finish");
    assert_eq!(
        store.enqueue_within(request("a", 9), own).await,
        Ok(Durability::Stored),
        "the finished request's room is free again"
    );

    // Five rows (one finished), two pages, each once, in id order.
    let page = store.queue_listing(None, 3).await;
    assert!(page.complete);
    let rest = store.queue_listing(page.next, 3).await;
    assert_eq!(
        (page.entries.len(), rest.entries.len(), rest.next),
        (3, 2, None)
    );
    let ids: Vec<Uuid> = page
        .entries
        .iter()
        .chain(&rest.entries)
        .map(|e| e.id)
        .collect();
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(ids, sorted);
    assert_eq!(page.entries[0].body_bytes, a[0].body.len() as u64);
    assert!(store.size_bytes().await.expect("size") > 0);

    // Opened again, the store counts the four pending requests left: the gateway is full.
    let again = connect(options()).await;
    let refused = again.enqueue(request("b", 2)).await;
    assert!(
        matches!(refused, Err(QueueError::OverLimit { .. })),
        "{refused:?}"
    );
}
