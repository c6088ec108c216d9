//! The proxied path check (used by the pipeline and again before every send): what follows `/proxy/{upstream}` is appended to the upstream's URL
//! as is, so anything that a server could resolve to another place is refused here.

use std::fmt;

/// Why a proxied path was refused (answered 400 `bad_path`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadPath {
    reason: &'static str,
}

impl BadPath {
    /// What is wrong, for the client's error message.
    pub fn reason(&self) -> &'static str {
        self.reason
    }
}

impl fmt::Display for BadPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the proxied path is not allowed: {}", self.reason)
    }
}

impl std::error::Error for BadPath {}

/// Checks `tail` (the raw path after `/proxy/{upstream}`) and `query`, and joins them into the
/// path and query sent upstream, unchanged.
///
/// Refused, because some server on the way could resolve them elsewhere: `.` and `..` segments
/// (also with `;params`, which Tomcat-style servers strip), encoded dots, slashes and
/// backslashes (`%2e`, `%2f`, `%5c`, also double-encoded as `%252e`), backslashes, empty
/// segments (`//`, which is also how a scheme-relative URL starts), a tail not starting with
/// `/` (an absolute URL or authority), and control characters, spaces or `#`.
pub fn path_and_query(tail: &str, query: Option<&str>) -> Result<String, BadPath> {
    check(tail, query)?;
    Ok(match query {
        Some(query) => format!("{tail}?{query}"),
        None => tail.to_owned(),
    })
}

/// The rules of [`path_and_query`] without building the result.
pub(crate) fn check(tail: &str, query: Option<&str>) -> Result<(), BadPath> {
    check_tail(tail)?;
    match query.and_then(bad_chars) {
        Some(reason) => Err(BadPath { reason }),
        None => Ok(()),
    }
}

/// The path rules of [`path_and_query`], alone.
pub fn check_tail(tail: &str) -> Result<(), BadPath> {
    let refuse = |reason| Err(BadPath { reason });
    if tail.is_empty() {
        return Ok(());
    }
    if !tail.starts_with('/') {
        return refuse("it must start with `/`");
    }
    if let Some(reason) = bad_chars(tail) {
        return refuse(reason);
    }
    if tail.contains('\\') {
        return refuse("backslashes are not allowed");
    }
    if tail.contains("//") {
        return refuse("empty segments (`//`) are not allowed");
    }
    // Only a `%` can start an encoded separator; most paths have none, and lower-casing one
    // allocates (this runs twice per proxied request).
    if tail.contains('%') {
        let mut lower = tail.to_ascii_lowercase();
        // `%25` is `%`: undo any depth of double encoding before looking for encoded separators.
        while lower.contains("%25") {
            lower = lower.replace("%25", "%");
        }
        if ["%2e", "%2f", "%5c"].iter().any(|e| lower.contains(e)) {
            return refuse("encoded dots, slashes and backslashes are not allowed");
        }
    }
    let dot_segment = tail.split('/').any(|segment| {
        let name = segment.split(';').next().unwrap_or(segment);
        name == "." || name == ".."
    });
    if dot_segment {
        return refuse("`.` and `..` segments are not allowed");
    }
    Ok(())
}

fn bad_chars(text: &str) -> Option<&'static str> {
    text.bytes()
        .any(|b| b <= b' ' || b == 0x7f || b == b'#')
        .then_some("spaces, control characters and `#` are not allowed")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_paths_pass_unchanged() {
        for ok in [
            "",
            "/",
            "/library/sections",
            "/a/b.c/..d/.e/f..",
            "/search%20term",
            "/a;b=c",
            "/%41",
        ] {
            assert_eq!(check_tail(ok), Ok(()), "{ok:?}");
        }
        assert_eq!(
            path_and_query("/movie/1", Some("api_key=x&q=a%2Fb")),
            Ok("/movie/1?api_key=x&q=a%2Fb".into())
        );
        assert_eq!(path_and_query("", Some("a=1")), Ok("?a=1".into()));
    }

    #[test]
    fn traversal_and_host_escapes_are_refused() {
        for bad in [
            "/../admin",
            "/..",
            "/a/../../b",
            "/a/./b",
            "/.",
            "/..;/admin",
            "/.;x/a",
            "/%2e%2e/x",
            "/%2E%2E/x",
            "/%2F..",
            "/a%2fb",
            "/a%5cb",
            "/%252e%252e/x",
            "/%25252f",
            "/a\\b",
            "\\\\evil.example",
            "//evil.example/",
            "/a//b",
            "/http://evil.example/",
            "http://evil.example/",
            "evil.example",
            "@evil.example",
            "/a b",
            "/a\tb",
            "/a#frag",
        ] {
            assert!(check_tail(bad).is_err(), "{bad:?} must be refused");
        }
        assert!(path_and_query("/a", Some("x=1#frag")).is_err());
        assert!(path_and_query("/a", Some("x=1 2")).is_err());
    }
}
