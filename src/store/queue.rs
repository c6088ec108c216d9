//! The durable queue's table: enqueue (with the memory buffer), claim, finish, release, listing.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime};

use futures_util::future::BoxFuture;
use uuid::Uuid;

use crate::fallback::{
    Durability, QueueBounds, QueueError, QueueStatus, QueueStore, QueuedRequest, StoreFailure,
};

use super::tally::Tally;

use super::db::on_db;
use super::rows;
use super::{Store, StoreError};

// `ON CONFLICT DO NOTHING`: writing the buffer back again after a write whose answer was lost
// (a timeout) must not duplicate the request.
const INSERT: &str = "INSERT INTO queued_requests \
     (id, upstream, method, path_and_query, headers, body, enqueued_at, attempts, status, \
      status_code, reason) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (id) DO NOTHING";

// The oldest pending request of an upstream that nobody holds a live claim on. PostgreSQL locks
// the chosen row and skips rows other transactions hold, so two replicas never take the same
// one; in SQLite the single UPDATE is one write transaction and writers are serialised anyway.
macro_rules! claim_sql {
    ($lock:literal) => {
        concat!(
            "UPDATE queued_requests SET claimed_until = $3, claimed_by = $4 WHERE id = (",
            "SELECT id FROM queued_requests WHERE upstream = $1 AND status = 'pending' ",
            "AND (claimed_until IS NULL OR claimed_until < $2) ",
            "ORDER BY enqueued_at, id LIMIT 1",
            $lock,
            ") RETURNING id, upstream, method, path_and_query, headers, body, ",
            "enqueued_at, attempts, status, status_code, reason"
        )
    };
}
const CLAIM_SQLITE: &str = claim_sql!("");
const CLAIM_POSTGRES: &str = claim_sql!(" FOR UPDATE SKIP LOCKED");

// `status = 'pending'`: a request already finished (e.g. by a replica whose lease we outlived)
// keeps its first outcome.
// `RETURNING`: what the finished request no longer holds of the queue's bounds.
const FINISH: &str = "UPDATE queued_requests SET status = $2, status_code = $3, reason = $4, \
     attempts = $5, finished_at = $6, claimed_until = NULL, claimed_by = NULL \
     WHERE id = $1 AND status = 'pending' \
     RETURNING upstream, CAST(length(body) AS BIGINT) AS body_bytes";

// Pending requests and their bytes per upstream, to recount the tallies: at start, and at most
// once a second when a request would be refused. `length` reads no body (SQLite takes it from
// the record header, PostgreSQL from the TOAST pointer).
const PENDING_TALLY: &str = "SELECT upstream, COUNT(*) AS n, \
     CAST(COALESCE(SUM(length(body)), 0) AS BIGINT) AS bytes \
     FROM queued_requests WHERE status = 'pending' GROUP BY upstream";

/// Least time between two recounts of the tallies before a refusal.
const RECOUNT_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

// `claimed_by = $3`: a release that comes after this replica's lease ran out must not free the
// claim of the replica that took the request over (a third one would deliver it again).
// Extends this replica's claim while its delivery is still under way.
const RENEW: &str = "UPDATE queued_requests SET claimed_until = $2 \
     WHERE id = $1 AND status = 'pending' AND claimed_by = $3";

const RELEASE: &str = "UPDATE queued_requests SET attempts = $2, claimed_until = NULL, \
     claimed_by = NULL WHERE id = $1 AND status = 'pending' AND claimed_by = $3";

// Finished requests past their retention, and those beyond the newest `finished_keep`; a
// bounded batch per statement so that one prune never holds the write lock for long.
// `finished_at` first: the finished_at index (migration 2) finds them without scanning the
// table, whose pending rows may be hundreds of thousands.
const PRUNE_OLD: &str = "DELETE FROM queued_requests WHERE id IN (\
     SELECT id FROM queued_requests WHERE finished_at < $1 AND status <> 'pending' \
     ORDER BY finished_at LIMIT $2)";
