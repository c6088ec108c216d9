//! Turning records into column values and rows back into records, the same for both databases.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use sqlx::{ColumnIndex, Decode, Row, Type};
use uuid::Uuid;

use crate::fallback::{CachedResponse, QueueStatus, QueuedRequest};

use super::StoreError;
use super::queue::QueueEntry;

/// Milliseconds since the Unix epoch (negative before it, saturating far away).
pub(super) fn to_ms(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_millis()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

/// The inverse of [`to_ms`].
pub(super) fn from_ms(ms: i64) -> SystemTime {
    let magnitude = Duration::from_millis(ms.unsigned_abs());
    if ms >= 0 {
        UNIX_EPOCH + magnitude
    } else {
        UNIX_EPOCH - magnitude
    }
}

/// Headers as bytes: per header a u32 name length, the name, a u32 value length, the value (all
/// big-endian). Header values need not be UTF-8, so a text format would need escaping.
pub(super) fn encode_headers(headers: &[(String, Vec<u8>)]) -> Vec<u8> {
    let size = headers.iter().map(|(n, v)| 8 + n.len() + v.len()).sum();
    let mut out = Vec::with_capacity(size);
    for (name, value) in headers {
        for part in [name.as_bytes(), value.as_slice()] {
            let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(&part[..len as usize]);
        }
    }
    out
}

/// The inverse of [`encode_headers`]; `None` when the bytes are not such an encoding.
pub(super) fn decode_headers(mut bytes: &[u8]) -> Option<Vec<(String, Vec<u8>)>> {
    let take = |bytes: &mut &[u8]| -> Option<Vec<u8>> {
        let (len, rest) = bytes.split_first_chunk::<4>()?;
        let len = u32::from_be_bytes(*len) as usize;
        let part = rest.get(..len)?.to_vec();
        *bytes = &rest[len..];
        Some(part)
    };
    let mut headers = Vec::new();
    while !bytes.is_empty() {
        let name = String::from_utf8(take(&mut bytes)?).ok()?;
        let value = take(&mut bytes)?;
        headers.push((name, value));
    }
    Some(headers)
}

/// The status columns of a [`QueueStatus`]: (status, status_code, reason).
pub(super) fn status_columns(status: &QueueStatus) -> (&'static str, Option<i64>, Option<String>) {
    match status {
        QueueStatus::Pending => ("pending", None, None),
        QueueStatus::Delivered { status } => ("delivered", Some(i64::from(*status)), None),
        QueueStatus::Failed { reason } => ("failed", None, Some(reason.clone())),
    }
}

/// Reads a queued request from a row holding every column of `queued_requests`.
pub(super) fn queued<R>(row: &R) -> Result<QueuedRequest, StoreError>
where
    R: Row,
    for<'a> &'a str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
{
    let e = described(row)?;
    let what = || format!("queued request {}", e.id);
    let get_err = |err: sqlx::Error| corrupt(&what(), err);
    let headers: Vec<u8> = row.try_get("headers").map_err(get_err)?;
    let headers = decode_headers(&headers)
        .ok_or_else(|| corrupt(&what(), "headers are not in the stored format"))?;
    let body = Bytes::from(row.try_get::<Vec<u8>, _>("body").map_err(get_err)?);
    Ok(QueuedRequest {
        id: e.id,
        upstream: e.upstream,
        method: e.method,
        path_and_query: e.path_and_query,
        headers,
        body,
        enqueued_at: e.enqueued_at,
        attempts: e.attempts,
        status: e.status,
    })
}

/// Reads a listed queued request from a row holding the columns of `queue::LIST`.
pub(super) fn entry<R>(row: &R) -> Result<QueueEntry, StoreError>
where
    R: Row,
    for<'a> &'a str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let mut e = described(row)?;
    let body_bytes: Option<i64> = row
        .try_get("body_bytes")
        .map_err(|err| corrupt(&format!("queued request {}", e.id), err))?;
    e.body_bytes = body_bytes.and_then(|n| u64::try_from(n).ok()).unwrap_or(0);
    Ok(e)
}

