//! Property tests over the bad-input invariants (a sample of what `scripts/fuzz` explores at
//! length): a proxied path never leaves its upstream; configuration loading never panics and its
//! errors name the file and the key; the framing tracker never panics and flags exactly the
//! first head that carries both Content-Length and Transfer-Encoding.
//! Runtime: a few seconds (256 cases per property, 512 for the two byte-stream ones, 64
//! generated streams against a real gateway).

mod proxy_support;
mod support;

use std::sync::{Arc, LazyLock};

use breakerbox::config::{self, Key};
use breakerbox::pipeline::path_and_query;
use breakerbox::server::framing::{FramingTracker, Refusal, RefusalReason};
use breakerbox::upstream::Upstream;
use proptest::prelude::*;
use proptest::sample::select;
use support::raw_http::exchange;
use support::temp_dir::TempDir;

static UPSTREAM: LazyLock<Arc<Upstream>> = LazyLock::new(|| {
    proxy_support::upstream("a", "http://127.0.0.1:9/base", proxy_support::NEVER_TRIPS)
});

/// Path pieces that servers resolve in surprising ways, and plain ones.
const PIECES: &[&str] = &[
    "",
    "a",
    "admin",
    ".",
    "..",
    "%2e",
    "%2E%2e",
    "%2f",
    "%2F",
    "%5c",
    "%252e",
    "%25252f",
    "\\",
    "http:",
    "https:",
    "evil.example",
    "@evil",
    ":80",
    ";x",
    "..;",
    "%00",
    " ",
    "#f",
    "%",
    "?",
    "\t",
    "é",
    "%c0%ae",
];

fn tails() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(select(PIECES), 0..8).prop_map(|p| p.join("/")),
        prop::collection::vec(select(PIECES), 0..8).prop_map(|p| format!("/{}", p.join("/"))),
        ".{0,40}",
    ]
}

fn assert_stays(joined: &str) -> Result<(), TestCaseError> {
    if let Ok(url) = UPSTREAM.url(joined) {
        let path = url.path();
        prop_assert_eq!(url.scheme(), "http");
        prop_assert_eq!(url.host_str(), Some("127.0.0.1"));
        prop_assert_eq!(url.port_or_known_default(), Some(9));
        prop_assert!(
            path == "/base" || path.starts_with("/base/"),
            "{joined:?} -> {url}"
        );
        prop_assert!(url.username().is_empty() && url.password().is_none());
        prop_assert!(url.fragment().is_none());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_proxied_path_never_leaves_its_upstream(tail in tails(), query in proptest::option::of(tails())) {
        if let Ok(joined) = path_and_query(&tail, query.as_deref()) {
            prop_assert!(joined.starts_with(&tail));
            assert_stays(&joined)?;
        }
        // A queued request read back from the store is checked again by the join alone.
        assert_stays(&tail)?;
    }

    #[test]
    fn any_text_loads_or_fails_with_file_and_place(text in ".{0,300}") {
        if let Err(err) = config::load_from_str(&text, "props.toml", Vec::<(String, String)>::new()) {
            prop_assert_eq!(err.file(), "props.toml");
            prop_assert!(err.to_string().starts_with("props.toml"));
            prop_assert!(err.position().is_some() || !matches!(err.key(), Key::File), "{}", err);
        }
    }

    #[test]
    fn a_bad_value_is_refused_under_its_own_key(
        (table, key) in select(&[
            ("server", "listen"),
            ("defaults", "failure_threshold"),
            ("defaults", "open_duration"),
            ("defaults", "failure_rate_threshold"),
            ("upstreams.a", "url"),
            ("upstreams.a", "call_timeout"),
            ("upstreams.a", "fallback"),
            ("upstreams.a", "cache_ttl"),
        ][..]),
        value in prop_oneof![
            ".{0,20}".prop_map(toml::Value::String),
            any::<i64>().prop_map(toml::Value::Integer),
            any::<bool>().prop_map(toml::Value::Boolean),
            any::<f64>().prop_map(toml::Value::Float),
        ],
    ) {
        let mut tables = vec![("server", String::new()), ("defaults", String::new())];
        tables.push(("upstreams.a", "url = \"http://127.0.0.1:9\"\nfallback = \"cache\"\n".into()));
        let mut text = String::new();
        for (name, body) in tables {
            let body = if name == table {
                let kept: String = body.lines().filter(|l| !l.starts_with(key)).map(|l| format!("{l}\n")).collect();
                format!("{kept}{key} = {value}\n")
            } else {
                body
            };
            text.push_str(&format!("[{name}]\n{body}\n"));
        }
        if let Err(err) = config::load_from_str(&text, "props.toml", Vec::<(String, String)>::new()) {
            let expected = format!("{table}.{key}");
            prop_assert_eq!(err.key().path(), Some(expected.as_str()), "{}\n{}", err, text);
            prop_assert!(err.to_string().contains(&expected));
        }
    }
}

/// How one generated request frames its body.
#[derive(Debug, Clone)]
enum Body {
    None,
    Length(Vec<u8>),
    Chunked(Vec<Vec<u8>>, bool),
    Both { te_first: bool, body: Vec<u8> },
}

impl Body {
    fn conflicting(&self) -> bool {
        matches!(self, Body::Both { .. })
    }
}

fn bodies() -> impl Strategy<Value = Body> {
    // Bodies that look like requests too: only real heads may count.
    let bytes = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..40),
        Just(
            b"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec()
        ),
        Just(b"0\r\n\r\n".to_vec()),
    ];
    prop_oneof![
        Just(Body::None),
        bytes.clone().prop_map(Body::Length),
        (prop::collection::vec(bytes.clone(), 0..4), any::<bool>())
            .prop_map(|(chunks, trailer)| Body::Chunked(chunks, trailer)),
        (any::<bool>(), bytes).prop_map(|(te_first, body)| Body::Both { te_first, body }),
    ]
}

