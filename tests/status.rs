//! `breakerbox status`: the table's exact layout, and fetching from a real loopback server that
//! serves a canned `/admin/breakers`.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use breakerbox::status::{self, BreakerRow, StatusError};

const BREAKERS: &str = r#"{
  "success": true,
  "data": {
    "tmdb": {
      "state": "open", "total_requests": 57, "successful_requests": 30, "failed_requests": 5,
      "timeouts": 2, "rejected_requests": 20, "slow_requests": 0, "consecutive_failures": 7,
      "error_rate": 18.919, "last_failure_time": "2026-03-01T10:00:00Z",
      "last_success_time": "2026-03-01T09:59:30.5Z", "state_changed_at": "2026-03-01T10:00:00Z",
      "retry_after_seconds": 27.2
    },
    "plex": {
      "state": "closed", "total_requests": 1204, "successful_requests": 1204,
      "failed_requests": 0, "timeouts": 0, "rejected_requests": 0, "slow_requests": 0,
      "consecutive_failures": 0, "error_rate": 0, "last_failure_time": null,
      "last_success_time": "2026-03-01T10:00:41+01:00", "state_changed_at": "2026-03-01T08:45:00Z"
    }
  },
  "meta": { "timestamp": "2026-03-01T10:00:42Z", "count": 2 }
}"#;

fn at(text: &str) -> SystemTime {
    humantime::parse_rfc3339(text).expect("time")
}

fn row(name: &str, state: &str) -> BreakerRow {
    BreakerRow {
        name: name.into(),
        state: state.into(),
        total_requests: 0,
        successful_requests: 0,
        failed_requests: 0,
        timeouts: 0,
        rejected_requests: 0,
        slow_requests: 0,
        consecutive_failures: 0,
        error_rate: 0.0,
        last_failure_time: None,
        last_success_time: None,
        state_changed_at: None,
        retry_after: None,
    }
}

#[test]
fn render_lays_out_an_aligned_table() {
    let now = at("2026-03-01T10:00:42Z");
    let rows = [
        BreakerRow {
            total_requests: 1204,
            successful_requests: 1204,
            state_changed_at: Some(at("2026-03-01T08:45:00Z")),
            ..row("plex", "closed")
        },
        BreakerRow {
            total_requests: 57,
            successful_requests: 30,
            failed_requests: 5,
            timeouts: 2,
            rejected_requests: 20,
            error_rate: 18.919,
            state_changed_at: Some(at("2026-03-01T10:00:00Z")),
            retry_after: Some(Duration::from_millis(27_200)),
            ..row("tmdb", "open")
        },
        BreakerRow {
            total_requests: 9,
            successful_requests: 8,
            failed_requests: 1,
            error_rate: 11.1,
            state_changed_at: Some(at("2026-03-01T09:57:38Z")),
            ..row("uptime-kuma", "half_open")
        },
        row("database", "disabled"),
    ];
    let expected = "\
NAME         STATE      REQUESTS    OK  FAILED  TIMEOUTS  REJECTED  ERROR%   SINCE  RETRY IN
plex         closed         1204  1204       0         0         0     0.0  1h 15m         -
tmdb         open             57    30       5         2        20    18.9     42s       28s
uptime-kuma  half_open         9     8       1         0         0    11.1   3m 4s         -
database     disabled          0     0       0         0         0     0.0       -         -
";
    assert_eq!(status::render_at(&rows, now), expected);
    assert_eq!(status::render(&[]), "no breakers reported by the gateway\n");
}