const PRUNE_EXCESS: &str = "DELETE FROM queued_requests WHERE id IN (\
     SELECT id FROM queued_requests WHERE finished_at IS NOT NULL AND status <> 'pending' \
     ORDER BY finished_at DESC, id DESC LIMIT $1 OFFSET $2)";
/// Rows one prune statement deletes at most.
const PRUNE_BATCH: i64 = 1_000;

pub(super) const DEPTH: &str = "SELECT upstream, COUNT(*) AS n FROM queued_requests \
     WHERE status = 'pending' GROUP BY upstream";

// One page of `GET /admin/queue`: every request after the cursor, in id (acceptance) order, from
// the columns the listing reports. The body's size, never the body: listing 100 pending 10 MiB
// requests used to read a gigabyte. `CAST`: PostgreSQL's `length(bytea)` is an INT4.
pub(super) const LIST: &str = "SELECT id, upstream, method, path_and_query, \
     CAST(length(body) AS BIGINT) AS body_bytes, enqueued_at, attempts, status, status_code, \
     reason FROM queued_requests WHERE id > $1 ORDER BY id LIMIT $2";

impl Store {
    /// Stores `request`; while the database is unavailable (or older requests still wait in
    /// memory, so that order is kept) it goes to the memory buffer instead. Refused
    /// ([`QueueError::OverLimit`]) when it would pass the gateway-wide bounds.
    pub async fn enqueue(&self, request: QueuedRequest) -> Result<Durability, QueueError> {
        self.enqueue_within(request, QueueBounds::UNBOUNDED).await
    }

    /// [`enqueue`](Self::enqueue) unless it would pass `bounds` (its upstream's) or the
    /// gateway-wide bounds ([`QueueError::OverLimit`]); nothing already accepted is dropped.
    pub async fn enqueue_within(
        &self,
        request: QueuedRequest,
        bounds: QueueBounds,
    ) -> Result<Durability, QueueError> {
        let upstream = request.upstream.clone();
        let bytes = request.body.len() as u64;
        if let Err(bound) = self.reserve(&upstream, bytes, bounds) {
            // The figures may be stale (another replica may have delivered some since):
            // recount before refusing, at most once a second.
            if !self.recount_due() {
                return Err(QueueError::OverLimit { bound });
            }
            if let Err(e) = self.recount_pending().await {
                tracing::debug!(error = %e, "pending requests not recounted");
            }
            self.reserve(&upstream, bytes, bounds)
                .map_err(|bound| QueueError::OverLimit { bound })?;
        }
        let kept = self.keep(request).await;
        if kept.is_err() {
            self.tallies().release(&upstream, bytes);
        }
        kept
    }

    fn reserve(&self, upstream: &str, bytes: u64, own: QueueBounds) -> Result<(), String> {
        let options = &self.inner.options;
        let all = QueueBounds {
            max_requests: options.queue_max_requests,
            max_bytes: options.queue_max_bytes,
        };
        self.tallies().reserve(upstream, bytes, own, all)
    }

    fn tallies(&self) -> std::sync::MutexGuard<'_, super::tally::Tallies> {
        self.inner
            .tallies
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether a recount is allowed now (at most once per [`RECOUNT_EVERY`]); marks it done.
    fn recount_due(&self) -> bool {
        let mut at = self
            .inner
            .recounted_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = tokio::time::Instant::now();
        if at.is_some_and(|at| now.duration_since(at) < RECOUNT_EVERY) {
            return false;
        }
        *at = Some(now);
        true
    }

