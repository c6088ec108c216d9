//! Disk and memory stay bounded: the durable queue refuses past its bounds (per upstream and
//! gateway-wide) with 503 `queue_full`, the queue listing pages through ids without reading
//! bodies, and the database's size is a gauge. A real gateway on 127.0.0.1 with real SQLite.

mod proxy_support;
mod support;

use std::collections::BTreeSet;
use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;

use breakerbox::config;
use proxy_support::{TestUpstream, refused_url};
use reqwest::StatusCode;
use serde_json::Value;
use support::prometheus::Scrape;
use support::served::ServedGateway;
use support::temp_dir::TempDir;
use support::wait::wait_until;

const TOKEN: &str = "viewer-token-for-bounds";

async fn start(dir: &TempDir, store_extra: &str, upstreams: &str) -> ServedGateway {
    let text = format!(
        r#"
[server]
listen = "127.0.0.1:0"
max_body_bytes = 2097152

[store]
url = "sqlite://{db}"
{store_extra}

[[admin.tokens]]
name = "dashboard"
token = "{TOKEN}"
role = "viewer"

[defaults]
failure_threshold = 1
open_duration = "60s"
retry_budget_percent = 0

{upstreams}

[health]
check_interval = "1h"
"#,
        db = dir.0.join("bounds.db").display(),
    );
    let config = config::load_from_str(&text, "bounds-test.toml", Vec::<(String, String)>::new())
        .unwrap_or_else(|e| panic!("valid config: {e}"));
    ServedGateway::start(config, None).await
}

