//! The response cache: recent successful GET answers per upstream and path, bounded in memory
//! (the least recently used go first),
//! written behind to an optional store, served while their upstream is down.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::Semaphore;

use super::{CacheStore, CachedResponse};

/// Bounds of a [`ResponseCache`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheLimits {
    /// Most responses kept in memory.
    pub max_entries: usize,
    /// Most bytes (bodies, headers, keys) kept in memory.
    pub max_bytes: usize,
    /// Largest single response worth keeping; bigger ones are passed through uncached.
    pub max_entry_bytes: usize,
    /// Longest a lookup waits for the store on a memory miss: a fallback must answer quickly.
    pub store_timeout: Duration,
    /// Most store writes in flight; more are skipped (the memory copy still serves).
    pub store_writes: usize,
}

impl Default for CacheLimits {
    fn default() -> Self {
        Self {
            max_entries: 10_000,
            max_bytes: 64 * 1024 * 1024,
            max_entry_bytes: 1024 * 1024,
            store_timeout: Duration::from_millis(250),
            store_writes: 4,
        }
    }
}

impl CacheLimits {
    /// The defaults with other sizes: `max_entries` responses, `max_bytes` in all, at most
    /// `max_entry_bytes` each.
    pub fn sized(max_entries: usize, max_bytes: usize, max_entry_bytes: usize) -> Self {
        Self {
            max_entries,
            max_bytes,
            max_entry_bytes,
            ..Self::default()
        }
    }
}

/// Successful GET responses by (upstream, path and query). Cheap to clone: clones share the
/// entries.
#[derive(Clone)]
pub struct ResponseCache {
    inner: Arc<Inner>,
}

struct Inner {
    limits: CacheLimits,
    store: Option<Arc<dyn CacheStore>>,
    writes: Arc<Semaphore>,
    skipped_writes: AtomicU64,
    entries: Mutex<Entries>,
}

/// Entries plus their order of last use, so the least recently used is evicted first.
#[derive(Default)]
struct Entries {
    by_key: HashMap<String, (u64, Arc<CachedResponse>)>,
    order: BTreeMap<u64, String>,
    next: u64,
    bytes: usize,
}

impl ResponseCache {
    /// A memory-only cache.
    pub fn new(limits: CacheLimits) -> Self {
        Self::build(limits, None)
    }

    /// A cache that also writes every response behind to `store` and asks it on a memory miss.
    pub fn with_store(limits: CacheLimits, store: Arc<dyn CacheStore>) -> Self {
        Self::build(limits, Some(store))
    }

    fn build(limits: CacheLimits, store: Option<Arc<dyn CacheStore>>) -> Self {
        Self {
            inner: Arc::new(Inner {
                writes: Arc::new(Semaphore::new(limits.store_writes.max(1))),
                limits,
                store,
                skipped_writes: AtomicU64::new(0),
                entries: Mutex::new(Entries::default()),
            }),
        }
    }

    /// Its bounds.
    pub fn limits(&self) -> &CacheLimits {
        &self.inner.limits
    }

    /// Responses in memory.
    pub fn len(&self) -> usize {
        self.entries().by_key.len()
    }

    /// Whether memory holds no response.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes held in memory.
    pub fn bytes(&self) -> usize {
        self.entries().bytes
    }

    /// Store writes skipped because too many were in flight.
    pub fn skipped_writes(&self) -> u64 {
        self.inner.skipped_writes.load(Relaxed)
    }

    /// Keeps `response` (replacing the one for the same key), evicting the least recently used to
    /// stay within bounds, and writes it behind to the store without waiting. Returns `false`
    /// when it is too big to keep.
    pub fn insert(&self, response: CachedResponse) -> bool {
        let size = weight(&response);
        let limits = &self.inner.limits;
        if size > limits.max_entry_bytes || size > limits.max_bytes || limits.max_entries == 0 {
            return false;
        }
        let response = Arc::new(response);
        self.remember(Arc::clone(&response), size);
        self.write_behind(response);
        true
    }

