//! The upstream client against real loopback servers: classification, retries within budget
//! and breaker, queue replay, health probes.

// Real servers and processes run in real time: waiting on them reads the system's clock.
#![allow(clippy::disallowed_methods)]

mod proxy_support;

use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;

use axum::http::{HeaderMap, Method};
use breakerbox::breaker::{Outcome, State};
use breakerbox::fallback::{Deliver, Delivery, QueueStatus, QueuedRequest};
use breakerbox::upstream::{
    CallEnd, FailureKind, HealthStatus, OutgoingRequest, RetryStop, Upstream,
};
use bytes::Bytes;
use proxy_support::{NEVER_TRIPS, TestUpstream, closing_upstream, refused_url, upstream};

fn request(method: Method, path: &str) -> OutgoingRequest {
    OutgoingRequest {
        method,
        path_and_query: path.into(),
        headers: HeaderMap::new(),
        body: Bytes::new(),
    }
}

async fn outcome_of(upstream: &Upstream, path: &str) -> (Outcome, Option<FailureKind>) {
    let call = upstream.call_once(&request(Method::GET, path)).await;
    let attempt = call.attempts.last().copied().expect("one attempt");
    (attempt.outcome, attempt.failure)
}

#[tokio::test]
async fn classification_table() {
    let server = TestUpstream::start().await;
    let extra = format!("{NEVER_TRIPS}\ncall_timeout = \"300ms\"");
    let up = upstream("t", &server.url(), &extra);
    let retry = |secs| Outcome::RetryAfter(Duration::from_secs(secs));
    let table = [
        ("/status/200", Outcome::Success),
        ("/status/204", Outcome::Success),
        ("/status/302", Outcome::Success),
        ("/status/400", Outcome::Success),
        ("/status/404", Outcome::Success),
        ("/status/429", Outcome::Success),
        ("/status/500", Outcome::Failure),
        ("/status/502", Outcome::Failure),
        ("/status/503", Outcome::Failure),
        ("/status/599", Outcome::Failure),
        ("/retry-after/429/7", retry(7)),
        ("/retry-after/503/120", retry(120)),
        // 500 with Retry-After is a plain failure: only 429 and 503 carry the hint.
        ("/retry-after/500/7", Outcome::Failure),
        // An unusable Retry-After leaves the status to decide.
        ("/retry-after/503/soon", Outcome::Failure),
        ("/retry-after/429/soon", Outcome::Success),
        ("/slow", Outcome::Timeout),
    ];
    for (path, expected) in table {
        assert_eq!(outcome_of(&up, path).await.0, expected, "{path}");
    }
    let dated = outcome_of(
        &up,
        "/retry-after/503/Fri,%2001%20Jan%202100%2000:00:00%20GMT",
    )
    .await;
    assert!(
        matches!(dated.0, Outcome::RetryAfter(d) if d > Duration::from_secs(365 * 86_400)),
        "{dated:?}"
    );
    assert_eq!(outcome_of(&up, "/slow").await.1, Some(FailureKind::Timeout));

    let refused = upstream("r", &refused_url(), NEVER_TRIPS);
    assert_eq!(
        outcome_of(&refused, "/").await,
        (Outcome::Failure, Some(FailureKind::Connect))
    );
    let (closing, _) = closing_upstream().await;
    let closing = upstream("c", &closing, NEVER_TRIPS);
    assert_eq!(
        outcome_of(&closing, "/").await,
        (Outcome::Failure, Some(FailureKind::Io))
    );

    // The failure set is the upstream's: with only 502 in it, a 500 is a success.
    let narrow = format!("{NEVER_TRIPS}\nfailure_statuses = [502]");
    let narrow = upstream("n", &server.url(), &narrow);
    assert_eq!(outcome_of(&narrow, "/status/500").await.0, Outcome::Success);
    assert_eq!(outcome_of(&narrow, "/status/502").await.0, Outcome::Failure);
}

#[tokio::test]
async fn idempotent_get_is_retried_until_it_succeeds() {
    let server = TestUpstream::start().await;
    server.fail_first.store(2, SeqCst);
    let up = upstream("t", &server.url(), NEVER_TRIPS);
    let call = up.call(&request(Method::GET, "/flaky")).await;
    let outcomes: Vec<_> = call
        .attempts
        .iter()
        .map(|a| (a.number, a.outcome))
        .collect();
    assert_eq!(
        outcomes,
        [
            (0, Outcome::Failure),
            (1, Outcome::Failure),
            (2, Outcome::Success)
        ]
    );
    assert!(matches!(
        call.end,
        CallEnd::Answered {
            outcome: Outcome::Success,
            ..
        }
    ));
    assert_eq!(call.retry_stop, None);
    assert_eq!(server.hits(), 3);
}

#[tokio::test]
async fn put_body_is_resent_whole_on_retry() {
    let server = TestUpstream::start().await;
    server.fail_first.store(1, SeqCst);
    let up = upstream("t", &server.url(), NEVER_TRIPS);
    let mut put = request(Method::PUT, "/flaky");
    put.body = Bytes::from_static(b"the same body");
    let call = up.call(&put).await;
    assert_eq!(call.retries(), 1);
    let bodies: Vec<Bytes> = server.seen().into_iter().map(|s| s.body).collect();
    assert_eq!(bodies, [&b"the same body"[..], &b"the same body"[..]]);
}

