//! The demo upstreams on real loopback sockets, phase by phase, with tokio's clock paused and
//! moved only by `advance`.

// Real servers and processes run in real time: waiting on them reads the system's clock.
#![allow(clippy::disallowed_methods)]

use std::net::SocketAddr;
use std::time::Duration;

use breakerbox::config;
use breakerbox::demo::{self, Behaviour, DemoSpec, DemoUpstreams, Mode};

const S: fn(u64) -> Duration = Duration::from_secs;

/// Holds tokio's paused clock still: while a blocking task runs, the clock does not jump ahead
/// on its own when the runtime waits for real socket I/O, so only `advance` moves it.
struct Freeze(#[allow(dead_code)] std::sync::mpsc::Sender<()>);

fn freeze() -> Freeze {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    tokio::task::spawn_blocking(move || {
        let _ = rx.recv();
    });
    Freeze(tx)
}

/// Lets the other tasks run until `done` holds; false after 5 s of real time.
async fn until(mut done: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while std::time::Instant::now() < deadline {
        if done() {
            return true;
        }
        tokio::task::yield_now().await;
    }
    done()
}

/// Moves the paused clock and lets the supervisors open or close their ports.
async fn advance(by: Duration) {
    tokio::time::advance(by).await;
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

async fn start(name: &str, behaviour: Behaviour) -> DemoUpstreams {
    let addr: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    let spec = DemoSpec {
        name: name.into(),
        addr,
        behaviour,
    };
    demo::start_with([spec])
        .await
        .expect("demo upstream starts")
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

async fn get(
    client: &reqwest::Client,
    addr: SocketAddr,
    path: &str,
) -> Result<u16, reqwest::Error> {
    let response = client.get(format!("http://{addr}{path}")).send().await?;
    Ok(response.status().as_u16())
}

async fn refused(addr: SocketAddr) -> bool {
    matches!(
        tokio::net::TcpStream::connect(addr).await,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused
    )
}

fn gets(demo: &DemoUpstreams, name: &str) -> u64 {
    demo.requests(name)
        .and_then(|m| m.get("GET").copied())
        .unwrap_or(0)
}

#[tokio::test(start_paused = true)]
async fn healthy_answers_every_method_and_counts_it() {
    let _frozen = freeze();
    let demo = start("plex", Behaviour::for_name("plex", S(3))).await;
    let addr = demo.addr("plex").expect("plex listens");
    let client = client();
    let response = client
        .get(format!("http://{addr}/identity"))
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-demo-upstream"], "plex");
    let body: serde_json::Value =
        serde_json::from_slice(&response.bytes().await.expect("body")).expect("json");
    assert_eq!(body["ok"], true);
    let post = client
        .post(format!("http://{addr}/x"))
        .body("{}")
        .send()
        .await
        .expect("answer");
    assert_eq!(post.status(), 200);
    advance(S(3600)).await;
    assert_eq!(get(&client, addr, "/anything").await.expect("answer"), 200);

    let stats = client
        .get(format!("http://{addr}/__demo/stats"))
        .send()
        .await
        .expect("stats");
    let stats: serde_json::Value =
        serde_json::from_slice(&stats.bytes().await.expect("body")).expect("json");
    assert_eq!(
        stats["requests"],
        serde_json::json!({ "GET": 2, "POST": 1 })
    );
    assert_eq!(stats["total"], 3);
    assert_eq!(
        gets(&demo, "plex"),
        2,
        "the stats route does not count itself"
    );
    demo.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn flapping_answers_500_from_20s_to_35s() {
    let _frozen = freeze();
    let demo = start("overseerr", Behaviour::for_name("overseerr", S(5))).await;
    let addr = demo.addr("overseerr").expect("listens");
    let client = client();
    assert_eq!(
        get(&client, addr, "/api/v1/status").await.expect("answer"),
        200
    );
    advance(S(20)).await;
    assert_eq!(demo.mode("overseerr"), Some(Mode::Failing));
    assert_eq!(
        get(&client, addr, "/api/v1/status").await.expect("answer"),
        500
    );
    advance(S(14)).await;
    assert_eq!(
        get(&client, addr, "/api/v1/status").await.expect("answer"),
        500
    );
    advance(S(1)).await;
    assert_eq!(
        get(&client, addr, "/api/v1/status").await.expect("answer"),
        200
    );
    assert_eq!(gets(&demo, "overseerr"), 4);
    demo.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn slow_spell_answers_only_after_twice_the_call_timeout() {
    let _frozen = freeze();
    let demo = start("uptime-kuma", Behaviour::for_name("uptime-kuma", S(10))).await;
    let addr = demo.addr("uptime-kuma").expect("listens");
    let client = client();
    let before = tokio::time::Instant::now();
    assert_eq!(get(&client, addr, "/").await.expect("fast answer"), 200);
    assert_eq!(
        before.elapsed(),
        Duration::ZERO,
        "fast outside the slow spell"
    );

    advance(S(25)).await;
    let slow = tokio::spawn({
        let client = client.clone();
        async move { get(&client, addr, "/").await }
    });
    assert!(
        until(|| gets(&demo, "uptime-kuma") == 2).await,
        "the request arrived"
    );
    advance(S(19)).await;
    assert!(!slow.is_finished(), "still waiting after 19 s");
    advance(S(1)).await;
    assert!(until(|| slow.is_finished()).await, "answered after 20 s");
    assert_eq!(slow.await.expect("no panic").expect("answer"), 200);
    demo.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn tmdb_refuses_connections_while_down_then_answers_again() {
    let _frozen = freeze();
    let demo = start("tmdb", Behaviour::for_name("tmdb", S(3))).await;
    let addr = demo.addr("tmdb").expect("listens");
    let client = client();
    assert_eq!(get(&client, addr, "/3/movie/1").await.expect("answer"), 200);

    advance(S(15)).await;
    assert!(refused(addr).await, "nothing listens from 15 s");
    // The client's pooled keep-alive connection does not outlive the port either.
    assert!(get(&client, addr, "/3/movie/1").await.is_err());
    assert_eq!(
        gets(&demo, "tmdb"),
        1,
        "nothing reached the upstream while down"
    );

    advance(S(24)).await;
    assert!(refused(addr).await, "still down at 39 s");
    advance(S(1)).await;
    assert_eq!(
        get(&client, addr, "/3/movie/1")
            .await
            .expect("back at 40 s"),
        200
    );
    assert_eq!(gets(&demo, "tmdb"), 2);
    demo.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn qbittorrent_starts_down_and_takes_posts_after_20s() {
    let _frozen = freeze();
    let demo = start("qbittorrent", Behaviour::for_name("qbittorrent", S(3))).await;
    let addr = demo
        .addr("qbittorrent")
        .expect("has a port even while down");
    let client = client();
    assert!(refused(addr).await, "down at start");
    let url = format!("http://{addr}/api/v2/torrents/add");
    assert!(client.post(&url).body("{}").send().await.is_err());

    advance(S(20)).await;
    let response = client
        .post(&url)
        .body(r#"{"demo":true}"#)
        .send()
        .await
        .expect("up at 20 s");
    assert_eq!(response.status(), 200);
    let counts = demo.requests("qbittorrent").expect("counts");
    assert_eq!(counts.get("POST"), Some(&1));
    assert_eq!(counts.get("GET"), None);

    advance(S(30)).await;
    assert!(refused(addr).await, "down again at 50 s");
    demo.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn unknown_names_cycle_through_every_mode() {
    let _frozen = freeze();
    let behaviour = Behaviour::for_name("jellyfin", S(1));
    assert!(behaviour.describe().starts_with("cycle:"), "{behaviour}");
    let demo = start("jellyfin", behaviour).await;
    let addr = demo.addr("jellyfin").expect("listens");
    let client = client();
    assert_eq!(get(&client, addr, "/").await.expect("healthy"), 200);
    advance(S(10)).await;
    assert_eq!(get(&client, addr, "/").await.expect("failing"), 500);
    advance(S(10)).await;
    assert_eq!(demo.mode("jellyfin"), Some(Mode::Slow(S(2))));
    let slow = tokio::spawn({
        let client = client.clone();
        async move { get(&client, addr, "/").await }
    });
    assert!(
        until(|| gets(&demo, "jellyfin") == 3).await,
        "the request arrived"
    );
    assert!(!slow.is_finished());
    advance(S(2)).await;
    assert!(until(|| slow.is_finished()).await);
    assert_eq!(slow.await.expect("no panic").expect("slow answer"), 200);
    advance(S(8)).await;
    assert!(refused(addr).await, "refused from 30 s");
    advance(S(10)).await;
    assert_eq!(
        get(&client, addr, "/")
            .await
            .expect("healthy again at 40 s"),
        200
    );
    demo.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn down_never_listens_and_shutdown_closes_every_port() {
    let _frozen = freeze();
    let specs = [
        DemoSpec {
            name: "hdbits".into(),
            addr: "127.0.0.1:0".parse().expect("addr"),
            behaviour: Behaviour::Down,
        },
        DemoSpec {
            name: "plex".into(),
            addr: "127.0.0.1:0".parse().expect("addr"),
            behaviour: Behaviour::Healthy,
        },
    ];
    let demo = demo::start_with(specs).await.expect("starts");
    assert_eq!(demo.addr("hdbits"), None);
    assert_eq!(demo.mode("hdbits"), Some(Mode::Refusing));
    assert_eq!(demo.behaviour("hdbits"), Some(&Behaviour::Down));
    let addrs = demo.addrs();
    assert_eq!(addrs.keys().collect::<Vec<_>>(), ["plex"]);
    let plex = addrs["plex"];
    assert!(!refused(plex).await);
    demo.shutdown().await;
    assert!(refused(plex).await, "closed after shutdown");
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

fn no_env() -> std::iter::Empty<(String, String)> {
    std::iter::empty()
}

#[tokio::test]
async fn start_serves_loopback_upstreams_of_the_config_on_their_ports() {
    let port = free_port();
    let text = format!(
        "[upstreams.plex]\nurl = \"http://localhost:{port}\"\nhealth_path = \"/identity\"\n\
         [upstreams.remote]\nurl = \"http://192.0.2.1:80\"\n"
    );
    let config = config::load_from_str(&text, "demo.toml", no_env()).expect("config");
    let demo = demo::start(&config).await.expect("starts");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    assert_eq!(
        demo.addrs().into_iter().collect::<Vec<_>>(),
        [("plex".to_owned(), addr)]
    );
    assert_eq!(
        demo.behaviour("remote"),
        None,
        "a remote upstream is left alone"
    );
    assert_eq!(
        get(&client(), addr, "/identity").await.expect("answer"),
        200
    );

    // The same port again: a precise error naming the upstream and the address.
    let err = demo::start(&config).await.expect_err("port in use");
    let message = err.to_string();
    assert!(
        message.starts_with(&format!(
            "cannot listen on 127.0.0.1:{port} for the demo upstream `plex`"
        )),
        "{message}"
    );
    assert!(
        message.contains("is a real one running there?"),
        "{message}"
    );
    demo.shutdown().await;
}

#[test]
fn banner_shows_the_urls_to_watch_and_every_behaviour() {
    let text = include_str!("../examples/breakerbox.toml");
    let config =
        config::load_from_str(text, "examples/breakerbox.toml", no_env()).expect("example");
    let banner = demo::banner(&config);
    for line in [
        "  curl http://127.0.0.1:8080/health/detailed",
        "  curl -H 'Authorization: Bearer demo-viewer-token' http://127.0.0.1:8080/admin/breakers",
        "  curl -N -H 'Authorization: Bearer demo-viewer-token' http://127.0.0.1:8080/admin/events",
        "  curl http://127.0.0.1:8080/metrics",
        "  BREAKERBOX_TOKEN=demo-viewer-token breakerbox status --url http://127.0.0.1:8080",
    ] {
        assert!(
            banner.lines().any(|l| l == line),
            "missing {line:?} in\n{banner}"
        );
    }
    for (name, what) in [
        ("plex", "healthy"),
        ("overseerr", "flapping: healthy for 20s, then 500s for 15s"),
        ("uptime-kuma", "answers only after 20s"),
        ("tmdb", "then down for 25s (connection refused)"),
        ("hdbits", "down: nothing listens; fallback: degraded answer"),
        ("qbittorrent", "fallback: queue and replay"),
    ] {
        let line = banner
            .lines()
            .find(|l| l.trim_start().starts_with(name))
            .expect(name);
        assert!(line.contains(what), "{line:?} lacks {what:?}");
    }
    assert!(
        !banner.contains("demo-admin-token"),
        "the admin token is not needed to watch"
    );
}
