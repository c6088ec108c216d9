//! Persistence (queued requests, cached responses, breaker history) in SQLite or PostgreSQL,
//! itself behind the `database` breaker.
//!
//! Every query takes a permit from that breaker: a database error or a call slower than
//! `store.call_timeout` is a failure, and a rejection answers "unavailable" at once without
//! touching the database. While the database cannot be used the queue lives in a bounded memory
//! buffer ([`Store::is_degraded`]); a background task writes it back, in order, when the
//! database returns. PostgreSQL may be down when the gateway starts: the store then starts
//! degraded and keeps trying. A SQLite file that cannot be opened is a start-up error.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, SystemTime};

use tokio::sync::Notify;

use crate::breaker::{Breaker, Outcome};
use crate::config::{StoreConfig, StoreKind, StoreUrl};
use crate::fallback::QueuedRequest;

mod cache;
pub(crate) mod db;
mod error;
mod history;
mod manual;
mod queue;
mod rows;
mod tally;
#[cfg(test)]
mod tests;

pub use error::StoreError;
pub use history::TransitionRecord;
pub use manual::{MANUAL_STATES_CHANNEL, ManualAction, ManualState};
pub use queue::{QueueDepth, QueueEntry, QueueListing};

use db::Db;

/// Tunables with sensible defaults; [`Store::connect`] takes those `[store]` sets from the
/// configuration ([`StoreOptions::from_config`]).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StoreOptions {
    /// Most requests the memory buffer holds while the database is unavailable (10,000).
    pub buffer_capacity: usize,
    /// How long a claimed request stays reserved for the replica that claimed it unless renewed
    /// (15 s; renewed every third of it while its delivery is under way). A replica that dies
    /// mid-delivery gives it up after this long.
    pub claim_lease: Duration,
    /// How often the background task retries the database while degraded (1 s).
    pub retry_interval: Duration,
    /// How long a finished (e.g. delivered) request stays in the queue table, listed by
    /// `GET /admin/queue`, before it is deleted (1 h).
    pub finished_retention: Duration,
    /// Most finished requests kept regardless of age (10,000), so a busy queue's table stays
    /// bounded; the newest are kept.
    pub finished_keep: usize,
    /// Most requests pending in the queue, every upstream together (100,000).
    pub queue_max_requests: u64,
    /// Most body bytes pending in the queue, every upstream together (1 GiB).
    pub queue_max_bytes: u64,
    /// Most rows in the cache table (10,000); the least recently used go first.
    pub cache_max_entries: u64,
    /// Most bytes of cached responses in the cache table (64 MiB).
    pub cache_max_bytes: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            buffer_capacity: 10_000,
            claim_lease: StoreConfig::DEFAULT_CLAIM_LEASE,
            retry_interval: Duration::from_secs(1),
            finished_retention: Duration::from_secs(3600),
            finished_keep: 10_000,
            queue_max_requests: StoreConfig::DEFAULT_QUEUE_MAX_REQUESTS,
            queue_max_bytes: StoreConfig::DEFAULT_QUEUE_MAX_BYTES,
            cache_max_entries: StoreConfig::DEFAULT_CACHE_MAX_ENTRIES as u64,
            cache_max_bytes: StoreConfig::DEFAULT_CACHE_MAX_BYTES as u64,
        }
    }
}

impl StoreOptions {
    /// The defaults, with the memory buffer's capacity and the finished requests' retention
    /// from `[store]`.
    pub fn from_config(config: &StoreConfig) -> Self {
        Self::default()
            .buffer_capacity(config.queue_memory_capacity)
            .finished_retention(config.queue_finished_retention)
            .finished_keep(config.queue_finished_keep)
            .claim_lease(config.claim_lease)
            .queue_max(config.queue_max_requests, config.queue_max_bytes)
            .cache_max(
                config.cache_max_entries as u64,
                config.cache_max_bytes as u64,
            )
    }

