//! The JSON shapes of DESIGN.md's HTTP surface.

use std::time::{Duration, SystemTime};

use serde::de::{Deserializer, Error as _};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::breaker::Snapshot;
use crate::store::QueueEntry;

/// RFC 3339 with milliseconds, UTC.
pub fn timestamp(at: SystemTime) -> String {
    humantime::format_rfc3339_millis(at).to_string()
}

/// An RFC 3339 time: `Z` or a `±hh:mm` offset, any number of fractional digits.
fn parse_timestamp(text: &str) -> Option<SystemTime> {
    if let Ok(time) = humantime::parse_rfc3339_weak(text) {
        return Some(time);
    }
    // humantime only knows `Z`: take a numeric offset off and apply it ourselves.
    let split = text.len().checked_sub(6)?;
    let (local, offset) = (text.get(..split)?, text.get(split..)?);
    let sign = match offset.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (hours, minutes) = offset.get(1..)?.split_once(':')?;
    let hours: u64 = hours.parse().ok()?;
    let minutes: u64 = minutes.parse().ok()?;
    if hours > 23 || minutes > 59 {
        return None;
    }
    let shift = Duration::from_secs(hours * 3600 + minutes * 60);
    let local = humantime::parse_rfc3339_weak(local).ok()?;
    // 12:00+02:00 is 10:00Z.
    if sign > 0 {
        local.checked_sub(shift)
    } else {
        local.checked_add(shift)
    }
}

/// One breaker's snapshot as the admin API writes it (under the breaker's name) and
/// `breakerbox status` reads it back: the contract's fields (DESIGN.md, "Snapshot fields") and the
/// time left until half-open. The admin API writes more beside them; a reader skips what it
/// does not know.
///
/// A reading error is phrased to follow the field's key path (`… total_requests is "many",
/// expected a whole number`), so the reader can put the path in front.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotJson {
    /// The breaker's name: the key its snapshot is listed under, not one of its fields.
    #[serde(skip)]
    pub name: String,
    /// `closed`, `open`, `half_open`, `forced_open` or `disabled`.
    #[serde(deserialize_with = "string")]
    pub state: String,
    /// Calls with an outcome plus rejected calls.
    #[serde(deserialize_with = "count")]
    pub total_requests: u64,
    /// Calls that succeeded.
    #[serde(deserialize_with = "count")]
    pub successful_requests: u64,
    /// Calls that failed (timeouts excluded).
    #[serde(deserialize_with = "count")]
    pub failed_requests: u64,
    /// Calls that timed out.
    #[serde(deserialize_with = "count")]
    pub timeouts: u64,
    /// Calls turned away.
    #[serde(deserialize_with = "count")]
    pub rejected_requests: u64,
    /// Calls slower than the slow-call duration.
    #[serde(deserialize_with = "count")]
    pub slow_requests: u64,
    /// Failures and timeouts since the last success.
    #[serde(deserialize_with = "count")]
    pub consecutive_failures: u64,
    /// Failed share of the window's calls, in percent (written to two decimals).
    #[serde(deserialize_with = "number")]
    pub error_rate: f64,
    /// When the last failure was recorded.
    #[serde(with = "time")]
    pub last_failure_time: Option<SystemTime>,
    /// When the last success was recorded.
    #[serde(with = "time")]
    pub last_success_time: Option<SystemTime>,
    /// When the current state began.
    #[serde(with = "time")]
    pub state_changed_at: Option<SystemTime>,
    /// Time left until an open breaker lets a probe through.
    #[serde(rename = "retry_after_seconds", default, with = "seconds")]
    pub retry_after: Option<Duration>,
}

