//! The TOML tree (overrides applied) → [`Config`], section by section.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use toml::Table;

use super::error::{ConfigError, ErrorKind};
use super::reader::{Ctx, Reader};
use super::schema::Section;
use super::types::{
    AdminConfig, ChaosConfig, Config, Defaults, HealthConfig, Role, Secret, SecretSource,
    ServerConfig, StoreConfig, Token,
};
use super::upstream;
use super::url::StoreUrl;

/// Reads and validates the whole tree.
pub(crate) fn config(ctx: &Ctx<'_>, root: Table) -> Result<Config, ConfigError> {
    let mut r = Reader::new(ctx, String::new(), root, Section::Root)?;
    let server = server(r.table("server", Section::Server)?)?;
    let (defaults, inherited) = upstream::defaults(r.table("defaults", Section::Defaults)?)?;
    let store = store(r.table("store", Section::Store)?, &defaults, &inherited)?;
    let admin = admin(r.table("admin", Section::Admin)?)?;
    let upstreams = upstream::upstreams(ctx, r.named_tables("upstreams")?, &defaults, &inherited)?;
    let chaos = match r.table("chaos", Section::Chaos)? {
        Some(mut c) => ChaosConfig {
            enabled: c.boolean("enabled")?.unwrap_or(false),
        },
        None => ChaosConfig::default(),
    };
    let health = health(r.table("health", Section::Health)?)?;
    Ok(Config {
        server,
        store,
        admin,
        defaults,
        upstreams,
        chaos,
        health,
    })
}

fn server(r: Option<Reader<'_>>) -> Result<ServerConfig, ConfigError> {
    let default_listen = SocketAddr::from(([127, 0, 0, 1], 8080));
    let Some(mut r) = r else {
        return Ok(ServerConfig {
            listen: default_listen,
            max_body_bytes: ServerConfig::DEFAULT_MAX_BODY_BYTES,
            max_header_bytes: ServerConfig::DEFAULT_MAX_HEADER_BYTES,
        });
    };
    let listen = match r.string("listen")? {
        None => default_listen,
        Some(text) => text.trim().parse().map_err(|_| {
            r.error(
                "listen",
                format!("{text:?}"),
                ErrorKind::Invalid,
                "not an IP address with a port, such as \"127.0.0.1:8080\" or \"[::]:8080\"",
            )
        })?,
    };
    Ok(ServerConfig {
        listen,
        max_body_bytes: r
            .int("max_body_bytes", 1, i64::MAX)?
            .unwrap_or(ServerConfig::DEFAULT_MAX_BODY_BYTES),
        max_header_bytes: r
            .int("max_header_bytes", 1, i64::MAX)?
            .unwrap_or(ServerConfig::DEFAULT_MAX_HEADER_BYTES),
    })
}