    /// Sets [`cache_max_entries`](Self::cache_max_entries) and
    /// [`cache_max_bytes`](Self::cache_max_bytes).
    pub fn cache_max(mut self, entries: u64, bytes: u64) -> Self {
        self.cache_max_entries = entries;
        self.cache_max_bytes = bytes;
        self
    }

    /// Sets [`queue_max_requests`](Self::queue_max_requests) and
    /// [`queue_max_bytes`](Self::queue_max_bytes).
    pub fn queue_max(mut self, requests: u64, bytes: u64) -> Self {
        self.queue_max_requests = requests;
        self.queue_max_bytes = bytes;
        self
    }

    /// Sets [`buffer_capacity`](Self::buffer_capacity).
    pub fn buffer_capacity(mut self, capacity: usize) -> Self {
        self.buffer_capacity = capacity;
        self
    }

    /// Sets [`claim_lease`](Self::claim_lease).
    pub fn claim_lease(mut self, lease: Duration) -> Self {
        self.claim_lease = lease;
        self
    }

    /// Sets [`retry_interval`](Self::retry_interval).
    pub fn retry_interval(mut self, interval: Duration) -> Self {
        self.retry_interval = interval;
        self
    }

    /// Sets [`finished_retention`](Self::finished_retention).
    pub fn finished_retention(mut self, retention: Duration) -> Self {
        self.finished_retention = retention;
        self
    }

    /// Sets [`finished_keep`](Self::finished_keep).
    pub fn finished_keep(mut self, keep: usize) -> Self {
        self.finished_keep = keep;
        self
    }
}

/// Connection pool figures for `/health/detailed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// Connections in use.
    pub active: u32,
    /// Open connections waiting for work.
    pub idle: u32,
}

/// The gateway's database. Cheap to clone: clones share the pool, the breaker and the buffer.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    kind: StoreKind,
    /// The URL with any password redacted, for messages.
    url: String,
    breaker: Arc<Breaker>,
    call_timeout: Duration,
    options: StoreOptions,
    /// Tells replicas' claims apart.
    replica: String,
    /// Migrations applied: the tables exist.
    ready: AtomicBool,
    /// The last call failed or was rejected.
    unreachable: AtomicBool,
    /// Queued requests accepted while the database was unavailable, oldest first.
    buffer: Mutex<VecDeque<QueuedRequest>>,
    /// Only one writer drains the buffer at a time, so it is written back in order.
    flushing: tokio::sync::Mutex<()>,
    /// One pruner of finished requests at a time (every upstream's replayer asks).
    pruning: tokio::sync::Mutex<()>,
    /// Wakes the background task (buffer grew, or someone asks for a retry).
    wake: Arc<Notify>,
    /// Pending requests and bytes per upstream, checked against the queue's bounds.
    tallies: Mutex<tally::Tallies>,
    /// When the tallies were last recounted from the database.
    recounted_at: Mutex<Option<tokio::time::Instant>>,
    /// The tallies have been counted from the database once: until then the background task
    /// keeps trying, so that what a previous run left pending counts against the bounds.
    counted: AtomicBool,
}

impl Store {
    /// Wall time as the `database` breaker's clock reads it: claim leases and retention are
    /// compared with it.
    pub(crate) fn wall_now(&self) -> SystemTime {
        self.inner.breaker.clock().wall()
    }

    /// Connects to the database of `config` and prepares its tables, with the options it sets
    /// ([`StoreOptions::from_config`]).
    pub async fn connect(config: &StoreConfig, breaker: Arc<Breaker>) -> Result<Store, StoreError> {
        Store::connect_with(config, breaker, StoreOptions::from_config(config)).await
    }

