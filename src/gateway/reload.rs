//! Hot reload: a changed configuration file or SIGHUP loads the file again; a valid
//! configuration is put in force without dropping traffic, a bad one is refused and the last
//! good one keeps running.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use super::{Gateway, InForce};
use crate::config::{self, Config, ConfigError, DATABASE_BREAKER, Fallback};
use crate::upstream::{Upstream, UpstreamError};

/// How often the file's modification time is looked at.
const POLL: Duration = Duration::from_secs(1);

/// Why a reload was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The gateway was not started from a file.
    #[error("the gateway was not started from a configuration file")]
    NoFile,
    /// The new configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// An upstream could not be built from it.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
}

impl Gateway {
    /// Loads the configuration file again and puts it in force if it is valid.
    pub fn reload(&self) -> Result<(), ReloadError> {
        let path = self.config_path.as_ref().ok_or(ReloadError::NoFile)?;
        let next = config::load(path)?;
        let current = self.in_force();
        if next.server != current.config.server {
            tracing::warn!(
                "[server] changed: the new listen address and limits apply after a restart"
            );
        }
        if next.store != current.config.store {
            tracing::warn!("[store] changed: the new store settings apply after a restart");
        }
        self.apply(next)?;
        Ok(())
    }

    /// Puts `config` in force: reconciles the breakers (one whose settings did not change is
    /// kept, state and all), keeps every upstream whose settings and breaker did not change,
    /// builds the others, and starts what they need (health probes, queue replayers).
    pub(super) fn apply(&self, config: Config) -> Result<(), UpstreamError> {
        let current = self.in_force.load();
        // The store keeps the breaker it was opened with: [store] applies after a restart.
        let database = (DATABASE_BREAKER, self.database.config().clone());
        // Nothing changes until every upstream is built: a refused reload leaves the breakers
        // as they were.
        let breakers = self.breakers.prepare(
            config
                .upstreams
                .iter()
                .map(|(name, settings)| (name.as_str(), settings.breaker.clone()))
                .chain([database]),
        );
        let mut upstreams = BTreeMap::new();
        for (name, settings) in &config.upstreams {
            let Some(breaker) = breakers.get(name) else {
                continue;
            };
            let upstream = match current.upstreams.get(name) {
                Some(kept) if kept.config() == settings && Arc::ptr_eq(kept.breaker(), breaker) => {
                    Arc::clone(kept)
                }
                _ => Arc::new(Upstream::sharing(
                    settings.clone(),
                    Arc::clone(breaker),
                    &self.clients,
                )?),
            };
            upstreams.insert(name.clone(), upstream);
        }
        breakers.commit();
        let interval = config.health.check_interval;
        let next = InForce {
            config: Arc::new(config),
            upstreams,
        };
        let mut probes = self.probes.lock().unwrap_or_else(PoisonError::into_inner);
        probes.retain(|name, _| {
            current.upstreams.get(name).map(Arc::as_ptr)
                == next.upstreams.get(name).map(Arc::as_ptr)
        });
        for (name, upstream) in &next.upstreams {
            if !probes.contains_key(name)
                && let Some(handle) = upstream.spawn_probe(interval)
            {
                probes.insert(name.clone(), handle);
            }
        }
        drop(probes);
        let queued: Vec<String> = next
            .upstreams
            .iter()
            .filter(|(_, upstream)| upstream.config().fallback == Fallback::Queue)
            .map(|(name, _)| name.clone())
            .collect();
        self.in_force.store(Arc::new(next));
        self.telemetry.track(&self.breakers());
        self.replayers.start(queued);
        Ok(())
    }

    /// Reloads and logs the result (the file watcher and SIGHUP use this).
    pub fn reload_and_log(&self, cause: &str) -> bool {
        let result = self.reload();
        self.telemetry.config_reloaded(result.is_ok());
        match result {
            Ok(()) => {
                tracing::info!(cause, "configuration reloaded");
                true
            }
            Err(error) => {
                tracing::error!(cause, %error, "configuration reload refused; the last good configuration stays in force");
                false
            }
        }
    }
}

pub(super) fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Watches the file from `seen`, its modification time when the configuration in force was
/// read, so a change made before the watcher first looks is not missed.
pub(super) async fn watch(
    gateway: Arc<Gateway>,
    mut seen: Option<SystemTime>,
    mut shutdown: watch::Receiver<bool>,
) {
    let Some(path) = gateway.config_path().cloned() else {
        return;
    };
    let mut hangup = hangup_signal();
    let mut poll = tokio::time::interval(POLL);
    loop {
        tokio::select! {
            _ = poll.tick() => {
                let now = modified(&path);
                if now != seen {
                    seen = now;
                    gateway.reload_and_log("file changed");
                }
            }
            Some(()) = recv(&mut hangup) => {
                gateway.reload_and_log("SIGHUP");
            }
            _ = shutdown.changed() => return,
        }
    }
}

#[cfg(unix)]
type Hangup = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangup = Option<()>;

#[cfg(unix)]
fn hangup_signal() -> Hangup {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()
}

#[cfg(not(unix))]
fn hangup_signal() -> Hangup {
    None
}

#[cfg(unix)]
async fn recv(hangup: &mut Hangup) -> Option<()> {
    match hangup {
        Some(signal) => signal.recv().await,
        None => std::future::pending().await,
    }
}

#[cfg(not(unix))]
async fn recv(_: &mut Hangup) -> Option<()> {
    std::future::pending().await
}
