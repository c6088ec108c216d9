//! The validated configuration: what the rest of the gateway reads and trusts.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use subtle::ConstantTimeEq;

use crate::breaker::BreakerConfig;

use super::url::{StoreUrl, UpstreamUrl};

/// The name of the store's own breaker.
pub const DATABASE_BREAKER: &str = "database";

/// The gateway's whole configuration, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// `[server]`: where to listen and request limits.
    pub server: ServerConfig,
    /// `[store]`: the database and its breaker.
    pub store: StoreConfig,
    /// `[admin]`: bearer tokens of the admin API.
    pub admin: AdminConfig,
    /// `[defaults]`: what every upstream gets unless it says otherwise.
    pub defaults: Defaults,
    /// `[upstreams.NAME]`, by name.
    pub upstreams: BTreeMap<String, UpstreamConfig>,
    /// `[chaos]`: the demonstration route.
    pub chaos: ChaosConfig,
    /// `[health]`: probing and `/health/detailed` caching.
    pub health: HealthConfig,
}

/// `[server]`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Address to listen on (`listen`, default `127.0.0.1:8080`).
    pub listen: SocketAddr,
    /// Largest request body accepted (`max_body_bytes`, default 10 MiB); larger ones get 413.
    pub max_body_bytes: usize,
    /// Largest total size of request headers (`max_header_bytes`, default 16 KiB); 431 beyond.
    pub max_header_bytes: usize,
    /// Clients whose `Forwarded`, `X-Forwarded-Host`, `X-Forwarded-Proto` and `X-Real-IP` are
    /// passed on (`trusted_proxies`, CIDRs, default none): everyone else's are replaced by the
    /// gateway's own.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Longest a client may take to send a request head, from its connection's start or the
    /// head's first byte (`header_read_timeout`, default 10 s); the connection closes beyond.
    pub header_read_timeout: Duration,
    /// Longest a keep-alive connection may wait for its next request (`idle_timeout`, default
    /// 60 s); it closes beyond, at the next check (every quarter of it, at most every second).
    pub idle_timeout: Duration,
    /// Most client connections open at once (`max_connections`, default 10,000, and never more
    /// than three quarters of the descriptor limit): at the bound the oldest connection with no
    /// request in flight is closed for a new one, or the new one is closed if none is idle.
    pub max_connections: usize,
}

impl ServerConfig {
    /// Default `listen`.
    pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
    /// Default `max_body_bytes`: 10 MiB.
    pub const DEFAULT_MAX_BODY_BYTES: usize = 10 * 1024 * 1024;
    /// Default `max_header_bytes`: 16 KiB.
    pub const DEFAULT_MAX_HEADER_BYTES: usize = 16 * 1024;
    /// Default `header_read_timeout`: 10 s.
    pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
    /// Default `idle_timeout`: 60 s.
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
    /// Default `max_connections`: 10,000.
    pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
}

/// `[store]`: the database, itself behind the breaker named [`DATABASE_BREAKER`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreConfig {
    /// `url`, default `sqlite://breakerbox.db`.
    pub url: StoreUrl,
    /// The `database` breaker: `[defaults]` with the breaker keys of `[store]` on top.
    pub breaker: BreakerConfig,
    /// Longest a database call may take (`call_timeout`, default that of `[defaults]`).
    pub call_timeout: Duration,
    /// Most queued requests held in memory while the database is unavailable
    /// (`queue_memory_capacity`, default 10,000); beyond it a queued call answers 503.
    pub queue_memory_capacity: usize,
    /// How long a finished (delivered) queued request stays listed by `GET /admin/queue` before
    /// it is deleted (`queue_finished_retention`, default 1 h).
    pub queue_finished_retention: Duration,
    /// Most finished queued requests kept whatever their age, the newest
    /// (`queue_finished_keep`, default 10,000; 0 keeps none).
    pub queue_finished_keep: usize,
    /// How long a replica's claim on a queued request lasts unless renewed (`claim_lease`,
    /// default 15 s, at least 1 s); it is renewed every third of it while the delivery is under
    /// way, so a killed replica's requests come back to the others within it.
    pub claim_lease: Duration,
    /// Most requests pending in the durable queue, every upstream together
    /// (`queue_max_requests`, default 100,000); beyond it a queued call answers 503
    /// `queue_full`.
    pub queue_max_requests: u64,
    /// Most body bytes pending in the durable queue, every upstream together
    /// (`queue_max_bytes`, default 1 GiB); beyond it a queued call answers 503 `queue_full`.
    pub queue_max_bytes: u64,
    /// Most cached responses kept, in memory and in the store alike (`cache_max_entries`,
    /// default 10,000); the least recently used go first.
    pub cache_max_entries: usize,
    /// Most bytes of cached responses kept, in memory and in the store alike
    /// (`cache_max_bytes`, default 64 MiB); the least recently used go first.
    pub cache_max_bytes: usize,
}

