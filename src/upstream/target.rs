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
    /// Its path as written, when parsing kept it as it is: then a checked tail made only of
    /// characters the URL parser keeps can be appended as text (see [`BaseUrl::verbatim`]).
    verbatim_path: Option<String>,
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
        let written = text
            .split_once("://")
            .map(|(_, rest)| rest.find('/').map_or("", |slash| &rest[slash..]));
        let verbatim_path = match (&parsed, written) {
            (Some(url), Some(path))
                if url.path() == path || (path.is_empty() && url.path() == "/") =>
            {
                Some(path.to_owned())
            }
            _ => None,
        };
        Self {
            origin: parsed.as_ref().and_then(Origin::of),
            parsed,
            verbatim_path,
        }
    }

    /// The request target for `tail` and `query` (which passed the path check) without
    /// building a URL, when every character of them is one the URL parser keeps as it is:
    /// then the target is the text appended, the same one [`join`](Self::join) and
    /// [`uri`](Self::uri) give (a test compares them). `None` when that is not certain.
    pub(super) fn verbatim(&self, tail: &str, query: Option<&str>) -> Option<Uri> {
        let (Some(base_path), Some(origin)) = (&self.verbatim_path, &self.origin) else {
            return None;
        };
        let kept =
            tail.bytes().all(kept_in_path) && query.is_none_or(|q| q.bytes().all(kept_in_query));
        if !kept {
            return None;
        }
        let mut text =
            String::with_capacity(base_path.len() + tail.len() + 2 + query.map_or(0, str::len));
        text.push_str(base_path);
        text.push_str(tail);
        if text.is_empty() {
            // A special URL's path is never empty.
            text.push('/');
        }
        if let Some(query) = query {
            text.push('?');
            text.push_str(query);
        }
        let path_and_query = PathAndQuery::try_from(text).ok()?;
        let mut parts = axum::http::uri::Parts::default();
        parts.scheme = Some(origin.scheme.clone());
        parts.authority = Some(origin.authority.clone());
        parts.path_and_query = Some(path_and_query);
        Uri::from_parts(parts).ok()
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

/// Whether the URL parser keeps `b` as it is in the path of an `http(s)` URL: printable ASCII
/// outside its path percent-encode set, and no `\` (a separator there). Dots need no care: the
/// path check refuses dot segments, encoded ones included.
fn kept_in_path(b: u8) -> bool {
    b.is_ascii_graphic()
        && !matches!(
            b,
            b'"' | b'#' | b'<' | b'>' | b'?' | b'`' | b'{' | b'}' | b'\\'
        )
}

/// Whether the URL parser keeps `b` as it is in the query of an `http(s)` URL (its special-query
/// percent-encode set).
fn kept_in_query(b: u8) -> bool {
    b.is_ascii_graphic() && !matches!(b, b'"' | b'#' | b'<' | b'>' | b'\'')
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
        let target = base.uri(&url);
        assert_eq!(
            target,
            Uri::try_from(url.as_str()).map_err(|e| e.to_string()),
            "{url}"
        );
        // The target appended as text, when it is, is the same.
        if let Some(verbatim) = base.verbatim(tail, query) {
            assert_eq!(Ok(verbatim), target, "{text} + {tail:?} + {query:?}");
        }
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
    fn plain_paths_are_appended_as_text_and_others_are_not() {
        let base = BaseUrl::new("http://127.0.0.1:8080/api");
        let uri = base
            .verbatim("/item/1", Some("a=1&b=%2F"))
            .expect("appended");
        assert_eq!(uri, "http://127.0.0.1:8080/api/item/1?a=1&b=%2F");
        let root = BaseUrl::new("http://127.0.0.1:8080");
        assert_eq!(
            root.verbatim("", None).expect("appended"),
            "http://127.0.0.1:8080/"
        );
        assert_eq!(
            root.verbatim("", Some("")).expect("appended"),
            "http://127.0.0.1:8080/?"
        );
        // Characters the parser encodes take the URL's way.
        assert!(base.verbatim("/\u{e9}", None).is_none());
        assert!(base.verbatim("/{x}", None).is_none());
        assert!(base.verbatim("/x", Some("q='")).is_none());
        // So does a base path the parser rewrites.
        let encoded = BaseUrl::new("http://example.test/\u{e9}");
        assert!(encoded.verbatim("/x", None).is_none());
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
