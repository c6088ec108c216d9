//! The admin API's `/admin/breakers` JSON into [`BreakerRow`]s, naming what is missing.

use std::time::{Duration, SystemTime};

use serde_json::{Map, Value};

use super::BreakerRow;

/// Every breaker in `body`, sorted by name; the error names the first missing or mistyped field.
pub(super) fn rows(body: &[u8]) -> Result<Vec<BreakerRow>, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON ({e})"))?;
    let top = value.as_object().ok_or("the answer is not a JSON object")?;
    if top.get("success") == Some(&Value::Bool(false)) {
        return Err("success is false".to_owned());
    }
    let data = top
        .get("data")
        .ok_or("data is missing")?
        .as_object()
        .ok_or("data is not an object")?;
    let mut rows = data
        .iter()
        .map(|(name, snapshot)| row(name, snapshot))
        .collect::<Result<Vec<_>, _>>()?;
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(rows)
}

fn row(name: &str, snapshot: &Value) -> Result<BreakerRow, String> {
    let path = format!("data.{name}");
    let fields = snapshot
        .as_object()
        .ok_or_else(|| format!("{path} is not an object"))?;
    let f = Fields {
        path: &path,
        fields,
    };
    Ok(BreakerRow {
        name: name.to_owned(),
        state: f.string("state")?,
        total_requests: f.count("total_requests")?,
        successful_requests: f.count("successful_requests")?,
        failed_requests: f.count("failed_requests")?,
        timeouts: f.count("timeouts")?,
        rejected_requests: f.count("rejected_requests")?,
        slow_requests: f.count("slow_requests")?,
        consecutive_failures: f.count("consecutive_failures")?,
        error_rate: f.number("error_rate")?,
        last_failure_time: f.time("last_failure_time")?,
        last_success_time: f.time("last_success_time")?,
        state_changed_at: f.time("state_changed_at")?,
        retry_after: f.seconds("retry_after_seconds")?,
    })
}

struct Fields<'a> {
    path: &'a str,
    fields: &'a Map<String, Value>,
}

impl Fields<'_> {
    fn get(&self, key: &str) -> Result<&Value, String> {
        self.fields
            .get(key)
            .ok_or_else(|| format!("{}.{key} is missing", self.path))
    }

    fn wrong(&self, key: &str, expected: &str, value: &Value) -> String {
        format!("{}.{key} is {value}, expected {expected}", self.path)
    }

    fn string(&self, key: &str) -> Result<String, String> {
        let value = self.get(key)?;
        value
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| self.wrong(key, "a string", value))
    }

    fn count(&self, key: &str) -> Result<u64, String> {
        let value = self.get(key)?;
        value
            .as_u64()
            .ok_or_else(|| self.wrong(key, "a whole number", value))
    }

    fn number(&self, key: &str) -> Result<f64, String> {
        let value = self.get(key)?;
        value
            .as_f64()
            .ok_or_else(|| self.wrong(key, "a number", value))
    }

    /// A required key whose value is an RFC 3339 time or null.
    fn time(&self, key: &str) -> Result<Option<SystemTime>, String> {
        match self.get(key)? {
            Value::Null => Ok(None),
            Value::String(text) => parse_time(text)
                .map(Some)
                .ok_or_else(|| format!("{}.{key} = {text:?} is not an RFC 3339 time", self.path)),
            value => Err(self.wrong(key, "an RFC 3339 time or null", value)),
        }
    }

    /// An optional key: seconds as a number, or null.
    fn seconds(&self, key: &str) -> Result<Option<Duration>, String> {
        match self.fields.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => value
                .as_f64()
                .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
                .map(Some)
                .ok_or_else(|| self.wrong(key, "seconds (a number ≥ 0)", value)),
        }
    }
}

/// An RFC 3339 time: `Z` or a `±hh:mm` offset, any number of fractional digits.
pub(super) fn parse_time(text: &str) -> Option<SystemTime> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_with_z_or_an_offset_are_the_same_instant() {
        let z = parse_time("2026-03-01T10:00:00Z").expect("z");
        assert_eq!(parse_time("2026-03-01T12:00:00+02:00"), Some(z));
        assert_eq!(parse_time("2026-03-01T07:30:00-02:30"), Some(z));
        assert_eq!(
            parse_time("2026-03-01T10:00:00.250Z"),
            z.checked_add(Duration::from_millis(250))
        );
        assert_eq!(parse_time("yesterday"), None);
        assert_eq!(parse_time("2026-03-01T10:00:00+25:00"), None);
    }

    #[test]
    fn errors_name_the_missing_or_mistyped_field() {
        assert_eq!(rows(b"[]").unwrap_err(), "the answer is not a JSON object");
        assert_eq!(rows(br#"{"success":true}"#).unwrap_err(), "data is missing");
        let body = br#"{"success":true,"data":{"plex":{"total_requests":1}}}"#;
        assert_eq!(rows(body).unwrap_err(), "data.plex.state is missing");
        let body = br#"{"data":{"plex":{"state":"open","total_requests":"many"}}}"#;
        assert_eq!(
            rows(body).unwrap_err(),
            r#"data.plex.total_requests is "many", expected a whole number"#
        );
        assert!(rows(b"not json").unwrap_err().starts_with("not JSON ("));
    }
}