impl StoreConfig {
    /// Default `url`.
    pub const DEFAULT_URL: &str = "sqlite://breakerbox.db";
    /// Default `queue_memory_capacity`.
    pub const DEFAULT_QUEUE_MEMORY_CAPACITY: usize = 10_000;
    /// Default `queue_finished_retention`.
    pub const DEFAULT_QUEUE_FINISHED_RETENTION: Duration = Duration::from_secs(3600);
    /// Default `claim_lease`.
    pub const DEFAULT_CLAIM_LEASE: Duration = Duration::from_secs(15);
    /// Default `queue_finished_keep`.
    pub const DEFAULT_QUEUE_FINISHED_KEEP: usize = 10_000;
    /// Default `queue_max_requests` (gateway-wide).
    pub const DEFAULT_QUEUE_MAX_REQUESTS: u64 = 100_000;
    /// Default `queue_max_bytes` (gateway-wide): 1 GiB.
    pub const DEFAULT_QUEUE_MAX_BYTES: u64 = 1024 * 1024 * 1024;
    /// Default `cache_max_entries`.
    pub const DEFAULT_CACHE_MAX_ENTRIES: usize = 10_000;
    /// Default `cache_max_bytes`: 64 MiB.
    pub const DEFAULT_CACHE_MAX_BYTES: usize = 64 * 1024 * 1024;
}

/// `[admin]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct AdminConfig {
    /// `[[admin.tokens]]`; empty means every admin route answers 401.
    pub tokens: Vec<Token>,
}

/// One bearer token of the admin API.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Token {
    /// A label for logs (the secret never is logged).
    pub name: String,
    /// The secret, from `token` or from the variable named by `token_env`.
    pub secret: Secret,
    /// Where the secret came from, so the effective configuration can say so without showing it.
    pub source: SecretSource,
    /// What the token may do.
    pub role: Role,
}

/// Where a [`Token`]'s secret was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// Written in the file (`token = "…"`) or set by `BREAKERBOX_ADMIN_TOKENS_<NAME>_TOKEN`.
    Inline,
    /// Read from the named environment variable (`token_env = "…"`).
    Env(String),
}

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Read-only admin routes (`GET /admin/...`).
    Viewer,
    /// Everything, including resets, manual states and the chaos route.
    Admin,
}

impl Role {
    /// `"viewer"` or `"admin"`, as written in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Admin => "admin",
        }
    }

    /// Whether this role may use a route that needs `needed`.
    pub fn allows(self, needed: Role) -> bool {
        self >= needed
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A secret string: Debug shows `<redacted>`, there is no Display, and
/// [`matches`](Self::matches) compares in constant time.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub(crate) fn new(secret: String) -> Self {
        Self(secret)
    }

    /// The secret itself, for comparing or sending; never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `candidate` equals the secret, compared in constant time (`subtle`); only the
    /// lengths can be told apart by timing.
    pub fn matches(&self, candidate: &[u8]) -> bool {
        let secret = self.0.as_bytes();
        !secret.is_empty() && bool::from(secret.ct_eq(candidate))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// `[defaults]`: applied to every upstream (and, for the breaker keys, the database breaker).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Defaults {
    /// Breaker settings.
    pub breaker: BreakerConfig,
    /// `call_timeout`, default 3 s.
    pub call_timeout: Duration,
    /// `failure_statuses`, default every 5xx.
    pub failure_statuses: Vec<u16>,
    /// `retry_budget_percent`, default 20.
    pub retry_budget_percent: u8,
    /// `retry_min_per_second`, default 3.
    pub retry_min_per_second: u32,
    /// `cache_ttl` for upstreams with `fallback = "cache"`, default 1 h.
    pub cache_ttl: Duration,
    /// `credential_headers` and `credential_params`, default [`Credentials::default`].
    pub credentials: Credentials,
    /// `queue_max_requests` for upstreams with `fallback = "queue"`: most of its requests
    /// pending at once, default 10,000.
    pub queue_max_requests: u64,
    /// `queue_max_bytes` for upstreams with `fallback = "queue"`: most body bytes of its
    /// requests pending at once, default 256 MiB.
    pub queue_max_bytes: u64,
    /// `queue_strip_headers`: headers removed from a request before it is queued, so they never
    /// rest on disk (lower case), default none.
    pub queue_strip_headers: Vec<String>,
}

impl Default for Defaults {
    fn default() -> Self {
        Self {
            breaker: BreakerConfig::default(),
            call_timeout: Duration::from_secs(3),
            failure_statuses: (500..=599).collect(),
            retry_budget_percent: 20,
            retry_min_per_second: 3,
            cache_ttl: Duration::from_secs(3600),
            credentials: Credentials::default(),
            queue_max_requests: 10_000,
            queue_max_bytes: 256 * 1024 * 1024,
            queue_strip_headers: Vec::new(),
        }
    }
}

/// What marks a request as one client's own, for the cache fallback: `Authorization` and
/// `Cookie` always, and these headers and query parameters (names lower case, compared without
/// case). An answer to such a request is filed under its credentials, hashed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Credentials {
    /// `credential_headers`.
    pub headers: Vec<String>,
    /// `credential_params`.
    pub params: Vec<String>,
}

