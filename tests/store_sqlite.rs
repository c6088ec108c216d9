//! The store on a real SQLite file: queue order and claims, durability across reopening and
//! kill -9, the memory buffer while the database breaker is open, cache and history.

mod support;

use std::sync::Arc;
use std::time::Duration;

use breakerbox::fallback::{CacheStore, CachedResponse, Durability, QueueError, QueueStatus};
use breakerbox::store::{Store, StoreError, StoreOptions};
use breakerbox::{Breaker, BreakerConfig, State};
use bytes::Bytes;
use support::store::{database_breaker, open, request, store_config};
use support::temp_dir::TempDir;
use support::wait::wait_until;

#[tokio::test]
async fn queue_claims_oldest_first_and_records_outcomes() {
    let dir = TempDir::new();
    let store = open(&dir.sqlite_url("q.db")).await;
    assert!(!store.is_degraded());
    let reqs: Vec<_> = (0..3).map(|n| request("qbittorrent", n)).collect();
    for r in &reqs {
        assert_eq!(store.enqueue(r.clone()).await, Ok(Durability::Stored));
    }
    store.enqueue(request("other", 9)).await.expect("enqueue");
    let depth = store.queue_depth().await.pending;
    assert_eq!((depth["qbittorrent"], depth["other"]), (3, 1));

    let first = store
        .claim_next("qbittorrent")
        .await
        .expect("claim")
        .expect("one");
    assert_eq!(first.id, reqs[0].id);
    assert_eq!(
        (&first.headers, &first.body),
        (&reqs[0].headers, &reqs[0].body)
    );
    // A claimed request is not handed out again while its lease runs.
    let second = store
        .claim_next("qbittorrent")
        .await
        .expect("claim")
        .expect("one");
    assert_eq!(second.id, reqs[1].id);

    store
        .finish(first.id, &QueueStatus::Delivered { status: 201 }, 1)
        .await
        .expect("finish");
    store.release(second.id, 1).await.expect("release");
    // Released: pending again, and still the oldest.
    let again = store
        .claim_next("qbittorrent")
        .await
        .expect("claim")
        .expect("one");
    assert_eq!((again.id, again.attempts), (reqs[1].id, 1));
    let failed = QueueStatus::Failed {
        reason: "gave up".into(),
    };
    store.finish(again.id, &failed, 2).await.expect("finish");
    let third = store
        .claim_next("qbittorrent")
        .await
        .expect("claim")
        .expect("one");
    assert_eq!(third.id, reqs[2].id);
    assert_eq!(store.claim_next("qbittorrent").await.expect("claim"), None);

    // Listing: in id (acceptance) order, whatever the status (claimed ones are still pending).
    let entries = store.queue_entries(10).await;
    let statuses: Vec<_> = entries.iter().map(|e| (e.id, e.status.clone())).collect();
    assert_eq!(
        statuses,
        [
            (reqs[0].id, QueueStatus::Delivered { status: 201 }),
            (reqs[1].id, failed),
            (reqs[2].id, QueueStatus::Pending),
            (entries[3].id, QueueStatus::Pending),
        ]
    );
    assert_eq!(entries[3].upstream, "other");
    assert_eq!(
        store.queue_depth().await.pending.get("qbittorrent"),
        Some(&1)
    );
}