    /// Recounts the pending requests and bytes per upstream: the database's and the memory
    /// buffer's.
    pub(super) async fn recount_pending(&self) -> Result<(), StoreError> {
        let query = async {
            on_db!(&self.inner.db, |pool| {
                let rows: Result<Vec<(String, i64, i64)>, _> =
                    sqlx::query_as(PENDING_TALLY).fetch_all(pool).await;
                rows
            })
        };
        let rows = self.call("queue_recount", query).await?;
        let mut counted: HashMap<String, Tally> = HashMap::new();
        for (upstream, n, bytes) in rows {
            counted.insert(
                upstream,
                Tally {
                    requests: u64::try_from(n).unwrap_or(0),
                    bytes: u64::try_from(bytes).unwrap_or(0),
                },
            );
        }
        let mut tallies = self.tallies();
        for r in self.buffer().iter() {
            let t = counted.entry(r.upstream.clone()).or_default();
            t.requests += 1;
            t.bytes += r.body.len() as u64;
        }
        tallies.replace(counted);
        self.inner
            .counted
            .store(true, std::sync::atomic::Ordering::Release);
        Ok(())
    }

    /// Keeps `request` in the database, or in the memory buffer while the database is
    /// unavailable or older requests still wait there.
    async fn keep(&self, request: QueuedRequest) -> Result<Durability, QueueError> {
        if !self.buffer().is_empty() {
            return self.buffer_request(request);
        }
        match self.insert(&request).await {
            Ok(()) => Ok(Durability::Stored),
            Err(e) => {
                tracing::debug!(id = %request.id, error = %e, "queued request kept in memory");
                self.buffer_request(request)
            }
        }
    }

    fn buffer_request(&self, request: QueuedRequest) -> Result<Durability, QueueError> {
        let capacity = self.inner.options.buffer_capacity;
        {
            let mut buffer = self.buffer();
            if buffer.len() >= capacity {
                return Err(QueueError::Full { capacity });
            }
            buffer.push_back(request);
        }
        self.inner.wake.notify_one();
        Ok(Durability::Memory)
    }

    async fn insert(&self, r: &QueuedRequest) -> Result<(), StoreError> {
        let (status, code, reason) = rows::status_columns(&r.status);
        let headers = rows::encode_headers(&r.headers);
        let query = async {
            on_db!(&self.inner.db, |pool| sqlx::query(INSERT)
                .bind(r.id.to_string())
                .bind(&r.upstream)
                .bind(&r.method)
                .bind(&r.path_and_query)
                .bind(&headers)
                .bind(r.body.as_ref())
                .bind(rows::to_ms(r.enqueued_at))
                .bind(i64::from(r.attempts))
                .bind(status)
                .bind(code)
                .bind(reason.as_deref())
                .execute(pool)
                .await
                .map(|_| ()))
        };
        self.call("enqueue", query).await
    }

