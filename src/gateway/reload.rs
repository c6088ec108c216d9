//! Hot reload: a changed configuration file or SIGHUP loads the file again; a valid
//! configuration is put in force without dropping traffic, a bad one is refused and the last
//! good one keeps running.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use super::Gateway;
use crate::config::{self, ConfigError};
use crate::upstream::UpstreamError;

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
        let current = self.runtime();
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
