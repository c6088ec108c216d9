//! Figures about this process for `/health/detailed`: resident memory, CPU use since the last
//! look, uptime and requests in flight. Read from `/proc` on Linux; absent elsewhere.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use serde::Serialize;

/// The `system` block of `/health/detailed`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SystemFigures {
    /// Resident memory in MiB.
    pub memory_usage_mb: f64,
    /// CPU time used per wall time since the previous sample, in percent of one core.
    pub cpu_usage_percent: f64,
    /// Whole seconds since start.
    pub uptime_seconds: u64,
    /// Requests being served now.
    pub active_connections: usize,
}

/// Remembers the previous CPU reading to turn totals into a rate.
#[derive(Debug, Default)]
pub(super) struct Sampler {
    previous: Mutex<Option<(Instant, Duration)>>,
}

impl Sampler {
    pub(super) fn sample(&self, uptime: Duration, in_flight: usize) -> SystemFigures {
        let now = Instant::now();
        let cpu = cpu_time();
        let mut previous = self.previous.lock().unwrap_or_else(PoisonError::into_inner);
        let cpu_usage_percent = match (*previous, cpu) {
            (Some((then, used_then)), Some(used)) if now > then => {
                let wall = now.duration_since(then).as_secs_f64();
                (used.saturating_sub(used_then).as_secs_f64() / wall * 100.0).max(0.0)
            }
            _ => 0.0,
        };
        if let Some(used) = cpu {
            *previous = Some((now, used));
        }
        SystemFigures {
            memory_usage_mb: resident_bytes().map_or(0.0, |b| b as f64 / (1024.0 * 1024.0)),
            cpu_usage_percent: (cpu_usage_percent * 10.0).round() / 10.0,
            uptime_seconds: uptime.as_secs(),
            active_connections: in_flight,
        }
    }
}

/// `VmRSS` from `/proc/self/status`.
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// User plus system CPU time from `/proc/self/stat` (fields 14 and 15, in clock ticks of
/// 1/100 s, the fixed USER_HZ of Linux's user-space interface).
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name may hold spaces; the fields after it are plain numbers.
    let after_name = &stat[stat.rfind(')')? + 2..];
    let mut fields = after_name.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((user + system) * 10))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let sampler = Sampler::default();
        let first = sampler.sample(Duration::from_secs(5), 2);
        assert!(first.memory_usage_mb > 1.0, "{first:?}");
        assert_eq!((first.uptime_seconds, first.active_connections), (5, 2));
        assert!(cpu_time().is_some());
    }
}