impl Credentials {
    /// Default `credential_headers`: the seed services' token headers.
    pub const DEFAULT_HEADERS: [&str; 4] = [
        "x-api-key",
        "x-plex-token",
        "x-api-token",
        "proxy-authorization",
    ];
    /// Default `credential_params`: the seed services' token parameters.
    pub const DEFAULT_PARAMS: [&str; 5] =
        ["x-plex-token", "api_key", "apikey", "token", "access_token"];

    /// These lists, names lower-cased.
    pub fn new(headers: Vec<String>, params: Vec<String>) -> Self {
        let lower = |list: Vec<String>| list.into_iter().map(|n| n.to_ascii_lowercase()).collect();
        Self {
            headers: lower(headers),
            params: lower(params),
        }
    }
}

impl Default for Credentials {
    fn default() -> Self {
        let owned = |list: &[&str]| list.iter().map(|n| (*n).to_owned()).collect();
        Self::new(owned(&Self::DEFAULT_HEADERS), owned(&Self::DEFAULT_PARAMS))
    }
}

/// `[upstreams.NAME]`: one dependency behind its own breaker.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UpstreamConfig {
    /// The name, as in `/proxy/{name}/…`, metrics and the admin API.
    pub name: String,
    /// Base URL requests are forwarded to.
    pub url: UpstreamUrl,
    /// `[defaults]` with this upstream's breaker keys on top (this is also where
    /// `honor_retry_after`, `slow_call_duration`, `slow_call_rate_threshold` and
    /// `open_duration_max` live).
    pub breaker: BreakerConfig,
    /// Longest one attempt may take.
    pub call_timeout: Duration,
    /// What to answer when the breaker rejects or the call fails.
    pub fallback: Fallback,
    /// Path probed for `/health/detailed`; `None`: no active probe.
    pub health_path: Option<String>,
    /// Statuses that count as failures, sorted; every other status is a success for the breaker.
    pub failure_statuses: Vec<u16>,
    /// Retries may add at most this share of recent requests (0 disables retries).
    pub retry_budget_percent: u8,
    /// Retries allowed per second regardless of traffic.
    pub retry_min_per_second: u32,
    /// What marks a request as one client's own, for the cache fallback.
    pub credentials: Credentials,
    /// Most requests of this upstream pending in the durable queue (`queue_max_requests`).
    pub queue_max_requests: u64,
    /// Most body bytes of this upstream's requests pending in the durable queue
    /// (`queue_max_bytes`).
    pub queue_max_bytes: u64,
    /// Headers removed from a request before it is queued (`queue_strip_headers`, lower case).
    pub queue_strip_headers: Vec<String>,
}

impl UpstreamConfig {
    /// Whether an answer with `status` counts as a failure.
    pub fn is_failure_status(&self, status: u16) -> bool {
        self.failure_statuses.binary_search(&status).is_ok()
    }
}

/// What an upstream's caller gets when the call is rejected or fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fallback {
    /// A stored successful GET response, if one younger than `ttl` exists.
    Cache {
        /// How long a stored response may be served (`cache_ttl`).
        ttl: Duration,
    },
    /// A fixed answer (`[upstreams.NAME.degraded]`).
    Degraded {
        /// HTTP status, default 200.
        status: u16,
        /// Body, default empty.
        body: String,
        /// `Content-Type`, default `application/json`.
        content_type: String,
    },
    /// Non-GET requests are stored and replayed when the breaker closes (202 now).
    Queue,
    /// 503 with code `circuit_open` and `Retry-After`.
    Error,
}

impl Fallback {
    /// The name used in the configuration and in the `kind` label of
    /// `breakerbox_fallbacks_total`: `cache`, `degraded`, `queue` or `error`.
    pub fn kind(&self) -> &'static str {
        match self {
            Fallback::Cache { .. } => "cache",
            Fallback::Degraded { .. } => "degraded",
            Fallback::Queue => "queue",
            Fallback::Error => "error",
        }
    }
}

/// `[chaos]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ChaosConfig {
    /// Whether `POST /api/test/circuit-breaker/{name}` exists (admin only). Default false.
    pub enabled: bool,
}

/// `[health]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct HealthConfig {
    /// How often each upstream's `health_path` is probed (default 30 s).
    pub check_interval: Duration,
    /// How long a `/health/detailed` answer is reused (default 10 s; 0 disables caching).
    pub detailed_cache: Duration,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            check_interval: Duration::from_secs(30),
            detailed_cache: Duration::from_secs(10),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_show_and_compare_exactly() {
        let secret = Secret::new("hunter2".into());
        assert_eq!(format!("{secret:?}"), "Secret(<redacted>)");
        assert!(secret.matches(b"hunter2"));
        for wrong in [&b"hunter3"[..], b"hunter", b"hunter22", b""] {
            assert!(!secret.matches(wrong), "{wrong:?}");
        }
        assert!(!Secret::new(String::new()).matches(b""));
    }

    #[test]
    fn admin_may_do_what_viewer_may() {
        assert!(Role::Admin.allows(Role::Viewer));
        assert!(Role::Admin.allows(Role::Admin));
        assert!(Role::Viewer.allows(Role::Viewer));
        assert!(!Role::Viewer.allows(Role::Admin));
    }
}
