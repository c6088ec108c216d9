//! The one error a configuration can fail with: which file, which key, what value, and why.

use std::fmt;

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
        Self(Box::new(Inner {
            file: file.to_owned(),
            position: None,
            key,
            value: value.into(),
            reason: reason.into(),
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

#[cfg(test)]
mod tests {
    use super::*;

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
