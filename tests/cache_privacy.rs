//! The cache fallback never serves one client's answer to another: requests with credentials
//! are filed under their credentials, `Vary` is honoured, and the headers that shape an answer
//! without being in the key are the gateway's own unless a trusted proxy set them. Real loopback
//! upstreams; the breaker is forced open so the fallback answers.

// Real servers run in real time: the cache stamps entries with the system's clock.
#![allow(clippy::disallowed_methods)]

mod proxy_support;
mod support;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use breakerbox::fallback::cache::{CacheLimits, ResponseCache};
use breakerbox::pipeline::{FallbackKind, Pipeline};
use proxy_support::{TestUpstream, assert_error, json, pipeline, send, upstream};
use support::store::open;
use support::temp_dir::TempDir;
use support::wait::wait_until;

const CACHE: &str = "fallback = \"cache\"\ncache_ttl = \"1h\"";

fn request(uri: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut builder = Request::builder().uri(uri);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(Body::empty()).expect("request")
}

/// Sends `uri` with `headers` while the upstream answers, then forces its breaker open.
async fn cached_then_open(
    p: &Pipeline,
    server: &TestUpstream,
    uri: &str,
    headers: &[(&str, &str)],
) -> Arc<breakerbox::upstream::Upstream> {
    let up = upstream("plex", &server.url(), CACHE);
    let tail = tail_of(uri);
    let (status, _, _, _) = send(p, &up, request(uri, headers), &tail).await;
    assert_eq!(status, 200, "the upstream answered {uri}");
    assert!(!p.cache().is_empty(), "{uri} was kept");
    up.breaker().force_open();
    up
}

fn tail_of(uri: &str) -> String {
    let path = uri.split('?').next().unwrap_or(uri);
    path.trim_start_matches("/proxy/plex").to_owned()
}

/// Asserts the open breaker's own 503, not a stored answer.
async fn not_served(
    p: &Pipeline,
    up: &breakerbox::upstream::Upstream,
    uri: &str,
    headers: &[(&str, &str)],
) {
    let (status, answer_headers, body, outcome) =
        send(p, up, request(uri, headers), &tail_of(uri)).await;
    assert_eq!(
        status,
        503,
        "{uri} with {headers:?} must not be served another's answer: {}",
        String::from_utf8_lossy(&body)
    );
    assert_error(&body, "circuit_open");
    assert!(!answer_headers.contains_key("x-breakerbox-fallback"));
    assert_eq!(outcome.fallback, Some(FallbackKind::Error));
}

/// Asserts a stored answer is served; returns its body as JSON (the echo route's).
async fn served(
    p: &Pipeline,
    up: &breakerbox::upstream::Upstream,
    uri: &str,
    headers: &[(&str, &str)],
) -> serde_json::Value {
    let (status, answer_headers, body, _) = send(p, up, request(uri, headers), &tail_of(uri)).await;
    assert_eq!(
        status, 200,
        "{uri} with {headers:?} is served from the cache"
    );
    assert_eq!(answer_headers["x-breakerbox-fallback"], "cache");
    json(&body)
}

#[tokio::test]
async fn an_answer_to_a_cookie_is_never_served_to_another_client() {
    let server = TestUpstream::start().await;
    let p = pipeline();
    let alice = [("cookie", "session=a")];
    let up = cached_then_open(&p, &server, "/proxy/plex/me", &alice).await;
    not_served(&p, &up, "/proxy/plex/me", &[]).await;
    not_served(&p, &up, "/proxy/plex/me", &[("cookie", "session=b")]).await;
    let body = served(&p, &up, "/proxy/plex/me", &alice).await;
    assert_eq!(body["headers"]["cookie"], "session=a", "alice's own answer");
}

#[tokio::test]
async fn an_answer_to_a_plex_token_header_is_never_served_to_another_client() {
    let server = TestUpstream::start().await;
    let p = pipeline();
    let token = [("x-plex-token", "alice-token")];
    let up = cached_then_open(&p, &server, "/proxy/plex/library", &token).await;
    not_served(&p, &up, "/proxy/plex/library", &[]).await;
    not_served(&p, &up, "/proxy/plex/library", &[("X-Plex-Token", "bob")]).await;
    not_served(
        &p,
        &up,
        "/proxy/plex/library",
        &[("x-api-key", "alice-token")],
    )
    .await;
    served(
        &p,
        &up,
        "/proxy/plex/library",
        &[("X-PLEX-TOKEN", "alice-token")],
    )
    .await;
}