    fn remember(&self, response: Arc<CachedResponse>, size: usize) {
        let key = key(&response.upstream, &response.path_and_query);
        let limits = self.inner.limits;
        let mut entries = self.entries();
        entries.remove(&key);
        while entries.by_key.len() >= limits.max_entries || entries.bytes + size > limits.max_bytes
        {
            let Some((_, oldest)) = entries.order.pop_first() else {
                break;
            };
            entries.remove(&oldest);
        }
        let seq = entries.next;
        entries.next += 1;
        entries.bytes += size;
        entries.order.insert(seq, key.clone());
        entries.by_key.insert(key, (seq, response));
    }

    fn write_behind(&self, response: Arc<CachedResponse>) {
        let Some(store) = self.inner.store.clone() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        // Bounded: with the store slow or down, writes must not pile up as tasks.
        let Ok(permit) = Arc::clone(&self.inner.writes).try_acquire_owned() else {
            self.inner.skipped_writes.fetch_add(1, Relaxed);
            return;
        };
        runtime.spawn(async move {
            store.put(CachedResponse::clone(&response)).await;
            drop(permit);
        });
    }

    /// The response for `upstream` and `path_and_query` if one younger than `ttl` at `now`
    /// exists: from memory, else from the store (waiting at most `store_timeout`).
    pub async fn get(
        &self,
        upstream: &str,
        path_and_query: &str,
        ttl: Duration,
        now: SystemTime,
    ) -> Option<CachedResponse> {
        let key = key(upstream, path_and_query);
        {
            let mut entries = self.entries();
            if let Some((_, hit)) = entries.by_key.get(&key) {
                if fresh(hit, ttl, now) {
                    let hit = CachedResponse::clone(hit);
                    entries.used(&key);
                    return Some(hit);
                }
                entries.remove(&key);
            }
        }
        let store = self.inner.store.as_ref()?;
        let lookup = store.get(upstream, path_and_query);
        let found = tokio::time::timeout(self.inner.limits.store_timeout, lookup)
            .await
            .ok()
            .flatten()?;
        if !fresh(&found, ttl, now) {
            return None;
        }
        let size = weight(&found);
        if size <= self.inner.limits.max_entry_bytes {
            // Memory only: the store has it already.
            self.remember(Arc::new(found.clone()), size);
        }
        Some(found)
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, Entries> {
        // A panic elsewhere while holding the lock leaves consistent-enough entries.
        self.inner.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Entries {
    /// Marks `key` as the most recently used: eviction takes the least recently used first.
    fn used(&mut self, key: &str) {
        let seq = self.next;
        if let Some((at, _)) = self.by_key.get_mut(key) {
            let old = std::mem::replace(at, seq);
            if let Some(k) = self.order.remove(&old) {
                self.order.insert(seq, k);
                self.next += 1;
            }
        }
    }

    fn remove(&mut self, key: &str) {
        if let Some((seq, old)) = self.by_key.remove(key) {
            self.order.remove(&seq);
            self.bytes -= weight(&old);
        }
    }
}

impl fmt::Debug for ResponseCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseCache")
            .field("limits", &self.inner.limits)
            .field("store", &self.inner.store.is_some())
            .finish_non_exhaustive()
    }
}

fn key(upstream: &str, path_and_query: &str) -> String {
    // NUL cannot occur in an upstream name or a request target, so keys never collide.
    format!("{upstream}\0{path_and_query}")
}

fn weight(response: &CachedResponse) -> usize {
    response.size()
}

fn fresh(response: &CachedResponse, ttl: Duration, now: SystemTime) -> bool {
    now.duration_since(response.stored_at)
        .unwrap_or(Duration::ZERO)
        < ttl
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn response(path: &str, body: &'static str, age: Duration) -> CachedResponse {
        CachedResponse {
            upstream: "tmdb".into(),
            path_and_query: path.into(),
            status: 200,
            headers: vec![("content-type".into(), b"text/plain".to_vec())],
            body: Bytes::from_static(body.as_bytes()),
            stored_at: now() - age,
        }
    }

    const HOUR: Duration = Duration::from_secs(3600);
    /// The time every test reads: entries are stamped relative to it.
    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    #[tokio::test]
    async fn serves_fresh_entries_and_drops_expired_ones() {
        let cache = ResponseCache::new(CacheLimits::default());
        assert!(cache.insert(response("/a", "a", Duration::from_secs(10))));
        assert!(cache.insert(response("/b", "b", 2 * HOUR)));
        let hit = cache.get("tmdb", "/a", HOUR, now()).await.expect("fresh");
        assert_eq!(hit.body, "a");
        assert_eq!(cache.get("tmdb", "/b", HOUR, now()).await, None);
        assert_eq!(cache.len(), 1, "the expired entry is gone");
        assert_eq!(cache.get("other", "/a", HOUR, now()).await, None);
    }

    #[tokio::test]
    async fn evicts_the_oldest_by_count_and_by_bytes() {
        let cache = ResponseCache::new(CacheLimits::sized(2, 1000, 1000));
        for path in ["/1", "/2", "/3"] {
            cache.insert(response(path, "x", Duration::ZERO));
        }
        assert_eq!(cache.get("tmdb", "/1", HOUR, now()).await, None);
        assert!(cache.get("tmdb", "/3", HOUR, now()).await.is_some());

        let entry = weight(&response("/p", "0123456789", Duration::ZERO));
        let cache = ResponseCache::new(CacheLimits::sized(100, 2 * entry, entry));
        for path in ["/p", "/q", "/r"] {
            cache.insert(response(path, "0123456789", Duration::ZERO));
        }
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.bytes(), 2 * entry);
        assert_eq!(cache.get("tmdb", "/p", HOUR, now()).await, None);
        assert!(!cache.insert(response("/big", "01234567890", Duration::ZERO)));
    }

