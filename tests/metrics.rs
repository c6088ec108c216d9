//! `GET /metrics` end to end: a real gateway on 127.0.0.1 in front of a loopback upstream, a
//! scripted life of one breaker (successes, a slow call, a retry, failures, a timeout, the trip,
//! rejections answered from the cache and with an error, half-open on time, recovery, a refused
//! and an accepted reload), then the exact value of every series DESIGN.md names; and the real
//! exposition through `promtool check metrics`.
//!
//! The Prometheus recorder is process-wide, so each test uses breaker names of its own.

mod metrics_support;
mod proxy_support;
mod support;

use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, UNIX_EPOCH};

use breakerbox::State;
use metrics_support::expect::{Expected, assert_breaker, assert_histogram};
use metrics_support::{Running, settings};
use proxy_support::TestUpstream;
use support::wait::eventually;

/// When `breaker`'s current state began, in Unix seconds, as the breaker itself says.
fn state_since(running: &Running, breaker: &str) -> f64 {
    let snapshot = running
        .gateway
        .snapshots()
        .remove(breaker)
        .expect("breaker");
    snapshot
        .state_changed_at
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64()
}

fn flow_upstreams(upstream: &TestUpstream) -> String {
    format!(
        r#"
[upstreams.mflow]
url = "{url}"
fallback = "cache"
failure_threshold = 3
failure_rate_threshold = 100
minimum_calls = 4
open_duration = "1500ms"
call_timeout = "1s"
slow_call_duration = "250ms"
retry_budget_percent = 50
retry_min_per_second = 0
"#,
        url = upstream.url()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scripted_breaker_life_shows_in_every_series_with_exact_values() {
    let upstream = TestUpstream::start().await;
    let running = Running::start(&flow_upstreams(&upstream)).await;
    let send = |method: &'static str, path: &'static str| running.send(method, path);

    // Before any traffic every series exists, at its initial value.
    let fresh = Expected {
        state: "closed",
        state_since: state_since(&running, "mflow"),
        failure_ratio: -1.0,
        ..Expected::default()
    };
    let scrape = running.scrape().await;
    assert_breaker(&scrape, "mflow", &fresh);
    for outcome in ["success", "failure", "timeout"] {
        assert_histogram(&scrape, "mflow", outcome, 0, &[]);
    }

    // Successes: one kept in the cache, one slow, one 4xx (the caller's fault: a success).
    assert_eq!(send("GET", "/proxy/mflow/ok1").await.0, 200);
    assert_eq!(send("GET", "/proxy/mflow/delay/300").await.0, 200);
    assert_eq!(send("GET", "/proxy/mflow/status/404").await.0, 404);
    // A failure, retried within the budget (4 requests × 50 % = 2 retries), then a success.
    upstream.fail_first.store(1, SeqCst);
    assert_eq!(send("GET", "/proxy/mflow/flaky").await.0, 200);
    // Two failures: the first retry is granted, the second refused by the budget.
    assert_eq!(send("GET", "/proxy/mflow/fail").await.0, 500);
    // A timeout (POST: not retried), the third failure in a row: the trip. No cache for a
    // POST, so the error fallback answers.
    assert_eq!(send("POST", "/proxy/mflow/slow").await.0, 503);
    assert_eq!(
        running
            .gateway
            .breaker_named("mflow")
            .expect("breaker")
            .state(),
        State::Open
    );

    let tripped = Expected {
        state: "open",
        state_since: state_since(&running, "mflow"),
        transitions: &[("closed", "open")],
        calls: [4, 3, 1, 0],
        // 8 calls in the window, 4 of them failed (the timeout included).
        failure_ratio: 0.5,
        fallbacks: [0, 0, 0, 1],
        slow: 2,
        retries: [2, 1],
        ..Expected::default()
    };
    assert_breaker(&running.scrape().await, "mflow", &tripped);

    // While open: a rejection answered from the cache, one answered with the error.
    assert_eq!(
        send("GET", "/proxy/mflow/ok1").await,
        (200, Some("cache".into()))
    );
    assert_eq!(send("GET", "/proxy/mflow/other").await.0, 503);
    // A request for an upstream that is not configured records nothing.
    assert_eq!(send("GET", "/proxy/nosuchupstream/x").await.0, 404);

    // Half-open on time, with no traffic: the state gauge follows the deadline timer.
    let half_open = eventually(Duration::from_secs(5), || async {
        let scrape = running.scrape().await;
        scrape.get(
            "breakerbox_breaker_state",
            &[("breaker", "mflow"), ("state", "half_open")],
        ) == Some(1.0)
    })
    .await;
    assert!(half_open, "the state gauge turns half_open on time");
    let probing = Expected {
        state: "half_open",
        state_since: state_since(&running, "mflow"),
        transitions: &[("closed", "open"), ("open", "half_open")],
        calls: [4, 3, 1, 2],
        fallbacks: [1, 0, 0, 2],
        ..tripped
    };
    assert_breaker(&running.scrape().await, "mflow", &probing);

    // The probe succeeds: closed again, the window starts afresh (-1: under minimum_calls).
    assert_eq!(send("GET", "/proxy/mflow/ok2").await.0, 200);
    let recovered = Expected {
        state: "closed",
        state_since: state_since(&running, "mflow"),
        transitions: &[
            ("closed", "open"),
            ("open", "half_open"),
            ("half_open", "closed"),
        ],
        calls: [5, 3, 1, 2],
        failure_ratio: -1.0,
        ..probing
    };

    // A refused reload, then one that adds a breaker: counted, and the new breaker's series
    // exist at once; the kept breaker's counts stay.
    running.rewrite_config("this is not a configuration");
    let refused = eventually(Duration::from_secs(10), || async {
        let scrape = running.scrape().await;
        scrape.get("breakerbox_config_reloads_total", &[("result", "failure")]) == Some(1.0)
    })
    .await;
    assert!(refused, "the refused reload is counted");
    let added = format!(
        "{}\n[upstreams.mflow_added]\nurl = \"{}\"\n",
        flow_upstreams(&upstream),
        upstream.url()
    );
    running.rewrite_config(&settings(running.dir(), &added));
    let reloaded = eventually(Duration::from_secs(10), || async {
        let scrape = running.scrape().await;
        scrape.get("breakerbox_config_reloads_total", &[("result", "success")]) == Some(1.0)
    })
    .await;
    assert!(reloaded, "the accepted reload is counted");

    let scrape = running.scrape().await;
    assert_breaker(&scrape, "mflow", &recovered);
    let sum = assert_histogram(&scrape, "mflow", "success", 5, &[("0.25", 4), ("0.5", 5)]);
    assert!(sum >= 0.3, "the 300 ms call is in the sum: {sum}");
    assert_histogram(&scrape, "mflow", "failure", 3, &[("0.25", 3)]);
    let sum = assert_histogram(&scrape, "mflow", "timeout", 1, &[("0.75", 0), ("2.5", 1)]);
    assert!(
        (1.0..2.5).contains(&sum),
        "the timeout took the call timeout: {sum}"
    );
    // One recovery, from the trip to the probe's close: at least the 1.5 s open duration, and
    // exactly what the breaker's snapshot says.
    let recovery = |suffix: &str, le: Option<&str>| {
        let mut labels = vec![("breaker", "mflow")];
        labels.extend(le.map(|le| ("le", le)));
        scrape.get(
            &format!("breakerbox_breaker_recovery_seconds{suffix}"),
            &labels,
        )
    };
    assert_eq!(recovery("_count", None), Some(1.0));
    assert_eq!(recovery("_bucket", Some("1")), Some(0.0));
    assert_eq!(recovery("_bucket", Some("10")), Some(1.0));
    let took = running.gateway.snapshots()["mflow"]
        .last_recovery
        .expect("recovered");
    assert!(took >= Duration::from_millis(1500), "{took:?}");
    assert_eq!(recovery("_sum", None), Some(took.as_secs_f64()));
    let added = Expected {
        state: "closed",
        state_since: state_since(&running, "mflow_added"),
        failure_ratio: -1.0,
        ..Expected::default()
    };
    assert_breaker(&scrape, "mflow_added", &added);
    assert!(
        scrape.of_breaker("nosuchupstream").is_empty(),
        "label values stay bounded"
    );
    assert_eq!(
        scrape.get("breakerbox_config_reloads_total", &[("result", "failure")]),
        Some(1.0)
    );
    assert_eq!(scrape.get("breakerbox_store_degraded", &[]), Some(0.0));
    let version = [("version", env!("CARGO_PKG_VERSION"))];
    assert_eq!(scrape.get("breakerbox_build_info", &version), Some(1.0));

    // The metrics agree with the breaker's own figures.
    let snapshot = running.gateway.snapshots().remove("mflow").expect("mflow");
    assert_eq!(
        (
            snapshot.successful_requests,
            snapshot.failed_requests,
            snapshot.timeouts
        ),
        (5, 3, 1)
    );
    assert_eq!((snapshot.rejected_requests, snapshot.slow_requests), (2, 2));

    // The types DESIGN.md gives.
    let types = [
        ("breakerbox_breaker_state", "gauge"),
        ("breakerbox_breaker_state_since_timestamp_seconds", "gauge"),
        ("breakerbox_breaker_transitions_total", "counter"),
        ("breakerbox_calls_total", "counter"),
        ("breakerbox_call_duration_seconds", "histogram"),
        ("breakerbox_breaker_failure_ratio", "gauge"),
        ("breakerbox_fallbacks_total", "counter"),
        ("breakerbox_queue_depth", "gauge"),
        ("breakerbox_slow_calls_total", "counter"),
        ("breakerbox_retries_total", "counter"),
        ("breakerbox_store_degraded", "gauge"),
        ("breakerbox_config_reloads_total", "counter"),
        ("breakerbox_build_info", "gauge"),
        ("breakerbox_queue_refused_total", "counter"),
        ("breakerbox_store_size_bytes", "gauge"),
    ];
    for (name, kind) in types {
        assert_eq!(
            scrape.types.get(name).map(String::as_str),
            Some(kind),
            "{name}"
        );
    }
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promtool_check_metrics_finds_nothing_in_a_real_scrape() {
    let upstream = TestUpstream::start().await;
    let text = format!(
        "[upstreams.mlint]\nurl = \"{}\"\nfailure_threshold = 1\nfallback = \"degraded\"\n\
         [upstreams.mlint.degraded]\nstatus = 200\nbody = \"{{}}\"\n",
        upstream.url()
    );
    let running = Running::start(&text).await;
    assert_eq!(running.send("GET", "/proxy/mlint/ok").await.0, 200);
    assert_eq!(
        running.send("GET", "/proxy/mlint/fail").await.0,
        200,
        "degraded answer"
    );
    assert_eq!(
        running.send("GET", "/proxy/mlint/ok").await.0,
        200,
        "degraded answer"
    );
    let (content_type, body) = running.scrape_raw().await;
    running.stop().await;
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    assert!(body.contains("breakerbox_fallbacks_total{breaker=\"mlint\",kind=\"degraded\"} 2"));

    let promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match promtool {
        Ok(child) => child,
        Err(error) => panic!(
            "promtool is needed for this test ({error}); scripts/test installs it \
             (Debian's `prometheus` package, through scripts/install-test-deps)"
        ),
    };
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(body.as_bytes())
            .expect("scrape piped to promtool");
    }
    let output = child.wait_with_output().expect("promtool ran");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "promtool check metrics failed: {said}"
    );
    assert!(
        said.trim().is_empty(),
        "promtool check metrics reported: {said}"
    );
}
