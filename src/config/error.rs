//! The one error a configuration can fail with: which file, which key, what value, and why.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use toml::{Table, Value};

use super::raw::{INNER, RawConfig, join};
use super::redact::redact_urls_in;

/// Where a refused value came from: a key of the file, or an environment variable overriding one.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Key {
    /// The whole file (it could not be read), no single key.
    File,
    /// A key of the file as a dotted path, e.g. `upstreams.plex.failure_threshold`.
    Path(String),
    /// An environment variable; `path` is the key it overrides.
    Env {
        /// The variable's name, e.g. `BREAKERBOX_UPSTREAMS_PLEX_FAILURE_THRESHOLD`.
        var: String,
        /// The dotted key the variable overrides.
        path: String,
    },
}

impl Key {
    /// The dotted key path, whether the value came from the file or the environment.
    pub fn path(&self) -> Option<&str> {
        match self {
            Key::File => None,
            Key::Path(path) | Key::Env { path, .. } => Some(path),
        }
    }

    /// The environment variable the value came from, if it did.
    pub fn env_var(&self) -> Option<&str> {
        match self {
            Key::Env { var, .. } => Some(var),
            _ => None,
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Key::File => Ok(()),
            Key::Path(path) => f.write_str(path),
            Key::Env { var, path } => write!(f, "{var} (environment, overrides {path})"),
        }
    }
}

/// What kind of mistake a [`ConfigError`] reports, for callers that branch on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The file could not be read.
    Io,
    /// The text is not valid TOML (including a table or key defined twice).
    Syntax,
    /// A key that breakerbox does not know.
    UnknownKey,
    /// A value of the wrong TOML type (a string where a number belongs, …).
    WrongType,
    /// A required key is absent.
    Missing,
    /// A value of the right type that cannot work (threshold 0, bad URL, …).
    Invalid,
}

/// A configuration that cannot be used. Its message names the file, the key (a dotted path, or the
/// environment variable that supplied the value), the value and why it was refused:
///
/// ```text
/// breakerbox.toml: upstreams.plex.failure_threshold = 0: must be at least 1 (0 would trip before any call)
/// ```
///
/// Secrets (admin tokens, database passwords) never appear in it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub struct ConfigError(Box<Inner>);

#[derive(Debug, Clone, PartialEq, Eq)]
struct Inner {
    file: String,
    position: Option<(usize, usize)>,
    key: Key,
    value: String,
    reason: String,
    kind: ErrorKind,
}

impl ConfigError {
    pub(crate) fn new(
        file: &str,
        key: Key,
        value: impl Into<String>,
        kind: ErrorKind,
        reason: impl Into<String>,
    ) -> Self {
        // Every value and reason is shown: a URL in either keeps no credential.
        let hide = |text: String| match redact_urls_in(&text) {
            Cow::Borrowed(_) => text,
            Cow::Owned(redacted) => redacted,
        };
        Self(Box::new(Inner {
            file: file.to_owned(),
            position: None,
            key,
            value: hide(value.into()),
            reason: hide(reason.into()),
            kind,
        }))
    }

    pub(crate) fn with_kind(mut self, kind: ErrorKind) -> Self {
        self.0.kind = kind;
        self
    }

    pub(crate) fn at(mut self, line: usize, column: usize) -> Self {
        self.0.position = Some((line, column));
        self
    }

    /// The file the configuration was loaded from.
    pub fn file(&self) -> &str {
        &self.0.file
    }

    /// Line and column (both from 1) in the file, when the error has a position there.
    pub fn position(&self) -> Option<(usize, usize)> {
        self.0.position
    }

    /// The refused key.
    pub fn key(&self) -> &Key {
        &self.0.key
    }

    /// The refused value as written (TOML syntax), `(missing)` for an absent key; secrets are
    /// shown as `<redacted>`.
    pub fn value(&self) -> &str {
        &self.0.value
    }

    /// Why the value was refused.
    pub fn reason(&self) -> &str {
        &self.0.reason
    }

    /// What kind of mistake this is.
    pub fn kind(&self) -> ErrorKind {
        self.0.kind
    }

    fn render(&self) -> String {
        let e = &self.0;
        let mut out = e.file.clone();
        if let Some((line, column)) = e.position {
            out.push_str(&format!(":{line}:{column}"));
        }
        out.push_str(": ");
        if e.key != Key::File {
            out.push_str(&e.key.to_string());
            if !e.value.is_empty() {
                out.push_str(" = ");
                out.push_str(&e.value);
            }
            out.push_str(": ");
        }
        out.push_str(&e.reason);
        out
    }
}

/// A refused value in the file or its overrides, before the file name is known. Its `value`
/// is looked up in the file (shown as written, secrets hidden) unless the refusal gives one.
#[derive(Debug)]
pub(crate) struct Refusal {
    path: String,
    value: Option<String>,
    kind: ErrorKind,
    reason: String,
}

impl Refusal {
    pub(crate) fn new(path: String, kind: ErrorKind, reason: impl Into<String>) -> Self {
        let reason = reason.into();
        Self {
            path,
            value: None,
            kind,
            reason,
        }
    }

    /// Shows `value` instead of what the file holds at the key.
    pub(crate) fn value(mut self, value: impl Into<String>) -> Self {
        self.value = Some(value.into());
        self
    }