#[tokio::test]
async fn post_and_patch_are_never_retried() {
    let server = TestUpstream::start().await;
    let up = upstream("t", &server.url(), NEVER_TRIPS);
    for method in [Method::POST, Method::PATCH] {
        let call = up.call(&request(method.clone(), "/fail")).await;
        assert_eq!(call.attempts.len(), 1, "{method}");
        assert_eq!(call.retry_stop, Some(RetryStop::NotRetryable));
    }
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn retries_stop_when_the_budget_is_spent() {
    let server = TestUpstream::start().await;
    // 1 % of a handful of requests is nothing: only the floor, 1/s over 10 s = 10 retries.
    let extra = format!(
        "{NEVER_TRIPS}\nretry_budget_percent = 1\nretry_min_per_second = 1\ncall_timeout = \"5s\""
    );
    let up = upstream("t", &server.url(), &extra);
    for i in 0..5 {
        let call = up.call(&request(Method::GET, "/fail")).await;
        assert_eq!(call.attempts.len(), 3, "request {i}");
        assert_eq!(call.retry_stop, Some(RetryStop::MaxAttempts));
    }
    let call = up.call(&request(Method::GET, "/fail")).await;
    assert_eq!(call.attempts.len(), 1);
    assert!(call.budget_exhausted());
    assert_eq!(server.hits(), 16);
}

#[tokio::test]
async fn zero_budget_percent_disables_retries() {
    let server = TestUpstream::start().await;
    let extra = format!("{NEVER_TRIPS}\nretry_budget_percent = 0");
    let up = upstream("t", &server.url(), &extra);
    let call = up.call(&request(Method::GET, "/fail")).await;
    assert_eq!(call.attempts.len(), 1);
    assert_eq!(call.retry_stop, Some(RetryStop::BudgetExhausted));
}

#[tokio::test]
async fn an_open_breaker_keeps_calls_from_the_upstream() {
    let server = TestUpstream::start().await;
    let up = upstream(
        "t",
        &server.url(),
        "failure_threshold = 2\nopen_duration = \"60s\"",
    );
    for _ in 0..2 {
        up.call(&request(Method::POST, "/fail")).await;
    }
    assert_eq!(up.breaker().state(), State::Open);
    for _ in 0..5 {
        let call = up.call(&request(Method::GET, "/fail")).await;
        let CallEnd::Rejected(rejected) = call.end else {
            panic!("expected a rejection, got {:?}", call.end);
        };
        assert!(
            rejected
                .retry_after()
                .is_some_and(|d| d <= Duration::from_secs(60))
        );
        assert!(call.attempts.is_empty());
    }
    assert_eq!(server.hits(), 2, "rejections never reach the upstream");
}

#[tokio::test]
async fn a_retry_the_breaker_refuses_ends_with_the_last_answer() {
    let server = TestUpstream::start().await;
    let up = upstream("t", &server.url(), "failure_threshold = 2");
    let call = up.call(&request(Method::GET, "/fail")).await;
    assert_eq!(
        call.attempts.len(),
        2,
        "the second failure trips the breaker"
    );
    assert_eq!(call.retry_stop, Some(RetryStop::BreakerRejected));
    let CallEnd::Answered { response, outcome } = call.end else {
        panic!("the last answer is kept");
    };
    assert_eq!(
        (response.status().as_u16(), outcome),
        (500, Outcome::Failure)
    );
    assert_eq!(server.hits(), 2);
}

fn queued(method: &str, path: &str) -> QueuedRequest {
    QueuedRequest {
        id: uuid::Uuid::now_v7(),
        upstream: "t".into(),
        method: method.into(),
        path_and_query: path.into(),
        headers: vec![("x-replay".into(), b"yes".to_vec())],
        body: Bytes::from_static(b"payload"),
        enqueued_at: std::time::SystemTime::now(),
        attempts: 0,
        status: QueueStatus::Pending,
    }
}

#[tokio::test]
async fn queued_requests_are_delivered_through_the_breaker() {
    let server = TestUpstream::start().await;
    let up = upstream("t", &server.url(), "failure_threshold = 1");
    let delivery = up.deliver(&queued("POST", "/api/add?x=1")).await;
    assert_eq!(delivery, Delivery::Delivered { status: 200 });
    let seen = server.last();
    assert_eq!(
        (seen.method.as_str(), seen.path.as_str()),
        ("POST", "/api/add")
    );
    assert_eq!(seen.query.as_deref(), Some("x=1"));
    assert_eq!(seen.headers["x-replay"], "yes");
    assert_eq!(seen.body, "payload");

    assert_eq!(
        up.deliver(&queued("POST", "/status/404")).await,
        Delivery::Delivered { status: 404 }
    );
    let failed = up.deliver(&queued("PUT", "/fail")).await;
    assert!(matches!(failed, Delivery::Failed { .. }), "{failed:?}");
    assert_eq!(server.hits(), 3, "replay is one attempt, even for PUT");
    assert_eq!(
        up.deliver(&queued("POST", "/api/add")).await,
        Delivery::Rejected
    );
    assert_eq!(server.hits(), 3);
}

#[tokio::test]
async fn queued_paths_that_leave_the_upstream_are_not_sent() {
    let server = TestUpstream::start().await;
    let up = upstream("t", &server.url(), NEVER_TRIPS);
    for path in ["@evil.example/", "http://evil.example/", "//evil.example/x"] {
        let delivery = up.deliver(&queued("POST", path)).await;
        assert!(
            matches!(delivery, Delivery::Failed { .. }),
            "{path}: {delivery:?}"
        );
    }
    assert_eq!(server.hits(), 0);
}

#[tokio::test]
async fn health_probe_reports_healthy_then_unhealthy() {
    let server = TestUpstream::start().await;
    let extra = format!("{NEVER_TRIPS}\nhealth_path = \"/health\"");
    let up = upstream("t", &server.url(), &extra);
    assert_eq!(up.health().status, HealthStatus::Unknown);
    assert_eq!(up.health().last_check, None);

    let report = up.probe_health().await;
    assert_eq!(report.status, HealthStatus::Healthy);
    assert!(report.last_check.is_some());
    assert!(report.response_time_ms.is_some());
    assert_eq!(report.last_error, None);
    assert_eq!(up.health(), report);

    server.healthy.store(false, SeqCst);
    let report = up.probe_health().await;
    assert_eq!(report.status.as_str(), "unhealthy");
    assert!(report.response_time_ms.is_some());
    assert!(
        report
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("500")),
        "{report:?}"
    );
    assert_eq!(
        up.breaker().snapshot().total_requests,
        0,
        "probes observe; they take no permits"
    );

    let down = upstream("d", &refused_url(), "health_path = \"/health\"");
    let report = down.probe_health().await;
    assert_eq!(report.status, HealthStatus::Unhealthy);
    assert_eq!(report.response_time_ms, None);
    assert!(
        report
            .last_error
            .as_deref()
            .is_some_and(|e| e.starts_with("connect"))
    );

    let unprobed = upstream("u", &server.url(), NEVER_TRIPS);
    assert!(unprobed.spawn_probe(Duration::from_millis(10)).is_none());
    assert_eq!(unprobed.probe_health().await.status, HealthStatus::Unknown);
}