impl From<&Snapshot> for SnapshotJson {
    fn from(s: &Snapshot) -> Self {
        Self {
            name: s.name.to_string(),
            state: s.state.as_str().to_owned(),
            total_requests: s.total_requests,
            successful_requests: s.successful_requests,
            failed_requests: s.failed_requests,
            timeouts: s.timeouts,
            rejected_requests: s.rejected_requests,
            slow_requests: s.slow_requests,
            consecutive_failures: u64::from(s.consecutive_failures),
            error_rate: (s.error_rate() * 100.0).round() / 100.0,
            last_failure_time: s.last_failure_time,
            last_success_time: s.last_success_time,
            state_changed_at: Some(s.state_changed_at),
            retry_after: s.retry_after,
        }
    }
}

/// What the admin API writes for one breaker: its [`SnapshotJson`], then the extras operators
/// asked for.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(super) struct Written {
    #[serde(flatten)]
    snapshot: SnapshotJson,
    failure_ratio: Option<f64>,
    window: Window,
    #[serde(serialize_with = "time::serialize")]
    open_until: Option<SystemTime>,
    half_open_probes: u32,
    consecutive_trips: u32,
    last_trip_reason: Option<&'static str>,
    last_recovery_seconds: Option<f64>,
    #[serde(serialize_with = "time::serialize")]
    last_recovered_at: Option<SystemTime>,
    generation: u64,
}

/// The window's outcome counts, as [`Written`] shows them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
struct Window {
    calls: u64,
    successes: u64,
    failures: u64,
    timeouts: u64,
    slow: u64,
}

impl From<&Snapshot> for Written {
    fn from(s: &Snapshot) -> Self {
        Self {
            snapshot: SnapshotJson::from(s),
            failure_ratio: s.failure_ratio,
            window: Window {
                calls: s.window.calls(),
                successes: s.window.successes,
                failures: s.window.failures,
                timeouts: s.window.timeouts,
                slow: s.window.slow,
            },
            open_until: s.open_until,
            half_open_probes: s.half_open_probes,
            consecutive_trips: s.consecutive_trips,
            last_trip_reason: s.last_trip.map(|r| r.as_str()),
            last_recovery_seconds: s.last_recovery.map(|took| took.as_secs_f64()),
            last_recovered_at: s.last_recovered_at,
            generation: s.generation,
        }
    }
}

// Each reader below takes the field as a `Value` first, so its error can show what was found.

fn string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match Value::deserialize(d)? {
        Value::String(text) => Ok(text),
        value => Err(D::Error::custom(format!("is {value}, expected a string"))),
    }
}

fn count<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let value = Value::deserialize(d)?;
    value
        .as_u64()
        .ok_or_else(|| D::Error::custom(format!("is {value}, expected a whole number")))
}

fn number<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let value = Value::deserialize(d)?;
    value
        .as_f64()
        .ok_or_else(|| D::Error::custom(format!("is {value}, expected a number")))
}

/// An RFC 3339 time or null (the key itself is required).
mod time {
    use super::*;

    pub(super) fn serialize<S: serde::Serializer>(
        at: &Option<SystemTime>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        at.map(timestamp).serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<SystemTime>, D::Error> {
        match Value::deserialize(d)? {
            Value::Null => Ok(None),
            Value::String(text) => parse_timestamp(&text)
                .map(Some)
                .ok_or_else(|| D::Error::custom(format!("= {text:?} is not an RFC 3339 time"))),
            value => Err(D::Error::custom(format!(
                "is {value}, expected an RFC 3339 time or null"
            ))),
        }
    }
}

/// Seconds as a number, or null.
mod seconds {
    use super::*;

