//! The gateway binary while its store fails under it: PostgreSQL stopped and started again in
//! the middle of a steady trickle of requests, the gateway SIGKILLed with requests queued in
//! PostgreSQL, and a SQLite database locked by another process's connection (`BEGIN EXCLUSIVE`).
//!
//! Everything is real: the `breakerbox` binary, Debian's PostgreSQL server (stopped with
//! `pg_ctl -m fast`, which cuts open connections), loopback upstreams, and the queue table read
//! with a connection of the test's own. Upstream `b` is down by having its port bound but not
//! listening (connections are refused); it comes up by listening on it. Each queued request carries a unique tag in its body, so the
//! upstream counts every delivery per request.
//!
//! Runtime: 7 to 15 s per test, all four in parallel 18 to 26 s on 2 busy cores, 36 s with three
//! copies of this file running at once (PostgreSQL's initdb, start and stop, and the replayer's
//! 5 s cycle take most of it); every wait has a deadline of 30 s.

// Real servers and processes run in real time: waiting on them reads the system's clock.
#![allow(clippy::disallowed_methods)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{Request, Response};
use serde_json::Value;
use sqlx::Connection;
use support::gateway_process::{GatewayProcess, Listen, Output};
use support::postgres::PgServer;
use support::prometheus::Scrape;
use support::temp_dir::TempDir;
use support::wait::eventually;

const TOKEN: &str = "store-faults-viewer-token";
/// Longest any condition is waited for.
const LIMIT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// Upstreams

/// One request as an upstream received it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    body: Bytes,
}

/// A loopback upstream that records every request it answers and answers `200 "<name>:<uri>"`;
/// while `hang` is set it records requests in `hung` instead and never answers them.
#[derive(Clone)]
struct Upstream {
    name: &'static str,
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    hang: Arc<AtomicBool>,
    hung: Arc<Mutex<Vec<Seen>>>,
}

impl Upstream {
    /// Serves on a fresh loopback port.
    async fn start(name: &'static str) -> Upstream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        Upstream::serve(name, listener)
    }

    fn serve(name: &'static str, listener: tokio::net::TcpListener) -> Upstream {
        let upstream = Upstream {
            name,
            addr: listener.local_addr().expect("local address"),
            seen: Arc::default(),
            hang: Arc::default(),
            hung: Arc::default(),
        };
        let app = Router::new().fallback(record).with_state(upstream.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        upstream
    }

    /// The bodies of the POSTs answered, in the order they arrived.
    fn posted(&self) -> Vec<String> {
        let seen = self.seen.lock().expect("seen");
        seen.iter()
            .filter(|s| s.method == "POST")
            .map(|s| String::from_utf8_lossy(&s.body).into_owned())
            .collect()
    }

    /// How many times the upstream answered a POST whose body is each tag.
    fn posts_by_tag(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for seen in self.seen.lock().expect("seen").iter() {
            if seen.method == "POST" {
                let tag = String::from_utf8_lossy(&seen.body).into_owned();
                *counts.entry(tag).or_insert(0) += 1;
            }
        }
        counts
    }
}

async fn record(State(up): State<Upstream>, request: Request<Body>) -> Response<Body> {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let uri = parts.uri.to_string();
    let seen = Seen {
        method: parts.method.to_string(),
        body,
    };
    if up.hang.load(SeqCst) {
        up.hung.lock().expect("hung").push(seen.clone());
        // The gateway gives up first (its call_timeout) and closes the connection.
        std::future::pending::<()>().await;
    }
    up.seen.lock().expect("seen").push(seen);
    Response::new(Body::from(format!("{}:{uri}", up.name)))
}

/// An upstream that is down: its port is bound, so that nothing else running in parallel takes
/// it, but not listening, so connections to it are refused.
struct Down {
    name: &'static str,
    socket: tokio::net::TcpSocket,
    addr: SocketAddr,
}

impl Down {
    fn new(name: &'static str) -> Down {
        let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
        socket
            .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .expect("bind 127.0.0.1:0");
        let addr = socket.local_addr().expect("local address");
        Down { name, socket, addr }
    }

