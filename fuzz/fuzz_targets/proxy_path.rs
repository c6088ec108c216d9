//! The proxied path check and join: for any tail and query, a URL that is produced keeps the
//! upstream's scheme, host and port, stays under its base path, and never reaches `/admin`.
#![no_main]

use std::sync::{Arc, LazyLock};

use breakerbox::breaker::Breaker;
use breakerbox::config;
use breakerbox::pipeline::path_and_query;
use breakerbox::upstream::Upstream;
use libfuzzer_sys::fuzz_target;

static UPSTREAM: LazyLock<Upstream> = LazyLock::new(|| {
    let text = "[upstreams.a]\nurl = \"http://127.0.0.1:9/base\"\n";
    let mut config =
        config::load_from_str(text, "fuzz.toml", Vec::<(String, String)>::new()).expect("valid");
    let upstream = config.upstreams.remove("a").expect("configured");
    let breaker = Breaker::builder("a", upstream.breaker.clone()).build();
    Upstream::new(upstream, Arc::new(breaker)).expect("client")
});

fn assert_stays(joined: &str) {
    if let Ok(url) = UPSTREAM.url(joined) {
        assert_eq!(url.scheme(), "http", "{joined:?} -> {url}");
        assert_eq!(url.host_str(), Some("127.0.0.1"), "{joined:?} -> {url}");
        assert_eq!(url.port_or_known_default(), Some(9), "{joined:?} -> {url}");
        let path = url.path();
        assert!(
            path == "/base" || path.starts_with("/base/"),
            "{joined:?} -> {url}"
        );
        assert!(!path.starts_with("/admin"), "{joined:?} -> {url}");
        assert!(
            url.username().is_empty() && url.password().is_none(),
            "{url}"
        );
        assert!(url.fragment().is_none(), "{url}");
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // As received: tail and query through the pipeline's check, then the join.
    let (tail, query) = match text.split_once('?') {
        Some((tail, query)) => (tail, Some(query)),
        None => (text, None),
    };
    if let Ok(joined) = path_and_query(tail, query) {
        assert_eq!(
            joined.split_once('?').map_or(joined.as_str(), |p| p.0),
            tail
        );
        assert_stays(&joined);
    }
    // As read back from the store for a queued request: the join checks again on its own.
    assert_stays(text);
});