#[tokio::test]
async fn an_answer_to_a_plex_token_in_the_query_is_kept_without_the_token() {
    let server = TestUpstream::start().await;
    let dir = TempDir::new();
    let store = Arc::new(open(&dir.sqlite_url("cache.db")).await);
    let cache = ResponseCache::with_store(CacheLimits::default(), store.clone());
    let p = Pipeline::new(cache, None);
    // The `status` route answers without echoing the request, so the token can only reach
    // the database through the key.
    let uri = "/proxy/plex/status/200?type=1&X-Plex-Token=alice-token";
    let up = cached_then_open(&p, &server, uri, &[]).await;
    let on_disk = || {
        std::fs::read_dir(&dir.0)
            .expect("the folder")
            .flatten()
            .flat_map(|entry| std::fs::read(entry.path()).unwrap_or_default())
            .collect::<Vec<u8>>()
    };
    let contains =
        |haystack: &[u8], needle: &[u8]| haystack.windows(needle.len()).any(|w| w == needle);
    wait_until(
        "the answer written to SQLite",
        Duration::from_secs(10),
        || {
            let found = contains(&on_disk(), b"/status/200");
            async move { found }
        },
    )
    .await;
    assert!(
        !contains(&on_disk(), b"alice-token"),
        "the token is never stored in clear"
    );

    not_served(&p, &up, "/proxy/plex/status/200?type=1", &[]).await;
    not_served(
        &p,
        &up,
        "/proxy/plex/status/200?type=1&X-Plex-Token=bob",
        &[],
    )
    .await;
    not_served(&p, &up, "/proxy/plex/status/200?type=1&X-Plex-Token=", &[]).await;
    let with_header = [("x-plex-token", "alice-token")];
    not_served(&p, &up, "/proxy/plex/status/200?type=1", &with_header).await;
    for same in [
        "/proxy/plex/status/200?type=1&X-Plex-Token=alice-token",
        "/proxy/plex/status/200?X-Plex-Token=alice-token&type=1",
        "/proxy/plex/status/200?type=1&x-plex-token=alice-token",
    ] {
        let (status, headers, _, _) = send(&p, &up, request(same, &[]), &tail_of(same)).await;
        assert_eq!(status, 200, "{same} is alice's own");
        assert_eq!(headers["x-breakerbox-fallback"], "cache");
    }
}

#[tokio::test]
async fn credential_lists_are_configurable_per_upstream() {
    let server = TestUpstream::start().await;
    let p = pipeline();
    let extra =
        format!("{CACHE}\ncredential_headers = [\"X-Tenant\"]\ncredential_params = [\"sig\"]");
    let up = upstream("plex", &server.url(), &extra);
    let tenant = [("x-tenant", "a")];
    send(&p, &up, request("/proxy/plex/t", &tenant), "/t").await;
    send(&p, &up, request("/proxy/plex/s?sig=a", &[]), "/s").await;
    up.breaker().force_open();
    not_served(&p, &up, "/proxy/plex/t", &[]).await;
    not_served(&p, &up, "/proxy/plex/s?sig=b", &[]).await;
    served(&p, &up, "/proxy/plex/t", &tenant).await;
    served(&p, &up, "/proxy/plex/s?sig=a", &[]).await;
}

#[tokio::test]
async fn an_answer_is_served_only_to_requests_its_vary_headers_match() {
    let server = TestUpstream::start().await;
    let p = pipeline();
    let french = [("accept-language", "fr")];
    let uri = "/proxy/plex/vary/Accept-Language,X-Theme";
    let up = cached_then_open(&p, &server, uri, &french).await;
    not_served(&p, &up, uri, &[("accept-language", "en")]).await;
    not_served(&p, &up, uri, &[]).await;
    not_served(
        &p,
        &up,
        uri,
        &[("accept-language", "fr"), ("x-theme", "dark")],
    )
    .await;
    let body = served(&p, &up, uri, &[("Accept-Language", "fr"), ("x-other", "1")]).await;
    assert_eq!(body["accept-language"], "fr", "the French answer");
}

#[tokio::test]
async fn an_answer_with_vary_star_is_never_kept_nor_served() {
    let server = TestUpstream::start().await;
    let p = pipeline();
    let up = upstream("plex", &server.url(), CACHE);
    let (status, _, _, _) =
        send(&p, &up, request("/proxy/plex/vary/star", &[]), "/vary/star").await;
    assert_eq!(status, 200);
    let (status, _, _, _) = send(
        &p,
        &up,
        request("/proxy/plex/vary/a,star", &[]),
        "/vary/a,star",
    )
    .await;
    assert_eq!(status, 200);
    assert!(p.cache().is_empty(), "`Vary: *` matches no later request");
    up.breaker().force_open();
    not_served(&p, &up, "/proxy/plex/vary/star", &[]).await;

    // One kept by an older gateway (the store outlives versions) is not served either.
    p.cache().insert(breakerbox::fallback::CachedResponse {
        upstream: "plex".into(),
        path_and_query: "/old".into(),
        status: 200,
        headers: vec![("vary".into(), b"*".to_vec())],
        body: bytes::Bytes::from_static(b"old"),
        stored_at: std::time::SystemTime::now(),
    });
    not_served(&p, &up, "/proxy/plex/old", &[]).await;
}