#[tokio::test]
async fn probe_task_runs_on_its_interval_until_dropped() {
    let server = TestUpstream::start().await;
    let up = upstream("t", &server.url(), "health_path = \"/health\"");
    let handle = up
        .spawn_probe(Duration::from_millis(20))
        .expect("has a health path");
    // Wait for evidence of three probes; the bound only guards against a hang.
    tokio::time::timeout(Duration::from_secs(10), async {
        while server.hits() < 3 || up.health().status != HealthStatus::Healthy {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("three probes within 10 s");
    drop(handle);
    tokio::task::yield_now().await;
    let after = server.hits();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        server.hits() <= after + 1,
        "the task stopped with its handle"
    );
}

#[tokio::test]
async fn https_upstreams_are_reached_through_tls() {
    // A plain-HTTP server addressed as `https`: the client opens a TLS session, whose handshake
    // fails, which is a connect failure; no request reaches the server's handler.
    let server = TestUpstream::start().await;
    let url = server.url().replacen("http://", "https://", 1);
    let up = upstream("s", &url, NEVER_TRIPS);
    let call = up.call_once(&request(Method::GET, "/status/200")).await;
    let CallEnd::Failed(error) = call.end else {
        panic!(
            "a TLS handshake with a plain-HTTP server cannot succeed: {:?}",
            call.end
        );
    };
    assert_eq!(error.kind, FailureKind::Connect, "{error:?}");
    assert_eq!(server.hits(), 0);
}

#[tokio::test]
async fn a_streaming_body_breaks_off_at_the_call_deadline() {
    // A chunked answer (no length, so it streams) whose body never ends.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                let head = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n";
                let _ = socket.write_all(head).await;
                // Hold the connection open without another byte until the client goes.
                let _ = socket.read(&mut buf).await;
            });
        }
    });
    let extra = format!("{NEVER_TRIPS}\ncall_timeout = \"300ms\"");
    let up = upstream("t", &format!("http://{addr}"), &extra);
    let call = up.call_once(&request(Method::GET, "/")).await;
    let CallEnd::Answered { response, .. } = call.end else {
        panic!("the head came in time: {:?}", call.end);
    };
    assert_eq!(call.attempts[0].status, Some(200));
    // Bounded well above the 300 ms deadline: only a hang would reach it.
    let read = tokio::time::timeout(
        Duration::from_secs(10),
        axum::body::to_bytes(response.into_body(), usize::MAX),
    )
    .await
    .expect("the body ends at the call's deadline, not never");
    let error = read.expect_err("a body cut off by the deadline is an error, not a short body");
    assert!(error.to_string().contains("no answer within"), "{error}");
}