    /// Writes the memory buffer to the database, oldest first: the requests it held when the
    /// write-back began (those accepted meanwhile wait for the next one, so a database slower
    /// than the incoming requests cannot keep this going forever). Stops at the first failure
    /// and keeps the rest. A request leaves the buffer only once the database has it.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let _one_writer = self.inner.flushing.lock().await;
        let held = self.buffer().len();
        for _ in 0..held {
            let Some(front) = self.buffer().front().cloned() else {
                return Ok(());
            };
            self.insert(&front).await?;
            let mut buffer = self.buffer();
            if buffer.front().is_some_and(|r| r.id == front.id) {
                buffer.pop_front();
            }
        }
        Ok(())
    }

    /// Claims the oldest pending request of `upstream` for this replica (for the claim lease).
    ///
    /// The memory buffer holds only requests newer than the database's (once it holds one,
    /// every new request joins it until it is written back), so the database is asked first
    /// and the buffer is written back when the database has none of `upstream`'s left. Writing
    /// it back first instead made replay wait behind it: with a slow database and requests
    /// coming in faster than it took them, replay stopped altogether.
    pub async fn claim_next(&self, upstream: &str) -> Result<Option<QueuedRequest>, StoreError> {
        if let Some(claimed) = self.claim_stored(upstream).await? {
            return Ok(Some(claimed));
        }
        let buffered = self.buffer().iter().any(|r| r.upstream == upstream);
        if !buffered {
            return Ok(None);
        }
        self.flush().await?;
        self.claim_stored(upstream).await
    }

    async fn claim_stored(&self, upstream: &str) -> Result<Option<QueuedRequest>, StoreError> {
        let now = rows::to_ms(self.wall_now());
        let lease = i64::try_from(self.inner.options.claim_lease.as_millis()).unwrap_or(i64::MAX);
        let replica = &self.inner.replica;
        let row = async {
            on_db!(&self.inner.db, |pool| {
                let sql = if self.inner.kind == crate::config::StoreKind::Postgres {
                    CLAIM_POSTGRES
                } else {
                    CLAIM_SQLITE
                };
                match sqlx::query(sql)
                    .bind(upstream)
                    .bind(now)
                    .bind(now.saturating_add(lease))
                    .bind(replica)
                    .fetch_optional(pool)
                    .await
                {
                    Ok(Some(row)) => Ok(Some(rows::queued(&row))),
                    Ok(None) => Ok(None),
                    Err(e) => Err(e),
                }
            })
        };
        self.call("claim_next", row).await?.transpose()
    }

    /// Records the final outcome of a claimed request and lets go of it.
    pub async fn finish(
        &self,
        id: Uuid,
        status: &QueueStatus,
        attempts: u32,
    ) -> Result<(), StoreError> {
        let (name, code, reason) = rows::status_columns(status);
        let now = rows::to_ms(self.wall_now());
        let query = async {
            on_db!(&self.inner.db, |pool| {
                let row: Result<Option<(String, Option<i64>)>, _> = sqlx::query_as(FINISH)
                    .bind(id.to_string())
                    .bind(name)
                    .bind(code)
                    .bind(reason.as_deref())
                    .bind(i64::from(attempts))
                    .bind(now)
                    .fetch_optional(pool)
                    .await;
                row
            })
        };
        // `None`: it was finished already (by a replica whose lease we outlived).
        if let Some((upstream, bytes)) = self.call("finish", query).await? {
            let bytes = bytes.and_then(|b| u64::try_from(b).ok()).unwrap_or(0);
            self.tallies().release(&upstream, bytes);
        }
        Ok(())
    }

    /// Extends this replica's claim on `id` by a whole claim lease from now (a claim another
    /// replica took over after it ran out is left alone).
    pub async fn renew_claim(&self, id: Uuid) -> Result<(), StoreError> {
        let lease = i64::try_from(self.inner.options.claim_lease.as_millis()).unwrap_or(i64::MAX);
        let until = rows::to_ms(self.wall_now()).saturating_add(lease);
        let query = async {
            on_db!(&self.inner.db, |pool| sqlx::query(RENEW)
                .bind(id.to_string())
                .bind(until)
                .bind(&self.inner.replica)
                .execute(pool)
                .await
                .map(|_| ()))
        };
        self.call("renew_claim", query).await
    }

    /// How long a claim lasts unless renewed.
    pub fn claim_lease(&self) -> Duration {
        self.inner.options.claim_lease
    }

    /// Puts a request this replica claimed back to pending after a failed attempt (nothing if
    /// another replica has claimed it since).
    pub async fn release(&self, id: Uuid, attempts: u32) -> Result<(), StoreError> {
        let query = async {
            on_db!(&self.inner.db, |pool| sqlx::query(RELEASE)
                .bind(id.to_string())
                .bind(i64::from(attempts))
                .bind(&self.inner.replica)
                .execute(pool)
                .await
                .map(|_| ()))
        };
        self.call("release", query).await
    }

    /// Deletes finished requests older than the retention or beyond the newest `finished_keep`,
    /// in bounded batches; returns how many. Pending requests are never touched. Does nothing
    /// (0) while another prune is under way.
    pub async fn prune_finished(&self) -> Result<u64, StoreError> {
        let Ok(_one_pruner) = self.inner.pruning.try_lock() else {
            return Ok(0);
        };
        let options = &self.inner.options;
        let cutoff = rows::to_ms(
            self.wall_now()
                .checked_sub(options.finished_retention)
                .unwrap_or(SystemTime::UNIX_EPOCH),
        );
        let keep = i64::try_from(options.finished_keep).unwrap_or(i64::MAX);
        let mut total = 0;
        // Parameters in the order they appear (SQLite numbers `$n` by first appearance).
        for (sql, first, second) in [
            (PRUNE_OLD, cutoff, PRUNE_BATCH),
            (PRUNE_EXCESS, PRUNE_BATCH, keep),
        ] {
            loop {
                let query = async {
                    on_db!(&self.inner.db, |pool| sqlx::query(sql)
                        .bind(first)
                        .bind(second)
                        .execute(pool)
                        .await
                        .map(|done| done.rows_affected()))
                };
                let deleted = self.call("prune_finished", query).await?;
                total += deleted;
                if deleted < PRUNE_BATCH.unsigned_abs() {
                    break;
                }
            }
        }
        Ok(total)
    }

    /// One page of `GET /admin/queue`: up to `limit` requests whose id comes after `after`, in
    /// id order (ids are time-ordered: acceptance order), those in the memory buffer included.
    /// Reads no body and no headers. While the database cannot be read only the memory buffer
    /// is listed and the page says so ([`QueueListing::complete`] is `false`).
    pub async fn queue_listing(&self, after: Option<Uuid>, limit: usize) -> QueueListing {
        let limit = limit.max(1);
        // One more than asked: whether another page follows.
        let wanted = limit.saturating_add(1);
        let mut entries: Vec<QueueEntry> = {
            let buffer = self.buffer();
            let mut held: Vec<QueueEntry> = buffer
                .iter()
                .filter(|r| after.is_none_or(|a| r.id > a))
                .map(QueueEntry::of)
                .collect();
            held.sort_by_key(|e| e.id);
            held.truncate(wanted);
            held
        };
        let complete = match self.list(after, wanted).await {
            Ok(stored) => {
                // A request being written back may be in both for a moment.
                let stored: Vec<_> = stored
                    .into_iter()
                    .filter(|r| !entries.iter().any(|e| e.id == r.id))
                    .collect();
                entries.extend(stored);
                true
            }
            Err(e) => {
                tracing::debug!(error = %e, "queue listing limited to the memory buffer");
                false
            }
        };
        entries.sort_by_key(|e| e.id);
        let more = entries.len() > limit;
        entries.truncate(limit);
        let next = if more {
            entries.last().map(|e| e.id)
        } else {
            None
        };
        QueueListing {
            entries,
            complete,
            next,
        }
    }

    /// The first `limit` requests of the listing ([`queue_listing`](Self::queue_listing)).
    pub async fn queue_entries(&self, limit: usize) -> Vec<QueueEntry> {
        self.queue_listing(None, limit).await.entries
    }

    async fn list(&self, after: Option<Uuid>, limit: usize) -> Result<Vec<QueueEntry>, StoreError> {
        // Every id is greater than the empty string.
        let after = after.map(|id| id.to_string()).unwrap_or_default();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let query = async {
            on_db!(&self.inner.db, |pool| sqlx::query(LIST)
                .bind(&after)
                .bind(limit)
                .fetch_all(pool)
                .await
                .map(|found| found.iter().map(rows::entry).collect::<Vec<_>>()))
        };
        self.call("queue_listing", query)
            .await?
            .into_iter()
            .collect()
    }

    /// Pending requests per upstream, the memory buffer included. While the database cannot
    /// be asked (down, its breaker open, or too slow) only the memory buffer is counted and
    /// the figure says so ([`QueueDepth::complete`] is `false`): a reader must not take that
    /// for an empty queue.
    pub async fn queue_depth(&self) -> QueueDepth {
        let mut pending = BTreeMap::new();
        for r in self.buffer().iter() {
            *pending.entry(r.upstream.clone()).or_insert(0) += 1;
        }
        let query = async {
            on_db!(&self.inner.db, |pool| {
                let rows: Result<Vec<(String, i64)>, _> =
                    sqlx::query_as(DEPTH).fetch_all(pool).await;
                rows
            })
        };
        let complete = match self.call("queue_depth", query).await {
            Ok(rows) => {
                for (upstream, n) in rows {
                    *pending.entry(upstream).or_insert(0) += u64::try_from(n).unwrap_or(0);
                }
                true
            }
            Err(e) => {
                tracing::debug!(error = %e, "queue depth limited to the memory buffer");
                false
            }
        };
        QueueDepth { pending, complete }
    }
}