/// A request as a client at `client` sends it, spoofing every forwarding header.
fn spoofed(uri: &str, host: &str) -> Request<Body> {
    request(
        uri,
        &[
            ("host", host),
            ("x-forwarded-host", "evil.example"),
            ("x-forwarded-proto", "https"),
            ("forwarded", "for=6.6.6.6;host=evil.example;proto=https"),
            ("x-real-ip", "6.6.6.6"),
        ],
    )
}

async fn send_from(
    p: &Pipeline,
    up: &breakerbox::upstream::Upstream,
    request: Request<Body>,
    client: [u8; 4],
) -> (u16, serde_json::Value) {
    let tail = tail_of(&request.uri().to_string());
    let (response, _) = p.proxy_from(up, request, &tail, Some(client.into())).await;
    let status = response.status().as_u16();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    (status, json(&body))
}

#[tokio::test]
async fn a_spoofed_forwarded_host_is_replaced_and_never_reaches_another_client() {
    let server = TestUpstream::start().await;
    let p = pipeline();
    let up = upstream("plex", &server.url(), CACHE);
    let (status, _) = send_from(
        &p,
        &up,
        spoofed("/proxy/plex/page", "gw.local"),
        [10, 0, 0, 9],
    )
    .await;
    assert_eq!(status, 200);
    let seen = server.last().headers;
    assert_eq!(
        seen["x-forwarded-host"], "gw.local",
        "the Host the client reached"
    );
    assert_eq!(seen["x-forwarded-proto"], "http");
    assert_eq!(seen["x-real-ip"], "10.0.0.9");
    assert_eq!(seen["x-forwarded-for"], "10.0.0.9");
    assert!(!seen.contains_key("forwarded"), "{seen:?}");

    // The Host itself is the client's to choose: an answer shaped by another Host is kept apart.
    let (status, _) = send_from(
        &p,
        &up,
        spoofed("/proxy/plex/other", "evil.example"),
        [10, 0, 0, 9],
    )
    .await;
    assert_eq!(status, 200);
    up.breaker().force_open();
    let (status, body) = send_from(
        &p,
        &up,
        request("/proxy/plex/page", &[("host", "gw.local")]),
        [10, 0, 0, 7],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["headers"]["x-forwarded-host"], "gw.local");
    let (status, body) = send_from(
        &p,
        &up,
        request("/proxy/plex/other", &[("host", "gw.local")]),
        [10, 0, 0, 7],
    )
    .await;
    assert_eq!(
        status, 503,
        "evil.example's answer is not gw.local's: {body}"
    );
}

#[tokio::test]
async fn forwarding_headers_from_a_trusted_proxy_are_kept() {
    let server = TestUpstream::start().await;
    let trusted = [
        "10.1.0.0/16".parse().expect("a CIDR"),
        "192.0.2.7/32".parse().expect("a CIDR"),
    ];
    let p = pipeline().with_trusted_proxies(trusted);
    let up = upstream("plex", &server.url(), "");
    send_from(
        &p,
        &up,
        spoofed("/proxy/plex/page", "gw.local"),
        [10, 1, 2, 3],
    )
    .await;
    let seen = server.last().headers;
    assert_eq!(seen["x-forwarded-host"], "evil.example");
    assert_eq!(seen["x-forwarded-proto"], "https");
    assert_eq!(seen["x-real-ip"], "6.6.6.6");
    assert_eq!(
        seen["forwarded"],
        "for=6.6.6.6;host=evil.example;proto=https"
    );

    // Just outside the trusted range: replaced.
    send_from(
        &p,
        &up,
        spoofed("/proxy/plex/page", "gw.local"),
        [10, 2, 0, 1],
    )
    .await;
    let seen = server.last().headers;
    assert_eq!(seen["x-forwarded-host"], "gw.local");
    assert_eq!(seen["x-real-ip"], "10.2.0.1");
    assert!(!seen.contains_key("forwarded"));
}

mod key_rules {
    //! The cache-key rules against a model: two requests share a key exactly when they carry the
    //! same credentials (header and parameter names in any case, in any order) and the same
    //! other query; no credential value ever appears in a key.

