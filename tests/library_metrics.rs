//! Features `metrics` and `tracing`: an in-process breaker exports the gateway's own metric
//! names, label sets and types (compared with a real gateway process's scrape), passes
//! `promtool check metrics`, and emits `breaker.transition` spans with the gateway's attribute
//! names.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use breakerbox::breaker::{BreakerMetrics, NoJitter, TransitionSpans};
use breakerbox::{Breaker, BreakerConfig, ManualClock, Outcome, State};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use support::gateway_process::{GatewayProcess, Listen, Output};
use support::ports::free_port;
use support::prometheus::Scrape;
use support::temp_dir::TempDir;
use tracing_subscriber::layer::SubscriberExt;

/// Family name → (type, label names), for the families of `breaker`'s series.
fn families(text: &str, breaker: &str) -> BTreeMap<String, (String, BTreeSet<String>)> {
    let scrape = Scrape::parse(text);
    let mut families = BTreeMap::new();
    for ((name, labels), _) in scrape.of_breaker(breaker) {
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .filter(|base| scrape.types.contains_key(*base))
            .unwrap_or(&name)
            .to_owned();
        let kind = scrape.types.get(&family).cloned().unwrap_or_default();
        let names = labels.keys().filter(|l| *l != "le").cloned().collect();
        families.insert(family, (kind, names));
    }
    families
}

fn promtool_check(text: &str) {
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| {
            panic!("promtool is needed ({error}); scripts/install-test-deps installs it")
        });
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("piped");
    let output = child.wait_with_output().expect("promtool ran");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() && said.trim().is_empty(),
        "promtool check metrics: {said}\n{text}"
    );
}

/// A span's name and fields.
type SpanFields = (String, BTreeMap<String, String>);

/// The spans' fields, as a subscriber sees them.
#[derive(Clone, Default)]
struct Spans(Arc<Mutex<Vec<SpanFields>>>);

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.insert(
            field.name().to_owned(),
            format!("{value:?}").replace('"', ""),
        );
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Spans {
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        _: &tracing::span::Id,
        _: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let mut fields = BTreeMap::new();
        attrs.record(&mut Fields(&mut fields));
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((attrs.metadata().name().to_owned(), fields));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_process_breaker_exports_the_gateway_s_metrics_and_spans() {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(BreakerMetrics::CALL_DURATION.to_owned()),
            BreakerMetrics::DURATION_BUCKETS,
        )
        .expect("buckets")
        .install_recorder()
        .expect("the test's recorder");
    BreakerMetrics::describe();
    let spans = Spans::default();
    let subscriber = tracing_subscriber::registry().with(spans.clone());
    let _guard = tracing::subscriber::set_default(subscriber);

    let clock = ManualClock::new();
    let config = BreakerConfig::builder()
        .failure_threshold(2)
        .slow_call_duration(Some(Duration::from_millis(500)))
        .build()
        .expect("valid");
    let tmdb = Breaker::builder("tmdb", config)
        .clock(Arc::new(clock.clone()))
        .jitter(Arc::new(NoJitter))
        .listener(BreakerMetrics::shared())
        .listener(TransitionSpans::shared())
        .call_listener(BreakerMetrics::shared())
        .build();
    BreakerMetrics::refresh(&tmdb);
    let permit = tmdb.try_acquire().expect("closed");
    clock.advance(Duration::from_millis(3));
    permit.record(Outcome::Success);
    let permit = tmdb.try_acquire().expect("closed");
    clock.advance(Duration::from_millis(700));
    permit.record(Outcome::Failure);
    tmdb.try_acquire().expect("closed").timeout();
    assert_eq!(tmdb.state(), State::Open);
    assert!(tmdb.try_acquire().is_err());
    BreakerMetrics::refresh(&tmdb);
    let text = handle.render();

    let scrape = Scrape::parse(&text);
    let tmdb_series = |name: &str, labels: &[(&str, &str)]| {
        let mut all = vec![("breaker", "tmdb")];
        all.extend_from_slice(labels);
        scrape.get(name, &all)
    };
    for (outcome, count) in [
        ("success", 1.0),
        ("failure", 1.0),
        ("timeout", 1.0),
        ("rejected", 1.0),
    ] {
        assert_eq!(
            tmdb_series("breakerbox_calls_total", &[("outcome", outcome)]),
            Some(count),
            "{outcome}\n{text}"
        );
    }
    assert_eq!(
        tmdb_series("breakerbox_breaker_state", &[("state", "open")]),
        Some(1.0)
    );
    assert_eq!(
        tmdb_series("breakerbox_breaker_state", &[("state", "closed")]),
        Some(0.0)
    );
    assert_eq!(
        tmdb_series(
            "breakerbox_breaker_transitions_total",
            &[("from", "closed"), ("to", "open")]
        ),
        Some(1.0)
    );
    assert_eq!(tmdb_series("breakerbox_slow_calls_total", &[]), Some(1.0));
    assert_eq!(
        tmdb_series(
            "breakerbox_call_duration_seconds_bucket",
            &[("outcome", "success"), ("le", "0.005")]
        ),
        Some(1.0),
        "the 3 ms success lies in the 5 ms bucket\n{text}"
    );
    promtool_check(&text);

    let seen = spans
        .0
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let (name, fields) = seen
        .iter()
        .find(|(name, _)| name == "breaker.transition")
        .expect("a transition span");
    assert_eq!(name, "breaker.transition");
    for (field, value) in [
        ("breakerbox.breaker.name", "tmdb"),
        ("breakerbox.breaker.from", "closed"),
        ("breakerbox.breaker.to", "open"),
        ("breakerbox.breaker.reason", "consecutive_failures"),
    ] {
        assert_eq!(
            fields.get(field).map(String::as_str),
            Some(value),
            "{fields:?}"
        );
    }

    // The gateway's own scrape, from a real process with a breaker of the same name.
    let dir = TempDir::new();
    let port = free_port();
    let config = dir.0.join("gw.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n[store]\nurl = \"{}\"\n\
             [upstreams.tmdb]\nurl = \"http://127.0.0.1:9\"\nslow_call_duration = \"1s\"\n",
            dir.sqlite_url("gw.db")
        ),
    )
    .expect("config written");
    let gateway = GatewayProcess::serve(&config, Listen::Port(port), &[], Output::Discard).await;
    let _ = reqwest::get(gateway.url("/proxy/tmdb/x"))
        .await
        .expect("answered");
    let gateway_text = reqwest::get(gateway.url("/metrics"))
        .await
        .expect("scraped")
        .text()
        .await
        .expect("body");
    let gateway_families = families(&gateway_text, "tmdb");
    let library_families = families(&text, "tmdb");
    assert_eq!(
        library_families
            .keys()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        [
            "breakerbox_breaker_failure_ratio",
            "breakerbox_breaker_state",
            "breakerbox_breaker_state_since_timestamp_seconds",
            "breakerbox_breaker_transitions_total",
            "breakerbox_call_duration_seconds",
            "breakerbox_calls_total",
            "breakerbox_slow_calls_total",
        ]
    );
    for (family, shape) in library_families {
        assert_eq!(
            gateway_families.get(&family),
            Some(&shape),
            "the library's {family} differs from the gateway's"
        );
    }
}
