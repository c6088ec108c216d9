//! Operator actions (reset, force-open, disable) are fleet state: applied here at once, stored
//! in the database and applied by every replica sharing it, within a second (at once on
//! PostgreSQL, whose `NOTIFY` wakes each replica; a poll every second catches what a replica
//! missed while its listener or the database was down). A replica that starts later applies the
//! current ones before it serves. Automatic states (the breaker's own trips) stay per replica.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use super::Gateway;
use crate::breaker::Breaker;
use crate::store::{ManualAction, ManualState};

/// How often a replica reads the stored manual states, whatever it was told.
const POLL: Duration = Duration::from_secs(1);

/// This replica's view of the fleet's manual states.
#[derive(Debug, Default)]
pub(super) struct ManualStates {
    /// The version of each breaker's stored state this replica has applied.
    applied: Mutex<HashMap<String, u64>>,
    /// Actions taken here that the database has not stored yet (it was unavailable): stored
    /// as soon as it answers, and meanwhile never overwritten by an older stored state.
    pending: Mutex<BTreeMap<String, (ManualAction, SystemTime)>>,
}

impl ManualStates {
    fn applied(&self) -> MutexGuard<'_, HashMap<String, u64>> {
        self.applied.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn pending(&self) -> MutexGuard<'_, BTreeMap<String, (ManualAction, SystemTime)>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Marks `version` of `breaker`'s state as applied here (an older one never replaces it).
    fn mark(&self, breaker: &str, version: u64) {
        let mut applied = self.applied();
        let seen = applied.entry(breaker.to_owned()).or_default();
        *seen = (*seen).max(version);
    }
}

/// Applies `action` to `breaker` on this replica alone.
fn apply(breaker: &Breaker, action: ManualAction) {
    match action {
        ManualAction::Reset => {
            breaker.reset();
        }
        ManualAction::Disable => {
            breaker.disable();
        }
        ManualAction::ForceOpen { until: None } => {
            breaker.force_open();
        }
        ManualAction::ForceOpen { until: Some(until) } => {
            let left = until
                .duration_since(breaker.clock().wall())
                .unwrap_or(Duration::ZERO);
            // A forced-open state whose end has passed is over: nothing to apply.
            if !left.is_zero() {
                breaker.force_open_for(left);
            }
        }
    }
}

impl Gateway {
    /// Applies `action` to the breaker named `name` here at once, and stores it for every
    /// replica sharing the database (later if the database is unavailable now). `None` when
    /// no breaker has that name.
    pub async fn manual_action(&self, name: &str, action: ManualAction) -> Option<Arc<Breaker>> {
        let breaker = self.breaker_named(name)?;
        apply(&breaker, action);
        let at = self.clock.wall();
        self.manual.pending().insert(name.to_owned(), (action, at));
        self.store_pending().await;
        Some(breaker)
    }

    /// Stores the actions taken here that are not stored yet, oldest name first.
    async fn store_pending(&self) {
        let waiting: Vec<_> = self
            .manual
            .pending()
            .iter()
            .map(|(name, (action, at))| (name.clone(), *action, *at))
            .collect();
        for (name, action, at) in waiting {
            match self.store.put_manual_state(&name, action, at).await {
                Ok(version) => {
                    self.manual.mark(&name, version);
                    let mut pending = self.manual.pending();
                    // Only if no newer action on it came meanwhile.
                    if pending.get(&name) == Some(&(action, at)) {
                        pending.remove(&name);
                    }
                }
                Err(error) => {
                    tracing::warn!(breaker = %name, action = action.as_str(), %error,
                        "operator action applied here, not stored yet: other replicas will apply it once the database answers");
                    return;
                }
            }
        }
    }

    /// Reads the stored manual states and applies every one newer than what this replica
    /// applied (except where an action of its own waits to be stored).
    pub(super) async fn sync_manual_states(&self) {
        self.store_pending().await;
        let states = match self.store.manual_states().await {
            Ok(states) => states,
            Err(error) => {
                tracing::debug!(%error, "manual states not read");
                return;
            }
        };
        for ManualState {
            breaker,
            action,
            version,
        } in states
        {
            let newer = self
                .manual
                .applied()
                .get(&breaker)
                .is_none_or(|&seen| version > seen);
            if !newer || self.manual.pending().contains_key(&breaker) {
                continue;
            }
            if let Some(target) = self.breaker_named(&breaker) {
                apply(&target, action);
                tracing::info!(breaker = %breaker, action = action.as_str(), version,
                    "operator action from the fleet applied");
            }
            self.manual.mark(&breaker, version);
        }
    }
}

/// Keeps this replica's manual states in step with the fleet's until shutdown.
pub(super) async fn follow(gateway: Arc<Gateway>, mut shutdown: watch::Receiver<bool>) {
    let mut listener = None;
    loop {
        if listener.is_none() {
            listener = match gateway.store.listen_manual_states().await {
                Some(Ok(listening)) => Some(listening),
                Some(Err(error)) => {
                    tracing::debug!(%error, "not listening for operator actions; polling");
                    None
                }
                None => None,
            };
        }
        let told = async {
            match listener.as_mut() {
                Some(listening) => listening.recv().await.map(|_| ()),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            heard = told => if heard.is_err() {
                // The connection dropped: listen again on the next turn, and catch up now.
                listener = None;
            },
            () = tokio::time::sleep(POLL) => {}
            _ = shutdown.changed() => return,
        }
        gateway.sync_manual_states().await;
    }
}
