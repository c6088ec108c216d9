//! Active health probes: a GET of `health_path` on a timer, for `/health/detailed`. A probe
//! observes; it takes no breaker permit and records nothing in the breaker.

use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use axum::http::{HeaderMap, Method};
use bytes::Bytes;

use super::{Upstream, error_chain, exchange};

/// Default time between two probes of an upstream (`[health] check_interval`,
/// `HEALTH_CHECK_INTERVAL_SECONDS`).
pub const HEALTH_CHECK_INTERVAL: Duration = Duration::from_secs(30);

/// What the last probe found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HealthStatus {
    /// The health path answered 2xx or 3xx in time.
    Healthy,
    /// It answered with another status, too late, or not at all.
    Unhealthy,
    /// Not probed yet, or no `health_path` configured.
    Unknown,
}

impl HealthStatus {
    /// `"healthy"`, `"unhealthy"` or `"unknown"`, as in `/health/detailed`.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Healthy => "healthy",
            HealthStatus::Unhealthy => "unhealthy",
            HealthStatus::Unknown => "unknown",
        }
    }
}

/// The latest probe of one upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthReport {
    /// What it found.
    pub status: HealthStatus,
    /// When it ran.
    pub last_check: Option<SystemTime>,
    /// How long the health path took to answer (headers), if it answered.
    pub response_time_ms: Option<u64>,
    /// Why it was unhealthy (for logs and operators; not secret, but not a client answer).
    pub last_error: Option<String>,
}

impl HealthReport {
    /// Nothing known yet.
    pub fn unknown() -> Self {
        Self {
            status: HealthStatus::Unknown,
            last_check: None,
            response_time_ms: None,
            last_error: None,
        }
    }
}

/// The running probe task of one upstream; dropping it stops the task.
#[derive(Debug)]
pub struct ProbeHandle {
    task: JoinHandle<()>,
}

impl Drop for ProbeHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Upstream {
    /// The latest health report (`unknown` until the first probe).
    pub fn health(&self) -> HealthReport {
        self.health
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Probes `health_path` once now, stores and returns the report; `unknown` when the
    /// upstream has no `health_path`.
    pub async fn probe_health(&self) -> HealthReport {
        let Some(path) = self.config.health_path.as_deref() else {
            return HealthReport::unknown();
        };
        let report = self.probe(path).await;
        *self.health.lock().unwrap_or_else(|e| e.into_inner()) = report.clone();
        report
    }

    async fn probe(&self, path: &str) -> HealthReport {
        let last_check = Some(self.breaker.clock().wall());
        let path = if path.starts_with('/') {
            path.to_owned()
        } else {
            format!("/{path}")
        };
        let unhealthy = |error: String, response_time_ms| HealthReport {
            status: HealthStatus::Unhealthy,
            last_check,
            response_time_ms,
            last_error: Some(error),
        };
        let uri = match self.target(&path) {
            Ok(uri) => uri,
            Err(e) => return unhealthy(e.message, None),
        };
        let request = self
            .base
            .request(&Method::GET, &uri, HeaderMap::new(), &Bytes::new());
        let started = Instant::now();
        // The head decides; the body is left unread.
        let sent = exchange::head(&self.client, request, self.config.call_timeout).await;
        let millis = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        match sent {
            Ok(response)
                if response.status().is_success() || response.status().is_redirection() =>
            {
                HealthReport {
                    status: HealthStatus::Healthy,
                    last_check,
                    response_time_ms: Some(millis),
                    last_error: None,
                }
            }
            Ok(response) => unhealthy(format!("answered {}", response.status()), Some(millis)),
            Err(err) => {
                let kind = err.kind();
                unhealthy(format!("{}: {}", kind.as_str(), error_chain(&err)), None)
            }
        }
    }

    /// Starts probing every `interval` (the first probe at once), for as long as the handle
    /// lives and the upstream exists; `None` when the upstream has no `health_path`. Must be
    /// called within a tokio runtime.
    pub fn spawn_probe(self: &Arc<Self>, interval: Duration) -> Option<ProbeHandle> {
        self.config.health_path.as_ref()?;
        let upstream: Weak<Upstream> = Arc::downgrade(self);
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval.max(Duration::from_millis(1)));
            // A slow probe delays the next one rather than causing a burst to catch up.
            ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                // Hold the upstream only while probing, so a replaced upstream can go away.
                let Some(upstream) = upstream.upgrade() else {
                    return;
                };
                upstream.probe_health().await;
            }
        });
        Some(ProbeHandle { task })
    }
}
