//! Raw tables → the validated configuration: every range, default and rule between keys, in the
//! one `TryFrom` of the type it builds. Refusals name their key by the raw field's own name.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use crate::breaker::{BreakerConfig, ConsecutiveFailuresWindow, WindowType};

use super::error::{ErrorKind, Refusal};
use super::raw::{
    BreakerKeys, CallKeys, Layered, RawConfig, RawHealth, RawServer, RawStore, RawToken,
    RawUpstream,
};
use super::types::{
    AdminConfig, ChaosConfig, Config, Credentials, DATABASE_BREAKER, Defaults, Fallback,
    HealthConfig, Role, Secret, SecretSource, ServerConfig, StoreConfig, Token, UpstreamConfig,
};
use super::url::{StoreUrl, UpstreamUrl};

/// The environment, for `token_env`.
pub(crate) type Env = BTreeMap<String, String>;

/// A raw field as `(its key, its value)`, so refusals spell the key as the struct does.
macro_rules! key {
    ($raw:expr, $field:ident $(. $method:ident())?) => {
        (stringify!($field), $raw.$field $(.$method())?)
    };
}

/// What a table is converted with: where it sits, what `[defaults]` hands down, the environment.
#[derive(Debug)]
pub(crate) struct In<'a, R> {
    pub(crate) at: &'a str,
    pub(crate) raw: R,
    pub(crate) up: &'a Inherited,
    pub(crate) env: &'a Env,
}

impl<'a, R> In<'a, R> {
    fn with<'b, S>(&self, at: &'b str, raw: S) -> In<'b, S>
    where
        'a: 'b,
    {
        In {
            at,
            raw,
            up: self.up,
            env: self.env,
        }
    }

    fn key(&self, key: &str) -> String {
        if self.at.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.at)
        }
    }

    fn refuse(&self, key: &str, reason: impl Into<String>) -> Refusal {
        Refusal::new(self.key(key), ErrorKind::Invalid, reason)
    }

    fn missing(&self, key: &str, reason: &str) -> Refusal {
        Refusal::new(self.key(key), ErrorKind::Missing, reason).value("(missing)")
    }

    fn int<T: TryFrom<i64>>(
        &self,
        (key, v): (&str, Option<i64>),
        min: i64,
        max: i64,
    ) -> Result<Option<T>, Refusal> {
        let Some(n) = v else { return Ok(None) };
        let why = if max == i64::MAX {
            format!("must be at least {min}")
        } else {
            format!("must be a whole number from {min} to {max}")
        };
        let n = T::try_from(n).ok().filter(|_| (min..=max).contains(&n));
        n.map(Some).ok_or_else(|| self.refuse(key, why))
    }

    fn count(&self, key: (&str, Option<i64>)) -> Result<Option<u32>, Refusal> {
        self.int(key, 0, i64::from(u32::MAX))
    }

    /// One of `options`, spelled as `spell` spells it.
    fn one_of<T: Copy>(
        &self,
        (key, v): (&str, Option<&str>),
        options: &[T],
        spell: fn(T) -> &'static str,
    ) -> Result<Option<T>, Refusal> {
        let Some(text) = v else { return Ok(None) };
        let found = options.iter().copied().find(|o| spell(*o) == text);
        found.map(Some).ok_or_else(|| {
            let names: Vec<String> = options.iter().map(|o| format!("{:?}", spell(*o))).collect();
            let why = format!("expected {}", names.join(" or "));
            self.refuse(key, why).value(format!("{text:?}"))
        })
    }

    fn percent(&self, (key, v): (&str, Option<i64>), min: u8) -> Result<Option<u8>, Refusal> {
        match v.map(u8::try_from) {
            None => Ok(None),
            Some(Ok(p)) if (min..=100).contains(&p) => Ok(Some(p)),
            Some(_) => Err(self.refuse(key, format!("must be a percentage from {min} to 100"))),
        }
    }

    fn positive(&self, (key, v): (&str, Option<Duration>)) -> Result<Option<Duration>, Refusal> {
        match v {
            Some(d) if d.is_zero() => Err(self.refuse(key, "must be positive")),
            other => Ok(other),
        }
    }

    /// Names of one kind, each checked by `valid` (which says what it expected), lower-cased
    /// and without repeats.
    fn names(
        &self,
        (key, v): (&str, Option<&[String]>),
        valid: fn(&str) -> Result<(), &'static str>,
    ) -> Result<Option<Vec<String>>, Refusal> {
        let Some(items) = v else { return Ok(None) };
        let mut names: Vec<String> = Vec::with_capacity(items.len());
        for name in items {
            if let Err(expected) = valid(name) {
                return Err(self.refuse(key, format!("{name:?} is not {expected}")));
            }
            let name = name.to_ascii_lowercase();
            if !names.contains(&name) {
                names.push(name);
            }
        }
        Ok(Some(names))
    }

    /// HTTP status codes (100–599), sorted, without repeats.
    fn statuses(&self, (key, v): (&str, Option<&[i64]>)) -> Result<Option<Vec<u16>>, Refusal> {
        let Some(items) = v else { return Ok(None) };
        let mut statuses = Vec::with_capacity(items.len());
        for &n in items {
            match u16::try_from(n) {
                Ok(s) if (100..=599).contains(&s) => statuses.push(s),
                _ => {
                    let why = format!("{n} is not an HTTP status code (100 to 599)");
                    return Err(self.refuse(key, why));
                }
            }
        }
        statuses.sort_unstable();
        statuses.dedup();
        Ok(Some(statuses))
    }
}