/// A replica whose claim lease ran out (another replica took the request over) and that gives
/// its claim back late must not release the other replica's claim: a third claim would deliver
/// the request a second time.
#[tokio::test]
async fn a_late_release_leaves_another_replicas_claim_alone() {
    let dir = TempDir::new();
    let url = dir.sqlite_url("q.db");
    let config = store_config(&url);
    let replica = |lease: Duration| {
        let config = config.clone();
        async move {
            let options = StoreOptions::default().claim_lease(lease);
            Store::connect_with(&config, database_breaker(&config), options)
                .await
                .expect("open the SQLite store")
        }
    };
    let (one, two) = (
        replica(Duration::from_millis(100)).await,
        replica(Duration::from_secs(60)).await,
    );
    let queued = request("qbittorrent", 0);
    one.enqueue(queued.clone()).await.expect("enqueue");
    let first = one.claim_next("qbittorrent").await.expect("claim");
    assert_eq!(first.map(|r| r.id), Some(queued.id));

    // One's lease runs out: two takes the request over.
    let taken = Arc::new(std::sync::Mutex::new(None));
    wait_until("the other replica's claim", Duration::from_secs(10), || {
        let (two, taken) = (two.clone(), Arc::clone(&taken));
        async move {
            let claimed = two.claim_next("qbittorrent").await.expect("claim");
            let found = claimed.is_some();
            *taken.lock().expect("lock") = claimed.map(|r| r.id);
            found
        }
    })
    .await;
    assert_eq!(*taken.lock().expect("lock"), Some(queued.id));

    one.release(queued.id, 1).await.expect("release");
    assert_eq!(
        one.claim_next("qbittorrent").await.expect("claim"),
        None,
        "two's claim still holds"
    );
}

#[tokio::test]
async fn a_short_call_timeout_does_not_bound_opening_the_database() {
    // Creating the file, switching to WAL and migrating take longer than a 1 ms call timeout
    // (and than a 1 s one on a busy machine): the start must not fail for it.
    let dir = TempDir::new();
    let text = format!(
        "[store]\nurl = {:?}\ncall_timeout = \"1ms\"\n",
        dir.sqlite_url("q.db")
    );
    let no_env = std::iter::empty::<(String, String)>();
    let config = breakerbox::config::load_from_str(&text, "store-test.toml", no_env)
        .expect("valid store config")
        .store;
    let store = Store::connect(&config, database_breaker(&config))
        .await
        .expect("opens despite the 1 ms call timeout");
    assert!(!store.is_degraded(), "migrated and ready");
}

#[tokio::test]
async fn queued_requests_survive_dropping_and_reopening_the_store() {
    let dir = TempDir::new();
    let url = dir.sqlite_url("durable.db");
    let reqs: Vec<_> = (0..3).map(|n| request("qbittorrent", n)).collect();
    {
        let store = open(&url).await;
        for r in &reqs {
            store.enqueue(r.clone()).await.expect("enqueue");
        }
        store.close().await;
    }
    let store = open(&url).await;
    for r in &reqs {
        let got = store
            .claim_next("qbittorrent")
            .await
            .expect("claim")
            .expect("kept");
        assert_eq!(
            (
                got.id,
                &got.method,
                &got.path_and_query,
                &got.headers,
                &got.body
            ),
            (r.id, &r.method, &r.path_and_query, &r.headers, &r.body)
        );
        let ms = |t: std::time::SystemTime| {
            t.duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .ok()
        };
        assert_eq!(
            ms(got.enqueued_at),
            ms(r.enqueued_at),
            "kept to the millisecond"
        );
    }
}

#[tokio::test]
async fn open_database_breaker_keeps_the_queue_in_memory_until_it_closes() {
    let dir = TempDir::new();
    let mut config = store_config(&dir.sqlite_url("b.db"));
    // `[store] queue_memory_capacity`, as the gateway passes it on.
    config.queue_memory_capacity = 3;
    let breaker = database_breaker(&config);
    let options = StoreOptions::from_config(&config).retry_interval(Duration::from_millis(50));
    let store = Store::connect_with(&config, Arc::clone(&breaker), options)
        .await
        .expect("open");
    let stored = request("qbittorrent", 0);
    assert_eq!(store.enqueue(stored.clone()).await, Ok(Durability::Stored));

    breaker.force_open();
    let buffered: Vec<_> = (1..4).map(|n| request("qbittorrent", n)).collect();
    for r in &buffered {
        assert_eq!(store.enqueue(r.clone()).await, Ok(Durability::Memory));
    }
    assert!(store.is_degraded());
    assert_eq!(
        store.enqueue(request("qbittorrent", 4)).await,
        Err(QueueError::Full { capacity: 3 })
    );
    assert_eq!(
        store.queue_depth().await.pending.get("qbittorrent"),
        Some(&3),
        "memory only"
    );
    let listed: Vec<_> = store.queue_entries(10).await.iter().map(|r| r.id).collect();
    assert_eq!(listed, buffered.iter().map(|r| r.id).collect::<Vec<_>>());
    assert!(matches!(
        store.claim_next("qbittorrent").await,
        Err(StoreError::Unavailable {
            state: State::ForcedOpen,
            ..
        })
    ));

    breaker.reset();
    let probe = store.clone();
    wait_until("the buffer written back", Duration::from_secs(10), || {
        let store = probe.clone();
        async move { !store.is_degraded() }
    })
    .await;
    assert_eq!(
        store.queue_depth().await.pending.get("qbittorrent"),
        Some(&4)
    );
    let mut order = vec![stored.id];
    order.extend(buffered.iter().map(|r| r.id));
    for id in order {
        let got = store
            .claim_next("qbittorrent")
            .await
            .expect("claim")
            .expect("kept");
        assert_eq!(got.id, id, "written back in order, once");
    }
    assert_eq!(store.claim_next("qbittorrent").await.expect("claim"), None);
}

