//! The shared response cache: one row per (upstream, path and query), replaced on every put.

use futures_util::future::BoxFuture;

use crate::fallback::{CacheStore, CachedResponse};

use super::db::on_db;
use super::{Store, StoreError, rows};

const UPSERT: &str = "INSERT INTO cached_responses \
     (upstream, path_and_query, status, headers, body, stored_at) \
     VALUES ($1, $2, $3, $4, $5, $6) \
     ON CONFLICT (upstream, path_and_query) DO UPDATE SET status = excluded.status, \
     headers = excluded.headers, body = excluded.body, stored_at = excluded.stored_at";

const SELECT: &str = "SELECT upstream, path_and_query, status, headers, body, stored_at \
     FROM cached_responses WHERE upstream = $1 AND path_and_query = $2";

impl Store {
    /// Stores or replaces the cached response for its upstream and path.
    pub async fn put_cached(&self, r: &CachedResponse) -> Result<(), StoreError> {
        let headers = rows::encode_headers(&r.headers);
        let query = async {
            on_db!(&self.inner.db, |pool| sqlx::query(UPSERT)
                .bind(&r.upstream)
                .bind(&r.path_and_query)
                .bind(i64::from(r.status))
                .bind(&headers)
                .bind(r.body.as_ref())
                .bind(rows::to_ms(r.stored_at))
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
        self.call("cache_get", query).await?.transpose()
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
