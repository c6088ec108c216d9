//! Store unit tests on in-memory SQLite: breaker guarding and degraded mode.

use super::*;
use crate::config::load_from_str;
use crate::fallback::{Durability, QueueStatus};

fn memory_config() -> StoreConfig {
    let text = "[store]\nurl = \"sqlite::memory:\"\n";
    load_from_str(text, "t.toml", std::iter::empty::<(String, String)>())
        .expect("valid")
        .store
}

fn request(n: u8) -> QueuedRequest {
    QueuedRequest {
        id: uuid::Uuid::now_v7(),
        upstream: "qbittorrent".into(),
        method: "POST".into(),
        path_and_query: format!("/add?n={n}"),
        headers: vec![("x-n".into(), vec![n])],
        body: bytes::Bytes::from(vec![n; 3]),
        enqueued_at: std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        attempts: 0,
        status: QueueStatus::Pending,
    }
}

#[tokio::test]
async fn in_memory_sqlite_keeps_one_database_across_calls() {
    let config = memory_config();
    let breaker = Arc::new(Breaker::new("database", config.breaker.clone()));
    let store = Store::connect(&config, breaker).await.expect("open");
    assert_eq!(store.kind(), StoreKind::Sqlite);
    let first = request(1);
    assert_eq!(store.enqueue(first.clone()).await, Ok(Durability::Stored));
    let claimed = store.claim_next("qbittorrent").await.expect("claim");
    assert_eq!(
        claimed.map(|r| (r.id, r.headers, r.body)),
        Some((first.id, first.headers, first.body))
    );
    let stats = store.pool_stats();
    assert_eq!(stats.active + stats.idle, 1, "{stats:?}");
}

#[tokio::test]
async fn an_open_breaker_makes_the_store_unavailable_at_once_until_reset() {
    let config = memory_config();
    let breaker = Arc::new(Breaker::new("database", config.breaker.clone()));
    let store = Store::connect(&config, Arc::clone(&breaker))
        .await
        .expect("open");
    breaker.force_open();
    let err = store.claim_next("qbittorrent").await.unwrap_err();
    assert!(err.is_unavailable());
    assert_eq!(
        err.to_string(),
        "the store is unavailable: its `database` breaker is forced_open"
    );
    assert!(store.is_degraded());
    breaker.reset();
    assert_eq!(store.claim_next("qbittorrent").await.expect("claim"), None);
    assert!(!store.is_degraded());
}

