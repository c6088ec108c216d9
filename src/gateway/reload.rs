//! Hot reload: a changed configuration file or SIGHUP loads the file again; a valid
//! configuration is put in force without dropping traffic, a bad one is refused and the last
//! good one keeps running.
//!
//! Why a settle time: an editor or a script writing the file in place leaves it half-written
//! for a moment, and a half file may well parse (an empty one does). A file changed in place is
//! read only once it has stayed the same for [`SETTLE`]; a file replaced by rename (a new inode,
//! complete by construction) is read at once. And a reload that would remove every upstream or
//! every admin token is refused whatever its cause: it would turn every call into 404 or 401.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio::time::Instant;

use super::{Gateway, InForce};
use crate::config::{self, Config, ConfigError, DATABASE_BREAKER, Fallback};
use crate::upstream::{Upstream, UpstreamError};

/// How often the file's modification time, size and inode are looked at.
const POLL: Duration = Duration::from_millis(100);

/// How long a file changed in place must stay unchanged before it is read.
const SETTLE: Duration = Duration::from_millis(300);

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
    /// It would remove every upstream or every admin token: a half-written or emptied file.
    #[error(
        "the new configuration would remove every {what} ({running} in force), so every {call} \
         would answer {status}; refused (to run without any, restart with that file)"
    )]
    RemovesEvery {
        /// `upstream` or `admin token`.
        what: &'static str,
        /// How many are in force.
        running: usize,
        /// `proxied call` or `admin call`.
        call: &'static str,
        /// What those calls would answer.
        status: u16,
    },
}

impl Gateway {
    /// Loads the configuration file again and puts it in force if it is valid.
    pub fn reload(&self) -> Result<(), ReloadError> {
        let path = self.config_path.as_ref().ok_or(ReloadError::NoFile)?;
        let next = config::load(path)?;
        let current = self.in_force();
        removes_nothing_whole(&current.config, &next)?;
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

/// Refuses `next` if it has no upstream, or no admin token, where `current` has some.
fn removes_nothing_whole(current: &Config, next: &Config) -> Result<(), ReloadError> {
    let checks = [
        (
            current.upstreams.len(),
            next.upstreams.len(),
            "upstream",
            "proxied call",
            404,
        ),
        (
            current.admin.tokens.len(),
            next.admin.tokens.len(),
            "admin token",
            "admin call",
            401,
        ),
    ];
    for (running, kept, what, call, status) in checks {
        if running > 0 && kept == 0 {
            return Err(ReloadError::RemovesEvery {
                what,
                running,
                call,
                status,
            });
        }
    }
    Ok(())
}

/// What the watcher compares: a change of any part is a change of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Fingerprint {
    modified: Option<SystemTime>,
    len: u64,
    /// Device and inode: a new one means the file was replaced (renamed over), not edited.
    identity: Option<(u64, u64)>,
}

/// The file's fingerprint, `None` while it does not exist.
pub(super) fn fingerprint(path: &Path) -> Option<Fingerprint> {
    let meta = std::fs::metadata(path).ok()?;
    Some(Fingerprint {
        modified: meta.modified().ok(),
        len: meta.len(),
        identity: identity(&meta),
    })
}

#[cfg(unix)]
fn identity(meta: &std::fs::Metadata) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt as _;
    Some((meta.dev(), meta.ino()))
}

#[cfg(not(unix))]
fn identity(_: &std::fs::Metadata) -> Option<(u64, u64)> {
    None
}

/// When to read the file, given what was read last and what was seen changing since.
#[derive(Debug)]
struct Settling {
    /// The fingerprint of the file last read.
    read: Option<Fingerprint>,
    /// A changed fingerprint and when it was first seen.
    pending: Option<(Option<Fingerprint>, Instant)>,
}