    /// Comes up on the same port.
    fn up(self) -> Upstream {
        let listener = self.socket.listen(1024).expect("listen");
        Upstream::serve(self.name, listener)
    }
}

// ---------------------------------------------------------------------------------------------
// The gateway process

/// A `breakerbox serve` process with a JSON log that failure messages quote, and a client for
/// its API.
struct Gateway {
    process: GatewayProcess,
    client: reqwest::Client,
}

/// `[store]` is written by the caller (`store`); `a` answers, `b` queues. The gateway listens on
/// a port of its choosing (tests run in parallel: a port picked in advance could be taken).
fn write_config(dir: &Path, store: &str, a: SocketAddr, b: SocketAddr) -> PathBuf {
    let path = dir.join("breakerbox.toml");
    let text = format!(
        r#"
[server]
listen = "127.0.0.1:0"

{store}

[[admin.tokens]]
name = "test"
token = "{TOKEN}"
role = "viewer"

[defaults]
failure_threshold = 1
open_duration = "500ms"
call_timeout = "5s"
retry_budget_percent = 0

[upstreams.a]
url = "http://{a}"
fallback = "cache"

[upstreams.b]
url = "http://{b}"
fallback = "queue"
call_timeout = "2s"

[health]
check_interval = "1h"
detailed_cache = "1ms"
"#
    );
    std::fs::write(&path, text).expect("config written");
    path
}

impl Gateway {
    /// Starts the binary on `config` and waits until it serves; its JSON log goes to `log`.
    async fn serve(config: &Path, log: PathBuf) -> Gateway {
        let env = [
            ("BREAKERBOX_LOG", "info"),
            ("BREAKERBOX_LOG_FORMAT", "json"),
        ];
        let process =
            GatewayProcess::serve(config, Listen::FromJsonLog, &env, Output::Combined(log)).await;
        Gateway {
            process,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .expect("client"),
        }
    }

    fn url(&self, path: &str) -> String {
        self.process.url(path)
    }

    fn log_tail(&self) -> String {
        self.process.log_tail()
    }

    /// `breakerbox_store_degraded` and `breakerbox_queue_depth{breaker="b"}` from `/metrics`
    /// (which must answer 200).
    async fn store_figures(&self) -> (f64, f64) {
        let answer = self
            .client
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("/metrics answers");
        assert_eq!(answer.status(), 200, "/metrics");
        let scrape = Scrape::parse(&answer.text().await.expect("metrics text"));
        let value = |name: &str, labels: &[(&str, &str)]| scrape.get(name, labels).unwrap_or(0.0);
        (
            value("breakerbox_store_degraded", &[]),
            value("breakerbox_queue_depth", &[("breaker", "b")]),
        )
    }

    /// The `database` breaker's state from the admin API.
    async fn database_state(&self) -> String {
        self.breaker_state("database").await
    }

    /// `GET path` (with `token` if given): the JSON body (the answer must be 200).
    async fn get_json(&self, path: &str, token: Option<&str>) -> Value {
        let mut request = self.client.get(self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let answer = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path} answers: {e}"));
        assert_eq!(answer.status(), 200, "{path}");
        let bytes = answer.bytes().await.expect("a body");
        serde_json::from_slice(&bytes).expect("JSON")
    }