#[tokio::test]
async fn the_store_notices_the_database_is_back_without_traffic() {
    let config = memory_config();
    let breaker = Arc::new(Breaker::new("database", config.breaker.clone()));
    let options = StoreOptions::default().retry_interval(Duration::from_millis(10));
    let store = Store::connect_with(&config, Arc::clone(&breaker), options).await;
    let store = store.expect("open");
    breaker.force_open();
    assert!(store.ping().await.is_err());
    breaker.reset();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while store.is_degraded() {
        assert!(tokio::time::Instant::now() < deadline, "still degraded");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn queue_depth_reads_an_index_alone() {
    let config = memory_config();
    let breaker = Arc::new(Breaker::new("database", config.breaker.clone()));
    let store = Store::connect(&config, breaker).await.expect("open");
    let Db::Sqlite(pool) = &store.inner.db else {
        panic!("an SQLite store");
    };
    let explain = format!("EXPLAIN QUERY PLAN {}", queue::DEPTH);
    let plan: Vec<(i64, i64, i64, String)> = sqlx::query_as(sqlx::AssertSqlSafe(explain))
        .fetch_all(pool)
        .await
        .expect("plan");
    let steps: Vec<&str> = plan.iter().map(|(.., step)| step.as_str()).collect();
    // With hundreds of thousands pending, a table lookup or a sort per row takes seconds.
    assert!(
        steps.len() == 1 && steps[0].contains("USING COVERING INDEX"),
        "{steps:?}"
    );
}

#[test]
fn the_queue_listing_selects_neither_bodies_nor_headers() {
    let sql = queue::LIST.to_ascii_lowercase();
    let selected = sql
        .strip_prefix("select ")
        .and_then(|s| s.split_once(" from "))
        .map(|(columns, _)| columns)
        .expect("a SELECT");
    let columns: Vec<&str> = selected.split(',').map(str::trim).collect();
    for private in ["body", "headers", "*"] {
        assert!(!columns.contains(&private), "{columns:?}");
    }
    assert!(
        columns.contains(&"cast(length(body) as bigint) as body_bytes"),
        "{columns:?}"
    );
}

#[tokio::test]
async fn listing_large_bodies_reads_only_their_size() {
    let config = memory_config();
    let breaker = Arc::new(Breaker::new("database", config.breaker.clone()));
    let store = Store::connect(&config, breaker).await.expect("open");
    for n in 0..30u8 {
        let mut r = request(n);
        r.body = bytes::Bytes::from(vec![n; 1024 * 1024]);
        assert_eq!(store.enqueue(r).await, Ok(Durability::Stored));
    }
    let Db::Sqlite(pool) = &store.inner.db else {
        panic!("an SQLite store");
    };
    // SQLite's length() of a column reads the record header only, not the blob's overflow
    // pages; what the query hands back holds no body either.
    let rows = sqlx::query(queue::LIST)
        .bind("")
        .bind(100_i64)
        .fetch_all(pool)
        .await
        .expect("listing");
    let returned: usize = rows
        .iter()
        .map(|row| {
            use sqlx::Row;
            (0..row.len())
                .map(|i| {
                    row.try_get_raw(i)
                        .ok()
                        .and_then(|v| {
                            use sqlx::ValueRef;
                            (!v.is_null()).then(|| {
                                sqlx::Decode::<sqlx::Sqlite>::decode(v)
                                    .map(|b: Vec<u8>| b.len())
                                    .unwrap_or(8)
                            })
                        })
                        .unwrap_or(0)
                })
                .sum::<usize>()
        })
        .sum();
    assert_eq!(rows.len(), 30);
    assert!(
        returned < 30 * 1024,
        "the listing returned {returned} bytes"
    );
    let page = store.queue_listing(None, 10).await;
    assert!(page.complete);
    assert_eq!(page.entries.len(), 10);
    assert!(page.entries.iter().all(|e| e.body_bytes == 1024 * 1024));
    let rest = store.queue_listing(page.next, 100).await;
    assert_eq!((rest.entries.len(), rest.next), (20, None));
}

#[tokio::test]
async fn sqlite_connections_bound_the_wal_file() {
    let config = memory_config();
    let breaker = Arc::new(Breaker::new("database", config.breaker.clone()));
    let store = Store::connect(&config, breaker).await.expect("open");
    let Db::Sqlite(pool) = &store.inner.db else {
        panic!("an SQLite store");
    };
    let (limit,): (i64,) = sqlx::query_as("PRAGMA journal_size_limit")
        .fetch_one(pool)
        .await
        .expect("pragma");
    assert_eq!(
        limit,
        64 * 1024 * 1024,
        "SQLite's default (-1) keeps the WAL's high-water mark"
    );
    assert!(store.size_bytes().await.expect("size") > 0);
}

#[tokio::test]
async fn a_listing_the_database_could_not_answer_says_it_is_incomplete() {
    let config = memory_config();
    let breaker = Arc::new(Breaker::new("database", config.breaker.clone()));
    let store = Store::connect(&config, Arc::clone(&breaker))
        .await
        .expect("open");
    let stored = request(1);
    assert_eq!(store.enqueue(stored.clone()).await, Ok(Durability::Stored));
    breaker.force_open();
    let held = request(2);
    assert_eq!(store.enqueue(held.clone()).await, Ok(Durability::Memory));
    let page = store.queue_listing(None, 10).await;
    assert!(
        !page.complete,
        "the database's requests are missing from it"
    );
    let ids: Vec<_> = page.entries.iter().map(|e| e.id).collect();
    assert_eq!(ids, [held.id], "the memory buffer is listed");
    breaker.reset();
    let page = store.queue_listing(None, 10).await;
    assert!(page.complete);
    let mut both = [stored.id, held.id];
    both.sort();
    assert_eq!(page.entries.iter().map(|e| e.id).collect::<Vec<_>>(), both);
}
