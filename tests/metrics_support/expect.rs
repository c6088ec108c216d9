//! What one breaker's series must say, checked against a scrape: every series exactly, no
//! more and no fewer.

use std::collections::BTreeMap;

use super::{Labels, Scrape, labels_of};

const STATES: [&str; 5] = ["closed", "open", "half_open", "forced_open", "disabled"];
const BUCKETS: [&str; 16] = [
    "0.001", "0.005", "0.01", "0.025", "0.05", "0.075", "0.1", "0.25", "0.5", "0.75", "1", "2.5",
    "5", "7.5", "10", "+Inf",
];

/// What one breaker's series must say, histograms aside.
#[derive(Debug, Clone, Copy, Default)]
pub struct Expected {
    pub state: &'static str,
    pub state_since: f64,
    pub transitions: &'static [(&'static str, &'static str)],
    pub calls: [u64; 4],
    pub failure_ratio: f64,
    pub fallbacks: [u64; 4],
    pub queue_depth: u64,
    pub slow: u64,
    pub retries: [u64; 2],
    pub queue_refused: u64,
}

impl Expected {
    /// Every non-histogram series of `breaker`, with its value.
    fn series(&self, breaker: &str) -> BTreeMap<(String, Labels), f64> {
        let mut all = BTreeMap::new();
        let mut put = |name: &str, labels: &[(&str, &str)], value: f64| {
            let mut labels = labels_of(labels);
            labels.insert("breaker".into(), breaker.into());
            all.insert((name.to_owned(), labels), value);
        };
        for state in STATES {
            let on = if state == self.state { 1.0 } else { 0.0 };
            put("breakerbox_breaker_state", &[("state", state)], on);
        }
        put(
            "breakerbox_breaker_state_since_timestamp_seconds",
            &[],
            self.state_since,
        );
        for from in STATES {
            for to in STATES.iter().filter(|to| **to != from) {
                let n = self
                    .transitions
                    .iter()
                    .filter(|t| **t == (from, *to))
                    .count();
                let labels = [("from", from), ("to", *to)];
                put("breakerbox_breaker_transitions_total", &labels, n as f64);
            }
        }
        for (outcome, n) in ["success", "failure", "timeout", "rejected"]
            .iter()
            .zip(self.calls)
        {
            put("breakerbox_calls_total", &[("outcome", outcome)], n as f64);
        }
        put("breakerbox_breaker_failure_ratio", &[], self.failure_ratio);
        for (kind, n) in ["cache", "degraded", "queue", "error"]
            .iter()
            .zip(self.fallbacks)
        {
            put("breakerbox_fallbacks_total", &[("kind", kind)], n as f64);
        }
        put("breakerbox_queue_depth", &[], self.queue_depth as f64);
        put("breakerbox_slow_calls_total", &[], self.slow as f64);
        put(
            "breakerbox_queue_refused_total",
            &[],
            self.queue_refused as f64,
        );
        for (result, n) in ["attempted", "budget_exhausted"].iter().zip(self.retries) {
            put("breakerbox_retries_total", &[("result", result)], n as f64);
        }
        all
    }
}

/// Asserts that `breaker`'s series are exactly `expected` (no more, no fewer), histograms aside.
pub fn assert_breaker(scrape: &Scrape, breaker: &str, expected: &Expected) {
    let actual: BTreeMap<_, _> = scrape
        .of_breaker(breaker)
        .into_iter()
        .filter(|((name, _), _)| {
            !name.starts_with("breakerbox_call_duration_seconds")
                && !name.starts_with("breakerbox_breaker_recovery_seconds")
        })
        .collect();
    let expected = expected.series(breaker);
    for (key, want) in &expected {
        let got = actual.get(key);
        if key.0 == "breakerbox_breaker_state_since_timestamp_seconds" {
            // Wall time is derived from the monotonic clock at each reading: equal to within
            // microseconds, not bit for bit.
            let got = got.unwrap_or_else(|| panic!("{breaker}: no state_since"));
            assert!(
                (got - want).abs() < 0.005,
                "{breaker} state_since {got} vs {want}"
            );
        } else {
            assert_eq!(got, Some(want), "{} {:?}", key.0, key.1);
        }
    }
    let extra: Vec<_> = actual
        .keys()
        .filter(|k| !expected.contains_key(k))
        .collect();
    assert!(extra.is_empty(), "unexpected series: {extra:?}");
}

/// Asserts the latency histogram of `breaker`/`outcome`: the bucket bounds, cumulative counts,
/// `count`, and `(le, at least this many)` pairs; answers the sum.
pub fn assert_histogram(
    scrape: &Scrape,
    breaker: &str,
    outcome: &str,
    count: u64,
    at: &[(&str, u64)],
) -> f64 {
    let name = "breakerbox_call_duration_seconds";
    let labels = [("breaker", breaker), ("outcome", outcome)];
    let mut previous = 0.0;
    for le in BUCKETS {
        let mut with_le = labels.to_vec();
        with_le.push(("le", le));
        let value = scrape.get(&format!("{name}_bucket"), &with_le);
        let value = value.unwrap_or_else(|| panic!("{breaker}/{outcome}: no bucket le={le}"));
        assert!(
            value >= previous,
            "{breaker}/{outcome}: buckets are cumulative"
        );
        if let Some((_, n)) = at.iter().find(|(bound, _)| *bound == le) {
            assert_eq!(value, *n as f64, "{breaker}/{outcome} le={le}");
        }
        previous = value;
    }
    assert_eq!(previous, count as f64, "{breaker}/{outcome}: +Inf");
    let total = scrape.get(&format!("{name}_count"), &labels);
    assert_eq!(total, Some(count as f64), "{breaker}/{outcome}: count");
    let buckets = scrape
        .samples
        .keys()
        .filter(|(n, l)| {
            n == &format!("{name}_bucket")
                && l.get("breaker").map(String::as_str) == Some(breaker)
                && l.get("outcome").map(String::as_str) == Some(outcome)
        })
        .count();
    assert_eq!(buckets, BUCKETS.len(), "{breaker}/{outcome}: bucket set");
    scrape
        .get(&format!("{name}_sum"), &labels)
        .expect("histogram sum")
}
