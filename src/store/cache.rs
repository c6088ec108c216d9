//! The shared response cache: one row per (upstream, path and query), replaced on every put,
//! pruned to its bounds (`cache_max_entries`, `cache_max_bytes`: the least recently used rows go
//! first) and of rows past their upstream's `cache_ttl`.

use std::time::{Duration, SystemTime};

use futures_util::future::BoxFuture;

use crate::fallback::{CacheStore, CachedResponse};

use super::db::on_db;
use super::{Store, StoreError, rows};

const UPSERT: &str = "INSERT INTO cached_responses \
     (upstream, path_and_query, status, headers, body, stored_at, used_at, size) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
     ON CONFLICT (upstream, path_and_query) DO UPDATE SET status = excluded.status, \
     headers = excluded.headers, body = excluded.body, stored_at = excluded.stored_at, \
     used_at = excluded.used_at, size = excluded.size";

// A read from the store makes the row the most recently used.
const TOUCH: &str = "UPDATE cached_responses SET used_at = $3 \
     WHERE upstream = $1 AND path_and_query = $2";

const EXPIRE: &str = "DELETE FROM cached_responses WHERE upstream = $1 AND stored_at < $2";

const TOTALS: &str = "SELECT COUNT(*), CAST(COALESCE(SUM(size), 0) AS BIGINT) \
     FROM cached_responses";

const LEAST_USED: &str = "SELECT upstream, path_and_query, size FROM cached_responses \
     ORDER BY used_at, upstream, path_and_query LIMIT $1";

const DELETE: &str = "DELETE FROM cached_responses WHERE upstream = $1 AND path_and_query = $2";

/// Rows read per step while pruning to the bounds.
const PRUNE_BATCH: i64 = 500;

const SELECT: &str = "SELECT upstream, path_and_query, status, headers, body, stored_at \
     FROM cached_responses WHERE upstream = $1 AND path_and_query = $2";

impl Store {
    /// Stores or replaces the cached response for its upstream and path.
    pub async fn put_cached(&self, r: &CachedResponse) -> Result<(), StoreError> {
        let headers = rows::encode_headers(&r.headers);
        let used_at = rows::to_ms(self.wall_now());
        let size = i64::try_from(r.size()).unwrap_or(i64::MAX);
        let query = async {
            on_db!(&self.inner.db, |pool| sqlx::query(UPSERT)
                .bind(&r.upstream)
                .bind(&r.path_and_query)
                .bind(i64::from(r.status))
                .bind(&headers)
                .bind(r.body.as_ref())
                .bind(rows::to_ms(r.stored_at))
                .bind(used_at)
                .bind(size)
                .execute(pool)
                .await
                .map(|_| ()))
        };
        self.call("cache_put", query).await
    }

    /// The cached response for `upstream` and `path_and_query`, if one is stored.
    pub async fn get_cached(
        &self,
        upstream: &str,
        path_and_query: &str,
    ) -> Result<Option<CachedResponse>, StoreError> {
        let query = async {
            on_db!(&self.inner.db, |pool| sqlx::query(SELECT)
                .bind(upstream)
                .bind(path_and_query)
                .fetch_optional(pool)
                .await
                .map(|row| row.map(|row| rows::cached(&row))))
        };
        let found = self.call("cache_get", query).await?.transpose()?;
        if found.is_some() {
            self.run(
                "cache_touch",
                TOUCH,
                upstream,
                Some(path_and_query),
                Some(self.wall_now()),
            )
            .await?;
        }
        Ok(found)
    }

    /// Deletes the rows of each `(upstream, cache_ttl)` in `ttls` older than that TTL, then the
    /// least recently used rows beyond `cache_max_entries` and `cache_max_bytes`. Answers how
    /// many rows went.
    pub async fn prune_cache(&self, ttls: &[(String, Duration)]) -> Result<u64, StoreError> {
        let now = self.wall_now();
        let mut deleted = 0;
        for (upstream, ttl) in ttls {
            let cutoff = now.checked_sub(*ttl).unwrap_or(SystemTime::UNIX_EPOCH);
            deleted += self
                .run("cache_expire", EXPIRE, upstream, None, Some(cutoff))
                .await?;
        }
        let query = async {
            on_db!(&self.inner.db, |pool| {
                let totals: Result<(i64, i64), _> = sqlx::query_as(TOTALS).fetch_one(pool).await;
                totals
            })
        };
        let (rows, bytes) = self.call("cache_totals", query).await?;
        let options = &self.inner.options;
        let over =
            |have: i64, most: u64| have.saturating_sub(i64::try_from(most).unwrap_or(i64::MAX));
        let (mut rows_over, mut bytes_over) = (
            over(rows, options.cache_max_entries),
            over(bytes, options.cache_max_bytes),
        );
        while rows_over > 0 || bytes_over > 0 {
            let query = async {
                on_db!(&self.inner.db, |pool| {
                    let oldest: Result<Vec<(String, String, i64)>, _> = sqlx::query_as(LEAST_USED)
                        .bind(PRUNE_BATCH)
                        .fetch_all(pool)
                        .await;
                    oldest
                })
            };
            let oldest = self.call("cache_least_used", query).await?;
            if oldest.is_empty() {
                break;
            }
            for (upstream, path, size) in oldest {
                if rows_over <= 0 && bytes_over <= 0 {
                    break;
                }
                deleted += self
                    .run("cache_evict", DELETE, &upstream, Some(&path), None)
                    .await?;
                rows_over -= 1;
                bytes_over -= size;
            }
        }
        Ok(deleted)
    }

    /// One statement on cache rows, bound in order to the upstream, the path (if any) and the
    /// time (if any); answers the rows it changed.
    async fn run(
        &self,
        op: &'static str,
        sql: &'static str,
        upstream: &str,
        path: Option<&str>,
        at: Option<SystemTime>,
    ) -> Result<u64, StoreError> {
        let query = async {
            on_db!(&self.inner.db, |pool| {
                let mut q = sqlx::query(sql).bind(upstream);
                if let Some(path) = path {
                    q = q.bind(path);
                }
                if let Some(at) = at {
                    q = q.bind(rows::to_ms(at));
                }
                q.execute(pool).await.map(|done| done.rows_affected())
            })
        };
        self.call(op, query).await
    }
}

/// While the store is unavailable a put is dropped and a get finds nothing: the memory cache in
/// front of the store keeps answering.
impl CacheStore for Store {
    fn put(&self, response: CachedResponse) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Err(e) = self.put_cached(&response).await {
                tracing::debug!(upstream = %response.upstream, error = %e, "cache put dropped");
            }
        })
    }

    fn get<'a>(
        &'a self,
        upstream: &'a str,
        path_and_query: &'a str,
    ) -> BoxFuture<'a, Option<CachedResponse>> {
        Box::pin(async move {
            self.get_cached(upstream, path_and_query)
                .await
                .unwrap_or_else(|e| {
                    tracing::debug!(upstream, error = %e, "cache get answered from nothing");
                    None
                })
        })
    }
}