#[tokio::test]
async fn cache_upserts_by_upstream_and_path() {
    let dir = TempDir::new();
    let store = open(&dir.sqlite_url("c.db")).await;
    let response = |body: &'static str| CachedResponse {
        upstream: "tmdb".into(),
        path_and_query: "/3/movie/550?lang=en".into(),
        status: 200,
        headers: vec![("content-type".into(), b"application/json".to_vec())],
        body: Bytes::from_static(body.as_bytes()),
        stored_at: std::time::UNIX_EPOCH + Duration::from_millis(1_790_000_000_000),
    };
    assert_eq!(store.get("tmdb", "/3/movie/550?lang=en").await, None);
    store.put(response("old")).await;
    store.put(response("new")).await;
    assert_eq!(
        store.get("tmdb", "/3/movie/550?lang=en").await,
        Some(response("new"))
    );
    assert_eq!(
        store.get("tmdb", "/3/movie/550").await,
        None,
        "the query is part of the key"
    );
    assert_eq!(store.get("plex", "/3/movie/550?lang=en").await, None);
}

#[tokio::test]
async fn breaker_transitions_are_recorded() {
    let dir = TempDir::new();
    let store = open(&dir.sqlite_url("h.db")).await;
    let plex = Breaker::new("plex", BreakerConfig::default());
    let tripped = plex.trip().expect("closed -> open");
    let reset = plex.reset().expect("open -> closed");
    store.record_transition(&tripped).await.expect("record");
    store.record_transition(&reset).await.expect("record");
    let history = store.recent_transitions(10).await.expect("read");
    assert_eq!(history.len(), 2);
    let newest = &history[0];
    assert_eq!(
        (
            newest.name.as_str(),
            newest.from.as_str(),
            newest.to.as_str()
        ),
        ("plex", "open", "closed")
    );
    assert_eq!(newest.generation, reset.generation);
    assert_eq!(newest.reason, reset.reason.as_str());
    assert_eq!(
        (history[1].from.as_str(), history[1].to.as_str()),
        ("closed", "open")
    );
}

#[tokio::test]
async fn an_unusable_sqlite_path_is_a_startup_error_naming_it() {
    let config = store_config("sqlite:///nonexistent-breakerbox-folder/gw.db");
    let err = Store::connect(&config, database_breaker(&config))
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, StoreError::Open { .. }), "{message}");
    assert!(
        message.contains("/nonexistent-breakerbox-folder/gw.db"),
        "{message}"
    );
    assert!(
        message.contains("its folder \"/nonexistent-breakerbox-folder\""),
        "{message}"
    );
}

/// Set in the child process of [`enqueued_requests_survive_kill_9`]: the database it writes to.
const CHILD_URL: &str = "BREAKERBOX_TEST_KILL9_URL";

