//! The chaos suite: the real `breakerbox` binary in front of one real loopback upstream that
//! flaps through healthy, down (connection refused), slow (answers after the call timeout), 5xx
//! bursts and connection resets, while concurrent clients load four upstreams that reach it
//! with different fallbacks (cache, degraded, queue, error). Every answer must be the
//! upstream's, a fallback, or a JSON 503 with `Retry-After`, within the call timeout plus a
//! margin; the breakers must open and close; the queue must drain exactly once; no probe
//! permit or in-flight request may be left behind.
//!
//! CI runs one 20 s pass of the schedule (about 30 s in all). Soak mode repeats the schedule:
//! `CHAOS_SOAK_SECS=600 cargo test --release --test chaos -- --nocapture` (or
//! `scripts/soak 10`), and then also asserts the gateway's memory stays flat.

// Real servers and processes run in real time: waiting on them reads the system's clock.
#![allow(clippy::disallowed_methods)]

mod chaos_support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use breakerbox::store::StoreOptions;
use chaos_support::classify::{DEGRADED_BODY, Target};
use chaos_support::flapping::{Flapping, Phase};
use chaos_support::load::{self, PostFate};
use chaos_support::process::{ADMIN_TOKEN, Gateway, TempDir};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};

/// The gateway's `call_timeout` for every upstream.
const CALL_TIMEOUT: Duration = Duration::from_secs(1);
/// How much later than the call timeout an answer may arrive (the gateway's own work, the
/// SQLite queue, a busy 2-core machine).
const MARGIN: Duration = Duration::from_secs(2);
/// Concurrent clients.
const CLIENTS: usize = 12;
/// One pass of the schedule: every fault, each followed by a healthy spell that lets the
/// breakers close again. 20 s in all.
const SCHEDULE: &[(Phase, u64)] = &[
    (Phase::Healthy, 2400),
    (Phase::Down, 2000),
    (Phase::Healthy, 2400),
    (Phase::Slow, 2000),
    (Phase::Healthy, 2400),
    (Phase::Errors, 2000),
    (Phase::Healthy, 2400),
    (Phase::Reset, 2000),
    (Phase::Healthy, 2400),
];
/// Once the load stops the queue must keep draining: it fails if the backlog does not shrink
/// for this long (replays go one at a time; the backlog grows with the length of the run).
const DRAIN_STALL: Duration = Duration::from_secs(20);
/// Soak mode: how far the resident set may grow from the end of the first pass to the end.
const RSS_GROWTH_LIMIT_KIB: u64 = 16 * 1024;
const RSS_GROWTH_LIMIT_PERCENT: u64 = 25;

fn config(upstream: &str) -> String {
    format!(
        r#"
[server]
listen = "{{listen}}"

[store]
url = "sqlite://{{db}}"

[[admin.tokens]]
name = "chaos"
token = "{ADMIN_TOKEN}"
role = "admin"

[defaults]
failure_threshold = 3
failure_rate_threshold = 50
minimum_calls = 20
window = "2s"
open_duration = "500ms"
half_open_max_calls = 1
half_open_success_threshold = 1
call_timeout = "{timeout}ms"

[health]
check_interval = "1h"
detailed_cache = "0s"

[upstreams.cached]
url = "{upstream}"
fallback = "cache"
cache_ttl = "1h"

[upstreams.degraded]
url = "{upstream}"
fallback = "degraded"
# No retries: every request is exactly one call, so the metrics can be checked exactly.
retry_budget_percent = 0
retry_min_per_second = 0

[upstreams.degraded.degraded]
status = 200
body = '{DEGRADED_BODY}'
content_type = "application/json"

[upstreams.queued]
url = "{upstream}"
fallback = "queue"

[upstreams.plain]
url = "{upstream}"
fallback = "error"
"#,
        timeout = CALL_TIMEOUT.as_millis(),
    )
}