/// What `[defaults]` hands down, and which breaker keys the file set there: a refused
/// combination is blamed on the table that wrote the value.
#[derive(Debug, Default)]
pub(crate) struct Inherited {
    defaults: Defaults,
    from: &'static str,
    set: Vec<String>,
}

/// The keys a raw table holds.
fn keys_set(raw: &BreakerKeys) -> Vec<String> {
    toml::Table::try_from(raw)
        .map(|t| t.keys().cloned().collect())
        .unwrap_or_default()
}

impl TryFrom<In<'_, RawConfig>> for Config {
    type Error = Refusal;

    fn try_from(i: In<'_, RawConfig>) -> Result<Self, Refusal> {
        let In { raw, env, .. } = i;
        let builtin = Inherited::default();
        let i = In {
            at: "",
            raw: (),
            up: &builtin,
            env,
        };
        let (at, server) = key!(raw, server);
        let server = ServerConfig::try_from(i.with(at, server.unwrap_or_default()))?;
        let (from, defaults) = key!(raw, defaults);
        let defaults = defaults.unwrap_or_default();
        let set = keys_set(&defaults.breaker);
        let defaults = Defaults::try_from(i.with(from, &defaults))?;
        let up = Inherited {
            defaults,
            from,
            set,
        };
        let i = In { up: &up, ..i };
        let (at, store) = key!(raw, store);
        let store = StoreConfig::try_from(i.with(at, store.unwrap_or_default()))?;
        let (at, admin) = key!(raw, admin);
        let (tokens_key, raw_tokens) = key!(admin.unwrap_or_default(), tokens);
        let mut tokens: Vec<Token> = Vec::new();
        for (n, raw) in raw_tokens.into_iter().enumerate() {
            let at = format!("{at}.{tokens_key}[{n}]");
            let token = Token::try_from(i.with(&at, raw))?;
            if tokens.iter().any(|t| t.name == token.name) {
                let why = "duplicate token name; each [[admin.tokens]] needs its own";
                let value = format!("{:?}", token.name);
                return Err(
                    Refusal::new(format!("{at}.name"), ErrorKind::Invalid, why).value(value)
                );
            }
            tokens.push(token);
        }
        let (at, raw_upstreams) = key!(raw, upstreams);
        let mut by_env_name: BTreeMap<String, String> = BTreeMap::new();
        let mut upstreams = BTreeMap::new();
        for (name, raw) in raw_upstreams.unwrap_or_default() {
            let at = format!("{at}.{name}");
            if let Some(other) = by_env_name.insert(env_name(&name), name.clone()) {
                let why = format!(
                    "duplicate upstream: `{other}` and `{name}` differ only in `-`/`_` and would share the variables BREAKERBOX_UPSTREAMS_{}_*",
                    env_name(&name)
                );
                return Err(Refusal::new(at, ErrorKind::Invalid, why).value(""));
            }
            let upstream = UpstreamConfig::try_from(i.with(&at, (name.clone(), raw)))?;
            upstreams.insert(name, upstream);
        }
        let (_, chaos) = key!(raw, chaos);
        let (at, health) = key!(raw, health);
        Ok(Config {
            server,
            store,
            admin: AdminConfig { tokens },
            defaults: up.defaults.clone(),
            upstreams,
            chaos: ChaosConfig {
                enabled: chaos.and_then(|c| c.enabled).unwrap_or(false),
            },
            health: HealthConfig::try_from(i.with(at, health.unwrap_or_default()))?,
        })
    }
}

