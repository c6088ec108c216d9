//! A fleet: three gateway processes sharing one real PostgreSQL. Operator actions taken on one
//! replica reach the others within a second, a replica started later (or restarted) applies
//! them before it serves, and automatic trips stay per replica. One process on SQLite keeps its
//! manual state across a restart.

mod proxy_support;
mod support;

use std::time::Duration;

use proxy_support::TestUpstream;
use support::gateway_process::{GatewayProcess, Listen, Output};
use support::ports::free_port;
use support::postgres::PgServer;
use support::temp_dir::TempDir;
use support::wait::eventually;

const ADMIN: &str = "fleet-admin-token-0123";

fn config(dir: &TempDir, store: &str, port: u16, upstream: &TestUpstream) -> std::path::PathBuf {
    let path = dir.0.join(format!("gw-{port}.toml"));
    std::fs::write(
        &path,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n[store]\nurl = \"{store}\"\n\
             failure_threshold = 1\nopen_duration = \"300ms\"\ncall_timeout = \"1s\"\n\
             [[admin.tokens]]\nname = \"ops\"\ntoken = \"{ADMIN}\"\nrole = \"admin\"\n\
             [health]\ncheck_interval = \"1h\"\n\
             [upstreams.plex]\nurl = \"{}\"\nfailure_threshold = 1\nopen_duration = \"1h\"\n\
             [upstreams.tmdb]\nurl = \"{}\"\n",
            upstream.url(),
            upstream.url()
        ),
    )
    .expect("config written");
    path
}

async fn start(path: &std::path::Path, port: u16) -> GatewayProcess {
    GatewayProcess::serve(path, Listen::Port(port), &[], Output::Discard).await
}

async fn state(gateway: &GatewayProcess, breaker: &str) -> String {
    let body = reqwest::Client::new()
        .get(gateway.url(&format!("/admin/breakers/{breaker}")))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("answered")
        .bytes()
        .await
        .expect("body");
    let answer: serde_json::Value = serde_json::from_slice(&body).expect("json");
    answer["data"]["state"].as_str().unwrap_or("?").to_owned()
}

async fn act(gateway: &GatewayProcess, path: &str) {
    let status = reqwest::Client::new()
        .post(gateway.url(path))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("answered")
        .status();
    assert_eq!(status, 200, "{path}");
}

/// Whether every one of `gateways` shows `breaker` in `wanted` within a second.
async fn all_within_a_second(gateways: &[&GatewayProcess], breaker: &str, wanted: &str) -> bool {
    eventually(Duration::from_secs(1), || async {
        for gateway in gateways {
            if state(gateway, breaker).await != wanted {
                return false;
            }
        }
        true
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_actions_reach_every_replica_and_survive_restarts() {
    let pg = PgServer::new();
    let upstream = TestUpstream::start().await;
    let dir = TempDir::new();
    let ports = [free_port(), free_port(), free_port()];
    let paths: Vec<_> = ports
        .iter()
        .map(|&port| config(&dir, &pg.url(), port, &upstream))
        .collect();
    let one = start(&paths[0], ports[0]).await;
    let two = start(&paths[1], ports[1]).await;
    let mut three = start(&paths[2], ports[2]).await;

    act(&one, "/admin/breakers/plex/force-open").await;
    assert!(
        all_within_a_second(&[&one, &two, &three], "plex", "forced_open").await,
        "force-open on one replica reaches the others within a second"
    );
    assert_eq!(
        state(&two, "tmdb").await,
        "closed",
        "only the named breaker"
    );

    act(&two, "/admin/breakers/tmdb/disable").await;
    assert!(all_within_a_second(&[&one, &two, &three], "tmdb", "disabled").await);

    // A restarted replica applies the fleet's manual states before it serves.
    three.signal("TERM");
    three.wait_exit(Duration::from_secs(30)).await;
    let three = start(&paths[2], ports[2]).await;
    assert_eq!(state(&three, "plex").await, "forced_open");
    assert_eq!(state(&three, "tmdb").await, "disabled");

    act(&three, "/admin/breakers/plex/reset").await;
    assert!(all_within_a_second(&[&one, &two, &three], "plex", "closed").await);

    act(&one, "/admin/breakers/reset-all").await;
    assert!(all_within_a_second(&[&one, &two, &three], "tmdb", "closed").await);

    // Automatic states stay per replica: plex trips on replica one only.
    upstream
        .broken
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let _ = reqwest::get(one.url("/proxy/plex/switch"))
        .await
        .expect("answered");
    assert_eq!(state(&one, "plex").await, "open");
    assert_eq!(
        state(&two, "plex").await,
        "closed",
        "a trip is not fleet state"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_action_taken_while_the_database_is_down_reaches_the_fleet_when_it_returns() {
    let mut pg = PgServer::new();
    let upstream = TestUpstream::start().await;
    let dir = TempDir::new();
    let ports = [free_port(), free_port()];
    let one = start(&config(&dir, &pg.url(), ports[0], &upstream), ports[0]).await;
    let two = start(&config(&dir, &pg.url(), ports[1], &upstream), ports[1]).await;
    pg.stop();
    // Applied here at once, though it cannot be stored yet.
    act(&one, "/admin/breakers/plex/force-open").await;
    assert_eq!(state(&one, "plex").await, "forced_open");
    assert_eq!(state(&two, "plex").await, "closed");
    pg.start();
    let reached = eventually(Duration::from_secs(15), || async {
        state(&two, "plex").await == "forced_open"
    })
    .await;
    assert!(
        reached,
        "stored once the database answers, then applied by the other replica"
    );
    assert_eq!(
        state(&one, "plex").await,
        "forced_open",
        "an older stored state never wins"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_replica_on_sqlite_keeps_its_manual_state_across_a_restart() {
    let upstream = TestUpstream::start().await;
    let dir = TempDir::new();
    let port = free_port();
    let path = config(&dir, &dir.sqlite_url("gw.db"), port, &upstream);
    let mut gateway = start(&path, port).await;
    act(&gateway, "/admin/breakers/plex/force-open").await;
    gateway.signal("TERM");
    gateway.wait_exit(Duration::from_secs(30)).await;
    let gateway = start(&path, port).await;
    assert_eq!(state(&gateway, "plex").await, "forced_open");
    assert_eq!(state(&gateway, "tmdb").await, "closed");
}