    /// [`connect`](Self::connect) with explicit options.
    ///
    /// SQLite: the file is created if missing and opened in WAL mode; a path that cannot be used
    /// is an error here. PostgreSQL: if the server cannot be reached or prepared now, the store is
    /// returned degraded and a background task keeps trying; only a malformed URL is an error.
    pub async fn connect_with(
        config: &StoreConfig,
        breaker: Arc<Breaker>,
        options: StoreOptions,
    ) -> Result<Store, StoreError> {
        let url: &StoreUrl = &config.url;
        let db = Db::open(url, config.call_timeout).await?;
        let inner = Arc::new(Inner {
            db,
            kind: url.kind(),
            url: url.redacted(),
            breaker,
            call_timeout: config.call_timeout,
            options,
            replica: uuid::Uuid::now_v7().to_string(),
            ready: AtomicBool::new(false),
            unreachable: AtomicBool::new(false),
            buffer: Mutex::new(VecDeque::new()),
            flushing: tokio::sync::Mutex::new(()),
            pruning: tokio::sync::Mutex::new(()),
            wake: Arc::new(Notify::new()),
            tallies: Mutex::new(tally::Tallies::default()),
            recounted_at: Mutex::new(None),
            counted: AtomicBool::new(false),
        });
        let store = Store { inner };
        match store.migrate().await {
            Ok(()) => {}
            Err(e) if url.kind() == StoreKind::Sqlite => return Err(e),
            Err(e) => tracing::warn!(
                store = %store.inner.url,
                error = %e,
                "database unreachable at start; the store starts degraded and keeps retrying"
            ),
        }
        spawn_maintenance(&store);
        Ok(store)
    }

    /// SQLite or PostgreSQL.
    pub fn kind(&self) -> StoreKind {
        self.inner.kind
    }

    /// Whether the store cannot be used right now and queued requests live in memory: the
    /// database was never reached, the last call failed, or the buffer still holds requests.
    pub fn is_degraded(&self) -> bool {
        !self.inner.ready.load(Ordering::Acquire)
            || self.inner.unreachable.load(Ordering::Acquire)
            || !self.buffer().is_empty()
    }

    /// Connections in use and idle.
    pub fn pool_stats(&self) -> PoolStats {
        let (active, idle) = self.inner.db.pool_counts();
        PoolStats { active, idle }
    }

    /// One trivial query through the breaker; answers how long it took.
    pub async fn ping(&self) -> Result<Duration, StoreError> {
        let started = tokio::time::Instant::now();
        let query = async {
            db::on_db!(&self.inner.db, |pool| sqlx::query("SELECT 1")
                .execute(pool)
                .await
                .map(|_| ()))
        };
        self.call("ping", query).await?;
        Ok(started.elapsed())
    }

    /// The database's size in bytes (SQLite: page_count × page_size, the WAL's pages
    /// included; PostgreSQL: `pg_database_size`), through the breaker.
    pub async fn size_bytes(&self) -> Result<u64, StoreError> {
        let sql = match self.inner.kind {
            StoreKind::Sqlite => {
                "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()"
            }
            StoreKind::Postgres => "SELECT pg_database_size(current_database())",
        };
        let query = async {
            db::on_db!(&self.inner.db, |pool| {
                let size: Result<(i64,), _> = sqlx::query_as(sql).fetch_one(pool).await;
                size
            })
        };
        let (size,) = self.call("size", query).await?;
        Ok(u64::try_from(size).unwrap_or(0))
    }

    /// The breaker guarding the store.
    pub fn breaker(&self) -> &Arc<Breaker> {
        &self.inner.breaker
    }

    /// Writes the memory buffer back if the database allows, then closes the pool. Requests
    /// still in memory after this are reported in the log (they cannot be kept).
    pub async fn close(&self) {
        // Each write-back takes what the buffer held when it began; the queue is closed by now,
        // so this ends once the buffer is empty or the database fails.
        let mut written = Ok(());
        while written.is_ok() && !self.buffer().is_empty() {
            written = self.flush().await;
        }
        if let Err(e) = written {
            tracing::error!(
                store = %self.inner.url,
                error = %e,
                lost = self.buffer().len(),
                "closing with queued requests the database could not take"
            );
        }
        self.inner.db.close().await;
    }

