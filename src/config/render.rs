//! [`Config`] back to TOML: the effective configuration `breakerbox check-config` prints.
//! Every value is explicit, so loading the output gives the same configuration; secrets are
//! replaced by `"<redacted>"` (a token read from the environment is shown as its `token_env`).

use std::fmt::Write as _;
use std::time::Duration;

use toml::Value;

use crate::breaker::BreakerConfig;

use super::types::{Config, Defaults, Fallback, SecretSource, UpstreamConfig};

/// What stands in for a secret in the rendered configuration.
pub const REDACTED: &str = "<redacted>";

/// The keys of one table, in the order they are written.
type Entries = Vec<(&'static str, Value)>;

impl Config {
    /// The effective configuration as TOML, secrets redacted, keys in the documented order.
    pub fn to_toml(&self) -> String {
        let mut out = String::from("# effective breakerbox configuration (secrets redacted)\n");
        let server = vec![
            ("listen", string(self.server.listen.to_string())),
            ("max_body_bytes", int(self.server.max_body_bytes)),
            ("max_header_bytes", int(self.server.max_header_bytes)),
        ];
        write_table(&mut out, "[server]", &server);

        let mut store = vec![
            ("url", string(self.store.url.redacted())),
            ("call_timeout", duration(self.store.call_timeout)),
            (
                "queue_memory_capacity",
                int(self.store.queue_memory_capacity),
            ),
            (
                "queue_finished_retention",
                duration(self.store.queue_finished_retention),
            ),
            ("queue_finished_keep", int(self.store.queue_finished_keep)),
        ];
        breaker(&mut store, &self.store.breaker);
        write_table(&mut out, "[store]", &store);

        for token in &self.admin.tokens {
            let secret = match &token.source {
                SecretSource::Inline => ("token", string(REDACTED)),
                SecretSource::Env(var) => ("token_env", string(var)),
            };
            let entries = vec![
                ("name", string(&token.name)),
                secret,
                ("role", string(token.role.as_str())),
            ];
            write_table(&mut out, "[[admin.tokens]]", &entries);
        }

        write_table(&mut out, "[defaults]", &defaults(&self.defaults));
        for (name, upstream) in &self.upstreams {
            let (entries, degraded) = upstream_entries(upstream, &self.defaults);
            write_table(&mut out, &format!("[upstreams.{name}]"), &entries);
            if let Some(degraded) = degraded {
                write_table(&mut out, &format!("[upstreams.{name}.degraded]"), &degraded);
            }
        }

        let chaos = vec![("enabled", Value::Boolean(self.chaos.enabled))];
        write_table(&mut out, "[chaos]", &chaos);
        let health = vec![
            ("check_interval", duration(self.health.check_interval)),
            ("detailed_cache", duration(self.health.detailed_cache)),
        ];
        write_table(&mut out, "[health]", &health);
        out
    }
}

/// Keys are ours (bare-key safe); values are written by `toml`, so strings are quoted properly.
fn write_table(out: &mut String, header: &str, entries: &Entries) {
    let _ = writeln!(out, "\n{header}");
    for (key, value) in entries {
        let _ = writeln!(out, "{key} = {value}");
    }
}

fn string(s: impl Into<String>) -> Value {
    Value::String(s.into())
}

fn int(n: impl TryInto<i64>) -> Value {
    Value::Integer(n.try_into().unwrap_or(i64::MAX))
}

/// Whole units where they fit (`"90s"`, `"10m"`, `"1h"`, `"250ms"`), humantime otherwise.
fn duration(d: Duration) -> Value {
    let secs = d.as_secs();
    let text = if d.subsec_nanos() == 0 {
        match secs {
            0 => "0s".to_owned(),
            s if s.is_multiple_of(3600) => format!("{}h", s / 3600),
            s if s.is_multiple_of(60) && s >= 300 => format!("{}m", s / 60),
            s => format!("{s}s"),
        }
    } else if d.subsec_nanos().is_multiple_of(1_000_000) && secs < 60 {
        format!("{}ms", d.as_millis())
    } else {
        humantime::format_duration(d).to_string()
    };
    Value::String(text)
}

fn breaker(t: &mut Entries, b: &BreakerConfig) {
    t.push(("failure_threshold", int(b.failure_threshold())));
    t.push((
        "failure_rate_threshold",
        int(b.failure_rate_threshold().get()),
    ));
    t.push(("minimum_calls", int(b.minimum_calls())));
    t.push(("window", duration(b.window())));
    t.push(("buckets", int(b.buckets())));
    t.push(("open_duration", duration(b.open_duration())));
    if let Some(max) = b.open_duration_max() {
        t.push(("open_duration_max", duration(max)));
    }
    t.push(("jitter", int(b.jitter())));
    t.push(("half_open_max_calls", int(b.half_open_max_calls())));
    t.push((
        "half_open_success_threshold",
        int(b.half_open_success_threshold()),
    ));
    if let Some(slow) = b.slow_call_duration() {
        t.push(("slow_call_duration", duration(slow)));
    }
    if let Some(rate) = b.slow_call_rate_threshold() {
        t.push(("slow_call_rate_threshold", int(rate.get())));
    }
    t.push(("honor_retry_after", Value::Boolean(b.honor_retry_after())));
}

fn statuses(list: &[u16]) -> Value {
    Value::Array(list.iter().map(|s| int(*s)).collect())
}

fn defaults(d: &Defaults) -> Entries {
    let mut t = Vec::new();
    breaker(&mut t, &d.breaker);
    t.push(("call_timeout", duration(d.call_timeout)));
    // The full 5xx list is long; leaving it out means the same thing.
    if d.failure_statuses != Defaults::default().failure_statuses {
        t.push(("failure_statuses", statuses(&d.failure_statuses)));
    }
    t.push(("retry_budget_percent", int(d.retry_budget_percent)));
    t.push(("retry_min_per_second", int(d.retry_min_per_second)));
    t.push(("cache_ttl", duration(d.cache_ttl)));
    t
}

fn upstream_entries(u: &UpstreamConfig, d: &Defaults) -> (Entries, Option<Entries>) {
    let mut t = vec![("url", string(u.url.as_str()))];
    breaker(&mut t, &u.breaker);
    t.push(("call_timeout", duration(u.call_timeout)));
    // An upstream that keeps the defaults' statuses inherits them when loaded again.
    if u.failure_statuses != d.failure_statuses {
        t.push(("failure_statuses", statuses(&u.failure_statuses)));
    }
    t.push(("retry_budget_percent", int(u.retry_budget_percent)));
    t.push(("retry_min_per_second", int(u.retry_min_per_second)));
    if let Some(path) = &u.health_path {
        t.push(("health_path", string(path)));
    }
    t.push(("fallback", string(u.fallback.kind())));
    let degraded = match &u.fallback {
        Fallback::Cache { ttl } => {
            t.push(("cache_ttl", duration(*ttl)));
            None
        }
        Fallback::Degraded {
            status,
            body,
            content_type,
        } => Some(vec![
            ("status", int(*status)),
            ("body", string(body)),
            ("content_type", string(content_type)),
        ]),
        Fallback::Queue | Fallback::Error => None,
    };
    (t, degraded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_render_in_whole_units() {
        let cases = [
            (Duration::ZERO, "0s"),
            (Duration::from_millis(250), "250ms"),
            (Duration::from_millis(1500), "1500ms"),
            (Duration::from_secs(90), "90s"),
            (Duration::from_secs(60), "60s"),
            (Duration::from_secs(600), "10m"),
            (Duration::from_secs(7200), "2h"),
            (Duration::from_nanos(1_000_000_001), "1s 1ns"),
        ];
        for (d, text) in cases {
            assert_eq!(duration(d), Value::String(text.into()));
            let back = humantime::parse_duration(text).expect("humantime reads it");
            assert_eq!(back, d, "{text}");
        }
    }
}
