//! Environment overrides, applied to the TOML tree before it is read so their values are checked
//! exactly like the file's.
//!
//! `BREAKERBOX_<PATH>` sets the key at PATH: segments joined by `_`, upper case, `-` in names
//! written `_` (`BREAKERBOX_UPSTREAMS_UPTIME_KUMA_FAILURE_THRESHOLD`). Names are resolved against
//! the upstreams (and `[[admin.tokens]]` names) present in the file, so an override can change an
//! upstream but not create one. The seeds' variables are honoured too; `BREAKERBOX_…` wins over
//! them. Variables outside the configuration's sections (`BREAKERBOX_CONFIG`, `BREAKERBOX_LOG`,
//! any variable named by a `token_env`) are left alone.

use std::collections::{BTreeMap, BTreeSet};

use toml::{Table, Value};

use super::error::{ConfigError, ErrorKind, Key};
use super::reader::Origins;
use super::render::REDACTED;
use super::schema::{Kind, Section};
use super::upstream::env_name;

/// Where an override goes.
#[derive(Debug)]
enum Target {
    /// A key of a table, by path from the root.
    Table(Vec<String>),
    /// A key of the `i`-th `[[admin.tokens]]`.
    Token(usize, &'static str),
}

impl Target {
    fn path(&self) -> String {
        match self {
            Target::Table(path) => path.join("."),
            Target::Token(i, key) => format!("admin.tokens[{i}].{key}"),
        }
    }
}

/// Names found in the file that variables are resolved against.
#[derive(Debug, Default)]
struct Names {
    upstreams: Vec<String>,
    tokens: Vec<String>,
    reserved: BTreeSet<String>,
}

impl Names {
    fn of(root: &Table) -> Self {
        let mut names = Names::default();
        if let Some(Value::Table(upstreams)) = root.get("upstreams") {
            names.upstreams = upstreams.keys().cloned().collect();
        }
        if let Some(Value::Array(tokens)) = root.get("admin").and_then(|a| a.get("tokens")) {
            for token in tokens {
                let name = token.get("name").and_then(Value::as_str).unwrap_or("");
                names.tokens.push(name.to_owned());
                if let Some(var) = token.get("token_env").and_then(Value::as_str) {
                    names.reserved.insert(var.to_owned());
                }
            }
        }
        names.reserved.insert("BREAKERBOX_CONFIG".to_owned());
        names
    }
}

/// Applies every override found in `env` to `root`; returns which paths the environment set.
pub(crate) fn apply(
    root: &mut Table,
    file: &str,
    env: &BTreeMap<String, String>,
) -> Result<Origins, ConfigError> {
    let names = Names::of(root);
    let mut origins = Origins::new();
    let mut overrides = Vec::new();
    for (var, raw) in env {
        if let Some(found) = seed(var, raw, &names, file)? {
            overrides.push((var, found));
        }
    }
    for (var, raw) in env {
        if names.reserved.contains(var) {
            continue;
        }
        if let Some((target, kind)) = breakerbox(var, raw, &names, file)? {
            overrides.push((var, (target, convert(raw, kind))));
        }
    }
    for (var, (target, value)) in overrides {
        if set(root, &target, value, &origins) {
            origins.insert(target.path(), var.clone());
        }
    }
    Ok(origins)
}

fn env_error(file: &str, var: &str, path: String, value: &str, reason: String) -> ConfigError {
    let key = Key::Env {
        var: var.to_owned(),
        path,
    };
    // A token variable's value is a secret: never echo it.
    let shown = if value == REDACTED {
        value.to_owned()
    } else {
        format!("{value:?}")
    };
    ConfigError::new(file, key, shown, ErrorKind::UnknownKey, reason)
}

/// The seeds' variables: `CIRCUIT_BREAKER_<NAME>_THRESHOLD`, `…_TIMEOUT_SECONDS`,
/// `HEALTH_CHECK_INTERVAL_SECONDS`, `DETAILED_HEALTH_CACHE_SECONDS`.
fn seed(
    var: &str,
    raw: &str,
    names: &Names,
    file: &str,
) -> Result<Option<(Target, Value)>, ConfigError> {
    let seconds = |path: Vec<String>| -> Result<Option<(Target, Value)>, ConfigError> {
        match raw.trim().parse::<u64>() {
            Ok(n) => Ok(Some((Target::Table(path), Value::String(format!("{n}s"))))),
            Err(_) => Err(env_error(
                file,
                var,
                path.join("."),
                raw,
                "expected a whole number of seconds, such as 30".to_owned(),
            )
            .with_kind(ErrorKind::Invalid)),
        }
    };
    let owned = |parts: &[&str]| parts.iter().map(|p| (*p).to_owned()).collect::<Vec<_>>();
    match var {
        "HEALTH_CHECK_INTERVAL_SECONDS" => return seconds(owned(&["health", "check_interval"])),
        "DETAILED_HEALTH_CACHE_SECONDS" => return seconds(owned(&["health", "detailed_cache"])),
        _ => {}
    }
    let Some(rest) = var.strip_prefix("CIRCUIT_BREAKER_") else {
        return Ok(None);
    };
    let (name, key) = if let Some(name) = rest.strip_suffix("_THRESHOLD") {
        (name, "failure_threshold")
    } else if let Some(name) = rest.strip_suffix("_TIMEOUT_SECONDS") {
        (name, "open_duration")
    } else {
        return Ok(None);
    };
    let table = if name == "DATABASE" {
        vec!["store".to_owned()]
    } else {
        match names.upstreams.iter().find(|u| env_name(u) == name) {
            Some(upstream) => vec!["upstreams".to_owned(), upstream.clone()],
            None => {
                return Err(env_error(
                    file,
                    var,
                    format!("upstreams.{}.{key}", name.to_ascii_lowercase()),
                    raw,
                    format!(
                        "`{name}` is neither DATABASE nor an upstream of the file ({})",
                        known(&names.upstreams)
                    ),
                ));
            }
        }
    };
    let mut path = table;
    path.push(key.to_owned());
    if key == "open_duration" {
        seconds(path)
    } else {
        Ok(Some((Target::Table(path), convert(raw, Kind::Int))))
    }
}

fn known(names: &[String]) -> String {
    if names.is_empty() {
        "there are none".to_owned()
    } else {
        format!("known: {}", names.join(", "))
    }
}

/// `BREAKERBOX_<SECTION>_<KEY>` → where it goes and what type it holds.
fn breakerbox(
    var: &str,
    raw: &str,
    names: &Names,
    file: &str,
) -> Result<Option<(Target, Kind)>, ConfigError> {
    let Some(rest) = var.strip_prefix("BREAKERBOX_") else {
        return Ok(None);
    };
    let sections = [
        ("SERVER_", Section::Server, "server"),
        ("STORE_", Section::Store, "store"),
        ("DEFAULTS_", Section::Defaults, "defaults"),
        ("CHAOS_", Section::Chaos, "chaos"),
        ("HEALTH_", Section::Health, "health"),
    ];
    for (prefix, section, table) in sections {
        if let Some(key) = rest.strip_prefix(prefix) {
            let key = key.to_ascii_lowercase();
            return match scalar(section, &key) {
                Some(kind) => Ok(Some((Target::Table(vec![table.into(), key]), kind))),
                None => Err(env_error(
                    file,
                    var,
                    format!("{table}.{key}"),
                    raw,
                    format!("[{table}] has no key `{key}`"),
                )),
            };
        }
    }
    if let Some(rest) = rest.strip_prefix("UPSTREAMS_") {
        return upstream(var, raw, rest, names, file).map(Some);
    }
    if let Some(rest) = rest.strip_prefix("ADMIN_TOKENS_") {
        return token(var, rest, names, file).map(Some);
    }
    Ok(None)
}

fn scalar(section: Section, key: &str) -> Option<Kind> {
    section
        .kind_of(key)
        .filter(|kind| !matches!(kind, Kind::Table | Kind::TableArray))
}

fn upstream(
    var: &str,
    raw: &str,
    rest: &str,
    names: &Names,
    file: &str,
) -> Result<(Target, Kind), ConfigError> {
    let mut matches = Vec::new();
    let mut named = None;
    for name in &names.upstreams {
        let Some(key) = rest
            .strip_prefix(env_name(name).as_str())
            .and_then(|k| k.strip_prefix('_'))
        else {
            continue;
        };
        let key = key.to_ascii_lowercase();
        named = Some((name, key.clone()));
        let sub = key.strip_prefix("degraded_").map(str::to_owned);
        if let Some(sub) = sub
            && let Some(kind) = scalar(Section::Degraded, &sub)
        {
            let path = ["upstreams", name, "degraded", &sub].map(str::to_owned);
            matches.push((name, Target::Table(path.to_vec()), kind));
        } else if let Some(kind) = scalar(Section::Upstream, &key) {
            let path = ["upstreams", name, &key].map(str::to_owned);
            matches.push((name, Target::Table(path.to_vec()), kind));
        }
    }
    if matches.len() == 1
        && let Some((_, target, kind)) = matches.pop()
    {
        return Ok((target, kind));
    }
    match matches.len() {
        0 => Err(match named {
            Some((name, key)) => env_error(
                file,
                var,
                format!("upstreams.{name}.{key}"),
                raw,
                format!("[upstreams.{name}] has no key `{key}`"),
            ),
            None => env_error(
                file,
                var,
                format!("upstreams.{}", rest.to_ascii_lowercase()),
                raw,
                format!(
                    "names no upstream of the file ({}); an override can change an upstream but not create one",
                    known(&names.upstreams)
                ),
            ),
        }),
        _ => {
            let which: Vec<&str> = matches.iter().map(|(n, _, _)| n.as_str()).collect();
            Err(env_error(
                file,
                var,
                format!("upstreams.{}", rest.to_ascii_lowercase()),
                raw,
                format!("ambiguous: could mean upstream {}", which.join(" or ")),
            ))
        }
    }
}

fn token(var: &str, rest: &str, names: &Names, file: &str) -> Result<(Target, Kind), ConfigError> {
    for (i, name) in names.tokens.iter().enumerate() {
        let Some(key) = rest
            .strip_prefix(token_env_name(name).as_str())
            .and_then(|k| k.strip_prefix('_'))
        else {
            continue;
        };
        let key = match key {
            "TOKEN" => "token",
            "TOKEN_ENV" => "token_env",
            "ROLE" => "role",
            _ => continue,
        };
        return Ok((Target::Token(i, key), Kind::Str));
    }
    Err(env_error(
        file,
        var,
        "admin.tokens".to_owned(),
        REDACTED,
        format!(
            "expected BREAKERBOX_ADMIN_TOKENS_<NAME>_TOKEN, _TOKEN_ENV or _ROLE for a token of the file ({})",
            known(&names.tokens)
        ),
    ))
}

fn token_env_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// An environment string as the TOML value of a key of `kind`; a string the kind cannot take is
/// kept as a string so the reader refuses it with the usual "expected …, found a string".
fn convert(raw: &str, kind: Kind) -> Value {
    let text = raw.trim();
    let parsed = match kind {
        Kind::Int => text.parse::<i64>().ok().map(Value::Integer),
        Kind::Bool => match text.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Some(Value::Boolean(true)),
            "false" | "0" | "no" | "off" => Some(Value::Boolean(false)),
            _ => None,
        },
        Kind::IntList => {
            let inner = text
                .strip_prefix('[')
                .and_then(|t| t.strip_suffix(']'))
                .unwrap_or(text);
            if inner.trim().is_empty() {
                Some(Value::Array(Vec::new()))
            } else {
                inner
                    .split(',')
                    .map(|n| n.trim().parse::<i64>().ok().map(Value::Integer))
                    .collect::<Option<Vec<_>>>()
                    .map(Value::Array)
            }
        }
        Kind::Duration => Some(Value::String(text.to_owned())),
        Kind::Str | Kind::Table | Kind::TableArray => None,
    };
    parsed.unwrap_or_else(|| Value::String(raw.to_owned()))
}

/// Puts `value` at `target`; false when the file holds something else than a table on the way
/// (the reader then reports the file's mistake).
fn set(root: &mut Table, target: &Target, value: Value, origins: &Origins) -> bool {
    match target {
        Target::Table(path) => {
            let Some((last, parents)) = path.split_last() else {
                return false;
            };
            let mut table = root;
            for segment in parents {
                let entry = table
                    .entry(segment.clone())
                    .or_insert_with(|| Value::Table(Table::new()));
                match entry {
                    Value::Table(t) => table = t,
                    _ => return false,
                }
            }
            table.insert(last.clone(), value);
            true
        }
        Target::Token(i, key) => {
            let Some(Value::Table(token)) = root
                .get_mut("admin")
                .and_then(|a| a.get_mut("tokens"))
                .and_then(|t| t.get_mut(*i))
            else {
                return false;
            };
            // An override of the secret replaces the file's other way of giving it.
            let other = match *key {
                "token" => Some("token_env"),
                "token_env" => Some("token"),
                _ => None,
            };
            if let Some(other) = other
                && !origins.contains_key(&format!("admin.tokens[{i}].{other}"))
            {
                token.remove(other);
            }
            token.insert((*key).to_owned(), value);
            true
        }
    }
}