    /// A breaker's state from the admin API.
    async fn breaker_state(&self, name: &str) -> String {
        let body = self
            .get_json(&format!("/admin/breakers/{name}"), Some(TOKEN))
            .await;
        body["data"]["state"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The database's status in `GET /health/detailed`.
    async fn database_health(&self) -> String {
        let body = self.get_json("/health/detailed", None).await;
        body["services"]["database"]["status"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// `GET /admin/queue`.
    async fn admin_queue(&self) -> Value {
        self.get_json("/admin/queue", Some(TOKEN)).await
    }

    /// POSTs `tag` to `b`: the status and the JSON answer.
    async fn post_b(&self, tag: &str) -> (u16, Value) {
        let answer = self
            .client
            .post(self.url("/proxy/b/orders"))
            .body(tag.to_owned())
            .send()
            .await
            .expect("the gateway answers");
        let status = answer.status().as_u16();
        let bytes = answer.bytes().await.unwrap_or_default();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, body)
    }

    /// Polls `check` until it holds; panics with `what` and the log after [`LIMIT`]. Answers
    /// how long it took.
    async fn wait_for<F, Fut>(&self, what: &str, check: F) -> Duration
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let started = Instant::now();
        assert!(
            eventually(LIMIT, check).await,
            "timed out after {LIMIT:?} waiting for {what}\n{}",
            self.log_tail()
        );
        started.elapsed()
    }

    /// Waits until `b` has every `accepted` request and every row `rows` reads is delivered,
    /// then asserts each was delivered exactly once. Answers how long the first wait took.
    async fn await_replayed_once<F, Fut>(
        &self,
        b: &Upstream,
        accepted: &BTreeSet<String>,
        rows: F,
    ) -> Duration
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Vec<(String, String)>>,
    {
        let replayed_after = self
            .wait_for("every queued request replayed", || async {
                accepted
                    .iter()
                    .all(|tag| b.posts_by_tag().contains_key(tag))
            })
            .await;
        self.wait_for("no request left pending", || {
            let rows = rows();
            async move { rows.await.iter().all(|(_, s)| s == "delivered") }
        })
        .await;
        // Every row is finished: nothing can be sent again from here on.
        let delivered = b.posts_by_tag();
        let twice: Vec<_> = delivered.iter().filter(|(_, n)| **n != 1).collect();
        assert!(twice.is_empty(), "delivered more than once: {twice:?}");
        let tags: BTreeSet<String> = delivered.into_keys().collect();
        assert_eq!(&tags, accepted, "b received exactly the accepted requests");
        assert_rows(&rows().await, accepted, "delivered");
        replayed_after
    }
}

// ---------------------------------------------------------------------------------------------
// The queue table, read by the test's own connection

const ROWS: &str = "SELECT body, status FROM queued_requests WHERE upstream = 'b'";

/// The bodies (tags) and statuses of `b`'s rows in a PostgreSQL queue table.
async fn pg_rows(url: &str) -> Vec<(String, String)> {
    let mut conn = sqlx::PgConnection::connect(url)
        .await
        .unwrap_or_else(|e| panic!("the test connects to {url}: {e}"));
    let rows: Vec<(Vec<u8>, String)> = sqlx::query_as(ROWS)
        .fetch_all(&mut conn)
        .await
        .expect("the queue table is readable");
    let _ = conn.close().await;
    tags(rows)
}

fn tags(rows: Vec<(Vec<u8>, String)>) -> Vec<(String, String)> {
    rows.into_iter()
        .map(|(body, status)| (String::from_utf8_lossy(&body).into_owned(), status))
        .collect()
}

/// Asserts the rows hold each tag of `accepted` once, all with `status`.
fn assert_rows(rows: &[(String, String)], accepted: &BTreeSet<String>, status: &str) {
    let tags: BTreeSet<String> = rows.iter().map(|(tag, _)| tag.clone()).collect();
    assert_eq!(rows.len(), tags.len(), "one row per request: {rows:?}");
    assert_eq!(
        &tags, accepted,
        "the table holds exactly the accepted requests"
    );
    let other: Vec<_> = rows.iter().filter(|(_, s)| s != status).collect();
    assert!(other.is_empty(), "rows not {status}: {other:?}");
}

// ---------------------------------------------------------------------------------------------
// A steady trickle of requests

/// Where the run is when a request is sent.
const BEFORE: u8 = 0;
const OUTAGE: u8 = 1;
const RECOVERY: u8 = 2;

#[derive(Debug, Clone)]
struct Answer {
    phase: u8,
    /// `a` or `b`.
    to: char,
    tag: String,
    status: u16,
    body: String,
    took: Duration,
}

/// Two independent loops, so that a slow answer from one upstream's path never delays the
/// other's: a GET to `a` and a POST to `b`, each every 40 ms and numbered, until stopped.
struct Trickle {
    phase: Arc<AtomicU8>,
    stop: Arc<AtomicBool>,
    tasks: [tokio::task::JoinHandle<Vec<Answer>>; 2],
}

impl Trickle {
    fn start(base: &str) -> Trickle {
        let phase = Arc::new(AtomicU8::new(BEFORE));
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = ['a', 'b'].map(|to| {
            let (phase, stop, base) = (Arc::clone(&phase), Arc::clone(&stop), base.to_owned());
            tokio::spawn(send_until_stopped(to, base, phase, stop))
        });
        Trickle { phase, stop, tasks }
    }

    fn enter(&self, phase: u8) {
        self.phase.store(phase, SeqCst);
    }

    /// Stops sending and answers every answer received.
    async fn finish(self) -> Vec<Answer> {
        self.stop.store(true, SeqCst);
        let mut answers = Vec::new();
        for task in self.tasks {
            answers.extend(task.await.expect("a trickle task"));
        }
        answers
    }
}

async fn send_until_stopped(
    to: char,
    base: String,
    phase: Arc<AtomicU8>,
    stop: Arc<AtomicBool>,
) -> Vec<Answer> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client");
    let mut answers = Vec::new();
    let mut n = 0u32;
    while !stop.load(SeqCst) {
        n += 1;
        let phase = phase.load(SeqCst);
        let tag = format!("order-{n}");
        let request = if to == 'a' {
            client.get(format!("{base}/proxy/a/item?n={n}"))
        } else {
            client
                .post(format!("{base}/proxy/b/orders"))
                .body(tag.clone())
        };
        let started = Instant::now();
        let (status, body) = match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                (status, response.text().await.unwrap_or_default())
            }
            Err(e) => (0, format!("no answer: {e}")),
        };
        let took = started.elapsed();
        answers.push(Answer {
            phase,
            to,
            tag,
            status,
            body,
            took,
        });
        tokio::time::sleep(Duration::from_millis(40).saturating_sub(took)).await;
    }
    answers
}

