//! [`Config`] back to TOML through the raw structs' `Serialize`: the effective configuration
//! `breakerbox check-config` prints. Every value is explicit, so loading the output gives the same
//! configuration; secrets are replaced by `"<redacted>"` (a token read from the environment is
//! shown as its `token_env`).

use crate::breaker::{BreakerConfig, WindowType};

use super::raw::{
    BreakerKeys, CallKeys, Layered, NoKeys, RawAdmin, RawChaos, RawConfig, RawDegraded, RawHealth,
    RawServer, RawToken, StoreKeys, UpstreamKeys,
};
use super::types::{Config, Defaults, Fallback, SecretSource};

/// What stands in for a secret in the rendered configuration.
pub const REDACTED: &str = "<redacted>";

impl Config {
    /// The effective configuration as TOML, secrets redacted.
    pub fn to_toml(&self) -> String {
        let body = toml::to_string(&RawConfig::from(self))
            .unwrap_or_else(|e| format!("# the configuration cannot be rendered: {e}\n"));
        format!("# effective breakerbox configuration (secrets redacted)\n\n{body}")
    }
}

fn int(n: impl TryInto<i64>) -> Option<i64> {
    Some(n.try_into().unwrap_or(i64::MAX))
}

impl From<&BreakerConfig> for BreakerKeys {
    fn from(b: &BreakerConfig) -> Self {
        BreakerKeys {
            failure_threshold: int(b.failure_threshold()),
            failure_rate_threshold: int(b.failure_rate_threshold().get()),
            minimum_calls: int(b.minimum_calls()),
            window: Some(b.window()),
            buckets: int(b.buckets()),
            window_type: Some(b.window_type().as_str().to_owned()),
            window_calls: (b.window_type() == WindowType::Count)
                .then(|| int(b.window_calls()))
                .flatten(),
            open_duration: Some(b.open_duration()),
            open_duration_max: b.open_duration_max(),
            open_duration_multiplier: Some(b.open_duration_multiplier()),
            jitter: int(b.jitter()),
            half_open_max_calls: int(b.half_open_max_calls()),
            half_open_success_threshold: int(b.half_open_success_threshold()),
            half_open_max_wait: b.half_open_max_wait(),
            consecutive_failures_window: Some(b.consecutive_failures_window().as_str().to_owned()),
            slow_call_duration: b.slow_call_duration(),
            slow_call_rate_threshold: b.slow_call_rate_threshold().and_then(|p| int(p.get())),
            honor_retry_after: Some(b.honor_retry_after()),
        }
    }
}

/// A list of statuses only where it differs from what would be inherited (every 5xx is long).
fn statuses(list: &[u16], inherited: &[u16]) -> Option<Vec<i64>> {
    (list != inherited).then(|| list.iter().map(|s| i64::from(*s)).collect())
}

impl From<&Config> for RawConfig {
    fn from(c: &Config) -> Self {
        let d = &c.defaults;
        let tokens = c.admin.tokens.iter().map(|t| {
            let (token, token_env) = match &t.source {
                SecretSource::Inline => (Some(REDACTED.to_owned()), None),
                SecretSource::Env(var) => (None, Some(var.clone())),
            };
            let name = Some(t.name.clone());
            let role = Some(t.role.as_str().to_owned());
            RawToken {
                name,
                token,
                token_env,
                role,
            }
        });
        let upstreams = c.upstreams.iter().map(|(name, u)| {
            let (cache_ttl, degraded) = match &u.fallback {
                Fallback::Cache { ttl } => (Some(*ttl), None),
                Fallback::Degraded {
                    status,
                    body,
                    content_type,
                } => {
                    let status = int(*status);
                    let (body, content_type) = (Some(body.clone()), Some(content_type.clone()));
                    (
                        None,
                        Some(RawDegraded {
                            status,
                            body,
                            content_type,
                        }),
                    )
                }
                Fallback::Queue | Fallback::Error => (None, None),
            };
            // The queue's bounds matter only to an upstream that queues.
            let queues = matches!(u.fallback, Fallback::Queue);
            let queue_max_requests = queues.then_some(u.queue_max_requests).and_then(int);
            let queue_max_bytes = queues.then_some(u.queue_max_bytes).and_then(int);
            let own = UpstreamKeys {
                url: Some(u.url.as_str().to_owned()),
                fallback: Some(u.fallback.kind().to_owned()),
                health_path: u.health_path.clone(),
                degraded,
            };
            let call = CallKeys {
                call_timeout: Some(u.call_timeout),
                failure_statuses: statuses(&u.failure_statuses, &d.failure_statuses),
                retry_budget_percent: int(u.retry_budget_percent),
                retry_min_per_second: int(u.retry_min_per_second),
                cache_ttl,
                credential_headers: Some(u.credentials.headers.clone()),
                credential_params: Some(u.credentials.params.clone()),
                queue_max_requests,
                queue_max_bytes,
                queue_strip_headers: Some(u.queue_strip_headers.clone()),
            };
            let breaker = (&u.breaker).into();
            (name.clone(), Layered { own, breaker, call })
        });
        let store = StoreKeys {
            url: Some(c.store.url.redacted()),
            call_timeout: Some(c.store.call_timeout),
            queue_memory_capacity: int(c.store.queue_memory_capacity),
            queue_finished_retention: Some(c.store.queue_finished_retention),
            queue_finished_keep: int(c.store.queue_finished_keep),
            claim_lease: Some(c.store.claim_lease),
            queue_max_requests: int(c.store.queue_max_requests),
            queue_max_bytes: int(c.store.queue_max_bytes),
            cache_max_entries: int(c.store.cache_max_entries),
            cache_max_bytes: int(c.store.cache_max_bytes),
        };
        let defaults = CallKeys {
            call_timeout: Some(d.call_timeout),
            failure_statuses: statuses(&d.failure_statuses, &Defaults::default().failure_statuses),
            retry_budget_percent: int(d.retry_budget_percent),
            retry_min_per_second: int(d.retry_min_per_second),
            cache_ttl: Some(d.cache_ttl),
            credential_headers: Some(d.credentials.headers.clone()),
            credential_params: Some(d.credentials.params.clone()),
            queue_max_requests: int(d.queue_max_requests),
            queue_max_bytes: int(d.queue_max_bytes),
            queue_strip_headers: Some(d.queue_strip_headers.clone()),
        };
        RawConfig {
            server: Some(RawServer {
                listen: Some(c.server.listen.to_string()),
                max_body_bytes: int(c.server.max_body_bytes),
                max_header_bytes: int(c.server.max_header_bytes),
                trusted_proxies: Some(
                    c.server
                        .trusted_proxies
                        .iter()
                        .map(ToString::to_string)
                        .collect(),
                ),
                header_read_timeout: Some(c.server.header_read_timeout),
                idle_timeout: Some(c.server.idle_timeout),
                max_connections: int(c.server.max_connections),
            }),
            store: Some(Layered {
                own: store,
                breaker: (&c.store.breaker).into(),
                call: NoKeys {},
            }),
            admin: (!c.admin.tokens.is_empty()).then(|| RawAdmin {
                tokens: tokens.collect(),
            }),
            defaults: Some(Layered {
                own: NoKeys {},
                breaker: (&d.breaker).into(),
                call: defaults,
            }),
            upstreams: (!c.upstreams.is_empty()).then(|| upstreams.collect()),
            chaos: Some(RawChaos {
                enabled: Some(c.chaos.enabled),
            }),
            health: Some(RawHealth {
                check_interval: Some(c.health.check_interval),
                detailed_cache: Some(c.health.detailed_cache),
            }),
        }
    }
}
