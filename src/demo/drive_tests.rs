//! Tests of the traffic generator: answer classification, and one line per change against a
//! fake gateway on loopback.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use tokio::sync::{mpsc, watch};

use super::*;

fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.insert(*name, HeaderValue::from_static(value));
    }
    map
}

#[test]
fn classifies_every_kind_of_answer() {
    let cache = classify(
        200,
        &headers(&[("x-breakerbox-fallback", "cache"), ("age", "3")]),
        b"{}",
    );
    assert_eq!(cache.kind, AnswerKind::Cache);
    assert_eq!(
        cache.text,
        "answered from cache (X-Breakerbox-Fallback: cache, Age 3)"
    );

    let degraded = classify(
        200,
        &headers(&[("x-breakerbox-fallback", "degraded")]),
        b"{}",
    );
    assert_eq!(degraded.kind, AnswerKind::Degraded(200));

    let queued = classify(
        202,
        &headers(&[("x-breakerbox-fallback", "queue")]),
        br#"{"queued":true}"#,
    );
    assert_eq!(queued.kind, AnswerKind::Queued);

    let body = br#"{"error":"circuit_open","message":"open"}"#;
    let rejected = classify(503, &headers(&[("retry-after", "28")]), body);
    assert_eq!(rejected.kind, AnswerKind::Rejected);
    assert_eq!(rejected.text, "rejected 503: circuit open (Retry-After 28)");

    let body =
        br#"{"error":"upstream_timeout","message":"upstream `x` did not answer within 10s"}"#;
    let timeout = classify(503, &HeaderMap::new(), body);
    assert_eq!(
        timeout.kind,
        AnswerKind::Error(503, "upstream_timeout".into())
    );
    assert_eq!(
        timeout.text,
        "error 503 upstream_timeout: upstream `x` did not answer within 10s"
    );

    // The demo upstream's own 500 passes through: the upstream answered, not the gateway.
    let failing = classify(
        500,
        &headers(&[(DEMO_HEADER, "overseerr")]),
        br#"{"ok":false}"#,
    );
    assert_eq!(failing.kind, AnswerKind::Upstream(500));
    assert_eq!(failing.text, "upstream failing: 500 passed through");

    // Not JSON and no marker: some real upstream's answer.
    assert_eq!(
        classify(404, &HeaderMap::new(), b"<html>").kind,
        AnswerKind::Upstream(404)
    );
}

#[test]
fn targets_take_health_paths_and_queue_fallbacks_from_the_config() {
    let text = r#"
        [upstreams.qbittorrent]
        url = "http://127.0.0.1:8081"
        fallback = "queue"
        health_path = "/api/v2/app/version"
        [upstreams.tmdb]
        url = "http://127.0.0.1:18081"
    "#;
    let config =
        crate::config::load_from_str(text, "t.toml", std::iter::empty::<(String, String)>())
            .expect("valid config");
    let targets = targets(&config);
    assert_eq!(targets.len(), 2);
    assert_eq!(
        targets[0],
        Target {
            name: "qbittorrent".into(),
            path: "/api/v2/app/version".into(),
            post: true
        }
    );
    assert_eq!(targets[1], Target::from("tmdb"));
}

/// A gateway stand-in: the upstream answers three times, the cache three times, then the
/// breaker rejects.
async fn fake_gateway() -> std::net::SocketAddr {
    let count = Arc::new(AtomicU64::new(0));
    let app = Router::new().fallback(move || {
        let n = count.fetch_add(1, Ordering::SeqCst);
        async move {
            if n < 3 {
                (StatusCode::OK, [(DEMO_HEADER, "tmdb")], "{}").into_response()
            } else if n < 6 {
                let age = format!("{}", n - 2);
                (
                    StatusCode::OK,
                    [("x-breakerbox-fallback", "cache".to_owned()), ("age", age)],
                    "{}",
                )
                    .into_response()
            } else {
                let body = r#"{"error":"circuit_open","message":"open"}"#;
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [("retry-after", "7")],
                    body,
                )
                    .into_response()
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

#[tokio::test]
async fn prints_one_line_per_change_not_per_request() {
    let addr = fake_gateway().await;
    let (stop, stop_rx) = watch::channel(false);
    let (lines, mut lines_rx) = mpsc::unbounded_channel::<String>();
    let base = format!("http://{addr}");
    let driver = tokio::spawn(async move {
        let targets = vec![Target::from("tmdb")];
        drive_with(
            &base,
            targets,
            stop_rx,
            Duration::from_millis(10),
            move |line| {
                let _ = lines.send(line.to_owned());
            },
        )
        .await;
    });
    let mut seen = Vec::new();
    let collect = async {
        while let Some(line) = lines_rx.recv().await {
            let done = line.contains("rejected");
            seen.push(line);
            if done {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), collect)
        .await
        .expect("a rejection within 10 s");
    // Let a few more requests through: the same kind of answer prints nothing more.
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.send_replace(true);
    tokio::time::timeout(Duration::from_secs(5), driver)
        .await
        .expect("stops on shutdown")
        .expect("no panic");
    while let Ok(line) = lines_rx.try_recv() {
        seen.push(line);
    }
    let texts: Vec<&str> = seen
        .iter()
        .map(|l| l.split_once("s  tmdb ").map_or(l.as_str(), |(_, t)| t))
        .collect();
    assert_eq!(
        texts,
        [
            "answered by the upstream (200)",
            "answered from cache (X-Breakerbox-Fallback: cache, Age 1)",
            "rejected 503: circuit open (Retry-After 7)",
        ],
        "{seen:#?}"
    );
}