/// Counts the trickle's answers per phase and checks every one: `a` answered 200 with its own
/// body, `b` 202 queued (in memory throughout the outage). Answers the tags `b` accepted.
fn check_answers(answers: &[Answer]) -> BTreeSet<String> {
    let mut accepted = BTreeSet::new();
    for answer in answers {
        let context = format!("{answer:?}");
        if answer.to == 'a' {
            assert_eq!(answer.status, 200, "a keeps being served: {context}");
            let n = answer.tag.trim_start_matches("order-");
            assert_eq!(answer.body, format!("a:/item?n={n}"), "a's own answer");
            continue;
        }
        assert_eq!(answer.status, 202, "b's POST is queued: {context}");
        let body: Value = serde_json::from_str(&answer.body).expect("a JSON answer");
        assert_eq!(body["queued"], true, "{context}");
        if answer.phase == OUTAGE {
            assert_eq!(body["durability"], "memory", "held in memory: {context}");
        }
        assert!(accepted.insert(answer.tag.clone()), "one answer per tag");
    }
    accepted
}

fn count(answers: &[Answer], to: char, phase: u8) -> usize {
    answers
        .iter()
        .filter(|a| a.to == to && a.phase == phase)
        .count()
}

fn slowest(answers: &[Answer], to: char, phase: u8) -> Duration {
    answers
        .iter()
        .filter(|a| a.to == to && a.phase == phase)
        .map(|a| a.took)
        .max()
        .unwrap_or_default()
}

fn durability(answers: &[Answer], kind: &str) -> usize {
    answers
        .iter()
        .filter(|a| a.to == 'b')
        .filter(|a| {
            serde_json::from_str::<Value>(&a.body).is_ok_and(|body| body["durability"] == kind)
        })
        .count()
}

// ---------------------------------------------------------------------------------------------
// The shared course of an outage

/// How a store is taken away and given back.
trait Outage {
    /// The `[store]` table.
    fn store_table(&self) -> String;
    /// Makes the database unusable.
    async fn begin(&mut self);
    /// Makes it usable again.
    async fn end(&mut self);
    /// `b`'s rows in the queue table.
    async fn rows(&self) -> Vec<(String, String)>;
}

/// What an outage run measured, for the report.
struct Figures {
    answers_before: usize,
    answers_during: usize,
    answers_after: usize,
    held_in_memory: usize,
    slowest_a_during: Duration,
    slowest_b_during: Duration,
    degraded_after: Duration,
    /// From the database's return to `store_degraded 0` with the `database` breaker closed
    /// (the memory buffer written back).
    healthy_after: Duration,
    queued_total: usize,
    replayed_after: Duration,
}

