//! The process's `tracing` subscriber: log lines (human-readable, or JSON with
//! `BREAKERBOX_LOG_FORMAT=json`, filtered by `BREAKERBOX_LOG`) and, when the standard `OTEL_*`
//! variables ask for it, an OpenTelemetry layer exporting spans over OTLP/HTTP. With no OTLP
//! endpoint set (or `OTEL_TRACES_EXPORTER=none`, `OTEL_SDK_DISABLED=true`) neither an exporter
//! nor the layer is built, and the span helpers skip every OpenTelemetry call.
//!
//! Each layer has its own filter. The request spans are at DEBUG, so at the default `info` the
//! log layer never records (nor formats) them, while the OpenTelemetry layer takes every
//! breakerbox span whatever `BREAKERBOX_LOG` says.

use std::sync::OnceLock;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry::{Key, global};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Metadata;
use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::{FilterExt as _, filter_fn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

/// The service name when neither `OTEL_SERVICE_NAME` nor `OTEL_RESOURCE_ATTRIBUTES` gives one.
pub const DEFAULT_SERVICE_NAME: &str = "breakerbox";

/// The tracer provider, once export is on; spans are exported through it.
static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// Whether spans are exported (an OTLP exporter was built by [`init`]).
pub fn tracing_enabled() -> bool {
    PROVIDER.get().is_some()
}

/// Whether the `OTEL_*` variables read through `var` ask for trace export: an OTLP endpoint is
/// set, and neither the SDK nor the traces exporter is switched off.
pub fn export_requested(var: impl Fn(&str) -> Option<String>) -> bool {
    let is =
        |key: &str, value: &str| var(key).is_some_and(|v| v.trim().eq_ignore_ascii_case(value));
    let set = |key: &str| var(key).is_some_and(|v| !v.trim().is_empty());
    if is("OTEL_SDK_DISABLED", "true") || is("OTEL_TRACES_EXPORTER", "none") {
        return false;
    }
    set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
}

/// Installs the process's subscriber (once; a later call changes nothing) and, when the
/// environment asks for it, the OTLP exporter and the global W3C propagator. Answers whether
/// spans are exported.
pub fn init() -> bool {
    let json = std::env::var("BREAKERBOX_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    // Colour codes only for a terminal: in a file or a log collector they are noise, and
    // styling every span field name cost a tenth of a proxied request's instructions.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let fmt = tracing_subscriber::fmt::layer()
        .with_target(false)
        .with_ansi(ansi);
    let mut layers: Vec<Box<dyn Layer<Registry> + Send + Sync>> = Vec::new();
    layers.push(if json {
        fmt.json().with_filter(log_filter()).boxed()
    } else {
        fmt.with_filter(log_filter()).boxed()
    });
    let mut failed = None;
    if export_requested(|key| std::env::var(key).ok()) && PROVIDER.get().is_none() {
        match build_provider() {
            Ok(provider) => {
                let tracer = provider.tracer(DEFAULT_SERVICE_NAME);
                // Only the attributes DESIGN.md names: no code location, thread or timing.
                let layer = tracing_opentelemetry::layer()
                    .with_tracer(tracer)
                    .with_location(false)
                    .with_threads(false)
                    .with_target(false)
                    .with_tracked_inactivity(false);
                // Every breakerbox span; events as the log filter lets them through (they
                // become span events), as before the layers had filters of their own.
                let ours = filter_fn(is_breakerbox_span).with_max_level_hint(LevelFilter::DEBUG);
                layers.push(layer.with_filter(ours.or(log_filter())).boxed());
                global::set_text_map_propagator(TraceContextPropagator::new());
                let _ = PROVIDER.set(provider);
            }
            Err(error) => failed = Some(error),
        }
    }
    // Another subscriber (a test's) may be installed already: it stays.
    let _ = tracing_subscriber::registry().with(layers).try_init();
    if let Some(error) = failed {
        tracing::error!(%error, "the OTLP trace exporter could not be built; spans are not exported");
    }
    tracing_enabled()
}

/// `BREAKERBOX_LOG`, or `info,sqlx=warn` when unset or unreadable.
fn log_filter() -> EnvFilter {
    EnvFilter::try_from_env("BREAKERBOX_LOG").unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"))
}

fn is_breakerbox_span(metadata: &Metadata<'_>) -> bool {
    let target = metadata.target();
    metadata.is_span() && (target == "breakerbox" || target.starts_with("breakerbox::"))
}

fn build_provider() -> Result<SdkTracerProvider, opentelemetry_otlp::ExporterBuildError> {
    // The exporter reads the endpoint, headers, timeout and compression from OTEL_* itself; the
    // default config reads OTEL_TRACES_SAMPLER(_ARG).
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource())
        .build())
}

/// `OTEL_RESOURCE_ATTRIBUTES` and `OTEL_SERVICE_NAME`, with our default service name in place of
/// the SDK's `unknown_service:…`.
fn resource() -> Resource {
    let detected = Resource::builder().build();
    let named = detected
        .get(&Key::new("service.name"))
        .is_some_and(|name| !name.as_str().starts_with("unknown_service"));
    if named {
        detected
    } else {
        Resource::builder()
            .with_service_name(DEFAULT_SERVICE_NAME)
            .build()
    }
}

/// Exports every span ended so far. Blocks a pool thread, not the caller's.
pub async fn flush_traces() {
    if let Some(provider) = PROVIDER.get() {
        let provider = provider.clone();
        let flushed = tokio::task::spawn_blocking(move || provider.force_flush()).await;
        if let Ok(Err(error)) = flushed {
            tracing::warn!(%error, "pending spans could not be exported");
        }
    }
}

/// Flushes and stops the exporter: call once, at the end of the process.
pub async fn shutdown_traces() {
    if let Some(provider) = PROVIDER.get() {
        let provider = provider.clone();
        let stopped = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        if let Ok(Err(error)) = stopped {
            tracing::warn!(%error, "the trace exporter did not shut down cleanly");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::export_requested;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |key| {
            pairs
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn no_otel_variable_builds_no_exporter() {
        assert!(!export_requested(env(&[])));
        assert!(!export_requested(env(&[("OTEL_SERVICE_NAME", "x")])));
        assert!(!export_requested(env(&[(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            " "
        )])));
    }

    #[test]
    fn an_endpoint_asks_for_export_unless_switched_off() {
        let on = [("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")];
        assert!(export_requested(env(&on)));
        assert!(export_requested(env(&[(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://127.0.0.1:4318/v1/traces"
        )])));
        let off = [on[0], ("OTEL_TRACES_EXPORTER", "none")];
        assert!(!export_requested(env(&off)));
        let disabled = [on[0], ("OTEL_SDK_DISABLED", "TRUE")];
        assert!(!export_requested(env(&disabled)));
    }
}
