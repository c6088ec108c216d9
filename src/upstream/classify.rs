//! Outcome classification: what an upstream's answer or error means for its breaker.

use std::time::{Duration, SystemTime};

use axum::http::{HeaderMap, StatusCode, header::RETRY_AFTER};

use crate::breaker::Outcome;
use crate::config::UpstreamConfig;

/// Classifies an answer: 429/503 with a usable `Retry-After` → [`Outcome::RetryAfter`] (the
/// breaker honours it only if configured), a status in the upstream's failure set →
/// [`Outcome::Failure`], every other status (4xx included) → [`Outcome::Success`].
pub fn classify_status(
    config: &UpstreamConfig,
    status: StatusCode,
    headers: &HeaderMap,
    now: SystemTime,
) -> Outcome {
    if matches!(status.as_u16(), 429 | 503)
        && let Some(after) = headers
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, now))
    {
        return Outcome::RetryAfter(after);
    }
    if config.is_failure_status(status.as_u16()) {
        Outcome::Failure
    } else {
        Outcome::Success
    }
}

/// Whether the breaker counts `outcome` against the upstream.
pub fn is_failure(outcome: Outcome) -> bool {
    matches!(
        outcome,
        Outcome::Failure | Outcome::Timeout | Outcome::RetryAfter(_)
    )
}

/// Parses a `Retry-After` value: delay seconds or an HTTP date. A date in the past gives no
/// hint (`None`), so the status decides alone.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // All digits but too large for u64: as long as can be; the breaker caps it.
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    parse_http_date(value)?.duration_since(now).ok()
}

/// Parses an HTTP date in any of the three forms RFC 9110 §5.6.7 makes recipients accept:
/// IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), RFC 850 (`Sunday, 06-Nov-94 08:49:37 GMT`)
/// and asctime (`Sun Nov  6 08:49:37 1994`).
pub fn parse_http_date(text: &str) -> Option<SystemTime> {
    // httpdate trims the text itself; a header value reaches here trimmed, so padding means the
    // text is not a date.
    if text.trim() != text {
        return None;
    }
    httpdate::parse_http_date(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates_parse_to_the_right_instant() {
        let t = parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").expect("valid");
        assert_eq!(
            t.duration_since(SystemTime::UNIX_EPOCH)
                .ok()
                .map(|d| d.as_secs()),
            Some(784_111_777)
        );
        let leap = parse_http_date("Thu, 29 Feb 2024 00:00:00 GMT").expect("valid");
        assert_eq!(
            leap.duration_since(SystemTime::UNIX_EPOCH)
                .ok()
                .map(|d| d.as_secs()),
            Some(1_709_164_800)
        );
        for bad in [
            "",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 6 Nov 1994 08:49:37 GMT",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 25:49:37 GMT",
            "Sun, 06 Nov 19x4 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:37 GMT ",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_three_rfc_9110_date_forms_are_the_same_instant() {
        let fixdate = parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT");
        assert!(fixdate.is_some());
        assert_eq!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), fixdate);
        assert_eq!(parse_http_date("Sun Nov  6 08:49:37 1994"), fixdate);
    }

    #[test]
    fn garbage_is_not_a_date() {
        for bad in [
            "GMT",
            "Sun, 06 Nov 1994",
            "Sun, 31 Feb 2026 08:49:37 GMT",
            "Mon, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37",
            "Sun Nov 6 08:49:37 1994",
            "Sun, 06 Nov 1994 08:49:37 GMT\u{0}",
            "Sün, 06 Nov 1994 08:49:37 GMT",
            "1994-11-06T08:49:37Z",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad:?}");
        }
        let now = SystemTime::UNIX_EPOCH;
        assert_eq!(parse_retry_after("Sun Nov  6 08:49:37 1994 GMT", now), None);
        assert_eq!(
            parse_retry_after("  Sun Nov  6 08:49:37 1994 ", now),
            Some(Duration::from_secs(784_111_777))
        );
    }

    #[test]
    fn retry_after_takes_seconds_or_a_future_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_700);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now),
            Some(Duration::from_secs(77))
        );
        let later = now + Duration::from_secs(1000);
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", later),
            None
        );
        assert_eq!(parse_retry_after("-5", now), None);
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(
            parse_retry_after("99999999999999999999999", now),
            Some(Duration::from_secs(u64::MAX))
        );
    }
}
