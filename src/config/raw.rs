//! The file as serde reads it: one struct per table, every key optional, so what is absent and
//! what is valid are decided in one place, the conversion (`convert.rs`). The same structs,
//! filled from a [`Config`], are what `check-config` prints.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use serde::de::{self, DeserializeOwned, Deserializer, Error as _, Visitor};
use serde::{Deserialize, Serialize};
use toml::Table;

/// The whole file.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    #[serde(default, deserialize_with = "table")]
    pub(crate) server: Option<RawServer>,
    pub(crate) store: Option<RawStore>,
    #[serde(default, deserialize_with = "table")]
    pub(crate) admin: Option<RawAdmin>,
    pub(crate) defaults: Option<RawDefaults>,
    pub(crate) upstreams: Option<BTreeMap<String, RawUpstream>>,
    #[serde(default, deserialize_with = "table")]
    pub(crate) chaos: Option<RawChaos>,
    #[serde(default, deserialize_with = "table")]
    pub(crate) health: Option<RawHealth>,
}

/// `[server]`.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawServer {
    pub(crate) listen: Option<String>,
    pub(crate) max_body_bytes: Option<i64>,
    pub(crate) max_header_bytes: Option<i64>,
    #[serde(default, deserialize_with = "names")]
    pub(crate) trusted_proxies: Option<Vec<String>>,
    #[serde(default, with = "duration")]
    pub(crate) header_read_timeout: Option<Duration>,
    #[serde(default, with = "duration")]
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) max_connections: Option<i64>,
}

/// `[store]`: its own keys and the `database` breaker's.
pub(crate) type RawStore = Layered<StoreKeys, BreakerKeys, NoKeys>;

/// The keys only `[store]` has.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StoreKeys {
    pub(crate) url: Option<String>,
    #[serde(default, with = "duration")]
    pub(crate) call_timeout: Option<Duration>,
    pub(crate) queue_memory_capacity: Option<i64>,
    #[serde(default, with = "duration")]
    pub(crate) queue_finished_retention: Option<Duration>,
    pub(crate) queue_finished_keep: Option<i64>,
    #[serde(default, with = "duration")]
    pub(crate) claim_lease: Option<Duration>,
    pub(crate) queue_max_requests: Option<i64>,
    pub(crate) queue_max_bytes: Option<i64>,
    pub(crate) cache_max_entries: Option<i64>,
    pub(crate) cache_max_bytes: Option<i64>,
}

/// `[admin]`.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAdmin {
    #[serde(default, deserialize_with = "tables")]
    pub(crate) tokens: Vec<RawToken>,
}

/// One `[[admin.tokens]]`.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawToken {
    pub(crate) name: Option<String>,
    pub(crate) token: Option<String>,
    pub(crate) token_env: Option<String>,
    pub(crate) role: Option<String>,
}

/// `[defaults]`: breaker and call keys for every upstream.
pub(crate) type RawDefaults = Layered<NoKeys, BreakerKeys, CallKeys>;

/// `[upstreams.NAME]`: its own keys over the defaults' breaker and call keys.
pub(crate) type RawUpstream = Layered<UpstreamKeys, BreakerKeys, CallKeys>;

/// The keys only an upstream has.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpstreamKeys {
    pub(crate) url: Option<String>,
    pub(crate) fallback: Option<String>,
    pub(crate) health_path: Option<String>,
    #[serde(default, deserialize_with = "table")]
    pub(crate) degraded: Option<RawDegraded>,
}

/// `[upstreams.NAME.degraded]`.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDegraded {
    pub(crate) status: Option<i64>,
    pub(crate) body: Option<String>,
    pub(crate) content_type: Option<String>,
}

/// The keys of a [`BreakerConfig`](crate::breaker::BreakerConfig).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BreakerKeys {
    pub(crate) failure_threshold: Option<i64>,
    #[serde(default, deserialize_with = "percent")]
    pub(crate) failure_rate_threshold: Option<i64>,
    pub(crate) minimum_calls: Option<i64>,
    #[serde(default, with = "duration")]
    pub(crate) window: Option<Duration>,
    pub(crate) buckets: Option<i64>,
    pub(crate) window_type: Option<String>,
    pub(crate) window_calls: Option<i64>,
    #[serde(default, with = "duration")]
    pub(crate) open_duration: Option<Duration>,
    #[serde(default, with = "duration")]
    pub(crate) open_duration_max: Option<Duration>,
    #[serde(default, deserialize_with = "number")]
    pub(crate) open_duration_multiplier: Option<f64>,
    #[serde(default, deserialize_with = "percent")]
    pub(crate) jitter: Option<i64>,
    pub(crate) half_open_max_calls: Option<i64>,
    pub(crate) half_open_success_threshold: Option<i64>,
    #[serde(default, with = "duration")]
    pub(crate) half_open_max_wait: Option<Duration>,
    pub(crate) consecutive_failures_window: Option<String>,
    #[serde(default, with = "duration")]
    pub(crate) slow_call_duration: Option<Duration>,
    #[serde(default, deserialize_with = "percent")]
    pub(crate) slow_call_rate_threshold: Option<i64>,
    pub(crate) honor_retry_after: Option<bool>,
}