impl TryFrom<In<'_, RawServer>> for ServerConfig {
    type Error = Refusal;

    fn try_from(i: In<'_, RawServer>) -> Result<Self, Refusal> {
        let listen = match key!(i.raw, listen.clone()) {
            (_, None) => SocketAddr::from(([127, 0, 0, 1], 8080)),
            (key, Some(text)) => text.trim().parse().map_err(|_| {
                let why =
                    "not an IP address with a port, such as \"127.0.0.1:8080\" or \"[::]:8080\"";
                i.refuse(key, why)
            })?,
        };
        Ok(ServerConfig {
            listen,
            max_body_bytes: i
                .int(key!(i.raw, max_body_bytes), 1, i64::MAX)?
                .unwrap_or(ServerConfig::DEFAULT_MAX_BODY_BYTES),
            max_header_bytes: i
                .int(key!(i.raw, max_header_bytes), 1, i64::MAX)?
                .unwrap_or(ServerConfig::DEFAULT_MAX_HEADER_BYTES),
            trusted_proxies: trusted_proxies(&i)?,
            header_read_timeout: i
                .positive(key!(i.raw, header_read_timeout))?
                .unwrap_or(ServerConfig::DEFAULT_HEADER_READ_TIMEOUT),
            idle_timeout: i
                .positive(key!(i.raw, idle_timeout))?
                .unwrap_or(ServerConfig::DEFAULT_IDLE_TIMEOUT),
            max_connections: i
                .int(key!(i.raw, max_connections), 1, i64::MAX)?
                .unwrap_or(ServerConfig::DEFAULT_MAX_CONNECTIONS),
        })
    }
}

/// `trusted_proxies`: CIDRs (`10.0.0.0/8`, `::1/128`) or bare addresses, one host each.
fn trusted_proxies(i: &In<'_, RawServer>) -> Result<Vec<ipnet::IpNet>, Refusal> {
    let (key, list) = key!(i.raw, trusted_proxies.as_deref());
    let mut nets = Vec::new();
    for text in list.unwrap_or_default() {
        let text = text.trim();
        let net = text
            .parse::<ipnet::IpNet>()
            .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
            .map_err(|_| {
                let why = format!(
                    "{text:?} is not a CIDR such as \"10.0.0.0/8\" or \"::1/128\", nor an IP address"
                );
                i.refuse(key, why)
            })?;
        nets.push(net.trunc());
    }
    Ok(nets)
}

/// A header name: RFC 9110 token characters only.
fn header_name(name: &str) -> Result<(), &'static str> {
    let tchar = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if !name.is_empty() && name.chars().all(tchar) {
        Ok(())
    } else {
        Err("a header name")
    }
}

/// A query parameter name as it appears before `=`, not percent-encoded.
fn param_name(name: &str) -> Result<(), &'static str> {
    let plain = |c: char| !c.is_control() && !c.is_whitespace() && !"&=#%+?".contains(c);
    if !name.is_empty() && name.chars().all(plain) {
        Ok(())
    } else {
        Err("a query parameter name (no spaces, `&`, `=`, `#`, `%`, `+` or `?`)")
    }
}

/// Calls each builder setter whose value the table gives.
macro_rules! set {
    ($b:ident: $($setter:ident($value:expr)),* $(,)?) => {
        $( if let Some(v) = $value { $b = $b.$setter(v); } )*
    };
}