fn load_secs() -> u64 {
    std::env::var("CHAOS_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20)
}

/// What the monitor saw while the load ran.
#[derive(Default)]
struct Observed {
    states: BTreeMap<String, BTreeSet<String>>,
    /// (seconds since start, VmRSS KiB, [anonymous, file, shared memory] KiB, the database's
    /// files (main + WAL) KiB)
    rss: Vec<(u64, u64, [u64; 3], u64)>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_answer_under_chaos_is_the_upstreams_a_fallback_or_a_json_503() {
    let pass: u64 = SCHEDULE.iter().map(|(_, ms)| ms).sum();
    let passes = load_secs().saturating_mul(1000).div_ceil(pass).max(1);
    let limit = CALL_TIMEOUT + MARGIN;
    let rss_every = Duration::from_secs((passes * pass / 1000 / 20).max(5));

    let upstream = Flapping::start(CALL_TIMEOUT + Duration::from_millis(600)).await;
    let dir = TempDir::new();
    let mut gateway = Gateway::start(&dir.0, &config(&upstream.url())).await;
    let gateway_pid = gateway.pid();
    let started = Instant::now();

    let stop = Arc::new(AtomicBool::new(false));
    let clients = tokio::spawn(load::run(
        gateway.base.clone(),
        CLIENTS,
        limit,
        Arc::clone(&stop),
    ));

    // The monitor: breaker states every 100 ms, the gateway's RSS every 5 s (about 20
    // samples in soak mode).
    let observed = Arc::new(Mutex::new(Observed::default()));
    let monitor = {
        let observed = Arc::clone(&observed);
        let stop = Arc::clone(&stop);
        let admin = reqwest::Client::new();
        let url = gateway.url("/admin/breakers");
        let db = dir.0.join("gateway.db");
        tokio::spawn(async move {
            let mut last_rss = None::<Instant>;
            while !stop.load(Relaxed) {
                if let Ok(response) = admin.get(&url).bearer_auth(ADMIN_TOKEN).send().await
                    && let Ok(bytes) = response.bytes().await
                    && let Ok(body) = serde_json::from_slice::<serde_json::Value>(&bytes)
                    && let Some(data) = body["data"].as_object()
                {
                    let mut seen = observed.lock().expect("lock");
                    for target in Target::ALL {
                        if let Some(state) = data[target.name()]["state"].as_str() {
                            seen.states
                                .entry(target.name().to_owned())
                                .or_default()
                                .insert(state.to_owned());
                        }
                    }
                }
                if last_rss.is_none_or(|t| t.elapsed() >= rss_every)
                    && let Some(kib) = rss_kib(gateway_pid)
                {
                    last_rss = Some(Instant::now());
                    let at = started.elapsed().as_secs();
                    let split = ["RssAnon", "RssFile", "RssShmem"]
                        .map(|f| status_kib(gateway_pid, f).unwrap_or(0));
                    let db_kib = ["", "-wal"]
                        .map(|suffix| {
                            let mut name = db.clone().into_os_string();
                            name.push(suffix);
                            std::fs::metadata(name).map_or(0, |m| m.len() / 1024)
                        })
                        .iter()
                        .sum();
                    observed
                        .lock()
                        .expect("lock")
                        .rss
                        .push((at, kib, split, db_kib));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };

    // The schedule, `passes` times. The warmed-up RSS is taken after a quarter of the passes
    // (the first one at least): SQLite's per-connection caches and the malloc arenas of its
    // threads fill for the first minutes (2 in the release soak), so the bound asserts the
    // plateau over the last three quarters of the run.
    let warm_after = (passes / 4).max(1) - 1;
    let mut warm_rss = None;
    for n in 0..passes {
        for (phase, ms) in SCHEDULE {
            upstream.set(*phase);
            tokio::time::sleep(Duration::from_millis(*ms)).await;
        }
        if n == warm_after {
            warm_rss = rss_kib(gateway_pid);
        }
    }
    // The upstream is healthy (every pass ends so): under the same load every breaker closes.
    let mut closed = false;
    let deadline = Instant::now() + Duration::from_secs(15);
    while !closed && Instant::now() < deadline {
        let mut all = true;
        for target in Target::ALL {
            all &= gateway.breaker(target.name()).await["state"] == "closed";
        }
        closed = all;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let load_secs = started.elapsed().as_secs_f64();
    stop.store(true, Relaxed);
    let tally = clients.await.expect("clients");
    monitor.await.expect("monitor");
    let end_rss = rss_kib(gateway_pid);
    assert!(
        gateway.running(),
        "the gateway died: {}",
        gateway.log_text()
    );
    assert!(closed, "every breaker closed once the upstream was healthy");

    // The queue drains: every accepted POST reaches the upstream exactly once.
    let backlog = gateway.admin("/admin/queue").await["meta"]["pending"]["queued"]
        .as_u64()
        .unwrap_or(0);
    let drain_started = Instant::now();
    let mut progress = (backlog, Instant::now());
    let drained = loop {
        let queue = gateway.admin("/admin/queue").await;
        // A count the database did not take part in (it was busy or its breaker open) says
        // nothing about the rows still pending there.
        let counted = queue["meta"]["pending_complete"] == true;
        let pending = queue["meta"]["pending"]["queued"].as_u64().unwrap_or(0);
        if counted && pending == 0 {
            break true;
        }
        if counted && pending < progress.0 {
            progress = (pending, Instant::now());
        }
        if progress.1.elapsed() > DRAIN_STALL {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let drain_secs = drain_started.elapsed().as_secs_f64();
    let metrics = gateway.metrics().await;
    let snapshots: Vec<_> = {
        let mut all = Vec::new();
        for target in Target::ALL {
            all.push((target, gateway.breaker(target.name()).await));
        }
        all
    };
    // Requests in flight back to zero once the clients have stopped: `active_connections`
    // counts every request being served, so the one asking sees itself, 1.
    let mut in_flight = u64::MAX;
    let deadline = Instant::now() + Duration::from_secs(10);
    while in_flight != 1 && Instant::now() < deadline {
        let health = gateway.health_detailed().await;
        in_flight = health["system"]["active_connections"]
            .as_u64()
            .unwrap_or(u64::MAX);
        if in_flight != 1 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // The summary (visible with --nocapture): these figures go into docs/reliability.md.
    let observed = std::mem::take(&mut *observed.lock().expect("lock"));
    println!(
        "\n== chaos summary: {passes} pass(es) of {pass} ms, {CLIENTS} clients, load {load_secs:.1} s, call timeout {CALL_TIMEOUT:?}, bound {limit:?}"
    );
    println!("requests: {}", tally.total);
    for ((target, label), n) in &tally.counts {
        println!("  {:<9} {label:<28} {n}", target.name());
    }
    for (label, d) in &tally.slowest {
        println!("  slowest {label:<28} {} ms", d.as_millis());
    }
    println!("upstream received per phase: {:?}", upstream.received());
    for target in Target::ALL {
        let name = target.name();
        let t = |from: &str, to: &str| {
            metrics.sum(
                "breakerbox_breaker_transitions_total",
                &[("breaker", name), ("from", from), ("to", to)],
            )
        };
        println!(
            "  {name:<9} states seen {:?}; transitions closed->open {} open->half_open {} half_open->open {} half_open->closed {}; calls {:?}",
            observed.states.get(name),
            t("closed", "open"),
            t("open", "half_open"),
            t("half_open", "open"),
            t("half_open", "closed"),
            ["success", "failure", "timeout", "rejected"].map(|o| metrics.sum(
                "breakerbox_calls_total",
                &[("breaker", name), ("outcome", o)]
            ) as u64),
        );
    }
    let fates = |want: fn(&PostFate) -> bool| tally.posts.values().filter(|f| want(f)).count();
    println!(
        "POSTs: {} delivered directly, {} queued ({backlog} still pending when the load stopped, {} {drain_secs:.1} s), {} refused",
        fates(|f| matches!(f, PostFate::Delivered)),
        fates(|f| matches!(f, PostFate::Queued(_))),
        if drained {
            "drained in"
        } else {
            "NOT drained after"
        },
        fates(|f| matches!(f, PostFate::Refused)),
    );
    let warm_pass = warm_after + 1;
    println!(
        "RSS after pass {warm_pass}: {warm_rss:?} KiB; at the end: {end_rss:?} KiB; series (s, KiB):"
    );
    for (at, kib, [anon, file, shmem], db) in &observed.rss {
        println!("  rss {at:>5} {kib} anon {anon} file {file} shmem {shmem} db {db}");
    }
    println!(
        "half_open_probes at the end: {:?}; requests in flight (the asking one included): {in_flight}",
        snapshots
            .iter()
            .map(|(t, s)| (t.name(), s["half_open_probes"].as_u64()))
            .collect::<Vec<_>>()
    );

    // Every answer within the contract.
    assert!(
        tally.violations.is_empty(),
        "{} of {} answers broke the contract, e.g.:\n{}",
        tally.violations.len(),
        tally.total,
        tally
            .violations
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(tally.slowest() <= limit);
    // The faults were exercised: every phase reached the upstream and every fallback answered.
    let received = upstream.received();
    for phase in [Phase::Healthy, Phase::Slow, Phase::Errors, Phase::Reset] {
        assert!(
            received.get(&phase).copied().unwrap_or(0) > 0,
            "{phase:?} exercised"
        );
    }
    assert!(tally.count(Target::Cached, "fallback cache") > 0);
    assert!(tally.count(Target::Degraded, "fallback degraded") > 0);
    assert!(tally.count(Target::Queued, "fallback queue (202)") > 0);
    assert!(tally.count(Target::Plain, "503 circuit_open") > 0);

    // Breakers opened and closed, as the admin API and the metrics both tell.
    for target in Target::ALL {
        let name = target.name();
        let states = observed.states.get(name).cloned().unwrap_or_default();
        assert!(
            states.contains("open") && states.contains("closed"),
            "{name}: {states:?}"
        );
        let t = |from: &str, to: &str| {
            metrics.sum(
                "breakerbox_breaker_transitions_total",
                &[("breaker", name), ("from", from), ("to", to)],
            )
        };
        assert!(t("closed", "open") > 0.0, "{name} opened");
        assert!(t("open", "half_open") > 0.0, "{name} half-opened");
        assert!(t("half_open", "closed") > 0.0, "{name} closed again");
    }
    // The counts the clients made agree with the gateway's where they are exact.
    let calls = |name: &str, outcome: &str| {
        metrics.sum(
            "breakerbox_calls_total",
            &[("breaker", name), ("outcome", outcome)],
        ) as u64
    };
    let fallbacks = |name: &str, kind: &str| {
        metrics.sum(
            "breakerbox_fallbacks_total",
            &[("breaker", name), ("kind", kind)],
        ) as u64
    };
    assert_eq!(
        calls("degraded", "success"),
        tally.count(Target::Degraded, "upstream 2xx"),
        "degraded: one successful call per upstream answer"
    );
    assert_eq!(
        calls("degraded", "failure") + calls("degraded", "timeout") + calls("degraded", "rejected"),
        tally.count(Target::Degraded, "fallback degraded"),
        "degraded: one failed or rejected call per degraded answer"
    );
    assert_eq!(
        fallbacks("degraded", "degraded"),
        tally.count(Target::Degraded, "fallback degraded")
    );
    assert_eq!(
        fallbacks("cached", "cache"),
        tally.count(Target::Cached, "fallback cache")
    );
    assert_eq!(
        fallbacks("queued", "queue"),
        tally.count(Target::Queued, "fallback queue (202)")
    );
    for target in [Target::Cached, Target::Plain] {
        let errors: u64 = ["circuit_open", "upstream_unavailable", "upstream_timeout"]
            .iter()
            .map(|code| tally.count(target, &format!("503 {code}")))
            .sum();
        assert_eq!(fallbacks(target.name(), "error"), errors, "{target:?}");
        let all_calls: u64 = ["success", "failure", "timeout", "rejected"]
            .iter()
            .map(|o| calls(target.name(), o))
            .sum();
        let requests: u64 = tally
            .counts
            .iter()
            .filter(|((t, _), _)| *t == target)
            .map(|(_, n)| n)
            .sum();
        assert!(
            all_calls >= requests,
            "{target:?}: {all_calls} calls for {requests} requests"
        );
    }

    // The queue drained, each POST processed exactly once.
    if !drained {
        let queue = gateway.admin("/admin/queue").await;
        let pending: Vec<_> = queue["data"]["queued"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["status"] == "pending")
            .take(5)
            .collect();
        panic!(
            "the queue stopped draining for {DRAIN_STALL:?}: {}; e.g. {pending:?}; log: {}",
            queue["meta"],
            gateway
                .log_text()
                .lines()
                .rev()
                .take(20)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    let committed = upstream.committed_ids();
    for (id, fate) in &tally.posts {
        let expected = match fate {
            PostFate::Delivered | PostFate::Queued(_) => 1,
            PostFate::Refused => 0,
        };
        let processed = upstream.committed(id);
        if processed != expected {
            let row = match fate {
                PostFate::Queued(queued) => queue_row(&dir.0.join("gateway.db"), queued).await,
                _ => None,
            };
            panic!(
                "{id} ({fate:?}) processed {processed} time(s) by the upstream, expected \
                 {expected}; its queue row: {row:?}"
            );
        }
    }
    assert!(
        committed.keys().all(|id| tally.posts.contains_key(id)),
        "the upstream processed only POSTs the clients sent"
    );

    // Delivered requests do not pile up in the queue table: beyond the newest `finished_keep`
    // they are pruned within a replayer cycle or two (5 s each when idle).
    let keep = i64::try_from(StoreOptions::default().finished_keep).unwrap_or(i64::MAX);
    let db = dir.0.join("gateway.db");
    let deadline = Instant::now() + Duration::from_secs(30);
    let rows = loop {
        let rows = queue_rows(&db).await;
        let finished: i64 = rows
            .iter()
            .filter(|(s, _)| *s != "pending")
            .map(|(_, n)| n)
            .sum();
        if finished <= keep || Instant::now() > deadline {
            break rows;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    println!("queue table rows after the run, by status: {rows:?} (finished kept: {keep})");
    let finished: i64 = rows
        .iter()
        .filter(|(s, _)| *s != "pending")
        .map(|(_, n)| n)
        .sum();
    assert!(finished <= keep, "finished rows kept: {rows:?}");

    // Nothing left behind: no probe permit, no in-flight request.
    for (target, snapshot) in &snapshots {
        assert_eq!(snapshot["state"], "closed", "{target:?}");
        assert_eq!(snapshot["half_open_probes"], 0, "{target:?}: {snapshot}");
    }
    assert_eq!(
        in_flight, 1,
        "requests in flight after the load, the asking one included"
    );

    // Soak mode: memory flat once warmed up.
    if passes > 1 {
        let (Some(warm), Some(end)) = (warm_rss, end_rss) else {
            panic!("RSS not readable from /proc/{gateway_pid}/status");
        };
        let allowed = (warm * RSS_GROWTH_LIMIT_PERCENT / 100).max(RSS_GROWTH_LIMIT_KIB);
        assert!(
            end <= warm + allowed,
            "RSS grew from {warm} KiB after the first pass to {end} KiB (allowed +{allowed} KiB)"
        );
    }
}

/// The gateway's queue table, rows by status, read from its SQLite file.
async fn queue_rows(db: &Path) -> BTreeMap<String, i64> {
    let pool = read_only(db).await.expect("open the gateway's database");
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, COUNT(*) FROM queued_requests GROUP BY status")
            .fetch_all(&pool)
            .await
            .expect("count the queue table");
    pool.close().await;
    rows.into_iter().collect()
}

/// One queued request's row (status, status code, reason, attempts), for a failure message.
async fn queue_row(db: &Path, id: &str) -> Option<(String, Option<i64>, Option<String>, i64)> {
    let pool = read_only(db).await.ok()?;
    let row = sqlx::query_as(
        "SELECT status, status_code, reason, attempts FROM queued_requests WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&pool)
    .await
    .ok()
    .flatten();
    pool.close().await;
    row
}

/// The gateway's SQLite file, opened without writing to it.
async fn read_only(db: &Path) -> Result<SqlitePool, sqlx::Error> {
    SqlitePool::connect_with(SqliteConnectOptions::new().filename(db).read_only(true)).await
}

fn rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS")
}

/// A `… kB` line of `/proc/<pid>/status` (VmRSS, RssAnon, RssFile, RssShmem).
fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