    pub(crate) fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The error, naming the variable that set the key when the environment did.
    pub(crate) fn into_error(self, file: &str, tree: &Table, origins: &Origins) -> ConfigError {
        let value = self.value.unwrap_or_else(|| {
            // Anything inside a token's table may be its secret.
            let secret = self.path.starts_with("admin.tokens");
            lookup(tree, &self.path).map_or_else(String::new, |v| show(v, secret))
        });
        let key = match origins.get(&self.path) {
            Some(var) => Key::Env {
                var: var.clone(),
                path: self.path,
            },
            None => Key::Path(self.path),
        };
        ConfigError::new(file, key, value, self.kind, self.reason)
    }
}

/// Dotted key path → the environment variable whose value replaced the file's.
pub(crate) type Origins = BTreeMap<String, String>;

/// Reads the raw configuration from the tree; serde's refusal becomes ours, with the key path,
/// the TOML types in our words, and the closest known key for a misspelt one.
pub(crate) fn decode(tree: &Table) -> Result<RawConfig, Refusal> {
    let err = match serde_path_to_error::deserialize(tree.clone()) {
        Ok(raw) => return Ok(raw),
        Err(err) => err,
    };
    let outer = err.path().to_string();
    let message = err.inner().message();
    let (inner, message) = message.split_once(INNER).unwrap_or(("", message));
    let path = join(&outer, inner);
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let (key, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let known: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
        let place = match path.rsplit_once('.') {
            Some((table, _)) => format!("in [{table}]"),
            None => "at the top level".to_owned(),
        };
        let hint = match suggest(&known, key) {
            Some(close) => format!("did you mean `{close}`?"),
            None => format!("known keys: {}", known.join(", ")),
        };
        let why = format!("unknown key `{key}` {place}; {hint}");
        return Err(Refusal::new(path, ErrorKind::UnknownKey, why));
    }
    if let Some((_, expected)) = message
        .strip_prefix("invalid type: ")
        .and_then(|m| m.rsplit_once(", expected "))
    {
        let expected = match expected {
            "i64" => "an integer",
            "a boolean" => "true or false",
            e if e.starts_with("struct ") || e == "a map" => "a table",
            e => e,
        };
        let found = lookup(tree, &path).map_or("nothing", type_name);
        let why = format!("expected {expected}, found {found}");
        return Err(Refusal::new(path, ErrorKind::WrongType, why));
    }
    Err(Refusal::new(path, ErrorKind::Invalid, message))
}

/// The value at a dotted path such as `admin.tokens[0].name`.
fn lookup<'t>(tree: &'t Table, path: &str) -> Option<&'t Value> {
    let mut at: Option<&Value> = None;
    for part in path.split('.') {
        let mut pieces = part.split('[');
        let name = pieces.next()?;
        at = Some(match at {
            None => tree.get(name)?,
            Some(v) => v.get(name)?,
        });
        for index in pieces {
            at = Some(at?.get(index.trim_end_matches(']').parse::<usize>().ok()?)?);
        }
    }
    at
}

/// How a value is shown in an error: TOML syntax, shortened; secrets hidden.
fn show(value: &Value, secret: bool) -> String {
    if secret {
        return "<redacted>".to_owned();
    }
    // Before shortening: a cut URL could lose the `@` that marks its password.
    let text = redact_urls_in(&value.to_string()).into_owned();
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

/// The known key closest to a misspelt one, if any is close enough to suggest.
fn suggest<'k>(known: &[&'k str], unknown: &str) -> Option<&'k str> {
    known
        .iter()
        .map(|name| (distance(name, unknown), *name))
        .filter(|(d, name)| *d <= 2 + name.len() / 8)
        .min()
        .map(|(_, name)| name)
}

/// Levenshtein distance, small strings only.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_catch_typos_only() {
        let known = ["failure_threshold", "window", "url"];
        assert_eq!(
            suggest(&known, "failure_treshold"),
            Some("failure_threshold")
        );
        assert_eq!(suggest(&known, "windw"), Some("window"));
        assert_eq!(suggest(&known, "colour"), None);
    }

    #[test]
    fn message_names_file_key_value_and_reason() {
        let err = ConfigError::new(
            "gw.toml",
            Key::Path("upstreams.plex.failure_threshold".into()),
            "0",
            ErrorKind::Invalid,
            "must be at least 1",
        );
        assert_eq!(
            err.to_string(),
            "gw.toml: upstreams.plex.failure_threshold = 0: must be at least 1"
        );
        let err = ConfigError::new(
            "gw.toml",
            Key::Env {
                var: "BREAKERBOX_STORE_URL".into(),
                path: "store.url".into(),
            },
            "\"mysql://x\"",
            ErrorKind::Invalid,
            "unsupported",
        )
        .at(3, 7);
        assert_eq!(
            err.to_string(),
            "gw.toml:3:7: BREAKERBOX_STORE_URL (environment, overrides store.url) = \"mysql://x\": unsupported"
        );
        assert_eq!(err.key().env_var(), Some("BREAKERBOX_STORE_URL"));
        assert_eq!(err.key().path(), Some("store.url"));
        let err = ConfigError::new("gw.toml", Key::File, "", ErrorKind::Io, "cannot read");
        assert_eq!(err.to_string(), "gw.toml: cannot read");
    }
}
