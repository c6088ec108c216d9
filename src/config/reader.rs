//! Typed reads from a TOML table that always know the dotted path of what they read, so every
//! error names its key (or the environment variable that supplied the value).

use std::collections::BTreeMap;
use std::time::Duration;

use toml::{Table, Value};

use super::error::{ConfigError, ErrorKind, Key};
use super::schema::{self, Section};

/// Dotted key path → the environment variable whose value replaced the file's.
pub(crate) type Origins = BTreeMap<String, String>;

/// What every read needs besides the table: the file name, where overrides came from, and the
/// environment (for `token_env`).
#[derive(Debug)]
pub(crate) struct Ctx<'a> {
    pub(crate) file: &'a str,
    pub(crate) origins: &'a Origins,
    pub(crate) env: &'a BTreeMap<String, String>,
}

impl Ctx<'_> {
    /// An error about the value at `path`, attributed to the environment if it came from there.
    pub(crate) fn error(
        &self,
        path: &str,
        value: impl Into<String>,
        kind: ErrorKind,
        reason: impl Into<String>,
    ) -> ConfigError {
        let key = match self.origins.get(path) {
            Some(var) => Key::Env {
                var: var.clone(),
                path: path.to_owned(),
            },
            None => Key::Path(path.to_owned()),
        };
        ConfigError::new(self.file, key, value, kind, reason)
    }
}

/// How a value is shown in an error: TOML syntax, shortened; secrets hidden.
pub(crate) fn show(value: &Value, redact: bool) -> String {
    if redact {
        return "<redacted>".to_owned();
    }
    let text = value.to_string();
    if text.chars().count() > 80 {
        let short: String = text.chars().take(77).collect();
        format!("{short}...")
    } else {
        text
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a datetime",
        Value::Array(_) => "an array",
        Value::Table(_) => "a table",
    }
}

/// One table being read. Unknown keys are refused up front; each read removes its key.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    pub(crate) ctx: &'a Ctx<'a>,
    path: String,
    table: Table,
    redact: bool,
}

impl<'a> Reader<'a> {
    /// Checks that `table` (at `path`, "" for the top level) holds only keys of `section`.
    pub(crate) fn new(
        ctx: &'a Ctx<'a>,
        path: String,
        table: Table,
        section: Section,
    ) -> Result<Self, ConfigError> {
        let redact = section == Section::Token;
        for (key, value) in &table {
            if section.kind_of(key).is_none() {
                let place = if path.is_empty() {
                    "at the top level".to_owned()
                } else {
                    format!("in [{path}]")
                };
                let hint = match schema::suggest(section, key) {
                    Some(known) => format!("did you mean `{known}`?"),
                    None => {
                        let known: Vec<_> = section.keys().iter().map(|(k, _)| *k).collect();
                        format!("known keys: {}", known.join(", "))
                    }
                };
                return Err(ctx.error(
                    &join(&path, key),
                    show(value, redact),
                    ErrorKind::UnknownKey,
                    format!("unknown key `{key}` {place}; {hint}"),
                ));
            }
        }
        Ok(Self {
            ctx,
            path,
            table,
            redact,
        })
    }

    /// The dotted path of this table.
    pub(crate) fn path(&self) -> &str {
        &self.path
    }