async fn admin(gw: &ServedGateway, path: &str) -> (StatusCode, Value) {
    let response = reqwest::Client::new()
        .get(format!("{}{path}", gw.base()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("gateway answers");
    let status = response.status();
    let bytes = response.bytes().await.expect("body");
    (status, serde_json::from_slice(&bytes).expect("JSON"))
}

/// POSTs `body` to `/proxy/{upstream}/switch/add`: status, `Retry-After`, JSON answer.
async fn post(gw: &ServedGateway, upstream: &str, body: Vec<u8>) -> (u16, Option<String>, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/proxy/{upstream}/switch/add", gw.base()))
        .body(body)
        .send()
        .await
        .expect("gateway answers");
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = response.bytes().await.expect("body");
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, retry_after, json)
}

async fn scrape(gw: &ServedGateway) -> Scrape {
    let text = reqwest::get(format!("{}/metrics", gw.base()))
        .await
        .expect("/metrics answers")
        .text()
        .await
        .expect("text");
    Scrape::parse(&text)
}

#[tokio::test]
async fn admin_queue_pages_through_large_bodies_by_id_each_once() {
    let dir = TempDir::new();
    let down = refused_url();
    let upstreams = format!("[upstreams.q]\nurl = \"{down}\"\nfallback = \"queue\"\n");
    let gw = start(&dir, "", &upstreams).await;
    let mut accepted = BTreeSet::new();
    for n in 0..30u8 {
        let (status, _, body) = post(&gw, "q", vec![n; 1024 * 1024]).await;
        assert_eq!(status, 202, "{body}");
        accepted.insert(body["id"].as_str().expect("id").to_owned());
    }

    let mut seen = Vec::new();
    let mut path = "/admin/queue?limit=7".to_owned();
    let mut pages = 0;
    loop {
        let (status, page) = admin(&gw, &path).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert_eq!(page["meta"]["complete"], true, "{}", page["meta"]);
        let entries = page["data"]["q"].as_array().cloned().unwrap_or_default();
        assert!(entries.len() <= 7, "a page holds at most `limit`");
        for entry in &entries {
            assert_eq!(entry["body_bytes"], 1024 * 1024, "{entry}");
            seen.push(entry["id"].as_str().expect("id").to_owned());
        }
        pages += 1;
        assert!(pages <= 10, "pagination ends");
        match page["meta"]["next"].as_str() {
            Some(next) => path = format!("/admin/queue?limit=7&after={next}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 30, "each request listed once: {seen:?}");
    let listed: BTreeSet<String> = seen.iter().cloned().collect();
    assert_eq!(listed, accepted);
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted, "in id (acceptance) order");

    for bad in ["limit=0", "limit=abc", "after=not-an-id"] {
        let (status, body) = admin(&gw, &format!("/admin/queue?{bad}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(body["error"], "bad_request", "{bad}: {body}");
    }
    gw.stop().await;
}

#[tokio::test]
async fn the_queue_refuses_past_its_bounds_with_queue_full_and_frees_room_on_delivery() {
    let dir = TempDir::new();
    let q = TestUpstream::start().await;
    q.broken.store(true, SeqCst);
    let down = refused_url();
    let upstreams = format!(
        "[upstreams.q]\nurl = \"{q}\"\nfallback = \"queue\"\nqueue_max_requests = 3\n\
         open_duration = \"300ms\"\n\
         [upstreams.r]\nurl = \"{down}\"\nfallback = \"queue\"\nqueue_max_bytes = 100\n\
         [upstreams.s]\nurl = \"{down}\"\nfallback = \"queue\"\n",
        q = q.url(),
    );
    let gw = start(&dir, "queue_max_requests = 5", &upstreams).await;

    for n in 0..3 {
        let (status, _, body) = post(&gw, "q", format!("q{n}").into_bytes()).await;
        assert_eq!(status, 202, "{body}");
    }
    for _ in 0..2 {
        let (status, retry_after, body) = post(&gw, "q", b"q-refused".to_vec()).await;
        assert_eq!((status, body["error"].as_str()), (503, Some("queue_full")));
        assert!(retry_after.is_some(), "queue_full says when to come back");
    }
    // Per upstream, by bytes: 60 + 60 > 100.
    assert_eq!(post(&gw, "r", vec![b'r'; 60]).await.0, 202);
    let (status, retry_after, body) = post(&gw, "r", vec![b'r'; 60]).await;
    assert_eq!((status, body["error"].as_str()), (503, Some("queue_full")));
    assert!(retry_after.is_some());
    // Gateway-wide: q holds 3, r 1, so s gets one more and then none.
    assert_eq!(post(&gw, "s", b"s0".to_vec()).await.0, 202);
    let (status, _, body) = post(&gw, "s", b"s1".to_vec()).await;
    assert_eq!((status, body["error"].as_str()), (503, Some("queue_full")));

    let metrics = scrape(&gw).await;
    let refused = |b: &str| metrics.get("breakerbox_queue_refused_total", &[("breaker", b)]);
    assert_eq!(
        (refused("q"), refused("r"), refused("s")),
        (Some(2.0), Some(1.0), Some(1.0))
    );
    assert_eq!(
        metrics
            .types
            .get("breakerbox_queue_refused_total")
            .map(String::as_str),
        Some("counter")
    );

    // Nothing accepted was dropped.
    let (_, listing) = admin(&gw, "/admin/queue").await;
    let pending = &listing["meta"]["pending"];
    assert_eq!(
        (&pending["q"], &pending["r"], &pending["s"]),
        (&3.into(), &1.into(), &1.into())
    );

    // Delivered requests free their room.
    q.broken.store(false, SeqCst);
    wait_until("q's queue replayed", Duration::from_secs(20), || async {
        let (_, listing) = admin(&gw, "/admin/queue").await;
        listing["meta"]["pending"].get("q").is_none()
    })
    .await;
    q.broken.store(true, SeqCst);
    let (status, _, body) = post(&gw, "q", b"q-again".to_vec()).await;
    assert_eq!(status, 202, "room again once delivered: {body}");
    gw.stop().await;
}

#[tokio::test]
async fn the_database_size_is_a_gauge() {
    let dir = TempDir::new();
    let down = refused_url();
    let upstreams = format!("[upstreams.q]\nurl = \"{down}\"\nfallback = \"queue\"\n");
    let gw = start(&dir, "", &upstreams).await;
    let before = scrape(&gw).await;
    let size = before
        .get("breakerbox_store_size_bytes", &[])
        .expect("breakerbox_store_size_bytes");
    assert!(size > 0.0);
    assert_eq!(
        before
            .types
            .get("breakerbox_store_size_bytes")
            .map(String::as_str),
        Some("gauge")
    );
    for _ in 0..4 {
        assert_eq!(post(&gw, "q", vec![7; 512 * 1024]).await.0, 202);
    }
    let after = scrape(&gw).await;
    let grown = after.get("breakerbox_store_size_bytes", &[]).unwrap_or(0.0);
    assert!(grown >= size + 2.0 * 1024.0 * 1024.0, "{size} → {grown}");
    gw.stop().await;
}

#[tokio::test]
async fn the_cache_table_keeps_cache_max_entries_rows() {
    let dir = TempDir::new();
    let c = TestUpstream::start().await;
    let upstreams = format!(
        "[upstreams.c]\nurl = \"{}\"\nfallback = \"cache\"\n",
        c.url()
    );
    let gw = start(&dir, "cache_max_entries = 2", &upstreams).await;
    for n in 0..6 {
        let response = reqwest::get(format!("{}/proxy/c/item/{n}", gw.base()))
            .await
            .expect("answer");
        assert_eq!(response.status(), StatusCode::OK);
    }
    let db = dir.0.join("bounds.db");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .expect("open the gateway's database");
    let kept = || async {
        let paths: Vec<(String,)> =
            sqlx::query_as("SELECT path_and_query FROM cached_responses ORDER BY path_and_query")
                .fetch_all(&pool)
                .await
                .expect("read the cache table");
        // Keys carry a `#scope=` hash of the host addressed (the cache's privacy rule): the
        // path is what tells the rows apart here.
        paths
            .into_iter()
            .map(|(p,)| p.split('#').next().unwrap_or_default().to_owned())
            .collect::<Vec<_>>()
    };
    // The two most recently stored, once every write behind has landed and a prune has run.
    wait_until(
        "the cache table pruned to 2 rows",
        Duration::from_secs(20),
        || async { kept().await == ["/item/4", "/item/5"] },
    )
    .await;
    gw.stop().await;
}