/// How many requests wait for replay, per upstream ([`Store::queue_depth`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QueueDepth {
    /// Pending requests per upstream (upstreams with none are absent).
    pub pending: BTreeMap<String, u64>,
    /// Whether the database's pending rows are counted; `false` when only the memory buffer
    /// could be.
    pub complete: bool,
}

impl QueueStore for Store {
    fn enqueue(&self, request: QueuedRequest) -> BoxFuture<'_, Result<Durability, QueueError>> {
        Box::pin(Store::enqueue(self, request))
    }

    fn enqueue_within(
        &self,
        request: QueuedRequest,
        bounds: QueueBounds,
    ) -> BoxFuture<'_, Result<Durability, QueueError>> {
        Box::pin(Store::enqueue_within(self, request, bounds))
    }

    fn claim_next<'a>(
        &'a self,
        upstream: &'a str,
    ) -> BoxFuture<'a, Result<Option<QueuedRequest>, StoreFailure>> {
        Box::pin(async move { Ok(Store::claim_next(self, upstream).await?) })
    }

    fn finish<'a>(
        &'a self,
        id: Uuid,
        status: &'a QueueStatus,
        attempts: u32,
    ) -> BoxFuture<'a, Result<(), StoreFailure>> {
        Box::pin(async move { Ok(Store::finish(self, id, status, attempts).await?) })
    }

    fn release(&self, id: Uuid, attempts: u32) -> BoxFuture<'_, Result<(), StoreFailure>> {
        Box::pin(async move { Ok(Store::release(self, id, attempts).await?) })
    }

    fn prune_finished(&self) -> BoxFuture<'_, Result<u64, StoreFailure>> {
        Box::pin(async move { Ok(Store::prune_finished(self).await?) })
    }

    fn renew(&self, id: Uuid) -> BoxFuture<'_, Result<(), StoreFailure>> {
        Box::pin(async move { Ok(Store::renew_claim(self, id).await?) })
    }

    fn claim_lease(&self) -> Option<Duration> {
        Some(Store::claim_lease(self))
    }
}

