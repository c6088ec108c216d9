//! TOML text → value tree, with syntax errors turned into [`ConfigError`]s that name the line,
//! the key being defined there and, for a table defined twice, where it was first defined.

use toml::Table;

use super::error::{ConfigError, ErrorKind, Key};

/// Parses `text`; `file` names it in errors.
pub(crate) fn parse(text: &str, file: &str) -> Result<Table, ConfigError> {
    text.parse::<Table>().map_err(|e| {
        let start = e
            .span()
            .map_or(text.len(), |span| span.start)
            .min(text.len());
        let (line_no, column) = position(text, start);
        let lines: Vec<&str> = text.lines().collect();
        let line = lines.get(line_no - 1).copied().unwrap_or("").trim();
        let path = defined_path(&lines, line_no - 1);
        let message = e.message().trim();
        let reason = if message == "duplicate key" {
            duplicate(&lines, line_no - 1, path.as_deref())
        } else {
            format!("invalid TOML: {message}")
        };
        let shown = if may_hold_secret(text, start, line, path.as_deref()) {
            "<redacted>".to_owned()
        } else {
            line.to_owned()
        };
        let key = path.map_or(Key::File, Key::Path);
        ConfigError::new(file, key, shown, ErrorKind::Syntax, reason).at(line_no, column)
    })
}

/// Whether the line shown for a syntax error at byte `at` could carry a secret: a token (also
/// inside an inline table or array), a URL with credentials, or the inside of a multi-line
/// string (which could be a token's value).
fn may_hold_secret(text: &str, at: usize, line: &str, path: Option<&str>) -> bool {
    let lower = line.to_ascii_lowercase();
    let token_key = path.is_some_and(|p| p == "token" || p.ends_with(".token"));
    let credentials = lower.contains("://") && lower.contains('@');
    let before = text.get(..at).unwrap_or(text);
    let in_multiline = (before.matches("\"\"\"").count() + before.matches("'''").count()) % 2 == 1;
    token_key || lower.contains("token") || credentials || in_multiline
}

/// 1-based line and column of byte offset `at`.
fn position(text: &str, at: usize) -> (usize, usize) {
    let mut at = at;
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// `a . "b-c"` → `a.b-c`.
fn normalise(key: &str) -> String {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut quote = None;
    for c in key.chars() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '.') => parts.push(std::mem::take(&mut current).trim().to_owned()),
            _ => current.push(c),
        }
    }
    parts.push(current.trim().to_owned());
    parts.join(".")
}

/// What a line defines: `[a.b]` → `a.b`; `k = v` under `[a]` → `a.k`.
fn line_path(line: &str, table: &str) -> Option<String> {
    let line = line.trim();
    if let Some(header) = line.strip_prefix('[') {
        let header = header.trim_start_matches('[');
        let end = header.find(']')?;
        return Some(normalise(&header[..end]));
    }
    let (key, _) = line.split_once('=')?;
    if key.trim().is_empty() || line.starts_with('#') {
        return None;
    }
    let key = normalise(key);
    Some(if table.is_empty() {
        key
    } else {
        format!("{table}.{key}")
    })
}

/// The table in force at line `index` (0-based): the last header above it.
fn table_at(lines: &[&str], index: usize) -> String {
    lines[..index.min(lines.len())]
        .iter()
        .rev()
        .find(|l| l.trim_start().starts_with('['))
        .and_then(|l| line_path(l, ""))
        .unwrap_or_default()
}

fn defined_path(lines: &[&str], index: usize) -> Option<String> {
    let line = lines.get(index)?;
    line_path(line, &table_at(lines, index))
}

fn duplicate(lines: &[&str], index: usize, path: Option<&str>) -> String {
    let Some(path) = path else {
        return "invalid TOML: a key or table is defined twice".to_owned();
    };
    let first = (0..index).find(|&i| {
        let l = lines[i].trim();
        !l.starts_with("[[") && line_path(l, &table_at(lines, i)).as_deref() == Some(path)
    });
    let where_ = first.map_or(String::new(), |i| {
        format!(" (first defined at line {})", i + 1)
    });
    match path.strip_prefix("upstreams.") {
        Some(name) if !name.contains('.') => format!(
            "duplicate upstream `{name}`: [upstreams.{name}] is defined twice{where_}; merge the two tables"
        ),
        _ => format!("invalid TOML: `{path}` is defined twice{where_}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> ConfigError {
        parse(text, "gw.toml").expect_err("invalid TOML")
    }

    #[test]
    fn duplicate_upstream_names_both_places() {
        let err = error("[upstreams.plex]\nurl = \"x\"\n\n[upstreams . \"plex\"]\nurl = \"y\"\n");
        assert_eq!(err.key(), &Key::Path("upstreams.plex".into()));
        assert_eq!(err.position(), Some((4, 14)));
        assert_eq!(err.kind(), ErrorKind::Syntax);
        assert_eq!(
            err.to_string(),
            "gw.toml:4:14: upstreams.plex = [upstreams . \"plex\"]: duplicate upstream `plex`: \
             [upstreams.plex] is defined twice (first defined at line 1); merge the two tables"
        );
    }

    #[test]
    fn duplicate_key_in_a_table() {
        let err = error("[server]\nlisten = \"a\"\nlisten = \"b\"\n");
        assert_eq!(err.key(), &Key::Path("server.listen".into()));
        assert_eq!(err.position(), Some((3, 1)));
        assert!(
            err.reason()
                .contains("`server.listen` is defined twice (first defined at line 2)")
        );
    }

    #[test]
    fn syntax_errors_have_line_column_and_key() {
        let err = error("[defaults]\nwindow = 60s\n");
        assert_eq!(err.key(), &Key::Path("defaults.window".into()));
        assert_eq!(err.position(), Some((2, 10)));
        assert_eq!(err.value(), "window = 60s");
        assert!(err.to_string().starts_with(
            "gw.toml:2:10: defaults.window = window = 60s: invalid TOML: string values must be quoted"
        ));
        let err = error("[admin]\n[[admin.tokens]]\ntoken = \"abc\n");
        assert_eq!(err.value(), "<redacted>");
        let err = error("[upstreams.plex\n");
        assert_eq!(err.position().map(|p| p.0), Some(1));
    }

    #[test]
    fn syntax_errors_never_show_a_secret() {
        for text in [
            "[admin]\ntokens = [{ name = \"ops\", token = \"s3cret-value\" role = \"admin\" }]\n",
            "[[admin.tokens]]\nname = \"ops\"\ntoken = \"\"\"\ns3cret-value\n",
            "[[admin.tokens]]\nname = \"ops\"\ntoken = '''\ns3cret-value",
            "[store]\nurl = \"postgres://app:s3cret-value@127.0.0.1/db\n",
            "[store]\nurl = \"postgres://app:s3cret-value@127.0.0.1/db\" x\n",
        ] {
            let err = error(text);
            assert!(!err.to_string().contains("s3cret"), "{err}");
            assert_eq!(err.value(), "<redacted>", "{text:?}");
            assert!(err.position().is_some(), "{text:?}");
        }
    }
}
