//! What a stored answer is filed under, so that the cache never serves one client's answer to
//! another: a request's credentials and the host it addressed are part of its key (hashed), and
//! an answer's `Vary` is honoured.
//!
//! Why a key rather than refusing to cache: the seed services that fall back to the cache (TMDB,
//! Plex) carry a token on every request, so refusing would leave them no cache at all. A key
//! holding the SHA-256 of the credentials serves each client its own answers and nobody else's,
//! and keeps the credentials themselves out of memory dumps and the store.

use std::borrow::Cow;

use axum::http::HeaderMap;
use axum::http::header::{AUTHORIZATION, COOKIE, VARY};
use sha2::{Digest, Sha256};

use crate::config::Credentials;

use super::CachedResponse;

/// Separates a path and query from the hash of what else it is filed under. A request target
/// never holds `#` (the path rules refuse it), so a client cannot spell another's key.
const SCOPE_MARK: &str = "#scope=";

/// Headers the gateway sends upstream that shape an answer (absolute links, redirects) without
/// being in the path: the gateway sets them from the client's `Host` (which the client chooses)
/// or keeps a trusted proxy's.
const SHAPING: [&str; 3] = ["forwarded", "x-forwarded-host", "x-forwarded-proto"];

/// The stored pseudo-header holding the hash of the request headers the answer's `Vary` names.
/// Not a valid header name, so it is never served and cannot collide with a real header.
pub const VARIANT: &str = ":variant";

/// The key below the upstream that a GET for `path_and_query` with (outgoing) `headers` is filed
/// under: the path and query without the parameters `credentials` lists, followed, when the
/// request carries any credential (`Authorization`, `Cookie`, the listed headers and parameters)
/// or forwarding header ([`SHAPING`]; `X-Forwarded-Proto: http` is the gateway's own and
/// counts for nothing), by `#scope=` and the SHA-256 of them all. Borrowed when it has none.
pub fn target<'a>(
    credentials: &Credentials,
    headers: &HeaderMap,
    path_and_query: &'a str,
) -> Cow<'a, str> {
    let mut found: Vec<(u8, Cow<'_, str>, Cow<'_, [u8]>)> = Vec::new();
    for name in [AUTHORIZATION.as_str(), COOKIE.as_str()]
        .into_iter()
        .chain(credentials.headers.iter().map(String::as_str))
    {
        for value in headers.get_all(name) {
            found.push((b'h', Cow::Borrowed(name), Cow::Borrowed(value.as_bytes())));
        }
    }
    for name in SHAPING {
        for value in headers.get_all(name) {
            if name == "x-forwarded-proto" && value == "http" {
                continue;
            }
            found.push((b'f', Cow::Borrowed(name), Cow::Borrowed(value.as_bytes())));
        }
    }
    let (path, query) = match path_and_query.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (path_and_query, None),
    };
    let mut kept: Vec<&str> = Vec::new();
    if let Some(query) = query {
        for pair in query.split('&') {
            match credential_param(credentials, pair) {
                Some((name, value)) => found.push((b'q', name, value)),
                None => kept.push(pair),
            }
        }
    }
    if found.is_empty() {
        return Cow::Borrowed(path_and_query);
    }
    // The same credentials in another order are the same client.
    found.sort_unstable();
    let mut hash = Sha256::new();
    for (kind, name, value) in &found {
        hash.update([*kind]);
        for part in [name.as_bytes(), value.as_ref()] {
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part);
        }
    }
    let mut key = String::with_capacity(path_and_query.len() + SCOPE_MARK.len() + 64);
    key.push_str(path);
    if !kept.is_empty() {
        key.push('?');
        key.push_str(&kept.join("&"));
    }
    key.push_str(SCOPE_MARK);
    push_hex(&mut key, &hash.finalize());
    Cow::Owned(key)
}

/// The decoded name (lower case) and value of `pair` if its name is a credential parameter.
/// Names are compared decoded and without case: an upstream reading `api%5Fkey` or `API_KEY`
/// as `api_key` must not see a token the key ignored.
fn credential_param<'a>(
    credentials: &Credentials,
    pair: &'a str,
) -> Option<(Cow<'a, str>, Cow<'a, [u8]>)> {
    if credentials.params.is_empty() || pair.is_empty() {
        return None;
    }
    let (name, value) = url::form_urlencoded::parse(pair.as_bytes()).next()?;
    let name = name.to_ascii_lowercase();
    if !credentials.params.contains(&name) {
        return None;
    }
    let value = match value {
        Cow::Borrowed(v) => Cow::Borrowed(v.as_bytes()),
        Cow::Owned(v) => Cow::Owned(v.into_bytes()),
    };
    Some((Cow::Owned(name), value))
}

