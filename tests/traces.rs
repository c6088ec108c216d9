//! Traces end to end: a real OTLP/HTTP receiver in the test (axum decoding protobuf with
//! opentelemetry-proto), a real gateway on 127.0.0.1 exporting to it, configured only by the
//! standard `OTEL_*` variables, in front of a loopback upstream that records what it receives.
//!
//! The OpenTelemetry tracer provider and the `tracing` subscriber are process-wide, so this file
//! is its own test binary with a single test that sets the variables before anything reads them.

// Real servers and processes run in real time: waiting on them reads the system's clock.
#![allow(clippy::disallowed_methods)]

mod metrics_support;
mod proxy_support;
mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use breakerbox::telemetry;
use metrics_support::Running;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use proxy_support::TestUpstream;

const TRACE_OK: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const TRACE_TRIP: &str = "0af7651916cd43dd8448eb211c80319c";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

/// Every span the receiver decoded, with its resource's `service.name`.
type Received = Arc<Mutex<Vec<(String, Span)>>>;

async fn receive(State(received): State<Received>, body: Bytes) -> Vec<u8> {
    let request = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
    let mut received = received.lock().expect("lock");
    for resource in request.resource_spans {
        let service = resource
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|kv| kv.key == "service.name")
            .and_then(|kv| kv.value.as_ref())
            .and_then(|v| match &v.value {
                Some(Value::StringValue(s)) => Some(s.clone()),
                _ => None,
            })
            .unwrap_or_default();
        for scope in resource.scope_spans {
            for span in scope.spans {
                received.push((service.clone(), span));
            }
        }
    }
    ExportTraceServiceResponse::default().encode_to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attr(span: &Span, key: &str) -> Option<String> {
    let value = span
        .attributes
        .iter()
        .find(|kv| kv.key == key)?
        .value
        .as_ref()?;
    match value.value.as_ref()? {
        Value::StringValue(s) => Some(s.clone()),
        Value::IntValue(i) => Some(i.to_string()),
        Value::BoolValue(b) => Some(b.to_string()),
        Value::DoubleValue(d) => Some(d.to_string()),
        _ => None,
    }
}

fn describe(span: &Span) -> String {
    let attributes: Vec<String> = span
        .attributes
        .iter()
        .filter_map(|kv| attr(span, &kv.key).map(|v| format!("{}={v}", kv.key)))
        .collect();
    let links: Vec<String> = span
        .links
        .iter()
        .map(|l| format!("{}/{}", hex(&l.trace_id), hex(&l.span_id)))
        .collect();
    format!(
        "{:?} trace={} span={} parent={} kind={} links={links:?}\n    {}",
        span.name,
        hex(&span.trace_id),
        hex(&span.span_id),
        hex(&span.parent_span_id),
        span.kind,
        attributes.join(" ")
    )
}

fn one<'a>(spans: &'a [Span], what: &str, pick: impl Fn(&Span) -> bool) -> &'a Span {
    let found: Vec<&Span> = spans.iter().filter(|s| pick(s)).collect();
    assert_eq!(found.len(), 1, "exactly one {what} span");
    found[0]
}

fn upstreams(upstream: &TestUpstream) -> String {
    format!(
        r#"
[upstreams.traced]
url = "{url}"
failure_threshold = 1
open_duration = "500ms"
call_timeout = "1s"
retry_budget_percent = 0
retry_min_per_second = 0
"#,
        url = upstream.url()
    )
}