    use axum::http::{HeaderMap, HeaderName, HeaderValue};
    use breakerbox::config::Credentials;
    use breakerbox::fallback::cache_key::target;
    use proptest::prelude::*;

    const HEADERS: [&str; 8] = [
        "authorization",
        "cookie",
        "x-api-key",
        "x-plex-token",
        "x-api-token",
        "proxy-authorization",
        "accept",
        "x-other",
    ];
    const PARAMS: [&str; 7] = [
        "x-plex-token",
        "api_key",
        "apikey",
        "token",
        "access_token",
        "type",
        "id",
    ];
    const VALUES: [&str; 4] = ["", "SECRETalice", "SECRETbob", "SECRET"];

    #[derive(Debug, Clone)]
    struct Sent {
        headers: Vec<(String, &'static str)>,
        params: Vec<(String, &'static str)>,
    }

    /// A name from `pool` in a random mix of cases.
    fn cased(pool: &'static [&'static str]) -> impl Strategy<Value = String> {
        (0..pool.len(), any::<u64>()).prop_map(move |(i, bits)| {
            pool[i]
                .chars()
                .enumerate()
                .map(|(n, c)| {
                    if bits >> (n % 64) & 1 == 1 {
                        c.to_ascii_uppercase()
                    } else {
                        c
                    }
                })
                .collect()
        })
    }

    fn sent() -> impl Strategy<Value = Sent> {
        let value = (0..VALUES.len()).prop_map(|i| VALUES[i]);
        (
            prop::collection::vec((cased(&HEADERS), value.clone()), 0..4),
            prop::collection::vec((cased(&PARAMS), value), 0..4),
        )
            .prop_map(|(headers, mut params)| {
                // Other parameters take plain values, so a `SECRET` in a key can only be a
                // credential's.
                for (name, value) in &mut params {
                    if ["type", "id"].contains(&name.to_ascii_lowercase().as_str()) {
                        *value = if value.is_empty() { "" } else { "plain" };
                    }
                }
                Sent { headers, params }
            })
    }

    fn key(sent: &Sent) -> String {
        let mut headers = HeaderMap::new();
        for (name, value) in &sent.headers {
            let name = HeaderName::from_bytes(name.as_bytes()).expect("a name");
            headers.append(name, HeaderValue::from_static(value));
        }
        let query: Vec<String> = sent
            .params
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect();
        let path = if query.is_empty() {
            "/library".to_owned()
        } else {
            format!("/library?{}", query.join("&"))
        };
        target(&Credentials::default(), &headers, &path).into_owned()
    }

    /// The model: the credentials as a sorted list of (kind, lower-case name, value), and the
    /// other parameters as sent.
    #[allow(clippy::type_complexity)]
    fn model(
        sent: &Sent,
    ) -> (
        Vec<(char, String, &'static str)>,
        Vec<(String, &'static str)>,
    ) {
        let defaults = Credentials::default();
        let mut credentials = Vec::new();
        for (name, value) in &sent.headers {
            let name = name.to_ascii_lowercase();
            let always = name == "authorization" || name == "cookie";
            if always || defaults.headers.contains(&name) {
                credentials.push(('h', name, *value));
            }
        }
        let mut others = Vec::new();
        for (name, value) in &sent.params {
            if defaults.params.contains(&name.to_ascii_lowercase()) {
                credentials.push(('q', name.to_ascii_lowercase(), *value));
            } else {
                others.push((name.clone(), *value));
            }
        }
        credentials.sort();
        (credentials, others)
    }

    proptest! {
        #[test]
        fn keys_are_shared_exactly_by_the_same_credentials(a in sent(), b in sent()) {
            let (key_a, key_b) = (key(&a), key(&b));
            prop_assert_eq!(key_a == key_b, model(&a) == model(&b), "{} / {}", key_a, key_b);
            prop_assert!(!key_a.contains("SECRET"), "a credential in clear: {}", key_a);
        }

        #[test]
        fn the_order_of_credentials_does_not_matter(a in sent()) {
            let mut reversed = a.clone();
            reversed.headers.reverse();
            let (mut others, mut credentials): (Vec<_>, Vec<_>) = reversed
                .params
                .iter()
                .cloned()
                .partition(|(n, _)| ["type", "id"].contains(&n.to_ascii_lowercase().as_str()));
            credentials.reverse();
            others.extend(credentials);
            reversed.params = others;
            // Same values per header name keep their relative order only in the model.
            if model(&reversed) == model(&a) {
                prop_assert_eq!(key(&reversed), key(&a));
            }
        }
    }
}