#[test]
fn enqueued_requests_survive_kill_9() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    if let Ok(url) = std::env::var(CHILD_URL) {
        // The child: enqueue, say which ids were accepted, then wait to be killed.
        runtime.block_on(async {
            let store = open(&url).await;
            for n in 0..20 {
                let r = request("qbittorrent", n);
                assert_eq!(store.enqueue(r.clone()).await, Ok(Durability::Stored));
                println!("ACCEPTED {}", r.id);
            }
            println!("DONE");
        });
        loop {
            std::thread::park();
        }
    }

    let dir = TempDir::new();
    let url = dir.sqlite_url("crash.db");
    let exe = std::env::current_exe().expect("test binary");
    let mut child = Command::new(exe)
        .args(["--exact", "enqueued_requests_survive_kill_9", "--nocapture"])
        .env(CHILD_URL, &url)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the child");
    let stdout = child.stdout.take().expect("piped");
    let mut accepted = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("read the child");
        if line == "DONE" {
            break;
        }
        if let Some(id) = line.strip_prefix("ACCEPTED ") {
            accepted.push(uuid::Uuid::parse_str(id).expect("an id"));
        }
    }
    child.kill().expect("SIGKILL"); // std sends SIGKILL on Unix: no shutdown code runs
    child.wait().expect("reaped");
    assert_eq!(accepted.len(), 20, "the child accepted every request");

    runtime.block_on(async {
        let store = open(&url).await;
        for id in accepted {
            let got = store.claim_next("qbittorrent").await.expect("claim");
            assert_eq!(got.map(|r| r.id), Some(id), "kept across kill -9, in order");
        }
    });
}

#[tokio::test]
async fn finished_requests_are_pruned_past_retention_or_beyond_the_newest_kept() {
    let dir = TempDir::new();
    let url = dir.sqlite_url("q.db");
    let config = store_config(&url);
    support::store::check_finished_pruning(|options| {
        let config = config.clone();
        async move {
            Store::connect_with(&config, database_breaker(&config), options)
                .await
                .expect("open the SQLite store")
        }
    })
    .await;
}

#[tokio::test]
async fn stored_requests_are_claimed_before_the_memory_buffer_each_once() {
    let dir = TempDir::new();
    let config = store_config(&dir.sqlite_url("w.db"));
    let breaker = database_breaker(&config);
    let store = Store::connect(&config, Arc::clone(&breaker))
        .await
        .expect("open");
    let stored: Vec<_> = (0..2).map(|n| request("qbittorrent", n)).collect();
    for r in &stored {
        assert_eq!(store.enqueue(r.clone()).await, Ok(Durability::Stored));
    }
    breaker.force_open();
    let buffered: Vec<_> = (2..4).map(|n| request("qbittorrent", n)).collect();
    for r in &buffered {
        assert_eq!(store.enqueue(r.clone()).await, Ok(Durability::Memory));
    }
    breaker.reset();

    // A claim takes the stored requests first (they are older than any in memory) without
    // writing the buffer back; once none is stored it writes the buffer back (unless the
    // background write-back did already) and goes on in order.
    let mut claimed = Vec::new();
    while let Some(r) = store.claim_next("qbittorrent").await.expect("claim") {
        claimed.push(r.id);
        assert!(
            claimed.len() <= 4,
            "claimed more than was queued: {claimed:?}"
        );
    }
    let expected: Vec<_> = stored.iter().chain(&buffered).map(|r| r.id).collect();
    assert_eq!(claimed, expected);
    assert!(!store.is_degraded());
}

/// The cache table keeps at most `cache_max_entries` rows and `cache_max_bytes`, the least
/// recently used going first, and no row past its upstream's TTL.
#[tokio::test]
async fn the_cache_table_is_pruned_to_its_bounds_least_recently_used_first() {
    let dir = TempDir::new();
    let url = dir.sqlite_url("cache.db");
    support::store::check_cache_pruning(|options| {
        support::store::open_with_owned(url.clone(), options)
    })
    .await;
}

#[tokio::test]
async fn the_queue_holds_its_bounds_across_reopening_and_lists_by_pages() {
    let dir = TempDir::new();
    let url = dir.sqlite_url("bounded.db");
    support::store::check_queue_bounds(|options| {
        support::store::open_with_owned(url.clone(), options)
    })
    .await;
}