fn serialise(ordinal: usize, body: &Body) -> Vec<u8> {
    serialise_to(&format!("/r{ordinal}"), false, body)
}

/// One request for `path`; `close` adds `Connection: close`.
fn serialise_to(path: &str, close: bool, body: &Body) -> Vec<u8> {
    let mut out = format!("POST {path} HTTP/1.1\r\nHost: x\r\n").into_bytes();
    if close {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    let chunked = |chunks: &[Vec<u8>], trailer: bool| {
        let mut out = Vec::new();
        for chunk in chunks.iter().filter(|c| !c.is_empty()) {
            out.extend_from_slice(format!("{:x};ext=1\r\n", chunk.len()).as_bytes());
            out.extend_from_slice(chunk);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(if trailer {
            b"0\r\nX-Sum: 1\r\n\r\n"
        } else {
            b"0\r\n\r\n"
        });
        out
    };
    match body {
        Body::None => out.extend_from_slice(b"\r\n"),
        Body::Length(bytes) => {
            out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", bytes.len()).as_bytes());
            out.extend_from_slice(bytes);
        }
        Body::Chunked(chunks, trailer) => {
            out.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
            out.extend_from_slice(&chunked(chunks, *trailer));
        }
        Body::Both { te_first, body } => {
            let (te, cl) = (
                "transfer-encoding: chunked\r\n",
                format!("content-length: {}\r\n", body.len()),
            );
            let head = if *te_first {
                format!("{te}{cl}\r\n")
            } else {
                format!("{cl}{te}\r\n")
            };
            out.extend_from_slice(head.as_bytes());
            out.extend_from_slice(&chunked(std::slice::from_ref(body), false));
        }
    }
    out
}

/// Feeds `bytes` in pieces cut at `cuts` (positions taken modulo the length).
fn feed_in_pieces(bytes: &[u8], cuts: &[usize]) -> FramingTracker {
    let mut at: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    at.push(0);
    at.push(bytes.len());
    at.sort_unstable();
    let mut tracker = FramingTracker::new();
    for pair in at.windows(2) {
        tracker.feed(&bytes[pair[0]..pair[1]]);
    }
    tracker
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn exactly_the_first_head_with_both_headers_is_flagged(
        requests in prop::collection::vec(bodies(), 1..6),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        let stream: Vec<u8> = requests.iter().enumerate().flat_map(|(i, b)| serialise(i + 1, b)).collect();
        let tracker = feed_in_pieces(&stream, &cuts);
        match requests.iter().position(Body::conflicting) {
            Some(index) => {
                let ordinal = index as u64 + 1;
                prop_assert_eq!(tracker.refusal(), Some(Refusal { ordinal, reason: RefusalReason::ConflictingFraming }));
                prop_assert_eq!(tracker.heads(), ordinal);
            }
            None => {
                prop_assert_eq!(tracker.refusal(), None);
                prop_assert_eq!(tracker.heads(), requests.len() as u64);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic_and_splitting_changes_nothing(
        bytes in prop::collection::vec(any::<u8>(), 0..1024),
        cuts in prop::collection::vec(any::<usize>(), 0..16),
    ) {
        let mut whole = FramingTracker::new();
        whole.feed(&bytes);
        let pieces = feed_in_pieces(&bytes, &cuts);
        prop_assert_eq!((whole.heads(), whole.refusal()), (pieces.heads(), pieces.refusal()));
    }

    #[test]
    fn corrupted_request_streams_never_panic_and_splitting_changes_nothing(
        requests in prop::collection::vec(bodies(), 1..4),
        flips in prop::collection::vec((any::<usize>(), any::<u8>()), 1..4),
        cuts in prop::collection::vec(any::<usize>(), 0..16),
    ) {
        let mut stream: Vec<u8> = requests.iter().enumerate().flat_map(|(i, b)| serialise(i + 1, b)).collect();
        for (at, byte) in flips {
            let at = at % stream.len();
            stream[at] = byte;
        }
        let mut whole = FramingTracker::new();
        whole.feed(&stream);
        let pieces = feed_in_pieces(&stream, &cuts);
        prop_assert_eq!((whole.heads(), whole.refusal()), (pieces.heads(), pieces.refusal()));
        prop_assert!(whole.heads() <= requests.len() as u64 + 1);
    }
}

/// The same generated streams sent to a real gateway (hyper in front of the tracker): every
/// request before the first conflicting one is proxied, that one gets 400 and the connection
/// closes, and nothing after it reaches the upstream. 64 cases, one connection each.
#[test]
fn the_gateway_answers_generated_streams_as_the_tracker_predicts() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (addr, upstream, _dir) = runtime.block_on(start_gateway());
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(64));
    let case = std::sync::atomic::AtomicUsize::new(0);
    let strategy = prop::collection::vec(bodies(), 1..5);
    let outcome = runner.run(&strategy, |requests| {
        let case = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = |i: usize| format!("/proxy/echo/c{case}/r{i}");
        let last = requests.len() - 1;
        let stream: Vec<u8> = requests
            .iter()
            .enumerate()
            .flat_map(|(i, body)| serialise_to(&path(i), i == last, body))
            .collect();
        let bytes = runtime.block_on(exchange(&addr, &stream));
        let text = String::from_utf8_lossy(&bytes);
        let statuses: Vec<&str> = text
            .match_indices("HTTP/1.1 ")
            .map(|(at, _)| &text[at + 9..at + 12])
            .collect();
        let first_conflict = requests.iter().position(Body::conflicting);
        let passed = first_conflict.unwrap_or(requests.len());
        let mut expected = vec!["200"; passed];
        if first_conflict.is_some() {
            expected.push("400");
            prop_assert!(text.contains("conflicting_framing"), "{}", text);
        }
        prop_assert_eq!(statuses, expected, "{}", text);
        let seen: Vec<String> = upstream
            .seen()
            .into_iter()
            .map(|s| s.path)
            .filter(|p| p.starts_with(&format!("/c{case}/")))
            .collect();
        let wanted: Vec<String> = (0..passed).map(|i| format!("/c{case}/r{i}")).collect();
        prop_assert_eq!(seen, wanted);
        Ok(())
    });
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
}

async fn start_gateway() -> (String, proxy_support::TestUpstream, TempDir) {
    use breakerbox::gateway::Gateway;
    let upstream = proxy_support::TestUpstream::start().await;
    let dir = TempDir::new();
    let text = format!(
        "[store]\nurl = \"sqlite://{}\"\n[defaults]\n{}\n[upstreams.echo]\nurl = \"{}\"\n",
        dir.0.join("gateway.db").display(),
        proxy_support::NEVER_TRIPS,
        upstream.url(),
    );
    let config =
        config::load_from_str(&text, "props.toml", Vec::<(String, String)>::new()).expect("valid");
    let gateway = Gateway::start(config, None).await.expect("starts");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    // Serves until the runtime is dropped at the end of the test.
    tokio::spawn(breakerbox::server::serve(
        gateway,
        listener,
        std::future::pending(),
    ));
    (addr, upstream, dir)
}