/// Keys about calling an upstream that `[defaults]` may set for every upstream.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CallKeys {
    #[serde(default, with = "duration")]
    pub(crate) call_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "statuses")]
    pub(crate) failure_statuses: Option<Vec<i64>>,
    #[serde(default, deserialize_with = "percent")]
    pub(crate) retry_budget_percent: Option<i64>,
    pub(crate) retry_min_per_second: Option<i64>,
    #[serde(default, with = "duration")]
    pub(crate) cache_ttl: Option<Duration>,
    #[serde(default, deserialize_with = "names")]
    pub(crate) credential_headers: Option<Vec<String>>,
    #[serde(default, deserialize_with = "names")]
    pub(crate) credential_params: Option<Vec<String>>,
    pub(crate) queue_max_requests: Option<i64>,
    pub(crate) queue_max_bytes: Option<i64>,
    #[serde(default, deserialize_with = "names")]
    pub(crate) queue_strip_headers: Option<Vec<String>>,
}

/// No keys: the part of a [`Layered`] table that a section lacks.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NoKeys {}

/// `[chaos]`.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawChaos {
    pub(crate) enabled: Option<bool>,
}

/// `[health]`.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHealth {
    #[serde(default, with = "duration")]
    pub(crate) check_interval: Option<Duration>,
    #[serde(default, with = "duration")]
    pub(crate) detailed_cache: Option<Duration>,
}

/// One table made of three groups of keys, each group a struct of its own so that a key shared
/// by several tables is written once. serde's `flatten` cannot refuse unknown keys and loses the
/// key of a refused value, so the table is split by the groups' key lists instead; a refusal
/// inside a group carries its key as `key` + [`INNER`] + message, which the loader joins to the
/// table's path.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Layered<O, B, C> {
    #[serde(flatten)]
    pub(crate) own: O,
    #[serde(flatten)]
    pub(crate) breaker: B,
    #[serde(flatten)]
    pub(crate) call: C,
}

/// Separates the key path inside a [`Layered`] group from serde's message.
pub(crate) const INNER: char = '\u{1f}';

impl<'de, O, B, C> Deserialize<'de> for Layered<O, B, C>
where
    O: DeserializeOwned,
    B: DeserializeOwned,
    C: DeserializeOwned,
{
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let groups = [fields::<O>(), fields::<B>(), fields::<C>()];
        let mut parts = [Table::new(), Table::new(), Table::new()];
        for (key, value) in Table::deserialize(deserializer)? {
            let Some(i) = groups.iter().position(|g| g.contains(&key.as_str())) else {
                let known: Vec<String> = groups.concat().iter().map(|k| format!("`{k}`")).collect();
                return Err(D::Error::custom(format!(
                    "{key}{INNER}unknown field `{key}`, expected one of {}",
                    known.join(", ")
                )));
            };
            parts[i].insert(key, value);
        }
        let [own, breaker, call] = parts;
        Ok(Layered {
            own: group("", own)?,
            breaker: group("", breaker)?,
            call: group("", call)?,
        })
    }
}

/// `T` from `table` (found at `at` in the value being read); a refusal carries its key path from
/// there before [`INNER`].
fn group<T: DeserializeOwned, E: de::Error>(at: &str, table: Table) -> Result<T, E> {
    serde_path_to_error::deserialize(table).map_err(|e| {
        let message = e.inner().message();
        let (deeper, message) = message.split_once(INNER).unwrap_or(("", message));
        let path = join(at, &join(&e.path().to_string(), deeper));
        E::custom(format!("{path}{INNER}{message}"))
    })
}