    #[tokio::test]
    async fn a_hit_makes_an_entry_the_last_evicted() {
        let cache = ResponseCache::new(CacheLimits::sized(2, 1000, 1000));
        cache.insert(response("/1", "x", Duration::ZERO));
        cache.insert(response("/2", "x", Duration::ZERO));
        assert!(cache.get("tmdb", "/1", HOUR, now()).await.is_some());
        cache.insert(response("/3", "x", Duration::ZERO));
        assert!(
            cache.get("tmdb", "/1", HOUR, now()).await.is_some(),
            "recently used"
        );
        assert_eq!(
            cache.get("tmdb", "/2", HOUR, now()).await,
            None,
            "least recently used"
        );
        assert_eq!(cache.len(), 2);
    }

    #[tokio::test]
    async fn replacing_an_entry_keeps_the_byte_count_right() {
        let cache = ResponseCache::new(CacheLimits::default());
        cache.insert(response("/a", "first", Duration::ZERO));
        cache.insert(response("/a", "second!", Duration::ZERO));
        assert_eq!(cache.len(), 1);
        assert_eq!(
            cache.bytes(),
            weight(&response("/a", "second!", Duration::ZERO))
        );
    }

    /// A store in memory that reports each write.
    struct MemoryStore {
        kept: Mutex<HashMap<String, CachedResponse>>,
        written: tokio::sync::Notify,
    }

    impl CacheStore for MemoryStore {
        fn put(&self, response: CachedResponse) -> futures_util::future::BoxFuture<'_, ()> {
            Box::pin(async move {
                let key = key(&response.upstream, &response.path_and_query);
                self.kept.lock().expect("lock").insert(key, response);
                self.written.notify_one();
            })
        }

        fn get<'a>(
            &'a self,
            upstream: &'a str,
            path_and_query: &'a str,
        ) -> futures_util::future::BoxFuture<'a, Option<CachedResponse>> {
            let found = self
                .kept
                .lock()
                .expect("lock")
                .get(&key(upstream, path_and_query))
                .cloned();
            Box::pin(async move { found })
        }
    }

    #[tokio::test]
    async fn writes_behind_to_the_store_and_reads_it_on_a_memory_miss() {
        let store = Arc::new(MemoryStore {
            kept: Mutex::default(),
            written: tokio::sync::Notify::new(),
        });
        let cache = ResponseCache::with_store(CacheLimits::default(), store.clone());
        cache.insert(response("/a", "a", Duration::from_secs(5)));
        store.written.notified().await;

        // Another replica (or this one after a restart) starts with empty memory.
        let other = ResponseCache::with_store(CacheLimits::default(), store.clone());
        assert!(other.is_empty());
        let hit = other
            .get("tmdb", "/a", HOUR, now())
            .await
            .expect("from the store");
        assert_eq!(hit.body, "a");
        assert_eq!(other.len(), 1, "kept in memory from now on");
        assert_eq!(
            other.get("tmdb", "/a", Duration::from_secs(1), now()).await,
            None,
            "TTL applies"
        );
    }
}
