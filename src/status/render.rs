//! [`BreakerRow`]s as an aligned plain-text table.

use std::time::{Duration, SystemTime};

use super::BreakerRow;

const HEADERS: [&str; 10] = [
    "NAME", "STATE", "REQUESTS", "OK", "FAILED", "TIMEOUTS", "REJECTED", "ERROR%", "SINCE",
    "RETRY IN",
];
/// Columns written flush left; the others (figures) flush right.
const LEFT: [bool; 10] = [
    true, true, false, false, false, false, false, false, false, false,
];

/// The table for `rows`, with ages (SINCE) counted up to now.
pub fn render(rows: &[BreakerRow]) -> String {
    use crate::breaker::{Clock, SystemClock};
    render_at(rows, SystemClock::new().wall())
}

/// The table for `rows`, with ages (SINCE) counted up to `now`: one header line and one line
/// per row, columns two spaces apart, no trailing spaces.
pub fn render_at(rows: &[BreakerRow], now: SystemTime) -> String {
    if rows.is_empty() {
        return "no breakers reported by the gateway\n".to_owned();
    }
    let cells: Vec<[String; 10]> = rows.iter().map(|row| cells(row, now)).collect();
    let mut widths = HEADERS.map(str::len);
    for line in &cells {
        for (width, cell) in widths.iter_mut().zip(line) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header = HEADERS.map(str::to_owned);
    for line in std::iter::once(&header).chain(&cells) {
        let mut text = String::new();
        for (i, cell) in line.iter().enumerate() {
            if i > 0 {
                text.push_str("  ");
            }
            let pad = " ".repeat(widths[i].saturating_sub(cell.chars().count()));
            if LEFT[i] {
                text.push_str(cell);
                text.push_str(&pad);
            } else {
                text.push_str(&pad);
                text.push_str(cell);
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    }
    out
}

fn cells(row: &BreakerRow, now: SystemTime) -> [String; 10] {
    let since = row.state_changed_at.map_or_else(
        || "-".to_owned(),
        |at| human(now.duration_since(at).unwrap_or(Duration::ZERO)),
    );
    let retry = row.retry_after.map_or_else(
        || "-".to_owned(),
        // Round up: "0s" would read as "now" while the breaker still rejects.
        |left| {
            human(Duration::from_secs(
                left.as_secs() + u64::from(left.subsec_nanos() > 0),
            ))
        },
    );
    [
        row.name.clone(),
        row.state.clone(),
        row.total_requests.to_string(),
        row.successful_requests.to_string(),
        row.failed_requests.to_string(),
        row.timeouts.to_string(),
        row.rejected_requests.to_string(),
        format!("{:.1}", row.error_rate),
        since,
        retry,
    ]
}

/// A short age: `42s`, `3m 4s`, `2h 5m`, `3d 4h`.
pub(super) fn human(age: Duration) -> String {
    let secs = age.as_secs();
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m {}s", secs / 60, secs % 60),
        3600..86_400 => format!("{}h {}m", secs / 3600, secs % 3600 / 60),
        _ => format!("{}d {}h", secs / 86_400, secs % 86_400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::human;
    use std::time::Duration;

    #[test]
    fn ages_are_short() {
        let s = Duration::from_secs;
        assert_eq!(human(s(0)), "0s");
        assert_eq!(human(s(59)), "59s");
        assert_eq!(human(s(184)), "3m 4s");
        assert_eq!(human(s(7500)), "2h 5m");
        assert_eq!(human(s(273_600)), "3d 4h");
    }
}
