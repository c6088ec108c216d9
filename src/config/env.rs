//! Environment overrides, applied to the TOML tree before it is read so their values are checked
//! exactly like the file's.
//!
//! `BREAKERBOX_<PATH>` sets the key at PATH: segments joined by `_`, upper case, `-` in names
//! written `_` (`BREAKERBOX_UPSTREAMS_UPTIME_KUMA_FAILURE_THRESHOLD`). Names are resolved against
//! the upstreams (and `[[admin.tokens]]` names) present in the file, so an override can change an
//! upstream but not create one. Whether a key exists, and the TOML type a variable's text becomes,
//! are asked of the raw structs themselves (see [`typed`]), so no list of keys is kept here. The
//! seeds' variables are honoured too; `BREAKERBOX_…` wins over them. Variables outside the
//! configuration's sections (`BREAKERBOX_CONFIG`, `BREAKERBOX_LOG`, any variable named by a
//! `token_env`) are left alone.

use std::collections::{BTreeMap, BTreeSet};

use toml::{Table, Value};

use super::convert::env_name;
use super::error::{ConfigError, ErrorKind, Key, Origins, decode};
use super::raw::{RawConfig, fields};
use super::render::REDACTED;

/// Where an override goes.
#[derive(Debug)]
enum Target {
    /// A key of a table, by path from the root.
    Table(Vec<String>),
    /// A key of the `i`-th `[[admin.tokens]]`.
    Token(usize, String),
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
    let mut overrides = Vec::new();
    let vars = || env.iter().map(|(name, raw)| Var { name, raw, file });
    for var in vars() {
        if let Some(target) = seed(var, &names)? {
            overrides.push((var.name, target));
        }
    }
    for var in vars() {
        if !names.reserved.contains(var.name)
            && let Some(target) = breakerbox(var, &names)?
        {
            overrides.push((var.name, target));
        }
    }
    let mut origins = Origins::new();
    for (var, (target, value)) in overrides {
        if set(root, &target, value, &origins) {
            origins.insert(target.path(), var.to_owned());
        }
    }
    Ok(origins)
}

/// One variable being resolved, and the file it applies to.
#[derive(Debug, Clone, Copy)]
struct Var<'a> {
    name: &'a str,
    raw: &'a str,
    file: &'a str,
}

impl Var<'_> {
    /// The variable names no key; `path` is the key it would have set.
    fn error(&self, path: String, reason: String) -> ConfigError {
        self.error_showing(path, &format!("{:?}", self.raw), reason)
    }

    fn error_showing(&self, path: String, shown: &str, reason: String) -> ConfigError {
        let key = Key::Env {
            var: self.name.to_owned(),
            path,
        };
        ConfigError::new(self.file, key, shown, ErrorKind::UnknownKey, reason)
    }
}

/// The seeds' variables: `CIRCUIT_BREAKER_<NAME>_THRESHOLD`, `…_TIMEOUT_SECONDS`,
/// `HEALTH_CHECK_INTERVAL_SECONDS`, `DETAILED_HEALTH_CACHE_SECONDS`, each fixed to its key.
fn seed(var: Var<'_>, names: &Names) -> Result<Option<(Target, Value)>, ConfigError> {
    let seconds = |path: Vec<String>| match var.raw.trim().parse::<u64>() {
        Ok(n) => Ok(Some((Target::Table(path), Value::String(format!("{n}s"))))),
        Err(_) => {
            let why = "expected a whole number of seconds, such as 30".to_owned();
            Err(var.error(path.join("."), why).with_kind(ErrorKind::Invalid))
        }
    };
    let owned = |parts: &[&str]| parts.iter().map(|p| (*p).to_owned()).collect::<Vec<_>>();
    match var.name {
        "HEALTH_CHECK_INTERVAL_SECONDS" => return seconds(owned(&["health", "check_interval"])),
        "DETAILED_HEALTH_CACHE_SECONDS" => return seconds(owned(&["health", "detailed_cache"])),
        _ => {}
    }
    let Some(rest) = var.name.strip_prefix("CIRCUIT_BREAKER_") else {
        return Ok(None);
    };
    let (name, key) = if let Some(name) = rest.strip_suffix("_THRESHOLD") {
        (name, "failure_threshold")
    } else if let Some(name) = rest.strip_suffix("_TIMEOUT_SECONDS") {
        (name, "open_duration")
    } else {
        return Ok(None);
    };
    let mut path = if name == "DATABASE" {
        owned(&["store"])
    } else {
        match names.upstreams.iter().find(|u| env_name(u) == name) {
            Some(upstream) => vec!["upstreams".to_owned(), upstream.clone()],
            None => {
                let why = format!(
                    "`{name}` is neither DATABASE nor an upstream of the file ({})",
                    known(&names.upstreams)
                );
                let path = format!("upstreams.{}.{key}", name.to_ascii_lowercase());
                return Err(var.error(path, why));
            }
        }
    };
    path.push(key.to_owned());
    if key == "open_duration" {
        return seconds(path);
    }
    let target = Target::Table(path);
    let value = typed(&target, var.raw).unwrap_or_else(|| Value::String(var.raw.to_owned()));
    Ok(Some((target, value)))
}

fn known(names: &[String]) -> String {
    if names.is_empty() {
        "there are none".to_owned()
    } else {
        format!("known: {}", names.join(", "))
    }
}