    /// Applies the migrations (through the breaker) and marks the store ready.
    async fn migrate(&self) -> Result<(), StoreError> {
        let db = self.inner.db.clone();
        let url = self.inner.url.clone();
        let run = async move {
            db.migrate()
                .await
                .map_err(|source| StoreError::Migrate { url, source })
        };
        // Another replica may hold the migration lock for a moment: allow more than one call.
        let timeout = self.inner.call_timeout.max(db::START_TIMEOUT);
        self.guarded("migrate", timeout, run).await?;
        self.inner.ready.store(true, Ordering::Release);
        tracing::info!(store = %self.inner.url, "store ready");
        // The requests a previous run left pending count against the queue's bounds.
        if let Err(e) = self.recount_pending().await {
            tracing::warn!(store = %self.inner.url, error = %e, "pending requests not counted yet");
        }
        Ok(())
    }

    /// Runs one database call under the breaker and `call_timeout`.
    async fn call<T>(
        &self,
        op: &'static str,
        query: impl Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T, StoreError> {
        if !self.inner.ready.load(Ordering::Acquire) {
            return Err(StoreError::Connecting {
                url: self.inner.url.clone(),
            });
        }
        let query = async {
            query
                .await
                .map_err(|source| StoreError::Query { op, source })
        };
        self.guarded(op, self.inner.call_timeout, query).await
    }

    async fn guarded<T>(
        &self,
        op: &'static str,
        timeout: Duration,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let inner = &self.inner;
        let permit = match inner.breaker.try_acquire() {
            Ok(permit) => permit,
            Err(rejected) => {
                inner.unreachable.store(true, Ordering::Release);
                return Err(StoreError::Unavailable {
                    state: rejected.state(),
                    retry_after: rejected.retry_after(),
                });
            }
        };
        let (outcome, result) = match tokio::time::timeout(timeout, call).await {
            Ok(Ok(value)) => (Outcome::Success, Ok(value)),
            Ok(Err(e)) => (Outcome::Failure, Err(e)),
            Err(_) => (
                Outcome::Timeout,
                Err(StoreError::Timeout { op, after: timeout }),
            ),
        };
        permit.record(outcome);
        let failed = result.is_err();
        if inner.unreachable.swap(failed, Ordering::AcqRel) != failed {
            if failed {
                tracing::warn!(store = %inner.url, op, "store unavailable");
            } else {
                tracing::info!(store = %inner.url, "store reachable again");
                inner.wake.notify_one();
            }
        }
        result
    }

    fn buffer(&self) -> MutexGuard<'_, VecDeque<QueuedRequest>> {
        // A panic elsewhere while holding the lock leaves a valid VecDeque: keep using it.
        self.inner
            .buffer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("url", &self.inner.url)
            .field("kind", &self.inner.kind)
            .field("degraded", &self.is_degraded())
            .finish_non_exhaustive()
    }
}

/// Retries the database while it is degraded: prepares the tables if that never happened and
/// writes the memory buffer back. Holds only a weak reference, so it ends with the last `Store`.
fn spawn_maintenance(store: &Store) {
    let weak: Weak<Inner> = Arc::downgrade(&store.inner);
    let wake = Arc::clone(&store.inner.wake);
    let every = store.inner.options.retry_interval;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(every) => {}
            }
            let Some(inner) = weak.upgrade() else { return };
            let store = Store { inner };
            if !store.inner.ready.load(Ordering::Acquire) && store.migrate().await.is_err() {
                continue;
            }
            if !store.inner.counted.load(Ordering::Acquire)
                && let Err(e) = store.recount_pending().await
            {
                tracing::debug!(error = %e, "pending requests not counted yet");
            }
            if !store.buffer().is_empty() {
                if let Err(e) = store.flush().await {
                    tracing::debug!(error = %e, "queue buffer not written back yet");
                }
            } else if store.inner.unreachable.load(Ordering::Acquire) {
                // Without traffic nothing else would notice that the database is back.
                let _ = store.ping().await;
            }
        }
    });
}