impl TryFrom<In<'_, &BreakerKeys>> for BreakerConfig {
    type Error = Refusal;

    /// The keys of one table over the inherited breaker, checked by the core's builder.
    fn try_from(i: In<'_, &BreakerKeys>) -> Result<Self, Refusal> {
        use ConsecutiveFailuresWindow::{Unbounded, Window};
        let (r, set) = (i.raw, keys_set(i.raw));
        let mut b = i.up.defaults.breaker.to_builder();
        #[rustfmt::skip]
        set!(b:
            failure_threshold(i.count(key!(r, failure_threshold))?),
            failure_rate_threshold(i.percent(key!(r, failure_rate_threshold), 1)?),
            minimum_calls(i.count(key!(r, minimum_calls))?),
            window(r.window),
            buckets(i.count(key!(r, buckets))?),
            window_type(i.one_of(key!(r, window_type.as_deref()), &[WindowType::Time, WindowType::Count], WindowType::as_str)?),
            window_calls(i.count(key!(r, window_calls))?),
            open_duration(r.open_duration),
            open_duration_max(r.open_duration_max.map(Some)),
            open_duration_multiplier(r.open_duration_multiplier),
            jitter(i.percent(key!(r, jitter), 0)?),
            half_open_max_calls(i.count(key!(r, half_open_max_calls))?),
            half_open_success_threshold(i.count(key!(r, half_open_success_threshold))?),
            half_open_max_wait(r.half_open_max_wait.map(Some)),
            consecutive_failures_window(i.one_of(key!(r, consecutive_failures_window.as_deref()), &[Window, Unbounded], ConsecutiveFailuresWindow::as_str)?),
            slow_call_duration(r.slow_call_duration.map(Some)),
            slow_call_rate_threshold(i.percent(key!(r, slow_call_rate_threshold), 1)?.map(Some)),
            honor_retry_after(r.honor_retry_after),
        );
        let config = b.build().map_err(|e| {
            let field = e.field();
            let refusal = if !set.iter().any(|k| k == field) && i.up.set.iter().any(|k| k == field)
            {
                let why = format!("{} (as inherited by [{}])", e.reason(), i.at);
                Refusal::new(format!("{}.{field}", i.up.from), ErrorKind::Invalid, why)
            } else {
                i.refuse(field, e.reason())
            };
            refusal.value(e.value())
        })?;
        if r.window_calls.is_some() && config.window_type() != WindowType::Count {
            let why = "applies only with `window_type = \"count\"`: a time window holds the calls of `window`";
            return Err(i
                .refuse("window_calls", why)
                .value(config.window_calls().to_string()));
        }
        Ok(config)
    }
}

impl<O> TryFrom<In<'_, &Layered<O, BreakerKeys, CallKeys>>> for Defaults {
    type Error = Refusal;

    /// Breaker and call keys over what is inherited: `[defaults]` over the built-in defaults, an
    /// upstream over `[defaults]`.
    fn try_from(i: In<'_, &Layered<O, BreakerKeys, CallKeys>>) -> Result<Self, Refusal> {
        let (c, d) = (&i.raw.call, &i.up.defaults);
        let statuses = i.statuses(key!(c, failure_statuses.as_deref()))?;
        Ok(Defaults {
            breaker: BreakerConfig::try_from(i.with(i.at, &i.raw.breaker))?,
            call_timeout: i.positive(key!(c, call_timeout))?.unwrap_or(d.call_timeout),
            failure_statuses: statuses.unwrap_or_else(|| d.failure_statuses.clone()),
            retry_budget_percent: i
                .percent(key!(c, retry_budget_percent), 0)?
                .unwrap_or(d.retry_budget_percent),
            retry_min_per_second: i
                .count(key!(c, retry_min_per_second))?
                .unwrap_or(d.retry_min_per_second),
            cache_ttl: i.positive(key!(c, cache_ttl))?.unwrap_or(d.cache_ttl),
            credentials: {
                let headers = i.names(key!(c, credential_headers.as_deref()), header_name)?;
                let params = i.names(key!(c, credential_params.as_deref()), param_name)?;
                Credentials::new(
                    headers.unwrap_or_else(|| d.credentials.headers.clone()),
                    params.unwrap_or_else(|| d.credentials.params.clone()),
                )
            },
            queue_max_requests: i
                .int(key!(c, queue_max_requests), 1, i64::MAX)?
                .unwrap_or(d.queue_max_requests),
            queue_max_bytes: i
                .int(key!(c, queue_max_bytes), 1, i64::MAX)?
                .unwrap_or(d.queue_max_bytes),
            queue_strip_headers: i
                .names(key!(c, queue_strip_headers.as_deref()), header_name)?
                .unwrap_or_else(|| d.queue_strip_headers.clone()),
        })
    }
}