async fn get(running: &Running, path: &str, trace: &str) -> u16 {
    reqwest::Client::new()
        .get(running.url(path))
        .header("traceparent", format!("00-{trace}-{CALLER_SPAN}-01"))
        .header("tracestate", "vendor=1")
        .send()
        .await
        .expect("gateway answers")
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_is_one_trace_and_transitions_link_to_their_cause() {
    let received = Received::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let otlp = format!("http://{}", listener.local_addr().expect("addr"));
    let app = Router::new()
        .route("/v1/traces", post(receive))
        .with_state(Arc::clone(&received));
    tokio::spawn(async move { axum::serve(listener, app).await });
    // SAFETY: set before anything of this process reads the environment again; the only other
    // threads are the runtime's and the receiver's, which do not read it.
    unsafe {
        std::env::set_var("OTEL_EXPORTER_OTLP_ENDPOINT", &otlp);
        std::env::set_var("OTEL_BSP_SCHEDULE_DELAY", "100");
        std::env::set_var("OTEL_TRACES_SAMPLER", "parentbased_always_on");
        std::env::set_var("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test");
    }
    assert!(
        telemetry::init(),
        "OTEL_EXPORTER_OTLP_ENDPOINT turns export on"
    );

    let upstream = TestUpstream::start().await;
    let running = Running::start(&upstreams(&upstream)).await;
    assert_eq!(
        get(&running, "/proxy/traced/echo/1?q=2", TRACE_OK).await,
        200
    );
    let seen = upstream.last();
    // A failure trips the breaker (failure_threshold 1); the timer turns it half-open.
    assert_eq!(get(&running, "/proxy/traced/fail", TRACE_TRIP).await, 500);
    let deadline = Instant::now() + Duration::from_secs(5);
    while running.gateway.snapshots()["traced"].state != breakerbox::State::HalfOpen {
        assert!(Instant::now() < deadline, "half-open on time");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    telemetry::flush_traces().await;

    let all = received.lock().expect("lock").clone();
    assert!(all.iter().all(|(service, _)| service == "breakerbox"));
    let spans: Vec<Span> = all.into_iter().map(|(_, span)| span).collect();
    for span in &spans {
        eprintln!("{}", describe(span));
    }
    let in_trace = |trace: &str| -> Vec<Span> {
        spans
            .iter()
            .filter(|s| hex(&s.trace_id) == trace)
            .cloned()
            .collect()
    };

    // One trace: server span (child of the caller's), decision, one client span.
    let ok = in_trace(TRACE_OK);
    assert_eq!(ok.len(), 3, "server, decision and client spans");
    let server = one(&ok, "server", |s| s.name == "GET /proxy/traced/*");
    assert_eq!(hex(&server.parent_span_id), CALLER_SPAN);
    assert_eq!(attr(server, "http.request.method").as_deref(), Some("GET"));
    assert_eq!(
        attr(server, "http.route").as_deref(),
        Some("/proxy/traced/*")
    );
    assert_eq!(
        attr(server, "url.path").as_deref(),
        Some("/proxy/traced/echo/1")
    );
    assert_eq!(
        attr(server, "http.response.status_code").as_deref(),
        Some("200")
    );
    let decision = one(&ok, "decision", |s| s.name == "breaker.decision");
    assert_eq!(decision.parent_span_id, server.span_id);
    assert_eq!(
        attr(decision, "breakerbox.breaker.name").as_deref(),
        Some("traced")
    );
    assert_eq!(
        attr(decision, "breakerbox.breaker.state").as_deref(),
        Some("closed")
    );
    assert_eq!(
        attr(decision, "breakerbox.breaker.decision").as_deref(),
        Some("permitted")
    );
    let client = one(&ok, "client", |s| s.name == "GET");
    assert_eq!(client.parent_span_id, decision.span_id);
    assert_eq!(attr(client, "server.address").as_deref(), Some("127.0.0.1"));
    assert_eq!(
        attr(client, "http.response.status_code").as_deref(),
        Some("200")
    );
    assert!(attr(client, "url.full").is_some_and(|u| u.ends_with("/echo/1?q=2")));
    // The upstream saw the same trace, with the client span as its parent.
    let traceparent = seen.headers.get("traceparent").expect("traceparent sent");
    let expected = format!("00-{TRACE_OK}-{}-01", hex(&client.span_id));
    assert_eq!(traceparent.to_str().ok(), Some(expected.as_str()));
    assert_eq!(
        seen.headers.get("tracestate").and_then(|v| v.to_str().ok()),
        Some("vendor=1")
    );

    // The trip: its own span, linked to the request span that caused it.
    let tripped = in_trace(TRACE_TRIP);
    let failed = one(&tripped, "failed client", |s| s.name == "GET");
    assert_eq!(attr(failed, "error.type").as_deref(), Some("500"));
    let trip = one(&spans, "trip", |s| {
        s.name == "breaker.transition"
            && attr(s, "breakerbox.breaker.to").as_deref() == Some("open")
    });
    assert_eq!(
        attr(trip, "breakerbox.breaker.name").as_deref(),
        Some("traced")
    );
    assert_eq!(
        attr(trip, "breakerbox.breaker.from").as_deref(),
        Some("closed")
    );
    assert_eq!(
        attr(trip, "breakerbox.breaker.reason").as_deref(),
        Some("consecutive_failures")
    );
    assert_eq!(trip.links.len(), 1);
    assert_eq!(hex(&trip.links[0].trace_id), TRACE_TRIP);
    let cause = tripped
        .iter()
        .find(|s| s.span_id == trip.links[0].span_id)
        .expect("the link points at a span of the failed request");
    assert_eq!(cause.name, "breaker.decision");

    // The timer-driven half-open: no parent, linked to the trip.
    let half_open = one(&spans, "half-open", |s| {
        s.name == "breaker.transition"
            && attr(s, "breakerbox.breaker.to").as_deref() == Some("half_open")
    });
    assert!(half_open.parent_span_id.is_empty());
    assert_eq!(
        attr(half_open, "breakerbox.breaker.from").as_deref(),
        Some("open")
    );
    assert_eq!(
        attr(half_open, "breakerbox.breaker.reason").as_deref(),
        Some("open_duration_elapsed")
    );
    assert_eq!(half_open.links.len(), 1);
    assert_eq!(half_open.links[0].span_id, trip.span_id);
    assert_eq!(half_open.links[0].trace_id, trip.trace_id);

    running.stop().await;
    telemetry::shutdown_traces().await;
}