/// `BREAKERBOX_<SECTION>_<KEY>` → where it goes and the value it sets there.
fn breakerbox(var: Var<'_>, names: &Names) -> Result<Option<(Target, Value)>, ConfigError> {
    let Some(rest) = var.name.strip_prefix("BREAKERBOX_") else {
        return Ok(None);
    };
    if let Some(rest) = rest.strip_prefix("UPSTREAMS_") {
        return upstream(var, rest, names).map(Some);
    }
    if let Some(rest) = rest.strip_prefix("ADMIN_TOKENS_") {
        return token(var, rest, names).map(Some);
    }
    // Every other section is a plain table of keys.
    for table in fields::<RawConfig>() {
        if matches!(*table, "upstreams" | "admin") {
            continue;
        }
        let prefix = format!("{}_", table.to_ascii_uppercase());
        if let Some(key) = rest.strip_prefix(&prefix) {
            let key = key.to_ascii_lowercase();
            let target = Target::Table(vec![(*table).to_owned(), key.clone()]);
            return match typed(&target, var.raw) {
                Some(value) => Ok(Some((target, value))),
                None => {
                    let why = format!("[{table}] has no key `{key}`");
                    Err(var.error(format!("{table}.{key}"), why))
                }
            };
        }
    }
    Ok(None)
}

fn upstream(var: Var<'_>, rest: &str, names: &Names) -> Result<(Target, Value), ConfigError> {
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
        // The key itself, or a key of a table inside the upstream (`DEGRADED_STATUS`).
        let flat = std::iter::once(vec![key.clone()]);
        let nested = key
            .match_indices('_')
            .map(|(at, _)| vec![key[..at].to_owned(), key[at + 1..].to_owned()]);
        for keys in flat.chain(nested) {
            let mut path = vec!["upstreams".to_owned(), name.clone()];
            path.extend(keys);
            let target = Target::Table(path);
            if let Some(value) = typed(&target, var.raw) {
                matches.push((name, target, value));
                break;
            }
        }
    }
    if matches.len() == 1
        && let Some((_, target, value)) = matches.pop()
    {
        return Ok((target, value));
    }
    let lower = rest.to_ascii_lowercase();
    Err(match (matches.len(), named) {
        (0, Some((name, key))) => var.error(
            format!("upstreams.{name}.{key}"),
            format!("[upstreams.{name}] has no key `{key}`"),
        ),
        (0, None) => var.error(
            format!("upstreams.{lower}"),
            format!(
                "names no upstream of the file ({}); an override can change an upstream but not create one",
                known(&names.upstreams)
            ),
        ),
        _ => {
            let which: Vec<&str> = matches.iter().map(|(n, _, _)| n.as_str()).collect();
            let why = format!("ambiguous: could mean upstream {}", which.join(" or "));
            var.error(format!("upstreams.{lower}"), why)
        }
    })
}

fn token(var: Var<'_>, rest: &str, names: &Names) -> Result<(Target, Value), ConfigError> {
    for (i, name) in names.tokens.iter().enumerate() {
        let Some(key) = rest
            .strip_prefix(token_env_name(name).as_str())
            .and_then(|k| k.strip_prefix('_'))
        else {
            continue;
        };
        // A token's name is what variables find it by; it is not overridden.
        let key = key.to_ascii_lowercase();
        if key == "name" {
            continue;
        }
        let target = Target::Token(i, key);
        if let Some(value) = typed(&target, var.raw) {
            return Ok((target, value));
        }
    }
    // A token variable's value is a secret: never echo it.
    Err(var.error_showing(
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

/// An environment string as the TOML value the key at `target` takes, asked of the raw structs:
/// the first reading (integer, boolean, list of integers, comma-separated list of strings) that the key accepts, else the text as
/// it is, which the loader then refuses with the usual "expected …, found a string". `None`: no
/// such key.
fn typed(target: &Target, raw: &str) -> Option<Value> {
    let text = raw.trim();
    let boolean = match text.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    };
    let inner = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    let list = if inner.trim().is_empty() {
        Some(Vec::new())
    } else {
        inner
            .split(',')
            .map(|n| n.trim().parse::<i64>().ok().map(Value::Integer))
            .collect()
    };
    let names = inner
        .split(',')
        .map(|n| n.trim().trim_matches('"'))
        .filter(|n| !n.is_empty())
        .map(|n| Value::String(n.to_owned()))
        .collect();
    let float = text.parse::<f64>().ok().filter(|f| f.is_finite());
    let readings = [
        text.parse::<i64>().ok().map(Value::Integer),
        float.map(Value::Float),
        boolean.map(Value::Boolean),
        list.map(Value::Array),
        Some(Value::Array(names)),
        Some(Value::String(raw.to_owned())),
    ];
    for value in readings.into_iter().flatten() {
        let mut tree = Table::new();
        match target {
            Target::Table(_) => {
                set(&mut tree, target, value.clone(), &Origins::new());
            }
            Target::Token(_, key) => {
                let token = Table::from_iter([(key.clone(), value.clone())]);
                let tokens = Value::Array(vec![Value::Table(token)]);
                let admin = Table::from_iter([("tokens".to_owned(), tokens)]);
                tree.insert("admin".to_owned(), Value::Table(admin));
            }
        }
        match decode(&tree) {
            Ok(_) => return Some(value),
            Err(refusal) if refusal.kind() == ErrorKind::UnknownKey => return None,
            Err(_) => {}
        }
    }
    Some(Value::String(raw.to_owned()))
}

/// Puts `value` at `target`; false when the file holds something else than a table on the way
/// (the loader then reports the file's mistake).
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
            // The secret is given one way or the other: an override of one replaces the file's
            // other way of giving it.
            let other = match key.as_str() {
                "token" => Some("token_env"),
                "token_env" => Some("token"),
                _ => None,
            };
            if let Some(other) = other
                && !origins.contains_key(&format!("admin.tokens[{i}].{other}"))
            {
                token.remove(other);
            }
            token.insert(key.clone(), value);
            true
        }
    }
}