impl TryFrom<In<'_, RawStore>> for StoreConfig {
    type Error = Refusal;

    fn try_from(i: In<'_, RawStore>) -> Result<Self, Refusal> {
        let s = &i.raw.own;
        let (key, url) = key!(s, url.as_deref());
        // The refusal shows the value as written, its credentials hidden by the error itself.
        let url = StoreUrl::parse(url.unwrap_or(StoreConfig::DEFAULT_URL))
            .map_err(|why| i.refuse(key, why))?;
        let d = &i.up.defaults;
        Ok(StoreConfig {
            url,
            breaker: BreakerConfig::try_from(i.with(i.at, &i.raw.breaker))?,
            call_timeout: i.positive(key!(s, call_timeout))?.unwrap_or(d.call_timeout),
            queue_memory_capacity: i
                .int(key!(s, queue_memory_capacity), 1, i64::MAX)?
                .unwrap_or(StoreConfig::DEFAULT_QUEUE_MEMORY_CAPACITY),
            queue_finished_retention: i
                .positive(key!(s, queue_finished_retention))?
                .unwrap_or(StoreConfig::DEFAULT_QUEUE_FINISHED_RETENTION),
            queue_finished_keep: i
                .int(key!(s, queue_finished_keep), 0, i64::MAX)?
                .unwrap_or(StoreConfig::DEFAULT_QUEUE_FINISHED_KEEP),
            claim_lease: match s.claim_lease {
                Some(lease) if lease < Duration::from_secs(1) => {
                    let why = "must be at least 1s: a claim is renewed every third of it";
                    return Err(i
                        .refuse("claim_lease", why)
                        .value(humantime::format_duration(lease).to_string()));
                }
                lease => lease.unwrap_or(StoreConfig::DEFAULT_CLAIM_LEASE),
            },
            queue_max_requests: i
                .int(key!(s, queue_max_requests), 1, i64::MAX)?
                .unwrap_or(StoreConfig::DEFAULT_QUEUE_MAX_REQUESTS),
            queue_max_bytes: i
                .int(key!(s, queue_max_bytes), 1, i64::MAX)?
                .unwrap_or(StoreConfig::DEFAULT_QUEUE_MAX_BYTES),
            cache_max_entries: i
                .int(key!(s, cache_max_entries), 1, i64::MAX)?
                .unwrap_or(StoreConfig::DEFAULT_CACHE_MAX_ENTRIES),
            cache_max_bytes: i
                .int(key!(s, cache_max_bytes), 1, i64::MAX)?
                .unwrap_or(StoreConfig::DEFAULT_CACHE_MAX_BYTES),
        })
    }
}