impl Figures {
    fn report(&self) -> String {
        format!(
            "{} + {} + {} answers (before, during, after the outage), all as expected; \
             {} of b's requests held in memory; slowest answer during the outage: a {:?}, \
             b {:?}; store_degraded 1 after {:?}; buffer written back and the database breaker \
             closed {:?} after the store returned; {} queued requests replayed once each, \
             in order, {:?} after b came up",
            self.answers_before,
            self.answers_during,
            self.answers_after,
            self.held_in_memory,
            self.slowest_a_during,
            self.slowest_b_during,
            self.degraded_after,
            self.healthy_after,
            self.queued_total,
            self.replayed_after,
        )
    }
}

/// The whole course: trickle, outage, recovery, write-back, replay exactly once.
async fn outage_run(outage: &mut impl Outage) -> Figures {
    let dir = TempDir::new();
    let a = Upstream::start("a").await;
    let down = Down::new("b");
    let config = write_config(&dir.0, &outage.store_table(), a.addr, down.addr);
    let gateway = Gateway::serve(&config, dir.0.join("gateway.log")).await;
    let trickle = Trickle::start(&gateway.process.base);

    // Healthy store: b's requests reach the table.
    gateway
        .wait_for("requests stored while the store is healthy", || async {
            outage.rows().await.len() >= 5
        })
        .await;
    assert_eq!(gateway.store_figures().await.0, 0.0, "not degraded yet");

    outage.begin().await;
    trickle.enter(OUTAGE);
    let began = Instant::now();
    let degraded_after = gateway
        .wait_for("breakerbox_store_degraded 1", || async {
            gateway.store_figures().await.0 == 1.0
        })
        .await;
    gateway
        .wait_for("the database breaker open", || async {
            gateway.database_state().await == "open"
        })
        .await;
    // Long enough for the breaker to cycle open → half-open → open a few times.
    while began.elapsed() < Duration::from_secs(3) {
        assert_eq!(gateway.store_figures().await.0, 1.0, "degraded throughout");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Liveness holds; the detailed report names the database.
    let health = gateway.client.get(gateway.url("/health")).send().await;
    assert_eq!(
        health.map(|r| r.status()).ok(),
        Some(reqwest::StatusCode::OK)
    );
    assert_eq!(gateway.database_health().await, "unhealthy");
    // The operator's view still answers, from memory.
    let queue = gateway.admin_queue().await;
    assert_eq!(queue["meta"]["store_degraded"], true, "{queue}");
    // The depth counts only memory then, and says so: not to be read as the whole queue.
    assert_eq!(queue["meta"]["pending_complete"], false, "{queue}");
    let listed = queue["data"]["b"].as_array().map_or(0, Vec::len);
    assert!(
        listed >= 1,
        "b's requests held in memory are listed: {queue}"
    );

    // Requests from here on may meet the database already back.
    trickle.enter(RECOVERY);
    outage.end().await;
    let healthy_after = gateway
        .wait_for("the store healthy again", || async {
            gateway.store_figures().await.0 == 0.0 && gateway.database_state().await == "closed"
        })
        .await;
    let answers = trickle.finish().await;
    let accepted = check_answers(&answers);
    assert!(
        count(&answers, 'b', OUTAGE) >= 10,
        "enough requests during the outage"
    );

    // Whatever was still in memory when the trickle stopped reaches the table too.
    gateway
        .wait_for("every accepted request in the queue table", || async {
            outage.rows().await.len() >= accepted.len() && gateway.store_figures().await.0 == 0.0
        })
        .await;
    assert_rows(&outage.rows().await, &accepted, "pending");
    assert_eq!(gateway.database_state().await, "closed");
    assert_eq!(gateway.database_health().await, "healthy");

    // b comes up: every accepted request is delivered, once.
    let b = down.up();
    let replayed_after = gateway
        .await_replayed_once(&b, &accepted, || outage.rows())
        .await;
    // The trickle sent b's requests one after the other: the replay keeps that order.
    let mut in_order: Vec<&String> = accepted.iter().collect();
    in_order.sort_by_key(|tag| tag.trim_start_matches("order-").parse::<u32>().unwrap_or(0));
    assert_eq!(
        b.posted().iter().collect::<Vec<_>>(),
        in_order,
        "replayed in the order accepted"
    );
    let a_answers = answers.iter().filter(|x| x.to == 'a').count();
    assert_eq!(
        a.seen.lock().expect("seen").len(),
        a_answers,
        "every GET reached a"
    );

    Figures {
        answers_before: count(&answers, 'b', BEFORE) + count(&answers, 'a', BEFORE),
        answers_during: count(&answers, 'b', OUTAGE) + count(&answers, 'a', OUTAGE),
        answers_after: count(&answers, 'b', RECOVERY) + count(&answers, 'a', RECOVERY),
        held_in_memory: durability(&answers, "memory"),
        slowest_a_during: slowest(&answers, 'a', OUTAGE),
        slowest_b_during: slowest(&answers, 'b', OUTAGE),
        degraded_after,
        healthy_after,
        queued_total: accepted.len(),
        replayed_after,
    }
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL stopped mid-run

struct PgOutage(PgServer);

impl Outage for PgOutage {
    fn store_table(&self) -> String {
        format!(
            "[store]\nurl = \"{}\"\nfailure_threshold = 1\nopen_duration = \"500ms\"\n\
             call_timeout = \"1s\"",
            self.0.url()
        )
    }

    async fn begin(&mut self) {
        self.0.stop();
    }

    async fn end(&mut self) {
        self.0.start();
    }

    async fn rows(&self) -> Vec<(String, String)> {
        pg_rows(&self.0.url()).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_mid_run_keeps_proxying_and_loses_no_queued_request() {
    let mut outage = PgOutage(PgServer::new());
    let figures = outage_run(&mut outage).await;
    println!("PostgreSQL stopped: {}", figures.report());
}

// ---------------------------------------------------------------------------------------------
// SQLite locked by another process's connection

/// Another connection holds `BEGIN EXCLUSIVE`: the gateway's writes wait out SQLite's busy
/// timeout (`store.call_timeout`) and fail with SQLITE_BUSY; reads still work (WAL).
struct SqliteLock {
    dir: TempDir,
    holder: Option<sqlx::SqliteConnection>,
}

impl SqliteLock {
    fn url(&self) -> String {
        self.dir.sqlite_url("gateway.db")
    }
}

impl Outage for SqliteLock {
    fn store_table(&self) -> String {
        format!(
            "[store]\nurl = \"{}\"\nfailure_threshold = 1\nopen_duration = \"500ms\"\n\
             call_timeout = \"1s\"",
            self.url()
        )
    }

    async fn begin(&mut self) {
        let mut holder = sqlx::SqliteConnection::connect(&self.url())
            .await
            .expect("the test opens the gateway's database");
        sqlx::raw_sql("BEGIN EXCLUSIVE")
            .execute(&mut holder)
            .await
            .expect("the test takes the exclusive lock");
        self.holder = Some(holder);
    }

    async fn end(&mut self) {
        let mut holder = self.holder.take().expect("the lock is held");
        sqlx::raw_sql("COMMIT")
            .execute(&mut holder)
            .await
            .expect("the test releases the lock");
        let _ = holder.close().await;
    }

    async fn rows(&self) -> Vec<(String, String)> {
        let mut conn = sqlx::SqliteConnection::connect(&self.url())
            .await
            .expect("the test opens the gateway's database");
        let rows: Vec<(Vec<u8>, String)> = sqlx::query_as(ROWS)
            .fetch_all(&mut conn)
            .await
            .expect("the queue table is readable");
        let _ = conn.close().await;
        tags(rows)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_locked_mid_run_keeps_proxying_and_loses_no_queued_request() {
    let mut outage = SqliteLock {
        dir: TempDir::new(),
        holder: None,
    };
    let figures = outage_run(&mut outage).await;
    println!("SQLite locked: {}", figures.report());
}

// ---------------------------------------------------------------------------------------------
// SIGKILL with PostgreSQL

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_with_postgres_loses_no_queued_request() {
    let pg = PgServer::new();
    let dir = TempDir::new();
    let a = Upstream::start("a").await;
    let down = Down::new("b");
    let store = format!("[store]\nurl = \"{}\"", pg.url());
    let config = write_config(&dir.0, &store, a.addr, down.addr);
    let mut gateway = Gateway::serve(&config, dir.0.join("first.log")).await;

    // b is down: each request is accepted into PostgreSQL. (The replayer runs at start and then
    // every 5 s; this takes well under that, so no replay attempt holds a claim at the kill.)
    let count = 20;
    let mut accepted = BTreeSet::new();
    for i in 0..count {
        let tag = format!("killed-{i}");
        let (status, body) = gateway.post_b(&tag).await;
        assert_eq!(status, 202, "request {i} queued: {body}");
        assert_eq!(body["durability"], "stored", "request {i} in PostgreSQL");
        accepted.insert(tag);
    }
    assert_rows(&pg_rows(&pg.url()).await, &accepted, "pending");

    gateway.process.signal("KILL");
    let status = gateway.process.wait_exit(LIMIT).await;
    assert!(!status.success(), "killed, got {status}");

    // Restarted on the same database, b still down: it finds all of them.
    let gateway = Gateway::serve(&config, dir.0.join("second.log")).await;
    gateway
        .wait_for("the restarted gateway's queue depth", || async {
            gateway.store_figures().await.1 == count as f64
        })
        .await;

    let b = down.up();
    let url = pg.url();
    let replayed_after = gateway
        .await_replayed_once(&b, &accepted, || pg_rows(&url))
        .await;
    println!(
        "SIGKILL with PostgreSQL: {count} queued, all replayed once {replayed_after:?} after b came up"
    );
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL stopped while a replay is in flight

/// The replayer claims the oldest request and sends it to `b`, which hangs; PostgreSQL stops
/// before `b`'s call times out, so the claim cannot be released. Once both are back, every
/// request is still delivered once and in order, without waiting out the claim lease (60 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_during_a_replay_attempt_keeps_order_and_loses_nothing() {
    let mut pg = PgServer::new();
    let dir = TempDir::new();
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    b.hang.store(true, SeqCst);
    let store = format!(
        "[store]\nurl = \"{}\"\nfailure_threshold = 1\nopen_duration = \"500ms\"\n\
         call_timeout = \"1s\"",
        pg.url()
    );
    let config = write_config(&dir.0, &store, a.addr, b.addr);
    let gateway = Gateway::serve(&config, dir.0.join("gateway.log")).await;

    // The first POST times out at b (and opens its breaker); the rest are queued at once.
    let tags: Vec<String> = (0..5).map(|i| format!("ordered-{i}")).collect();
    for tag in &tags {
        let (status, body) = gateway.post_b(tag).await;
        assert_eq!(status, 202, "{tag} queued: {body}");
        assert_eq!(body["durability"], "stored", "{tag} in PostgreSQL");
    }
    let hung_with = |tag: &str| {
        b.hung
            .lock()
            .expect("hung")
            .iter()
            .filter(|s| s.body.as_ref() == tag.as_bytes())
            .count()
    };
    assert!(hung_with(&tags[0]) >= 1, "the first POST reached b");

    // The replayer's attempt at the oldest request hangs at b: take PostgreSQL away under it.
    gateway
        .wait_for("a replay attempt in flight", || async {
            hung_with(&tags[0]) == 2
        })
        .await;
    pg.stop();
    // The attempt times out at b (its breaker opens again) while the store is down.
    gateway
        .wait_for("the replay attempt over", || async {
            gateway.breaker_state("b").await == "open"
        })
        .await;
    // Its claim cannot be given back: the store notices it is down (within store.call_timeout).
    gateway
        .wait_for("breakerbox_store_degraded 1", || async {
            gateway.store_figures().await.0 == 1.0
        })
        .await;

    pg.start();
    b.hang.store(false, SeqCst);
    let replayed_after = gateway
        .wait_for("every queued request replayed", || async {
            b.posted().len() >= tags.len()
        })
        .await;
    gateway
        .wait_for("no request left pending", || async {
            pg_rows(&pg.url())
                .await
                .iter()
                .all(|(_, s)| s == "delivered")
        })
        .await;
    assert_eq!(
        b.posted(),
        tags,
        "each delivered once, in the order accepted\n{}",
        gateway.log_tail()
    );
    println!("replay interrupted by a PostgreSQL stop: all delivered {replayed_after:?} after");
}