    /// The dotted path of `key` in this table.
    pub(crate) fn key_path(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// Whether `key` is still present (not yet read).
    pub(crate) fn has(&self, key: &str) -> bool {
        self.table.contains_key(key)
    }

    /// An error about `key` of this table.
    pub(crate) fn error(
        &self,
        key: &str,
        value: impl Into<String>,
        kind: ErrorKind,
        reason: impl Into<String>,
    ) -> ConfigError {
        self.ctx.error(&self.key_path(key), value, kind, reason)
    }

    fn wrong_type(&self, key: &str, value: &Value, expected: &str) -> ConfigError {
        self.error(
            key,
            show(value, self.redact),
            ErrorKind::WrongType,
            format!("expected {expected}, found {}", type_name(value)),
        )
    }

    /// Removes `key` and returns its value shown for an error together with the value.
    fn take(&mut self, key: &str) -> Option<(Value, String)> {
        let value = self.table.remove(key)?;
        let shown = show(&value, self.redact);
        Some((value, shown))
    }

    /// A string.
    pub(crate) fn string(&mut self, key: &str) -> Result<Option<String>, ConfigError> {
        match self.take(key) {
            None => Ok(None),
            Some((Value::String(s), _)) => Ok(Some(s)),
            Some((other, _)) => Err(self.wrong_type(key, &other, "a string")),
        }
    }

    /// A boolean.
    pub(crate) fn boolean(&mut self, key: &str) -> Result<Option<bool>, ConfigError> {
        match self.take(key) {
            None => Ok(None),
            Some((Value::Boolean(b), _)) => Ok(Some(b)),
            Some((other, _)) => Err(self.wrong_type(key, &other, "true or false")),
        }
    }

    /// An integer from `min` to `max`.
    pub(crate) fn int<T: TryFrom<i64>>(
        &mut self,
        key: &str,
        min: i64,
        max: i64,
    ) -> Result<Option<T>, ConfigError> {
        match self.take(key) {
            None => Ok(None),
            Some((Value::Integer(n), shown)) => {
                match T::try_from(n).ok().filter(|_| (min..=max).contains(&n)) {
                    Some(n) => Ok(Some(n)),
                    None => Err(self.error(
                        key,
                        shown,
                        ErrorKind::Invalid,
                        if max == i64::MAX {
                            format!("must be at least {min}")
                        } else {
                            format!("must be a whole number from {min} to {max}")
                        },
                    )),
                }
            }
            Some((other, _)) => Err(self.wrong_type(key, &other, "an integer")),
        }
    }

    /// A whole percentage from `min` to 100.
    pub(crate) fn percent(&mut self, key: &str, min: u8) -> Result<Option<u8>, ConfigError> {
        match self.take(key) {
            None => Ok(None),
            Some((Value::Integer(n), shown)) => match u8::try_from(n) {
                Ok(p) if (min..=100).contains(&p) => Ok(Some(p)),
                _ => Err(self.error(
                    key,
                    shown,
                    ErrorKind::Invalid,
                    format!("must be a percentage from {min} to 100"),
                )),
            },
            Some((other, _)) => Err(self.wrong_type(key, &other, "an integer percentage")),
        }
    }

    /// A duration written as a string such as `"500ms"`, `"30s"` or `"5m"`.
    pub(crate) fn duration(&mut self, key: &str) -> Result<Option<Duration>, ConfigError> {
        match self.take(key) {
            None => Ok(None),
            Some((Value::String(s), shown)) => match humantime::parse_duration(s.trim()) {
                Ok(d) => Ok(Some(d)),
                Err(e) => Err(self.error(
                    key,
                    shown,
                    ErrorKind::Invalid,
                    format!("not a duration ({e}); write e.g. \"500ms\", \"30s\" or \"5m\""),
                )),
            },
            Some((other, _)) => Err(self.wrong_type(
                key,
                &other,
                "a duration string such as \"500ms\", \"30s\" or \"5m\"",
            )),
        }
    }

    /// A positive duration.
    pub(crate) fn positive_duration(&mut self, key: &str) -> Result<Option<Duration>, ConfigError> {
        match self.duration(key)? {
            Some(d) if d.is_zero() => {
                Err(self.error(key, "\"0s\"", ErrorKind::Invalid, "must be positive"))
            }
            other => Ok(other),
        }
    }

    /// An array of HTTP status codes (100–599), sorted, without repeats.
    pub(crate) fn statuses(&mut self, key: &str) -> Result<Option<Vec<u16>>, ConfigError> {
        let Some((value, shown)) = self.take(key) else {
            return Ok(None);
        };
        let Value::Array(items) = value else {
            return Err(self.wrong_type(key, &value, "an array of HTTP status codes"));
        };
        let mut statuses = Vec::with_capacity(items.len());
        for item in &items {
            match item {
                Value::Integer(n) if (100..=599).contains(n) => {
                    statuses.push(u16::try_from(*n).unwrap_or_default());
                }
                other => {
                    return Err(self.error(
                        key,
                        shown,
                        ErrorKind::Invalid,
                        format!(
                            "{} is not an HTTP status code (100 to 599)",
                            show(other, false)
                        ),
                    ));
                }
            }
        }
        statuses.sort_unstable();
        statuses.dedup();
        Ok(Some(statuses))
    }

    /// A sub-table, read as `section`.
    pub(crate) fn table(
        &mut self,
        key: &str,
        section: Section,
    ) -> Result<Option<Reader<'a>>, ConfigError> {
        match self.take(key) {
            None => Ok(None),
            Some((Value::Table(t), _)) => {
                Reader::new(self.ctx, self.key_path(key), t, section).map(Some)
            }
            Some((other, _)) => Err(self.wrong_type(key, &other, "a table")),
        }
    }

    /// An array of tables (`[[key]]`), each read as `section` at `key[i]`.
    pub(crate) fn tables(
        &mut self,
        key: &str,
        section: Section,
    ) -> Result<Vec<Reader<'a>>, ConfigError> {
        let Some((value, _)) = self.take(key) else {
            return Ok(Vec::new());
        };
        let Value::Array(items) = value else {
            return Err(self.wrong_type(key, &value, "an array of tables"));
        };
        let mut readers = Vec::with_capacity(items.len());
        for (i, item) in items.into_iter().enumerate() {
            let path = format!("{}[{i}]", self.key_path(key));
            match item {
                Value::Table(t) => readers.push(Reader::new(self.ctx, path, t, section)?),
                other => {
                    return Err(self.ctx.error(
                        &path,
                        show(&other, self.redact),
                        ErrorKind::WrongType,
                        format!("expected a table, found {}", type_name(&other)),
                    ));
                }
            }
        }
        Ok(readers)
    }

    /// A sub-table keyed by names chosen by the user (`[upstreams.NAME]`), unchecked.
    pub(crate) fn named_tables(&mut self, key: &str) -> Result<Table, ConfigError> {
        match self.take(key) {
            None => Ok(Table::new()),
            Some((Value::Table(t), _)) => Ok(t),
            Some((other, _)) => Err(self.wrong_type(key, &other, "a table")),
        }
    }
}

/// `prefix.key`, or `key` at the top level.
pub(crate) fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}
