//! The durable request queue: accepts requests for later and replays them, in order, once each.
//!
//! Replay per upstream: claim the oldest pending request, deliver it, record the outcome; stop at
//! the first attempt the upstream's breaker rejects or that fails, leaving that request pending.
//! A delivered request is recorded before the next one is claimed, and an outcome the store could
//! not record is kept and recorded before anything else is claimed, so a delivered request is
//! never sent again (a replica killed between delivering and recording is the one exception: its
//! claim lease runs out and the request is delivered once more). Likewise a claim the store could
//! not give back after a failed attempt is given back before the next claim, so that request
//! stays first in line instead of being skipped until its claim lease runs out.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::{
    Deliver, Delivery, Durability, Enqueue, QueueBounds, QueueError, QueueStatus, QueueStore,
    QueuedRequest, StoreFailure,
};

/// What one replay run did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReplayReport {
    /// Requests delivered (and recorded) in this run.
    pub delivered: usize,
    /// The attempt that stopped the run early (`Rejected` or `Failed`); `None` when the
    /// upstream's queue was emptied or a shutdown was asked for.
    pub stopped_by: Option<Delivery>,
}

/// What a claimed request's row is still owed when the store could not take it at once.
#[derive(Debug, Clone)]
enum Owed {
    /// Its final outcome: it was delivered.
    Finish(QueueStatus),
    /// Being pending again: the attempt failed.
    Release,
}

/// The queue behind fallback `queue`: an [`Enqueue`] on top of a [`QueueStore`], plus its replay.
pub struct RequestQueue {
    store: Arc<dyn QueueStore>,
    closed: AtomicBool,
    /// What the store could not be told yet about claimed requests (request, what, attempts):
    /// told before the next claim.
    owed: Mutex<Vec<(Uuid, Owed, u32)>>,
    /// How often a replayer runs even when nobody wakes it.
    every: Duration,
    /// When finished requests were last pruned: at most once per `prune_every`, however
    /// often replayers are woken or requests delivered.
    pruned_at: Mutex<Option<tokio::time::Instant>>,
    prune_every: Duration,
}

impl RequestQueue {
    /// A queue kept in `store`; replayers also run every 5 s as a safety net.
    pub fn new(store: impl QueueStore) -> Self {
        Self {
            store: Arc::new(store),
            closed: AtomicBool::new(false),
            owed: Mutex::new(Vec::new()),
            every: Duration::from_secs(5),
            pruned_at: Mutex::new(None),
            prune_every: Duration::from_secs(1),
        }
    }

    /// Sets how often replayers run unprompted.
    pub fn replay_every(mut self, every: Duration) -> Self {
        self.every = every;
        self
    }

    /// Sets how often finished requests are pruned at most (1 s by default).
    pub fn prune_every(mut self, every: Duration) -> Self {
        self.prune_every = every;
        self
    }

