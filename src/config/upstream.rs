//! `[defaults]` and `[upstreams.NAME]`: breaker settings layered over the defaults, call
//! settings and fallbacks.

use std::collections::BTreeMap;

use toml::{Table, Value};

use crate::breaker::{self, BreakerConfig};

use super::error::{ConfigError, ErrorKind};
use super::reader::{Ctx, Reader, show};
use super::schema::{self, Section};
use super::types::{DATABASE_BREAKER, Defaults, Fallback, UpstreamConfig};
use super::url::UpstreamUrl;

/// The breaker keys `[defaults]` set, so a value an upstream inherits is blamed on `defaults.…`.
pub(crate) type Inherited = Vec<&'static str>;

/// Reads the breaker keys of `r` on top of `base`.
pub(crate) fn breaker(
    r: &mut Reader<'_>,
    base: &BreakerConfig,
    inherited: &[&'static str],
) -> Result<(BreakerConfig, Inherited), ConfigError> {
    let set: Inherited = schema::BREAKER
        .iter()
        .map(|(key, _)| *key)
        .filter(|key| r.has(key))
        .collect();
    let max = i64::from(u32::MAX);
    let mut b = base.to_builder();
    if let Some(v) = r.int("failure_threshold", 0, max)? {
        b = b.failure_threshold(v);
    }
    if let Some(v) = r.percent("failure_rate_threshold", 1)? {
        b = b.failure_rate_threshold(v);
    }
    if let Some(v) = r.int("minimum_calls", 0, max)? {
        b = b.minimum_calls(v);
    }
    if let Some(v) = r.duration("window")? {
        b = b.window(v);
    }
    if let Some(v) = r.int("buckets", 0, max)? {
        b = b.buckets(v);
    }
    if let Some(v) = r.duration("open_duration")? {
        b = b.open_duration(v);
    }
    if let Some(v) = r.duration("open_duration_max")? {
        b = b.open_duration_max(Some(v));
    }
    if let Some(v) = r.percent("jitter", 0)? {
        b = b.jitter(v);
    }
    if let Some(v) = r.int("half_open_max_calls", 0, max)? {
        b = b.half_open_max_calls(v);
    }
    if let Some(v) = r.int("half_open_success_threshold", 0, max)? {
        b = b.half_open_success_threshold(v);
    }
    if let Some(v) = r.duration("slow_call_duration")? {
        b = b.slow_call_duration(Some(v));
    }
    if let Some(v) = r.percent("slow_call_rate_threshold", 1)? {
        b = b.slow_call_rate_threshold(Some(v));
    }
    if let Some(v) = r.boolean("honor_retry_after")? {
        b = b.honor_retry_after(v);
    }
    let config = b.build().map_err(|e| blame(r, &set, inherited, &e))?;
    Ok((config, set))
}

/// Turns the core's error into ours, naming the table that set the refused value.
fn blame(
    r: &Reader<'_>,
    set: &[&str],
    inherited: &[&str],
    e: &breaker::ConfigError,
) -> ConfigError {
    let field = e.field();
    if !set.contains(&field) && inherited.contains(&field) {
        let reason = format!("{} (as inherited by [{}])", e.reason(), r.path());
        r.ctx.error(
            &format!("defaults.{field}"),
            e.value(),
            ErrorKind::Invalid,
            reason,
        )
    } else {
        r.error(field, e.value(), ErrorKind::Invalid, e.reason())
    }
}

/// `[defaults]`, or the built-in defaults when the table is absent.
pub(crate) fn defaults(r: Option<Reader<'_>>) -> Result<(Defaults, Inherited), ConfigError> {
    let builtin = Defaults::default();
    let Some(mut r) = r else {
        return Ok((builtin, Vec::new()));
    };
    let (breaker, set) = breaker(&mut r, &BreakerConfig::default(), &[])?;
    let defaults = Defaults {
        breaker,
        call_timeout: r
            .positive_duration("call_timeout")?
            .unwrap_or(builtin.call_timeout),
        failure_statuses: r
            .statuses("failure_statuses")?
            .unwrap_or(builtin.failure_statuses),
        retry_budget_percent: r
            .percent("retry_budget_percent", 0)?
            .unwrap_or(builtin.retry_budget_percent),
        retry_min_per_second: r
            .int("retry_min_per_second", 0, i64::from(u32::MAX))?
            .unwrap_or(builtin.retry_min_per_second),
        cache_ttl: r
            .positive_duration("cache_ttl")?
            .unwrap_or(builtin.cache_ttl),
    };
    Ok((defaults, set))
}

/// Whether `name` may name an upstream: lower-case letters, digits, `-` and `_`.
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 {
        return Err("an upstream name must be 1 to 64 characters".into());
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        || !name.starts_with(|c: char| c.is_ascii_alphanumeric())
    {
        return Err(
            "an upstream name may hold lower-case letters, digits, `-` and `_`, starting with a letter or digit"
                .into(),
        );
    }
    if name == DATABASE_BREAKER {
        return Err("`database` is the store's breaker; pick another name".into());
    }
    Ok(())
}

/// The form of an upstream name in environment variables: upper case, `-` as `_`.
pub(crate) fn env_name(name: &str) -> String {
    name.to_ascii_uppercase().replace('-', "_")
}

/// Every `[upstreams.NAME]`.
pub(crate) fn upstreams(
    ctx: &Ctx<'_>,
    tables: Table,
    defaults: &Defaults,
    inherited: &[&'static str],
) -> Result<BTreeMap<String, UpstreamConfig>, ConfigError> {
    let mut by_env_name: BTreeMap<String, String> = BTreeMap::new();
    let mut upstreams = BTreeMap::new();
    for (name, value) in tables {
        let path = format!("upstreams.{name}");
        if let Err(why) = check_name(&name) {
            return Err(ctx.error(&path, show(&value, false), ErrorKind::Invalid, why));
        }
        if let Some(other) = by_env_name.insert(env_name(&name), name.clone()) {
            return Err(ctx.error(
                &path,
                "",
                ErrorKind::Invalid,
                format!(
                    "duplicate upstream: `{other}` and `{name}` differ only in `-`/`_` and would share the variables BREAKERBOX_UPSTREAMS_{}_*",
                    env_name(&name)
                ),
            ));
        }
        let Value::Table(table) = value else {
            return Err(ctx.error(
                &path,
                show(&value, false),
                ErrorKind::WrongType,
                "expected a table [upstreams.NAME] with at least `url`",
            ));
        };
        let r = Reader::new(ctx, path, table, Section::Upstream)?;
        let upstream = upstream(r, name.clone(), defaults, inherited)?;
        upstreams.insert(name, upstream);
    }
    Ok(upstreams)
}

fn upstream(
    mut r: Reader<'_>,
    name: String,
    defaults: &Defaults,
    inherited: &[&'static str],
) -> Result<UpstreamConfig, ConfigError> {
    let url = match r.string("url")? {
        None => {
            return Err(r.error(
                "url",
                "(missing)",
                ErrorKind::Missing,
                "every upstream needs the base URL to forward to",
            ));
        }
        Some(text) => UpstreamUrl::parse(&text)
            .map_err(|why| r.error("url", format!("{text:?}"), ErrorKind::Invalid, why))?,
    };
    let (breaker, _) = breaker(&mut r, &defaults.breaker, inherited)?;
    let health_path = match r.string("health_path")? {
        Some(p) if !p.starts_with('/') => {
            return Err(r.error(
                "health_path",
                format!("{p:?}"),
                ErrorKind::Invalid,
                "must start with `/` (it is appended to the upstream's url)",
            ));
        }
        Some(p)
            if p.chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '#') =>
        {
            return Err(r.error(
                "health_path",
                format!("{p:?}"),
                ErrorKind::Invalid,
                "must not contain spaces, control characters or `#`",
            ));
        }
        other => other,
    };
    let fallback = fallback(&mut r, defaults)?;
    Ok(UpstreamConfig {
        name,
        url,
        breaker,
        call_timeout: r
            .positive_duration("call_timeout")?
            .unwrap_or(defaults.call_timeout),
        fallback,
        health_path,
        failure_statuses: r
            .statuses("failure_statuses")?
            .unwrap_or_else(|| defaults.failure_statuses.clone()),
        retry_budget_percent: r
            .percent("retry_budget_percent", 0)?
            .unwrap_or(defaults.retry_budget_percent),
        retry_min_per_second: r
            .int("retry_min_per_second", 0, i64::from(u32::MAX))?
            .unwrap_or(defaults.retry_min_per_second),
    })
}

fn fallback(r: &mut Reader<'_>, defaults: &Defaults) -> Result<Fallback, ConfigError> {
    let kind = r.string("fallback")?.unwrap_or_else(|| "error".to_owned());
    let shown = format!("{kind:?}");
    if !matches!(kind.as_str(), "cache" | "degraded" | "queue" | "error") {
        return Err(r.error(
            "fallback",
            shown,
            ErrorKind::Invalid,
            "unknown fallback; expected cache, degraded, queue or error",
        ));
    }
    let ttl = r.positive_duration("cache_ttl")?;
    let degraded = r.table("degraded", Section::Degraded)?;
    if kind != "degraded"
        && let Some(table) = &degraded
    {
        return Err(r.ctx.error(
            table.path(),
            "(table)",
            ErrorKind::Invalid,
            format!(
                "a [{}] table only applies with fallback = \"degraded\", but fallback is {shown}",
                table.path()
            ),
        ));
    }
    if let Some(ttl) = ttl
        && kind != "cache"
    {
        return Err(r.error(
            "cache_ttl",
            format!("\"{}\"", humantime::format_duration(ttl)),
            ErrorKind::Invalid,
            format!("only applies with fallback = \"cache\", but fallback is {shown}"),
        ));
    }
    match kind.as_str() {
        "cache" => Ok(Fallback::Cache {
            ttl: ttl.unwrap_or(defaults.cache_ttl),
        }),
        "queue" => Ok(Fallback::Queue),
        "error" => Ok(Fallback::Error),
        _ => match degraded {
            Some(table) => degraded_response(table),
            None => Err(r.error(
                "fallback",
                shown,
                ErrorKind::Missing,
                format!(
                    "needs a [{}.degraded] table with the `status` and `body` to answer",
                    r.path()
                ),
            )),
        },
    }
}

fn degraded_response(mut r: Reader<'_>) -> Result<Fallback, ConfigError> {
    let status = r.int("status", 100, 599)?.unwrap_or(200);
    let body = r.string("body")?.unwrap_or_default();
    let content_type = r
        .string("content_type")?
        .unwrap_or_else(|| "application/json".to_owned());
    if content_type.is_empty()
        || !content_type
            .chars()
            .all(|c| c == ' ' || c.is_ascii_graphic())
    {
        return Err(r.error(
            "content_type",
            format!("{content_type:?}"),
            ErrorKind::Invalid,
            "must be a non-empty header value of visible ASCII characters",
        ));
    }
    Ok(Fallback::Degraded {
        status,
        body,
        content_type,
    })
}