/// The columns a queued request and its listing share (`body_bytes` left at 0).
fn described<R>(row: &R) -> Result<QueueEntry, StoreError>
where
    R: Row,
    for<'a> &'a str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let id: String = row
        .try_get("id")
        .map_err(|e| corrupt("a queued request", e))?;
    let what = || format!("queued request {id}");
    let get_err = |e: sqlx::Error| corrupt(&what(), e);
    let status: String = row.try_get("status").map_err(get_err)?;
    let code: Option<i64> = row.try_get("status_code").map_err(get_err)?;
    let reason: Option<String> = row.try_get("reason").map_err(get_err)?;
    let attempts: i64 = row.try_get("attempts").map_err(get_err)?;
    Ok(QueueEntry {
        id: Uuid::parse_str(&id).map_err(|e| corrupt(&what(), e))?,
        upstream: row.try_get("upstream").map_err(get_err)?,
        method: row.try_get("method").map_err(get_err)?,
        path_and_query: row.try_get("path_and_query").map_err(get_err)?,
        body_bytes: 0,
        enqueued_at: from_ms(row.try_get("enqueued_at").map_err(get_err)?),
        attempts: u32::try_from(attempts.max(0)).unwrap_or(u32::MAX),
        status: status_of(&status, code, reason)
            .ok_or_else(|| corrupt(&what(), format!("unknown status {status:?}")))?,
    })
}

/// A [`QueueStatus`] from its columns; `None` for an unknown status name.
fn status_of(name: &str, code: Option<i64>, reason: Option<String>) -> Option<QueueStatus> {
    Some(match name {
        "pending" => QueueStatus::Pending,
        "delivered" => QueueStatus::Delivered {
            status: code.and_then(|c| u16::try_from(c).ok()).unwrap_or(0),
        },
        "failed" => QueueStatus::Failed {
            reason: reason.unwrap_or_default(),
        },
        _ => return None,
    })
}

/// Reads a cached response from a row with the columns of `cached_responses`.
pub(super) fn cached<R>(row: &R) -> Result<CachedResponse, StoreError>
where
    R: Row,
    for<'a> &'a str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
{
    let what = "a cached response";
    let get_err = |e: sqlx::Error| corrupt(what, e);
    let headers: Vec<u8> = row.try_get("headers").map_err(get_err)?;
    let status: i64 = row.try_get("status").map_err(get_err)?;
    Ok(CachedResponse {
        upstream: row.try_get("upstream").map_err(get_err)?,
        path_and_query: row.try_get("path_and_query").map_err(get_err)?,
        status: u16::try_from(status).map_err(|e| corrupt(what, e))?,
        headers: decode_headers(&headers)
            .ok_or_else(|| corrupt(what, "headers are not in the stored format"))?,
        body: Bytes::from(row.try_get::<Vec<u8>, _>("body").map_err(get_err)?),
        stored_at: from_ms(row.try_get("stored_at").map_err(get_err)?),
    })
}

fn corrupt(what: &str, reason: impl ToString) -> StoreError {
    StoreError::Corrupt {
        what: what.to_owned(),
        reason: reason.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_including_binary_values() {
        let headers = vec![
            ("content-type".to_owned(), b"application/json".to_vec()),
            ("x-raw".to_owned(), vec![0, 255, 10]),
            ("x-empty".to_owned(), Vec::new()),
        ];
        assert_eq!(decode_headers(&encode_headers(&headers)), Some(headers));
        assert_eq!(decode_headers(&[]), Some(Vec::new()));
        assert_eq!(decode_headers(&[0, 0, 0, 9, b'a']), None, "truncated");
    }

    #[test]
    fn times_round_trip_to_the_millisecond() {
        let t = UNIX_EPOCH + Duration::from_millis(1_790_000_000_123);
        assert_eq!(from_ms(to_ms(t)), t);
        let before = UNIX_EPOCH - Duration::from_millis(5);
        assert_eq!(to_ms(before), -5);
        assert_eq!(from_ms(-5), before);
    }
}