    pub(super) fn serialize<S: serde::Serializer>(
        duration: &Option<Duration>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        duration.map(|d| d.as_secs_f64()).serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        match Value::deserialize(d)? {
            Value::Null => Ok(None),
            value => value
                .as_f64()
                .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
                .map(Some)
                .ok_or_else(|| {
                    D::Error::custom(format!("is {value}, expected seconds (a number ≥ 0)"))
                }),
        }
    }
}

/// One queued request as `GET /admin/queue` lists it (no body, no headers: they may be private).
pub(super) fn queued(request: &QueueEntry) -> Value {
    let mut entry = json!({
        "id": request.id.to_string(),
        "upstream": request.upstream,
        "method": request.method,
        "path": request.path_and_query,
        "enqueued_at": timestamp(request.enqueued_at),
        "attempts": request.attempts,
        "status": request.status.as_str(),
        "body_bytes": request.body_bytes,
    });
    match &request.status {
        crate::fallback::QueueStatus::Delivered { status } => {
            entry["upstream_status"] = json!(status);
        }
        crate::fallback::QueueStatus::Failed { reason } => entry["reason"] = json!(reason),
        crate::fallback::QueueStatus::Pending => {}
    }
    entry
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_with_z_or_an_offset_are_the_same_instant() {
        let z = parse_timestamp("2026-03-01T10:00:00Z").expect("z");
        assert_eq!(parse_timestamp("2026-03-01T12:00:00+02:00"), Some(z));
        assert_eq!(parse_timestamp("2026-03-01T07:30:00-02:30"), Some(z));
        assert_eq!(
            parse_timestamp("2026-03-01T10:00:00.250Z"),
            z.checked_add(Duration::from_millis(250))
        );
        assert_eq!(parse_timestamp("yesterday"), None);
        assert_eq!(parse_timestamp("2026-03-01T10:00:00+25:00"), None);
    }

    #[test]
    fn a_snapshot_is_written_with_the_contract_names_and_read_back() {
        use std::sync::Arc;

        use crate::breaker::{Breaker, BreakerConfig, ManualClock, Outcome};

        let origin = parse_timestamp("2026-03-01T10:00:00Z").expect("time");
        let clock = Arc::new(ManualClock::with_wall_origin(origin));
        let breaker = Breaker::builder("plex", BreakerConfig::default())
            .clock(clock.clone())
            .build();
        clock.advance(Duration::from_millis(1500));
        breaker
            .try_acquire()
            .expect("closed")
            .record(Outcome::Success);
        breaker.trip().expect("tripped");
        clock.advance(Duration::from_millis(250));

        let written = Written::from(&breaker.snapshot());
        let value = serde_json::to_value(&written).expect("serialisable");
        let names: Vec<&str> = value
            .as_object()
            .expect("an object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            names,
            [
                "consecutive_failures",
                "consecutive_trips",
                "error_rate",
                "failed_requests",
                "failure_ratio",
                "generation",
                "half_open_probes",
                "last_failure_time",
                "last_recovered_at",
                "last_recovery_seconds",
                "last_success_time",
                "last_trip_reason",
                "open_until",
                "rejected_requests",
                "retry_after_seconds",
                "slow_requests",
                "state",
                "state_changed_at",
                "successful_requests",
                "timeouts",
                "total_requests",
                "window",
            ]
        );
        assert_eq!(value["state"], "open");
        assert_eq!(value["last_success_time"], "2026-03-01T10:00:01.500Z");
        assert_eq!(value["last_failure_time"], Value::Null);
        assert_eq!(value["state_changed_at"], "2026-03-01T10:00:01.500Z");
        assert_eq!(value["last_trip_reason"], "manual_trip");
        assert_eq!(
            value["window"],
            json!({"calls": 1, "successes": 1, "failures": 0, "timeouts": 0, "slow": 0})
        );
        let left = 60.0 - 0.25;
        assert_eq!(value["retry_after_seconds"], json!(left));

        let read: SnapshotJson = serde_json::from_value(value).expect("readable");
        assert_eq!(
            (
                read.state.as_str(),
                read.total_requests,
                read.successful_requests
            ),
            ("open", 1, 1)
        );
        let name = String::new();
        assert_eq!(
            read,
            SnapshotJson {
                name,
                ..written.snapshot
            }
        );
        assert_eq!(read.retry_after, Some(Duration::from_millis(59_750)));
    }
}