    /// Refuses new requests from now on ([`QueueError::ShuttingDown`]).
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }

    /// Delivers the pending requests of `upstream` one at a time, oldest first, until none is
    /// left or an attempt is rejected or fails.
    pub async fn replay(
        &self,
        upstream: &str,
        deliver: &dyn Deliver,
    ) -> Result<ReplayReport, StoreFailure> {
        self.replay_until(upstream, deliver, &|| false).await
    }

    async fn replay_until(
        &self,
        upstream: &str,
        deliver: &dyn Deliver,
        stop: &(dyn Fn() -> bool + Sync),
    ) -> Result<ReplayReport, StoreFailure> {
        self.settle_owed().await?;
        let mut report = ReplayReport::default();
        while !stop() {
            let Some(request) = self.store.claim_next(upstream).await? else {
                break;
            };
            let attempts = request.attempts.saturating_add(1);
            match self.deliver_renewing(&request, deliver).await {
                // Any answer is final, a 4xx included: the upstream has seen the request.
                Delivery::Delivered { status } => {
                    let outcome = QueueStatus::Delivered { status };
                    if let Err(e) = self.store.finish(request.id, &outcome, attempts).await {
                        self.owed()
                            .push((request.id, Owed::Finish(outcome), attempts));
                        return Err(e);
                    }
                    report.delivered += 1;
                    // A long drain finishes thousands of requests a second; pruning only after
                    // it would let them pile up meanwhile (at most once per `prune_every`).
                    self.prune_finished_quietly().await;
                }
                stopped @ (Delivery::Rejected | Delivery::Failed { .. }) => {
                    if let Delivery::Failed { reason } = &stopped {
                        tracing::debug!(%upstream, id = %request.id, %reason, "replay attempt failed");
                    }
                    if let Err(e) = self.store.release(request.id, attempts).await {
                        self.owed().push((request.id, Owed::Release, attempts));
                        return Err(e);
                    }
                    report.stopped_by = Some(stopped);
                    break;
                }
            }
        }
        Ok(report)
    }

    /// Delivers `request`, renewing its claim every third of the lease while the delivery is
    /// under way, so a claim runs out only when its replica is gone (a short lease then brings
    /// a dead replica's requests back in seconds) and never under a slow but live delivery.
    async fn deliver_renewing(&self, request: &QueuedRequest, deliver: &dyn Deliver) -> Delivery {
        let Some(lease) = self.store.claim_lease() else {
            return deliver.deliver(request).await;
        };
        let every = (lease / 3).max(Duration::from_millis(10));
        let delivery = deliver.deliver(request);
        tokio::pin!(delivery);
        loop {
            tokio::select! {
                delivered = &mut delivery => return delivered,
                () = tokio::time::sleep(every) => {
                    if let Err(e) = self.store.renew(request.id).await {
                        tracing::debug!(id = %request.id, error = %e, "claim not renewed");
                    }
                }
            }
        }
    }

    async fn prune_finished(&self) -> Result<u64, StoreFailure> {
        {
            let mut pruned_at = self
                .pruned_at
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if pruned_at.is_some_and(|at| at.elapsed() < self.prune_every) {
                return Ok(0);
            }
            *pruned_at = Some(tokio::time::Instant::now());
        }
        self.store.prune_finished().await
    }

    async fn prune_finished_quietly(&self) {
        match self.prune_finished().await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(pruned = n, "finished queued requests deleted"),
            Err(e) => tracing::debug!(error = %e, "pruning finished queued requests postponed"),
        }
    }

    async fn settle_owed(&self) -> Result<(), StoreFailure> {
        loop {
            let Some((id, owed, attempts)) = self.owed().last().cloned() else {
                return Ok(());
            };
            match &owed {
                Owed::Finish(status) => self.store.finish(id, status, attempts).await?,
                Owed::Release => self.store.release(id, attempts).await?,
            }
            self.owed().retain(|(other, ..)| *other != id);
        }
    }

    fn owed(&self) -> std::sync::MutexGuard<'_, Vec<(Uuid, Owed, u32)>> {
        self.owed.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Enqueue for RequestQueue {
    fn enqueue(&self, request: QueuedRequest) -> BoxFuture<'_, Result<Durability, QueueError>> {
        self.enqueue_within(request, QueueBounds::UNBOUNDED)
    }

    fn enqueue_within(
        &self,
        request: QueuedRequest,
        bounds: QueueBounds,
    ) -> BoxFuture<'_, Result<Durability, QueueError>> {
        Box::pin(async move {
            if self.closed.load(Ordering::Acquire) {
                return Err(QueueError::ShuttingDown);
            }
            self.store.enqueue_within(request, bounds).await
        })
    }
}

impl fmt::Debug for RequestQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestQueue")
            .field("store", &self.store)
            .field("closed", &self.closed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// A running replayer: [`wake`](Self::wake) it when the upstream's breaker closes.
#[derive(Debug)]
pub struct Replayer {
    wake: Arc<Notify>,
    task: JoinHandle<()>,
}

impl Replayer {
    /// Asks for a replay now (it runs once more if one is under way).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// The notifier [`wake`](Self::wake) pokes, for code that keeps only that.
    pub fn waker(&self) -> Arc<Notify> {
        Arc::clone(&self.wake)
    }

    /// Waits for the task to end (after the shutdown signal).
    pub async fn join(self) {
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "queue replayer ended abnormally");
        }
    }
}

/// Starts a task that replays `upstream`'s queue through `deliver` when woken and every
/// [`replay_every`](RequestQueue::replay_every), pruning finished requests
/// ([`QueueStore::prune_finished`]) as it goes and after each run. It ends once `shutdown` holds `true` (or its
/// sender is gone), after the delivery under way, so no delivered request goes unrecorded.
pub fn spawn_replayer(
    queue: Arc<RequestQueue>,
    upstream: impl Into<String>,
    deliver: Arc<dyn Deliver>,
    mut shutdown: watch::Receiver<bool>,
) -> Replayer {
    let upstream = upstream.into();
    let wake = Arc::new(Notify::new());
    let woken = Arc::clone(&wake);
    let task = tokio::spawn(async move {
        let probe = shutdown.clone();
        let stop = move || *probe.borrow() || probe.has_changed().is_err();
        while !stop() {
            match queue.replay_until(&upstream, &*deliver, &stop).await {
                Ok(report) if report.delivered > 0 => {
                    tracing::info!(%upstream, delivered = report.delivered, "queued requests replayed");
                }
                Ok(_) => {}
                Err(e) => tracing::debug!(%upstream, error = %e, "queue replay postponed"),
            }
            // Finished requests are kept for a while (listed by /admin/queue), not forever.
            queue.prune_finished_quietly().await;
            tokio::select! {
                _ = woken.notified() => {}
                _ = tokio::time::sleep(queue.every) => {}
                changed = shutdown.changed() => if changed.is_err() { break },
            }
        }
    });
    Replayer { wake, task }
}