impl TryFrom<In<'_, RawToken>> for Token {
    type Error = Refusal;

    fn try_from(i: In<'_, RawToken>) -> Result<Self, Refusal> {
        let t = &i.raw;
        let name = match key!(t, name.clone()) {
            (_, Some(name)) if !name.trim().is_empty() => name,
            (key, Some(name)) => {
                return Err(i
                    .refuse(key, "must not be empty")
                    .value(format!("{name:?}")));
            }
            (key, None) => {
                let why = "every token needs a name (used in logs instead of the secret)";
                return Err(i.missing(key, why));
            }
        };
        let (inline_key, inline) = key!(t, token.clone());
        let (var_key, var) = key!(t, token_env.clone());
        let (secret, source) = match (inline, var) {
            (Some(_), Some(var)) => {
                let why = "give either `token` or `token_env`, not both";
                return Err(i.refuse(var_key, why).value(format!("{var:?}")));
            }
            (None, None) => {
                let why = "needs `token` (the secret) or `token_env` (the variable holding it)";
                return Err(i.missing(inline_key, why));
            }
            (Some(secret), None) if secret.is_empty() => {
                return Err(i.refuse(inline_key, "must not be empty").value("\"\""));
            }
            (Some(secret), None) => {
                check_secret(&secret)
                    .map_err(|why| i.refuse(inline_key, why).value("<redacted>"))?;
                (secret, SecretSource::Inline)
            }
            (None, Some(var)) => match i.env.get(&var) {
                Some(secret) if !secret.is_empty() => {
                    check_secret(secret)
                        .map_err(|why| i.refuse(var_key, why).value(format!("{var:?}")))?;
                    (secret.clone(), SecretSource::Env(var))
                }
                found => {
                    let state = if found.is_some() {
                        "set but empty"
                    } else {
                        "not set"
                    };
                    let why = format!("environment variable {var} is {state}");
                    return Err(i.refuse(var_key, why).value(format!("{var:?}")));
                }
            },
        };
        let role = match key!(t, role.as_deref()) {
            (_, None | Some("viewer")) => Role::Viewer,
            (_, Some("admin")) => Role::Admin,
            (key, Some(other)) => {
                let why = "unknown role; expected \"admin\" or \"viewer\"";
                return Err(i.refuse(key, why).value(format!("{other:?}")));
            }
        };
        Ok(Token {
            name,
            secret: Secret::new(secret),
            source,
            role,
        })
    }
}

impl TryFrom<In<'_, (String, RawUpstream)>> for UpstreamConfig {
    type Error = Refusal;

    fn try_from(i: In<'_, (String, RawUpstream)>) -> Result<Self, Refusal> {
        let (name, raw) = &i.raw;
        if let Err(why) = check_name(name) {
            return Err(Refusal::new(i.at.to_owned(), ErrorKind::Invalid, why));
        }
        let o = &raw.own;
        let url = match key!(o, url.as_deref()) {
            (key, None) => {
                return Err(i.missing(key, "every upstream needs the base URL to forward to"));
            }
            (key, Some(text)) => UpstreamUrl::parse(text).map_err(|why| i.refuse(key, why))?,
        };
        let own = Defaults::try_from(i.with(i.at, raw))?;
        let health_path = match key!(o, health_path.clone()) {
            (key, Some(p)) if !p.starts_with('/') => {
                let why = "must start with `/` (it is appended to the upstream's url)";
                return Err(i.refuse(key, why));
            }
            (key, Some(p))
                if p.contains(|c: char| c.is_whitespace() || c.is_control() || c == '#') =>
            {
                return Err(i.refuse(key, "must not contain spaces, control characters or `#`"));
            }
            (_, other) => other,
        };
        Ok(UpstreamConfig {
            name: name.clone(),
            url,
            breaker: own.breaker,
            call_timeout: own.call_timeout,
            fallback: Fallback::try_from(i.with(i.at, (raw, own.cache_ttl)))?,
            health_path,
            failure_statuses: own.failure_statuses,
            retry_budget_percent: own.retry_budget_percent,
            retry_min_per_second: own.retry_min_per_second,
            credentials: own.credentials,
            queue_max_requests: own.queue_max_requests,
            queue_max_bytes: own.queue_max_bytes,
            queue_strip_headers: own.queue_strip_headers,
        })
    }
}

