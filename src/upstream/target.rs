//! The URL an attempt is sent to: the upstream's base URL, parsed once, with the request's path
//! and query appended. Parsing the whole URL again for every attempt (scheme, authority and the
//! host's IDNA processing) cost more than a third of the gateway's own work per request.

use reqwest::Url;

/// The upstream's base URL, parsed once; `None` when it does not parse (the configuration
/// checks it, so only in theory), in which case every URL is parsed whole.
#[derive(Debug, Clone)]
pub(super) struct BaseUrl {
    parsed: Option<Url>,
}

impl BaseUrl {
    /// Parses `text` (`scheme://authority[/path]`, as the configuration keeps it).
    pub(super) fn new(text: &str) -> Self {
        Self {
            parsed: Url::parse(text).ok(),
        }
    }

    /// `text` + `tail` + (`?query`) parsed as one URL, where `text` is what this was made from
    /// and `base_path` its path as written (`text` ends with it). `tail` and `query` must have
    /// passed the path check (no spaces, control characters or `#`): for those, setting the
    /// parsed base's path to `base_path` + `tail` and its query gives the URL a whole parse
    /// gives, through the same path and query parsers (a test compares the two).
    pub(super) fn join(
        &self,
        text: &str,
        base_path: &str,
        tail: &str,
        query: Option<&str>,
    ) -> Result<Url, String> {
        let Some(base) = &self.parsed else {
            return whole(text, tail, query);
        };
        let mut url = base.clone();
        let mut path = String::with_capacity(base_path.len() + tail.len());
        path.push_str(base_path);
        path.push_str(tail);
        url.set_path(&path);
        url.set_query(query);
        Ok(url)
    }
}

/// The same URL by parsing it whole.
fn whole(text: &str, tail: &str, query: Option<&str>) -> Result<Url, String> {
    let joined = match query {
        Some(query) => format!("{text}{tail}?{query}"),
        None => format!("{text}{tail}"),
    };
    Url::parse(&joined).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::upstream::path::check;

    const BASES: [(&str, &str); 6] = [
        ("http://127.0.0.1:8080", ""),
        ("http://127.0.0.1:8080/api", "/api"),
        ("https://Example.COM", ""),
        ("http://example.test/a%20b/c", "/a%20b/c"),
        ("http://[::1]:9000/v1", "/v1"),
        ("http://xn--bcher-kva.example", ""),
    ];

    fn same_as_whole(text: &str, base_path: &str, tail: &str, query: Option<&str>) {
        let joined = BaseUrl::new(text).join(text, base_path, tail, query);
        assert_eq!(
            joined,
            whole(text, tail, query),
            "{text} + {tail:?} + {query:?}"
        );
    }

    #[test]
    fn appending_gives_what_a_whole_parse_gives() {
        let tails = [
            "",
            "/",
            "/item",
            "/a/b.c/..d",
            "/search%20term",
            "/a;b=c",
            "/%41",
            "/é/ü",
            "/a|b",
            "/{x}",
            "/a'b\"c<d>",
            "/~user/%7e",
            "/a:b@c",
        ];
        let queries = [
            None,
            Some(""),
            Some("a=1"),
            Some("a=1&b=%2F"),
            Some("q?x"),
            Some("é='\"<>"),
            Some("x=\\y"),
        ];
        for (text, base_path) in BASES {
            for tail in tails {
                for query in queries {
                    assert_eq!(check(tail, query), Ok(()), "{tail:?} {query:?}");
                    same_as_whole(text, base_path, tail, query);
                }
            }
        }
    }

    #[test]
    fn an_unparsable_base_falls_back_to_the_whole_parse() {
        let base = BaseUrl::new("http://exa mple");
        assert!(base.join("http://exa mple", "", "/x", None).is_err());
    }

    proptest! {
        #[test]
        fn any_checked_path_appends_as_a_whole_parse_would(
            base in 0..BASES.len(),
            tail in "(/[a-zA-Z0-9._~!$&'()*+,;=:@%|{}^`\\[\\]\"<>é-]{0,6}){0,4}",
            query in proptest::option::of("[a-zA-Z0-9._~!$&'()*+,;=:@%/?|{}^`\\[\\]\"<>\\\\é-]{0,12}"),
        ) {
            prop_assume!(check(&tail, query.as_deref()).is_ok());
            let (text, base_path) = BASES[base];
            same_as_whole(text, base_path, &tail, query.as_deref());
        }
    }
}