/// The canned admin API: `good` and `viewer` read the breakers, `nobody` is forbidden,
/// `broken` gets a snapshot without its state, anything else is unauthorized.
async fn gateway() -> SocketAddr {
    async fn breakers(headers: HeaderMap) -> axum::response::Response {
        let token = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let json = [("content-type", "application/json")];
        match token {
            Some("good" | "viewer") => (StatusCode::OK, json, BREAKERS).into_response(),
            Some("broken") => {
                let body = r#"{"success":true,"data":{"plex":{"total_requests":1}},"meta":{}}"#;
                (StatusCode::OK, json, body).into_response()
            }
            Some("nobody") => {
                let body = r#"{"error":"forbidden","message":"viewer or admin role needed"}"#;
                (StatusCode::FORBIDDEN, json, body).into_response()
            }
            _ => {
                let body = r#"{"error":"unauthorized","message":"missing or unknown token"}"#;
                (StatusCode::UNAUTHORIZED, json, body).into_response()
            }
        }
    }
    let app = Router::new().route("/admin/breakers", get(breakers));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

#[tokio::test]
async fn fetch_reads_every_breaker_sorted_by_name() {
    let addr = gateway().await;
    let rows = status::fetch(&format!("http://{addr}/"), Some("good"))
        .await
        .expect("rows");
    assert_eq!(
        rows.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        ["plex", "tmdb"]
    );
    let tmdb = &rows[1];
    assert_eq!(tmdb.state, "open");
    assert_eq!(
        (
            tmdb.total_requests,
            tmdb.rejected_requests,
            tmdb.consecutive_failures
        ),
        (57, 20, 7)
    );
    assert_eq!(tmdb.error_rate, 18.919);
    assert_eq!(tmdb.state_changed_at, Some(at("2026-03-01T10:00:00Z")));
    assert_eq!(tmdb.last_success_time, Some(at("2026-03-01T09:59:30.5Z")));
    assert_eq!(tmdb.retry_after, Some(Duration::from_millis(27_200)));
    let plex = &rows[0];
    assert_eq!(plex.last_failure_time, None);
    assert_eq!(
        plex.last_success_time,
        Some(at("2026-03-01T09:00:41Z")),
        "offset applied"
    );
    assert_eq!(plex.retry_after, None);

    // No scheme: http is assumed.
    let rows = status::fetch(&addr.to_string(), Some("viewer"))
        .await
        .expect("rows");
    assert_eq!(rows.len(), 2);
}

#[tokio::test]
async fn fetch_says_what_to_do_about_401_and_403() {
    let addr = gateway().await;
    let url = format!("http://{addr}");
    for token in [None, Some("wrong")] {
        let err = status::fetch(&url, token).await.expect_err("401");
        assert!(matches!(err, StatusError::Unauthorized { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!(
                "{url}/admin/breakers answered 401: token missing or wrong (use --token or BREAKERBOX_TOKEN)"
            )
        );
    }
    let err = status::fetch(&url, Some("nobody")).await.expect_err("403");
    assert!(matches!(err, StatusError::Forbidden { .. }), "{err:?}");
    assert!(err.to_string().contains("answered 403"), "{err}");
}

#[tokio::test]
async fn fetch_names_the_missing_field_of_unexpected_json() {
    let addr = gateway().await;
    let err = status::fetch(&format!("http://{addr}"), Some("broken"))
        .await
        .expect_err("bad JSON");
    assert_eq!(
        err.to_string(),
        format!("unexpected JSON from http://{addr}/admin/breakers: data.plex.state is missing")
    );
}

#[tokio::test]
async fn fetch_reports_a_refused_connection_with_the_url() {
    let addr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr")
    };
    let url = format!("http://{addr}");
    let err = status::fetch(&url, Some("good"))
        .await
        .expect_err("nothing listens");
    assert!(matches!(err, StatusError::Refused { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "connection refused at {url} (is the gateway running? use --url to point elsewhere)"
        )
    );
}

#[tokio::test]
async fn fetch_passes_other_statuses_on_with_their_message() {
    let addr = gateway().await;
    // A gateway without this route: axum's plain 404.
    let err = status::fetch(&format!("http://{addr}/nope"), Some("good"))
        .await
        .expect_err("404");
    assert!(
        matches!(err, StatusError::Status { status: 404, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn fetch_errors_never_repeat_a_password_in_the_url() {
    let addr = gateway().await;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr")
    };
    for (url, expected) in [
        (format!("http://ops:pw-9c8b7a6d@{addr}"), "answered 401"),
        (
            format!("http://ops:pw-9c8b7a6d@{closed}"),
            "connection refused",
        ),
        (format!("http://{addr}/?token=pw-9c8b7a6d"), "answered"),
    ] {
        let err = status::fetch(&url, None).await.expect_err("refused");
        let message = err.to_string();
        assert!(message.contains(expected), "{url}: {message}");
        assert!(message.contains("<redacted>"), "{url}: {message}");
        assert!(!message.contains("pw-9c8b7a6d"), "{url}: {message}");
    }
}
