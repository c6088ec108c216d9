//! The spans of DESIGN.md ("Traces"): the server span of a proxied request, the breaker
//! decision, one client span per physical attempt (whose request carries `traceparent`), and a
//! `breaker.transition` span per state change. Attribute values are the metric label values.
//! When export is off the spans are plain `tracing` spans and no OpenTelemetry call is made.
//! They are DEBUG spans: log context only when debug logging is on (recording them formats
//! every field on every request), exported whenever export is on.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use axum::http::{HeaderMap, Method, Request, Uri, header};
use opentelemetry::global;
use opentelemetry::trace::{SpanContext, TraceContextExt as _, TraceId};
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use tracing::Span;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use super::tracing_setup::tracing_enabled;
use crate::breaker::{Breaker, State, Transition};
use crate::config::redact_url;
use crate::outcome::{Attempt, Decision};

/// The server span of a request proxied to `upstream` (a configured name, never the raw path),
/// child of the incoming `traceparent` if any. Its `trace_id` field puts the trace id on every
/// log line written inside the request.
pub fn server_span<B>(request: &Request<B>, upstream: &str) -> Span {
    let method = request.method().as_str();
    let span = tracing::debug_span!(
        "proxy",
        // Formatted inside the macro, which evaluates field values only for an enabled span.
        otel.name = format!("{method} /proxy/{upstream}/*"),
        otel.kind = "server",
        http.request.method = method,
        http.route = format!("/proxy/{upstream}/*"),
        url.path = request.uri().path(),
        url.scheme = "http",
        server.address = server_address(request).0,
        server.port = server_address(request).1,
        http.response.status_code = Empty,
        error.type = Empty,
        otel.status_code = Empty,
        trace_id = Empty,
    );
    if tracing_enabled() {
        let parent =
            global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(request.headers())));
        if let Err(error) = span.set_parent(parent) {
            tracing::debug!(%error, "the incoming trace context could not be attached");
        }
        let trace_id = span.context().span().span_context().trace_id();
        span.record("trace_id", tracing::field::display(trace_id));
    }
    span
}

/// The trace id of the span current on this thread, when spans are exported: log lines at
/// `info` are written outside the (DEBUG) request spans, so they carry it themselves.
pub(super) fn current_trace_id() -> Option<TraceId> {
    if !tracing_enabled() {
        return None;
    }
    let context = Span::current().context();
    let span = context.span();
    let span_context = span.span_context();
    span_context.is_valid().then(|| span_context.trace_id())
}

/// The host and port the request's `Host` header names.
fn server_address<B>(request: &Request<B>) -> (Option<&str>, Option<u16>) {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok());
    match host.map(|h| h.rsplit_once(':')) {
        Some(Some((name, port))) => (Some(name), port.parse::<u16>().ok()),
        Some(None) => (host, None),
        None => (None, None),
    }
}

/// Records the status the client got on the server span.
pub fn record_response(span: &Span, status: u16) {
    // A disabled span records nothing; the status text is not worth making for it.
    if span.is_disabled() {
        return;
    }
    span.record("http.response.status_code", status);
    if status >= 500 {
        span.record("error.type", status.to_string());
        span.record("otel.status_code", "ERROR");
    }
}

/// The breaker decision span for a call through `breaker`; the decision itself is recorded
/// with [`record_decision`] once the answer is known.
pub fn decision_span(breaker: &Breaker) -> Span {
    tracing::debug_span!(
        "breaker.decision",
        breakerbox.breaker.name = &**breaker.name(),
        breakerbox.breaker.state = breaker.state().as_str(),
        breakerbox.breaker.decision = Empty,
    )
}

/// `permitted`, `rejected` or `fallback`.
pub fn record_decision(span: &Span, decision: Option<Decision>) {
    if let Some(decision) = decision {
        span.record("breakerbox.breaker.decision", decision.as_str());
    }
}

/// The client span of one physical attempt (`number` 0 is the first; later ones are resends).
/// `uri` is the absolute request target, which reads as the URL sent to.
pub fn client_span(method: &Method, uri: &Uri, number: u32) -> Span {
    tracing::debug_span!(
        "http.client",
        otel.name = method.as_str(),
        otel.kind = "client",
        http.request.method = method.as_str(),
        server.address = uri.host(),
        server.port = uri.port_u16().or_else(|| default_port(uri.scheme_str())),
        // The caller's query may carry a credential (`api_key`, `X-Plex-Token`): hidden, as
        // the semantic conventions ask of `url.full`.
        url.full = full_url(uri),
        http.request.resend_count = (number > 0).then_some(number),
        http.response.status_code = Empty,
        error.type = Empty,
        otel.status_code = Empty,
    )
}

/// `uri` as text, its credentials redacted.
fn full_url(uri: &Uri) -> String {
    let text = uri.to_string();
    match redact_url(&text) {
        std::borrow::Cow::Borrowed(_) => text,
        std::borrow::Cow::Owned(redacted) => redacted,
    }
}

/// The port a URL of `scheme` means when it names none.
fn default_port(scheme: Option<&str>) -> Option<u16> {
    match scheme {
        Some("https") => Some(443),
        Some("http") => Some(80),
        _ => None,
    }
}

/// Writes the client span's context into the outgoing `headers` (`traceparent`, `tracestate`).
/// With export off the headers are left as they are.
pub fn inject(span: &Span, headers: &mut HeaderMap) {
    if tracing_enabled() {
        let cx = span.context();
        global::get_text_map_propagator(|p| p.inject_context(&cx, &mut HeaderInjector(headers)));
    }
}

/// Records how the attempt ended on its client span.
pub fn record_attempt(span: &Span, attempt: &Attempt) {
    if span.is_disabled() {
        return;
    }
    if let Some(status) = attempt.status {
        span.record("http.response.status_code", status);
        if status >= 500 {
            span.record("error.type", status.to_string());
            span.record("otel.status_code", "ERROR");
        }
    }
    if let Some(kind) = attempt.failure {
        span.record("error.type", kind.as_str());
        span.record("otel.status_code", "ERROR");
    }
}

/// The span context of the trip that opened each breaker, for the timer-driven half-open
/// transition to link to.
#[derive(Debug, Default)]
pub(super) struct Trips {
    last: Mutex<HashMap<Arc<str>, SpanContext>>,
}

impl Trips {
    /// Emits the `breaker.transition` span of `t`, linked to the span current on this thread
    /// (the request that caused it) or, for a timer-driven open → half_open, to the trip.
    pub(super) fn transition(&self, t: &Transition) {
        if !tracing_enabled() {
            return;
        }
        let cause = Span::current().context().span().span_context().clone();
        let span = tracing::debug_span!(
            parent: None,
            "breaker.transition",
            breakerbox.breaker.name = &*t.breaker,
            breakerbox.breaker.from = t.from.as_str(),
            breakerbox.breaker.to = t.to.as_str(),
            breakerbox.breaker.reason = t.reason.as_str(),
        );
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        let link = if cause.is_valid() {
            Some(cause)
        } else if t.from == State::Open && t.to == State::HalfOpen {
            last.get(&t.breaker).cloned()
        } else {
            None
        };
        // Links go in before the span starts (`context()` starts it).
        if let Some(link) = link {
            span.add_link(link);
        }
        if t.to == State::Open {
            let trip = span.context().span().span_context().clone();
            last.insert(Arc::clone(&t.breaker), trip);
        }
    }
}
