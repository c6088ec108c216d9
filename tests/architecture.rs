//! The rooms of `src/` depend only downward: a room may name (`crate::room`) only the rooms
//! listed below it in `docs/architecture.md`'s room order. This test reads every source file and
//! fails on any import against that order, naming the file, the line and both rooms.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// The room order as written in `docs/architecture.md`: the lines of the fenced block that
/// follows the `<!-- room order -->` marker, one room a line (text after the name is a comment),
/// top first.
fn room_order(doc: &str) -> Vec<String> {
    let after = doc
        .split_once("<!-- room order -->")
        .map(|(_, rest)| rest)
        .expect("docs/architecture.md has a `<!-- room order -->` marker");
    let block = after
        .split("```")
        .nth(1)
        .expect("a fenced block follows the room order marker");
    block
        .lines()
        .skip(1) // the fence's info string
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// Removes `//` comments (doc comments included) and `/* */` comments, keeping string contents
/// and line numbers.
fn strip_comments(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut chars = source.chars().peekable();
    let mut in_string = false;
    let mut block_depth = 0usize;
    while let Some(c) = chars.next() {
        if block_depth > 0 {
            match (c, chars.peek()) {
                ('*', Some('/')) => {
                    chars.next();
                    block_depth -= 1;
                }
                ('/', Some('*')) => {
                    chars.next();
                    block_depth += 1;
                }
                ('\n', _) => out.push('\n'),
                _ => {}
            }
            continue;
        }
        if in_string {
            // String contents are blanked: a message naming `crate::x` is not an import.
            match c {
                '\\' => {
                    out.push(' ');
                    if let Some(escaped) = chars.next() {
                        out.push(if escaped == '\n' { '\n' } else { ' ' });
                    }
                }
                '"' => {
                    in_string = false;
                    out.push(c);
                }
                '\n' => out.push('\n'),
                _ => out.push(' '),
            }
            continue;
        }
        let previous_is_ident = out
            .chars()
            .next_back()
            .is_some_and(|p| p.is_alphanumeric() || p == '_');
        if c == 'r' && !previous_is_ident {
            // A raw string `r#"…"#` may hold quotes: copy it whole.
            let mut ahead = chars.clone();
            let mut hashes = 0;
            while ahead.peek() == Some(&'#') {
                ahead.next();
                hashes += 1;
            }
            if ahead.peek() == Some(&'"') {
                ahead.next();
                let closing: String = std::iter::once('"')
                    .chain("#".repeat(hashes).chars())
                    .collect();
                let mut body = String::new();
                for next in ahead.by_ref() {
                    body.push(next);
                    if body.ends_with(&closing) {
                        break;
                    }
                }
                out.push_str(&body.replace(|ch: char| ch != '\n', " "));
                chars = ahead;
                continue;
            }
        }
        if c == '\'' {
            // A character literal ('"', '\'') must not open a string; a lifetime is left alone.
            let mut ahead = chars.clone();
            let literal = matches!(
                (ahead.next(), ahead.next()),
                (Some('\\'), _) | (Some(_), Some('\''))
            );
            if literal {
                out.push(c);
                let mut escaped = false;
                for next in chars.by_ref() {
                    out.push(next);
                    if next == '\'' && !escaped {
                        break;
                    }
                    escaped = next == '\\' && !escaped;
                }
                continue;
            }
        }
        match (c, chars.peek()) {
            ('/', Some('/')) => {
                for skipped in chars.by_ref() {
                    if skipped == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            ('/', Some('*')) => {
                chars.next();
                block_depth = 1;
            }
            ('"', _) => {
                in_string = true;
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

/// Every room named through `crate::` in `source`, with its line: `crate::room::…`,
/// `crate::room` and each top-level item of `crate::{a::…, b, …}` groups.
fn crate_references(source: &str) -> Vec<(usize, String)> {
    let code = strip_comments(source);
    let mut found = Vec::new();
    let mut rest = code.as_str();
    let mut offset = 0;
    while let Some(at) = rest.find("crate::") {
        let start = offset + at;
        // `$crate::` (macros) and identifiers ending in `crate` are not this crate's root.
        let before = code[..start].chars().next_back();
        let is_root = !matches!(before, Some(c) if c.is_alphanumeric() || c == '_' || c == '$');
        let after = &code[start + "crate::".len()..];
        let line = code[..start].matches('\n').count() + 1;
        if is_root {
            if let Some(group) = after.strip_prefix('{') {
                for item in top_level_items(group) {
                    found.push((line, item));
                }
            } else {
                let room: String = after
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                // `crate::Breaker` and the like are the root's re-exports of the core.
                if room.starts_with(|c: char| c.is_ascii_lowercase()) {
                    found.push((line, room));
                }
            }
        }
        offset = start + "crate::".len();
        rest = &code[offset..];
    }
    found
}

/// The first path segment of each item of a `{…}` group (the text after its `{`).
fn top_level_items(group: &str) -> Vec<String> {
    let mut items = Vec::new();
    let mut depth = 0usize;
    let mut current = String::new();
    let mut at_item_start = true;
    for c in group.chars() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                at_item_start = true;
                if !current.is_empty() {
                    items.push(std::mem::take(&mut current));
                }
                continue;
            }
            _ => {}
        }
        if depth == 0 && at_item_start {
            if c.is_alphanumeric() || c == '_' {
                current.push(c);
            } else if !c.is_whitespace() {
                at_item_start = false;
            }
        }
    }
    if !current.is_empty() {
        items.push(current);
    }
    items.retain(|item| item != "self");
    items
}

/// The room a file of `src/` belongs to: its first path component (`src/api/admin.rs` → `api`,
/// `src/coarse_clock.rs` → `coarse_clock`).
fn room_of(relative: &Path) -> String {
    let first = relative
        .components()
        .next()
        .expect("a file under src/")
        .as_os_str()
        .to_string_lossy()
        .into_owned();
    first.strip_suffix(".rs").unwrap_or(&first).to_owned()
}

fn rust_files(dir: &Path, into: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("readable source folder") {
        let path = entry.expect("readable entry").path();
        if path.is_dir() {
            rust_files(&path, into);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            into.push(path);
        }
    }
}

/// One import against the order: `file:line: room -> other`.
fn violations(order: &[String], files: &BTreeMap<String, (String, String)>) -> Vec<String> {
    let rank = |room: &str| order.iter().position(|r| r == room);
    let mut found = Vec::new();
    for (file, (room, source)) in files {
        let Some(own) = rank(room) else {
            found.push(format!("{file}: room `{room}` is not in the room order"));
            continue;
        };
        for (line, other) in crate_references(source) {
            if other == *room {
                continue;
            }
            match rank(&other) {
                Some(theirs) if theirs > own => {}
                Some(_) => found.push(format!(
                    "{file}:{line}: `{room}` imports `{other}`, which is not below it"
                )),
                None => found.push(format!(
                    "{file}:{line}: `{room}` imports `{other}`, which is not in the room order"
                )),
            }
        }
    }
    found
}

fn sources() -> BTreeMap<String, (String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let src = root.join("src");
    let mut paths = Vec::new();
    rust_files(&src, &mut paths);
    paths
        .into_iter()
        .map(|path| {
            let relative = path.strip_prefix(&src).expect("under src/").to_path_buf();
            let room = room_of(&relative);
            let source = fs::read_to_string(&path).expect("readable source");
            (format!("src/{}", relative.display()), (room, source))
        })
        // The library root and the binary stand above every room.
        .filter(|(file, _)| file != "src/lib.rs" && file != "src/main.rs")
        .collect()
}

fn order() -> Vec<String> {
    let doc = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/architecture.md");
    room_order(&fs::read_to_string(doc).expect("docs/architecture.md"))
}

#[test]
fn every_room_imports_only_rooms_below_it() {
    let order = order();
    assert!(order.len() > 5, "room order read from the doc: {order:?}");
    let found = violations(&order, &sources());
    assert!(
        found.is_empty(),
        "imports against the room order of docs/architecture.md:\n{}",
        found.join("\n")
    );
}

#[test]
fn a_planted_back_import_is_caught() {
    let order: Vec<String> = ["api", "pipeline", "breaker"].map(String::from).to_vec();
    let plant = |source: &str| {
        let files = BTreeMap::from([(
            "src/pipeline/x.rs".to_owned(),
            ("pipeline".to_owned(), source.to_owned()),
        )]);
        violations(&order, &files)
    };
    assert!(plant("use crate::breaker::Breaker;\nuse super::y;").is_empty());
    assert_eq!(
        plant("use crate::breaker::Breaker;\nuse crate::api::ApiError;"),
        ["src/pipeline/x.rs:2: `pipeline` imports `api`, which is not below it"]
    );
    // Grouped, multi-line and inline paths count; comments and strings of other crates do not.
    assert_eq!(
        plant("use crate::{\n    breaker::State,\n    api::{self, x},\n};").len(),
        1
    );
    assert_eq!(plant("fn f() -> crate::api::X { todo!() }").len(), 1);
    assert!(plant("// crate::api\n/* crate::api */\nuse other_crate::api;").is_empty());
    assert!(plant("let q = '\"'; let s = r#\"crate::api \" \"#; // crate::api").is_empty());
    assert_eq!(plant("let q = '\"';\nuse crate::api;").len(), 1);
    assert_eq!(plant("use crate::unknown;").len(), 1);
}