/// One queued request as the listing shows it: what it is and where it stands, never its
/// headers or body (they may be private, and bodies may be large).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueEntry {
    /// Its id (UUID v7, time-ordered).
    pub id: Uuid,
    /// The upstream it is for.
    pub upstream: String,
    /// HTTP method.
    pub method: String,
    /// Path below the upstream's url, with the query string.
    pub path_and_query: String,
    /// Size of its body in bytes.
    pub body_bytes: u64,
    /// When it was accepted.
    pub enqueued_at: SystemTime,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// Where it stands.
    pub status: QueueStatus,
}

impl QueueEntry {
    fn of(r: &QueuedRequest) -> Self {
        Self {
            id: r.id,
            upstream: r.upstream.clone(),
            method: r.method.clone(),
            path_and_query: r.path_and_query.clone(),
            body_bytes: r.body.len() as u64,
            enqueued_at: r.enqueued_at,
            attempts: r.attempts,
            status: r.status.clone(),
        }
    }
}

/// One page of the queue listing ([`Store::queue_listing`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueListing {
    /// The requests, in id order.
    pub entries: Vec<QueueEntry>,
    /// Whether the database's requests are listed; `false` when only the memory buffer could
    /// be: the page then says nothing about what the database holds.
    pub complete: bool,
    /// The cursor of the next page (the last id listed) when more requests follow.
    pub next: Option<Uuid>,
}
