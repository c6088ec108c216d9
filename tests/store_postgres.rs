//! The store on a real PostgreSQL (Debian's server, started by the test): claims shared by two
//! replicas, an outage in the middle of a run, and a database that is down at start.

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use breakerbox::config::{StoreConfig, StoreKind};
use breakerbox::fallback::queue::RequestQueue;
use breakerbox::fallback::{CacheStore, CachedResponse, Durability, QueueStatus};
use breakerbox::store::{Store, StoreOptions};
use breakerbox::{Breaker, BreakerConfig};
use bytes::Bytes;
use support::postgres::PgServer;
use support::store::{Recorder, database_breaker, request, store_config};
use support::wait::wait_until;
use uuid::Uuid;

async fn connect(url: &str) -> Store {
    let config = store_config(url);
    let options = StoreOptions::default().retry_interval(Duration::from_millis(100));
    Store::connect_with(&config, database_breaker(&config), options)
        .await
        .expect("connect")
}

/// Another store on `config`'s database with `options`, as another replica (or a restart) opens.
async fn connect_with(config: StoreConfig, options: StoreOptions) -> Store {
    Store::connect_with(&config, database_breaker(&config), options)
        .await
        .expect("connect")
}

async fn wait_healthy(store: &Store) {
    let probe = store.clone();
    wait_until("the store healthy again", Duration::from_secs(30), || {
        let store = probe.clone();
        async move { !store.is_degraded() }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_claim_concurrently_and_take_each_request_once() {
    let pg = PgServer::new();
    let one = connect(&pg.url()).await;
    let two = connect(&pg.url()).await; // migrations already applied: a no-op
    assert_eq!(one.kind(), StoreKind::Postgres);
    assert!(!one.is_degraded() && !two.is_degraded());

    // One replica alone takes them in enqueue order.
    let ordered: Vec<_> = (0..3).map(|n| request("plex", n)).collect();
    for r in &ordered {
        assert_eq!(one.enqueue(r.clone()).await, Ok(Durability::Stored));
    }
    for r in &ordered {
        let got = one
            .claim_next("plex")
            .await
            .expect("claim")
            .expect("pending");
        assert_eq!(
            (got.id, &got.headers, &got.body),
            (r.id, &r.headers, &r.body)
        );
        one.finish(got.id, &QueueStatus::Delivered { status: 200 }, 1)
            .await
            .expect("finish");
    }

    let reqs: Vec<_> = (0..60).map(|n| request("qbittorrent", n)).collect();
    for r in &reqs {
        one.enqueue(r.clone()).await.expect("enqueue");
    }
    assert_eq!(
        two.queue_depth().await.pending.get("qbittorrent"),
        Some(&60)
    );
    let drain = |store: Store| {
        tokio::spawn(async move {
            let mut taken = Vec::new();
            while let Some(r) = store.claim_next("qbittorrent").await.expect("claim") {
                taken.push(r.id);
                let delivered = QueueStatus::Delivered { status: 200 };
                store.finish(r.id, &delivered, 1).await.expect("finish");
            }
            taken
        })
    };
    let (a, b) = (drain(one.clone()), drain(two.clone()));
    let (a, b) = (a.await.expect("replica one"), b.await.expect("replica two"));
    let all: Vec<Uuid> = a.iter().chain(&b).copied().collect();
    let unique: BTreeSet<Uuid> = all.iter().copied().collect();
    assert_eq!(
        all.len(),
        60,
        "each request claimed once: {} + {}",
        a.len(),
        b.len()
    );
    assert_eq!(unique, reqs.iter().map(|r| r.id).collect());
    assert!(!one.queue_depth().await.pending.contains_key("qbittorrent"));
    let stats = one.pool_stats();
    assert!(stats.active + stats.idle >= 1, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_keeps_the_queue_in_memory_and_replays_it_once_after() {
    let mut pg = PgServer::new();
    let store = connect(&pg.url()).await;
    let before: Vec<_> = (0..3).map(|n| request("qbittorrent", n)).collect();
    for r in &before {
        assert_eq!(store.enqueue(r.clone()).await, Ok(Durability::Stored));
    }

    pg.stop();
    let during: Vec<_> = (3..8).map(|n| request("qbittorrent", n)).collect();
    for r in &during {
        assert_eq!(store.enqueue(r.clone()).await, Ok(Durability::Memory));
    }
    assert!(store.is_degraded());
    assert_eq!(
        store.queue_depth().await.pending.get("qbittorrent"),
        Some(&5)
    );
    assert!(store.claim_next("qbittorrent").await.is_err());

    pg.start();
    wait_healthy(&store).await;
    assert_eq!(
        store.queue_depth().await.pending.get("qbittorrent"),
        Some(&8)
    );

    let queue = RequestQueue::new(store);
    let deliver = Recorder::scripted(Vec::new());
    let report = queue
        .replay("qbittorrent", &*deliver)
        .await
        .expect("replay");
    assert_eq!((report.delivered, report.stopped_by), (8, None));
    let expected: Vec<Uuid> = before.iter().chain(&during).map(|r| r.id).collect();
    assert_eq!(
        deliver.ids(),
        expected,
        "every request once, in enqueue order"
    );
    let again = queue
        .replay("qbittorrent", &*deliver)
        .await
        .expect("replay");
    assert_eq!(again.delivered, 0);
    assert_eq!(deliver.ids().len(), 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_down_at_start_gives_a_degraded_store_that_recovers() {
    let mut pg = PgServer::new();
    pg.stop();
    let store = connect(&pg.url()).await;
    assert!(store.is_degraded());
    let kept = request("qbittorrent", 0);
    assert_eq!(store.enqueue(kept.clone()).await, Ok(Durability::Memory));
    assert_eq!(
        store.get("tmdb", "/x").await,
        None,
        "the cache answers nothing, at once"
    );

    pg.start();
    wait_healthy(&store).await;
    let got = store
        .claim_next("qbittorrent")
        .await
        .expect("claim")
        .expect("written back");
    assert_eq!(got.id, kept.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_and_history_use_the_same_tables_on_postgres() {
    let pg = PgServer::new();
    let store = connect(&pg.url()).await;
    let response = |body: &'static [u8]| CachedResponse {
        upstream: "tmdb".into(),
        path_and_query: "/3/movie/550".into(),
        status: 203,
        headers: vec![("x-raw".into(), vec![0, 255])],
        body: Bytes::from_static(body),
        stored_at: std::time::UNIX_EPOCH + Duration::from_millis(1_790_000_000_000),
    };
    store.put(response(b"old")).await;
    store.put(response(b"new\0")).await;
    assert_eq!(
        store.get("tmdb", "/3/movie/550").await,
        Some(response(b"new\0"))
    );

    let plex = Arc::new(Breaker::new("plex", BreakerConfig::default()));
    let tripped = plex.trip().expect("tripped");
    store.record_transition(&tripped).await.expect("record");
    let history = store.recent_transitions(5).await.expect("read");
    assert_eq!(history.len(), 1);
    assert_eq!(
        (history[0].from.as_str(), history[0].to.as_str()),
        ("closed", "open")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_requests_are_pruned_past_retention_or_beyond_the_newest_kept() {
    let pg = PgServer::new();
    let config = store_config(&pg.url());
    support::store::check_finished_pruning(|options| connect_with(config.clone(), options)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_holds_its_bounds_across_reopening_and_lists_by_pages() {
    let pg = PgServer::new();
    let config = store_config(&pg.url());
    support::store::check_queue_bounds(|options| connect_with(config.clone(), options)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_table_is_pruned_to_its_bounds_least_recently_used_first() {
    let pg = PgServer::new();
    let config = store_config(&pg.url());
    support::store::check_cache_pruning(|options| connect_with(config.clone(), options)).await;
}