impl Settling {
    /// Whether to read the file now that it looks like `seen` at `now`.
    fn ready(&mut self, seen: Option<Fingerprint>, now: Instant) -> bool {
        if seen == self.read {
            self.pending = None;
            return false;
        }
        let replaced = match (seen, self.read) {
            (Some(seen), Some(read)) => seen.identity.is_some() && seen.identity != read.identity,
            _ => false,
        };
        let settled = match self.pending {
            Some((pending, since)) if pending == seen => now.duration_since(since) >= SETTLE,
            _ => {
                self.pending = Some((seen, now));
                false
            }
        };
        if replaced || settled {
            self.read = seen;
            self.pending = None;
        }
        replaced || settled
    }
}

/// Watches the file from `read`, its fingerprint when the configuration in force was read, so
/// a change made before the watcher first looks is not missed.
pub(super) async fn watch(
    gateway: Arc<Gateway>,
    read: Option<Fingerprint>,
    mut shutdown: watch::Receiver<bool>,
) {
    let Some(path) = gateway.config_path().cloned() else {
        return;
    };
    let mut hangup = hangup_signal();
    let mut poll = tokio::time::interval(POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut settling = Settling {
        read,
        pending: None,
    };
    loop {
        tokio::select! {
            _ = poll.tick() => {
                if settling.ready(fingerprint(&path), Instant::now()) {
                    gateway.reload_and_log("file changed");
                }
            }
            Some(()) = recv(&mut hangup) => {
                // The operator says the file is ready: read it now, and not again for this.
                settling = Settling { read: fingerprint(&path), pending: None };
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

#[cfg(test)]
mod tests {
    use super::*;

    fn print(modified_ns: u64, len: u64, inode: u64) -> Option<Fingerprint> {
        Some(Fingerprint {
            modified: Some(SystemTime::UNIX_EPOCH + Duration::from_nanos(modified_ns)),
            len,
            identity: Some((1, inode)),
        })
    }

    #[test]
    fn a_file_changed_in_place_is_read_once_it_has_settled() {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let mut settling = Settling {
            read: print(1, 100, 7),
            pending: None,
        };
        assert!(!settling.ready(print(1, 100, 7), at(0)), "unchanged");
        assert!(!settling.ready(print(2, 0, 7), at(100)), "emptied: wait");
        assert!(
            !settling.ready(print(3, 50, 7), at(200)),
            "growing: wait again"
        );
        assert!(!settling.ready(print(3, 50, 7), at(400)), "not settled yet");
        assert!(settling.ready(print(3, 50, 7), at(500)), "settled");
        assert!(!settling.ready(print(3, 50, 7), at(600)), "read once");
        assert!(!settling.ready(None, at(700)), "missing: wait too");
    }

    #[test]
    fn a_file_replaced_by_rename_is_read_at_once() {
        let start = Instant::now();
        let mut settling = Settling {
            read: print(1, 100, 7),
            pending: None,
        };
        assert!(settling.ready(print(2, 120, 8), start), "new inode");
        assert!(!settling.ready(print(2, 120, 8), start), "read once");
        // Edited in place after the rename: the settle time applies again.
        assert!(!settling.ready(print(3, 10, 8), start));
    }

    #[test]
    fn a_reload_may_not_remove_every_upstream_or_every_token() {
        let load = |text: &str| {
            let env: [(&str, &str); 0] = [];
            config::load_from_str(text, "gw.toml", env).expect("valid")
        };
        let full = load(
            "[[admin.tokens]]\nname = \"ops\"\ntoken = \"t0k3n-0123456789abc\"\n\n\
             [upstreams.a]\nurl = \"http://127.0.0.1:9\"\n",
        );
        let empty = load("");
        let error = removes_nothing_whole(&full, &empty).expect_err("refused");
        assert!(
            error
                .to_string()
                .contains("would remove every upstream (1 in force)"),
            "{error}"
        );
        let mut no_tokens = full.clone();
        no_tokens.admin.tokens.clear();
        let error = removes_nothing_whole(&full, &no_tokens).expect_err("refused");
        assert!(
            error
                .to_string()
                .contains("every admin call would answer 401"),
            "{error}"
        );
        assert!(
            removes_nothing_whole(&empty, &empty).is_ok(),
            "nothing to remove"
        );
        assert!(removes_nothing_whole(&no_tokens, &no_tokens).is_ok());
        assert!(removes_nothing_whole(&empty, &full).is_ok());
    }
}