fn store(
    r: Option<Reader<'_>>,
    defaults: &Defaults,
    inherited: &[&'static str],
) -> Result<StoreConfig, ConfigError> {
    let default_url = || StoreUrl::parse(StoreConfig::DEFAULT_URL).map_err(|e| e.to_string());
    let Some(mut r) = r else {
        return Ok(StoreConfig {
            url: default_url().map_err(internal)?,
            breaker: defaults.breaker.clone(),
            call_timeout: defaults.call_timeout,
            queue_memory_capacity: StoreConfig::DEFAULT_QUEUE_MEMORY_CAPACITY,
            queue_finished_retention: StoreConfig::DEFAULT_QUEUE_FINISHED_RETENTION,
            queue_finished_keep: StoreConfig::DEFAULT_QUEUE_FINISHED_KEEP,
        });
    };
    let url = match r.string("url")? {
        None => default_url().map_err(internal)?,
        Some(text) => StoreUrl::parse(&text).map_err(|why| {
            let shown = format!("{:?}", super::url::redact_password(&text));
            r.error("url", shown, ErrorKind::Invalid, why)
        })?,
    };
    let (breaker, _) = upstream::breaker(&mut r, &defaults.breaker, inherited)?;
    Ok(StoreConfig {
        url,
        breaker,
        call_timeout: r
            .positive_duration("call_timeout")?
            .unwrap_or(defaults.call_timeout),
        queue_memory_capacity: r
            .int("queue_memory_capacity", 1, i64::MAX)?
            .unwrap_or(StoreConfig::DEFAULT_QUEUE_MEMORY_CAPACITY),
        queue_finished_retention: r
            .positive_duration("queue_finished_retention")?
            .unwrap_or(StoreConfig::DEFAULT_QUEUE_FINISHED_RETENTION),
        queue_finished_keep: r
            .int("queue_finished_keep", 0, i64::MAX)?
            .unwrap_or(StoreConfig::DEFAULT_QUEUE_FINISHED_KEEP),
    })
}

/// A built-in default that failed its own validation: a bug, reported rather than panicking.
fn internal(why: String) -> ConfigError {
    ConfigError::new(
        "(built-in defaults)",
        super::error::Key::File,
        "",
        ErrorKind::Invalid,
        why,
    )
}

fn admin(r: Option<Reader<'_>>) -> Result<AdminConfig, ConfigError> {
    let Some(mut r) = r else {
        return Ok(AdminConfig::default());
    };
    let mut tokens = Vec::new();
    let mut names = BTreeSet::new();
    for t in r.tables("tokens", Section::Token)? {
        let token = token(t)?;
        if !names.insert(token.name.clone()) {
            let i = tokens.len();
            return Err(r.ctx.error(
                &format!("admin.tokens[{i}].name"),
                format!("{:?}", token.name),
                ErrorKind::Invalid,
                "duplicate token name; each [[admin.tokens]] needs its own",
            ));
        }
        tokens.push(token);
    }
    Ok(AdminConfig { tokens })
}

fn token(mut t: Reader<'_>) -> Result<Token, ConfigError> {
    let name = match t.string("name")? {
        Some(name) if !name.trim().is_empty() => name,
        Some(name) => {
            return Err(t.error(
                "name",
                format!("{name:?}"),
                ErrorKind::Invalid,
                "must not be empty",
            ));
        }
        None => {
            return Err(t.error(
                "name",
                "(missing)",
                ErrorKind::Missing,
                "every token needs a name (used in logs instead of the secret)",
            ));
        }
    };
    let inline = t.string("token")?;
    let var = t.string("token_env")?;
    let (secret, source) = match (inline, var) {
        (Some(_), Some(var)) => {
            return Err(t.error(
                "token_env",
                format!("{var:?}"),
                ErrorKind::Invalid,
                "give either `token` or `token_env`, not both",
            ));
        }
        (None, None) => {
            return Err(t.error(
                "token",
                "(missing)",
                ErrorKind::Missing,
                "needs `token` (the secret) or `token_env` (the variable holding it)",
            ));
        }
        (Some(secret), None) if secret.is_empty() => {
            return Err(t.error("token", "\"\"", ErrorKind::Invalid, "must not be empty"));
        }
        (Some(secret), None) => (secret, SecretSource::Inline),
        (None, Some(var)) => match t.ctx.env.get(&var) {
            Some(secret) if !secret.is_empty() => (secret.clone(), SecretSource::Env(var)),
            Some(_) => {
                return Err(t.error(
                    "token_env",
                    format!("{var:?}"),
                    ErrorKind::Invalid,
                    format!("environment variable {var} is set but empty"),
                ));
            }
            None => {
                return Err(t.error(
                    "token_env",
                    format!("{var:?}"),
                    ErrorKind::Invalid,
                    format!("environment variable {var} is not set"),
                ));
            }
        },
    };
    let role = match t.string("role")?.as_deref() {
        None | Some("viewer") => Role::Viewer,
        Some("admin") => Role::Admin,
        Some(other) => {
            return Err(t.error(
                "role",
                format!("{other:?}"),
                ErrorKind::Invalid,
                "unknown role; expected \"admin\" or \"viewer\"",
            ));
        }
    };
    Ok(Token {
        name,
        secret: Secret::new(secret),
        source,
        role,
    })
}

fn health(r: Option<Reader<'_>>) -> Result<HealthConfig, ConfigError> {
    let builtin = HealthConfig::default();
    let Some(mut r) = r else {
        return Ok(builtin);
    };
    Ok(HealthConfig {
        check_interval: r
            .positive_duration("check_interval")?
            .unwrap_or(builtin.check_interval),
        detailed_cache: r
            .duration("detailed_cache")?
            .unwrap_or(builtin.detailed_cache),
    })
}