/// The field names an answer's `Vary` lists, lower case; `None` for `Vary: *`, which no
/// request matches.
pub fn vary_names(response: &HeaderMap) -> Option<Vec<String>> {
    let mut names = Vec::new();
    for value in response.get_all(VARY) {
        // An unreadable Vary cannot be matched: treat it as `*`.
        let text = value.to_str().ok()?;
        for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if name == "*" {
                return None;
            }
            let name = name.to_ascii_lowercase();
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    names.sort_unstable();
    Some(names)
}

/// The hash of `request`'s values of the headers `names` (sorted, lower case), as the
/// [`VARIANT`] pseudo-header keeps it. Hashed: a `Vary: Cookie` must not store the cookie.
pub fn variant(names: &[String], request: &HeaderMap) -> String {
    let mut hash = Sha256::new();
    for name in names {
        hash.update((name.len() as u64).to_be_bytes());
        hash.update(name.as_bytes());
        for value in request.get_all(name.as_str()) {
            hash.update([1]);
            hash.update((value.len() as u64).to_be_bytes());
            hash.update(value.as_bytes());
        }
        hash.update([0]);
    }
    let mut text = String::with_capacity(64);
    push_hex(&mut text, &hash.finalize());
    text
}

/// Whether `cached` may answer a request with `headers`: it has no `Vary`, or the request's
/// values of the headers it names are those of the request that produced it.
pub fn serves(cached: &CachedResponse, headers: &HeaderMap) -> bool {
    let mut vary = cached
        .headers
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case(VARY.as_str()))
        .peekable();
    if vary.peek().is_none() {
        return true;
    }
    let mut response = HeaderMap::new();
    for (_, value) in vary {
        match axum::http::HeaderValue::from_bytes(value) {
            Ok(value) => response.append(VARY, value),
            Err(_) => return false,
        };
    }
    let Some(names) = vary_names(&response) else {
        return false;
    };
    let stored = cached
        .headers
        .iter()
        .find(|(name, _)| name == VARIANT)
        .map(|(_, value)| value.as_slice());
    stored == Some(variant(&names, headers).as_bytes())
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use axum::http::HeaderValue;
    use bytes::Bytes;

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    fn cached(pairs: Vec<(String, Vec<u8>)>) -> CachedResponse {
        CachedResponse {
            upstream: "tmdb".into(),
            path_and_query: "/".into(),
            status: 200,
            headers: pairs,
            body: Bytes::new(),
            stored_at: SystemTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn a_request_without_credentials_keeps_its_target_unchanged() {
        let defaults = Credentials::default();
        let plain = headers(&[("accept", "*/*"), ("x-forwarded-proto", "http")]);
        assert!(matches!(
            target(&defaults, &plain, "/a?b=1&c"),
            Cow::Borrowed("/a?b=1&c")
        ));
    }

    #[test]
    fn credential_parameters_leave_the_target_and_join_the_hash() {
        let key = target(
            &Credentials::default(),
            &HeaderMap::new(),
            "/m?api%5Fkey=s3&id=7",
        );
        let (path, hash) = key.split_once(SCOPE_MARK).expect("a scope");
        assert_eq!(path, "/m?id=7");
        assert_eq!(hash.len(), 64);
        assert!(!key.contains("s3"));
        let only = target(&Credentials::default(), &HeaderMap::new(), "/m?token=s3");
        assert!(only.starts_with("/m#scope="), "{only}");
    }

    #[test]
    fn vary_names_are_lower_case_sorted_and_star_matches_nothing() {
        let names = vary_names(&headers(&[("vary", "X-B, accept"), ("vary", "Accept")]));
        assert_eq!(names, Some(vec!["accept".to_owned(), "x-b".to_owned()]));
        assert_eq!(vary_names(&headers(&[("vary", "accept, *")])), None);
        assert_eq!(vary_names(&HeaderMap::new()), Some(Vec::new()));
    }

    #[test]
    fn an_answer_with_vary_but_no_recorded_variant_serves_nobody() {
        let vary = ("vary".to_owned(), b"accept".to_vec());
        assert!(!serves(&cached(vec![vary.clone()]), &HeaderMap::new()));
        let names = vec!["accept".to_owned()];
        let json = headers(&[("accept", "application/json")]);
        let recorded = (VARIANT.to_owned(), variant(&names, &json).into_bytes());
        let entry = cached(vec![vary, recorded]);
        assert!(serves(&entry, &json));
        assert!(!serves(&entry, &headers(&[("accept", "text/html")])));
        assert!(serves(&cached(Vec::new()), &json), "no Vary: everyone");
    }
}