impl TryFrom<In<'_, (&RawUpstream, Duration)>> for Fallback {
    type Error = Refusal;

    /// `fallback`, with `cache_ttl` (already checked, inherited if absent) and the `degraded`
    /// answer only where they apply.
    fn try_from(i: In<'_, (&RawUpstream, Duration)>) -> Result<Self, Refusal> {
        let (raw, ttl) = i.raw;
        let (key, kind) = key!(raw.own, fallback.as_deref());
        let kind = kind.unwrap_or("error");
        let shown = format!("{kind:?}");
        if !matches!(kind, "cache" | "degraded" | "queue" | "error") {
            let why = "unknown fallback; expected cache, degraded, queue or error";
            return Err(i.refuse(key, why).value(shown));
        }
        let (ttl_key, own_ttl) = key!(raw.call, cache_ttl);
        let (degraded_key, degraded) = key!(raw.own, degraded.as_ref());
        let degraded_at = i.key(degraded_key);
        if kind != "degraded" && degraded.is_some() {
            let why = format!(
                "a [{degraded_at}] table only applies with fallback = \"degraded\", but fallback is {shown}"
            );
            return Err(Refusal::new(degraded_at, ErrorKind::Invalid, why).value("(table)"));
        }
        if own_ttl.is_some() && kind != "cache" {
            let why = format!("only applies with fallback = \"cache\", but fallback is {shown}");
            return Err(i.refuse(ttl_key, why));
        }
        match (kind, degraded) {
            ("cache", _) => Ok(Fallback::Cache { ttl }),
            ("queue", _) => Ok(Fallback::Queue),
            ("error", _) => Ok(Fallback::Error),
            (_, Some(r)) => {
                let i = i.with(&degraded_at, r);
                let (key, content_type) = key!(r, content_type.clone());
                let content_type = content_type.unwrap_or_else(|| "application/json".to_owned());
                if content_type.is_empty()
                    || !content_type
                        .chars()
                        .all(|c| c == ' ' || c.is_ascii_graphic())
                {
                    let why = "must be a non-empty header value of visible ASCII characters";
                    return Err(i.refuse(key, why).value(format!("{content_type:?}")));
                }
                Ok(Fallback::Degraded {
                    status: i.int(key!(r, status), 100, 599)?.unwrap_or(200),
                    body: r.body.clone().unwrap_or_default(),
                    content_type,
                })
            }
            (_, None) => {
                let why =
                    format!("needs a [{degraded_at}] table with the `status` and `body` to answer");
                Err(Refusal::new(i.key(key), ErrorKind::Missing, why).value(shown))
            }
        }
    }
}

impl TryFrom<In<'_, RawHealth>> for HealthConfig {
    type Error = Refusal;

    fn try_from(i: In<'_, RawHealth>) -> Result<Self, Refusal> {
        let builtin = HealthConfig::default();
        Ok(HealthConfig {
            check_interval: i
                .positive(key!(i.raw, check_interval))?
                .unwrap_or(builtin.check_interval),
            detailed_cache: i.raw.detailed_cache.unwrap_or(builtin.detailed_cache),
        })
    }
}

/// Whether `name` may name an upstream: lower-case letters, digits, `-` and `_`.
fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name.len() > 64 {
        return Err("an upstream name must be 1 to 64 characters");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        || !name.starts_with(|c: char| c.is_ascii_alphanumeric())
    {
        return Err(
            "an upstream name may hold lower-case letters, digits, `-` and `_`, starting with a letter or digit",
        );
    }
    if name == DATABASE_BREAKER {
        return Err("`database` is the store's breaker; pick another name");
    }
    if ROUTE_SEGMENTS.contains(&name) {
        return Err(
            "a fixed path segment of the gateway's routes (such as `reset-all` in /admin/breakers/reset-all): /admin/breakers/NAME would reach the route instead; pick another name",
        );
    }
    Ok(())
}

/// Every fixed path segment of the gateway's routes (`src/api`, and the routes DESIGN.md names
/// for later). A breaker of that name would be shadowed in `/admin/breakers/{name}`, so no
/// upstream may take one.
const ROUTE_SEGMENTS: [&str; 17] = [
    "admin",
    "api",
    "breakers",
    "circuit-breaker",
    "detailed",
    "disable",
    "events",
    "fleet",
    "force-open",
    "health",
    "metrics",
    "proxy",
    "queue",
    "reset",
    "reset-all",
    "test",
    "ui",
];

/// Shortest admin token accepted: 16 characters.
const MIN_TOKEN_CHARS: usize = 16;

/// Whether `secret` may be an admin token: long enough not to be guessed, and without whitespace
/// (which a header value cannot carry intact, and which betrays a pasted phrase).
fn check_secret(secret: &str) -> Result<(), String> {
    if secret.chars().count() < MIN_TOKEN_CHARS {
        return Err(format!(
            "an admin token must be at least {MIN_TOKEN_CHARS} characters"
        ));
    }
    if secret.chars().any(char::is_whitespace) {
        return Err("an admin token must not contain whitespace".to_owned());
    }
    Ok(())
}

/// The form of an upstream name in environment variables: upper case, `-` as `_`.
pub(crate) fn env_name(name: &str) -> String {
    name.to_ascii_uppercase().replace('-', "_")
}
