//! Replay orchestration: one replayer per upstream whose fallback is the queue, started as the
//! configuration names them, woken as soon as that upstream's breaker closes, and joined at
//! shutdown.
//!
//! Why one [`Deliver`] for every upstream: it finds the upstream by the request's name when it
//! delivers, so a reload that replaces an upstream needs no restart of its replayer.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;

use super::Deliver;
use super::queue::{Replayer, RequestQueue, spawn_replayer};
use crate::breaker::{State, Transition};

/// The running replayers, by upstream name.
#[derive(Debug)]
pub(crate) struct Replayers {
    queue: Arc<RequestQueue>,
    deliver: Arc<dyn Deliver>,
    shutdown: watch::Receiver<bool>,
    running: Mutex<BTreeMap<String, Replayer>>,
}

impl Replayers {
    /// Replayers of `queue` delivering through `deliver`, each ending once `shutdown` holds
    /// `true`. None runs until [`start`](Self::start).
    pub(crate) fn new(
        queue: Arc<RequestQueue>,
        deliver: Arc<dyn Deliver>,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        Self {
            queue,
            deliver,
            shutdown,
            running: Mutex::new(BTreeMap::new()),
        }
    }

    /// Starts a replayer for each of `upstreams` that has none yet. One that is no longer
    /// named keeps running: requests may still wait for that name.
    pub(crate) fn start(&self, upstreams: impl IntoIterator<Item = String>) {
        let mut running = self.running();
        for name in upstreams {
            if let Entry::Vacant(slot) = running.entry(name) {
                let replayer = spawn_replayer(
                    Arc::clone(&self.queue),
                    slot.key().clone(),
                    Arc::clone(&self.deliver),
                    self.shutdown.clone(),
                );
                slot.insert(replayer);
            }
        }
    }

    /// Replays an upstream's queue now if `transition` closed its breaker, or turned it
    /// half-open: the replay's first delivery is then the probe, so a queue waits for no poll
    /// (and no proxied request) once the open duration has run out.
    pub(crate) fn on_transition(&self, transition: &Transition) {
        if matches!(transition.to, State::Closed | State::HalfOpen)
            && let Some(replayer) = self.running().get(transition.breaker.as_ref())
        {
            replayer.wake();
        }
    }

    /// Waits for every replayer to end, after the shutdown signal; replays under way finish.
    pub(crate) async fn join(&self) {
        let replayers = std::mem::take(&mut *self.running());
        for replayer in replayers.into_values() {
            replayer.join().await;
        }
    }

    fn running(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Replayer>> {
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