/// A key path inside another: `a` + `b` → `a.b`, `a` + `[0]` → `a[0]`; `.` is serde's root.
pub(crate) fn join(outer: &str, inner: &str) -> String {
    match (outer, inner) {
        ("." | "", inner) => inner.to_owned(),
        (outer, "") => outer.to_owned(),
        (outer, inner) if inner.starts_with('[') => format!("{outer}{inner}"),
        (outer, inner) => format!("{outer}.{inner}"),
    }
}

/// A table read as a table only: serde would also fill a struct from an array, by position.
fn table<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<Option<T>, D::Error> {
    group("", Table::deserialize(d)?).map(Some)
}

/// An array of tables, each read as a table only.
fn tables<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<Vec<T>, D::Error> {
    let mut items = Vec::new();
    let what = Expect("an array of tables", PhantomData::<Vec<Table>>);
    for (i, table) in d.deserialize_seq(what)?.into_iter().enumerate() {
        items.push(group(&format!("[{i}]"), table)?);
    }
    Ok(items)
}

/// Reads a `T`; a value of the wrong type is refused as not being `what` ("an integer
/// percentage") rather than as not being an `i64`.
struct Expect<T>(&'static str, PhantomData<T>);

impl Visitor<'_> for Expect<i64> {
    type Value = i64;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
    fn visit_i64<E: de::Error>(self, n: i64) -> Result<i64, E> {
        Ok(n)
    }
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for Expect<Vec<T>> {
    type Value = Vec<T>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(items)
    }
}

impl Visitor<'_> for Expect<f64> {
    type Value = f64;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
    fn visit_f64<E: de::Error>(self, n: f64) -> Result<f64, E> {
        Ok(n)
    }
    // `2` means 2.0: TOML tells integers from floats, people do not.
    fn visit_i64<E: de::Error>(self, n: i64) -> Result<f64, E> {
        Ok(n as f64)
    }
}

fn number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    d.deserialize_f64(Expect("a number", PhantomData::<f64>))
        .map(Some)
}

fn percent<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    d.deserialize_i64(Expect("an integer percentage", PhantomData::<i64>))
        .map(Some)
}

fn statuses<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<i64>>, D::Error> {
    let what = Expect("an array of HTTP status codes", PhantomData::<Vec<i64>>);
    d.deserialize_seq(what).map(Some)
}

fn names<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    let what = Expect("an array of strings", PhantomData::<Vec<String>>);
    d.deserialize_seq(what).map(Some)
}

/// The keys of the struct `T`, as serde knows them: asks `T` to deserialize itself and notes the
/// field list it names.
pub(crate) fn fields<T: DeserializeOwned>() -> &'static [&'static str] {
    struct Names(Option<&'static [&'static str]>);
    impl<'de> Deserializer<'de> for &mut Names {
        type Error = de::value::Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(Self::Error::custom("not a struct"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            self.0 = Some(fields);
            Err(Self::Error::custom("noted"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
            ignored_any
        }
    }
    let mut names = Names(None);
    let _ = T::deserialize(&mut names);
    names.0.unwrap_or(&[])
}

/// Durations as `humantime` strings: `"500ms"`, `"30s"`, `"5m"`; written back in whole units.
pub(crate) mod duration {
    use super::*;

    pub(crate) const EXPECTED: &str = "a duration string such as \"500ms\", \"30s\" or \"5m\"";

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        struct Text;
        impl Visitor<'_> for Text {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(EXPECTED)
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Duration, E> {
                humantime::parse_duration(text.trim()).map_err(|e| {
                    E::custom(format!(
                        "not a duration ({e}); write e.g. \"500ms\", \"30s\" or \"5m\""
                    ))
                })
            }
        }
        d.deserialize_str(Text).map(Some)
    }

    pub(crate) fn serialize<S: serde::Serializer>(
        d: &Option<Duration>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&render(*d)),
            None => s.serialize_none(),
        }
    }

    /// Whole units where they fit (`"90s"`, `"10m"`, `"1h"`, `"250ms"`), humantime otherwise.
    pub(crate) fn render(d: Duration) -> String {
        let secs = d.as_secs();
        if d.subsec_nanos() == 0 {
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
        }
    }
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
            assert_eq!(duration::render(d), text);
            let back = humantime::parse_duration(text).expect("humantime reads it");
            assert_eq!(back, d, "{text}");
        }
    }

    #[test]
    fn field_lists_come_from_the_structs() {
        assert_eq!(fields::<RawChaos>(), ["enabled"]);
        assert_eq!(fields::<NoKeys>(), [] as [&str; 0]);
        assert!(fields::<BreakerKeys>().contains(&"honor_retry_after"));
    }
}
