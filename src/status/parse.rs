//! The admin API's `/admin/breakers` JSON into [`BreakerRow`]s, naming what is missing.

use serde_json::Value;

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
    if !snapshot.is_object() {
        return Err(format!("{path} is not an object"));
    }
    let mut row: BreakerRow =
        serde_path_to_error::deserialize(snapshot).map_err(|e| describe(&path, e))?;
    row.name = name.to_owned();
    Ok(row)
}

/// `data.plex.state is missing`, `data.plex.total_requests is "many", expected a whole number`:
/// the field's path, then what reading the snapshot found wrong with it.
fn describe(path: &str, error: serde_path_to_error::Error<serde_json::Error>) -> String {
    let mut at = path.to_owned();
    for segment in error.path().iter() {
        at.push('.');
        at.push_str(&segment.to_string());
    }
    let why = error.into_inner().to_string();
    // serde words a missing field this way for every format.
    match why
        .strip_prefix("missing field `")
        .and_then(|rest| rest.strip_suffix('`'))
    {
        Some(field) => format!("{at}.{field} is missing"),
        None => format!("{at} {why}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let body = br#"{"data":{"plex":{"state":"open","total_requests":1,"successful_requests":1,
            "failed_requests":0,"timeouts":0,"rejected_requests":0,"slow_requests":0,
            "consecutive_failures":0,"error_rate":0,"last_failure_time":null,
            "last_success_time":"noon","state_changed_at":null}}}"#;
        assert_eq!(
            rows(body).unwrap_err(),
            r#"data.plex.last_success_time = "noon" is not an RFC 3339 time"#
        );
        let body = br#"{"data":{"plex":7}}"#;
        assert_eq!(rows(body).unwrap_err(), "data.plex is not an object");
        assert!(rows(b"not json").unwrap_err().starts_with("not JSON ("));
    }
}
