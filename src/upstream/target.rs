//! The URL an attempt is sent to: the upstream's base URL, parsed once, with the request's path
//! and query appended. Parsing the whole URL again for every attempt (scheme, authority and the
//! host's IDNA processing) cost more than a third of the gateway's own work per request.

use axum::http::header::{HOST, HeaderMap, HeaderValue};
use axum::http::uri::{Authority, PathAndQuery, Scheme, Uri};
use axum::http::{Method, Request};
use bytes::Bytes;
use http_body_util::Full;
use reqwest::Url;

/// The upstream's base URL, parsed once; `None` when it does not parse (the configuration
/// checks it, so only in theory), in which case every URL is parsed whole.
#[derive(Debug, Clone)]
pub(super) struct BaseUrl {
    parsed: Option<Url>,
    /// Its scheme and authority as the client takes them, and its `Host` header.
    origin: Option<Origin>,
}

#[derive(Debug, Clone)]
struct Origin {
    scheme: Scheme,
    authority: Authority,
    host: HeaderValue,
}

impl Origin {
    /// From a parsed URL, which has dropped a default port and normalised the host (lower
    /// case, IDNA, brackets around IPv6), as the `Host` header wants it.
    fn of(url: &Url) -> Option<Self> {
        let host = url.host_str()?;
        let authority = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        Some(Self {
            scheme: url.scheme().parse().ok()?,
            host: HeaderValue::from_str(&authority).ok()?,
            authority: authority.parse().ok()?,
        })
    }
}

impl BaseUrl {
    /// Parses `text` (`scheme://authority[/path]`, as the configuration keeps it).
    pub(super) fn new(text: &str) -> Self {
        let parsed = Url::parse(text).ok();
        Self {
            origin: parsed.as_ref().and_then(Origin::of),
            parsed,
        }
    }

    /// `url` (one [`join`](Self::join) gave) as the client's request target: the origin parsed
    /// once, only the path and query per request.
    pub(super) fn uri(&self, url: &Url) -> Result<Uri, String> {
        let Some(origin) = &self.origin else {
            return Uri::try_from(url.as_str()).map_err(|e| e.to_string());
        };
        let path = url.path();
        let mut path_and_query =
            String::with_capacity(path.len() + 1 + url.query().map_or(0, str::len));
        path_and_query.push_str(path);
        if let Some(query) = url.query() {
            path_and_query.push('?');
            path_and_query.push_str(query);
        }
        let path_and_query = PathAndQuery::try_from(path_and_query).map_err(|e| e.to_string())?;
        let mut parts = axum::http::uri::Parts::default();
        parts.scheme = Some(origin.scheme.clone());
        parts.authority = Some(origin.authority.clone());
        parts.path_and_query = Some(path_and_query);
        Uri::from_parts(parts).map_err(|e| e.to_string())
    }

    /// The request to send to `uri`, with the upstream's `Host` unless `headers` name one.
    pub(super) fn request(
        &self,
        method: &Method,
        uri: &Uri,
        mut headers: HeaderMap,
        body: &Bytes,
    ) -> Request<Full<Bytes>> {
        if let Some(origin) = &self.origin {
            // The client would otherwise format it from the URI for every request.
            headers.entry(HOST).or_insert_with(|| origin.host.clone());
        }
        let mut request = Request::new(Full::new(body.clone()));
        *request.method_mut() = method.clone();
        *request.uri_mut() = uri.clone();
        *request.headers_mut() = headers;
        request
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
        let base = BaseUrl::new(text);
        let joined = base.join(text, base_path, tail, query);
        assert_eq!(
            joined,
            whole(text, tail, query),
            "{text} + {tail:?} + {query:?}"
        );
        // The request target built from the parsed origin is the one a whole parse gives.
        let url = joined.expect("joins");
        assert_eq!(
            base.uri(&url),
            Uri::try_from(url.as_str()).map_err(|e| e.to_string()),
            "{url}"
        );
    }

    #[test]
    fn the_host_header_is_the_normalised_authority() {
        for (text, host) in [
            ("http://127.0.0.1:8080/api", "127.0.0.1:8080"),
            ("https://Example.COM:443", "example.com"),
            ("http://[::1]:9000", "[::1]:9000"),
            ("http://b\u{fc}cher.example", "xn--bcher-kva.example"),
        ] {
            let base = BaseUrl::new(text);
            let url = base.join(text, "", "/x", None).expect("joins");
            let uri = base.uri(&url).expect("a target");
            let request = base.request(&Method::GET, &uri, HeaderMap::new(), &Bytes::new());
            assert_eq!(request.headers()[HOST], host, "{text}");
            assert_eq!(request.uri().path(), "/x");
        }
        // A Host already given is kept.
        let base = BaseUrl::new("http://127.0.0.1:1");
        let url = base
            .join("http://127.0.0.1:1", "", "", None)
            .expect("joins");
        let uri = base.uri(&url).expect("a target");
        let mut given = HeaderMap::new();
        given.insert(HOST, HeaderValue::from_static("other"));
        let request = base.request(&Method::GET, &uri, given, &Bytes::new());
        assert_eq!(request.headers()[HOST], "other");
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
