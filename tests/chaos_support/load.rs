//! Concurrent clients in a loop against the gateway, each answer classified and timed.

// Real servers and processes run in real time: waiting on them reads the system's clock.
#![allow(clippy::disallowed_methods)]

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use super::classify::{Class, Target, classify};

/// What became of one POST (its body is the order id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PostFate {
    /// The upstream answered 200 itself.
    Delivered,
    /// 202: queued under this id.
    Queued(String),
    /// Refused (503 `queue_full`): never to be delivered.
    Refused,
}

/// Everything the clients saw.
#[derive(Default)]
pub struct Tally {
    pub counts: BTreeMap<(Target, String), u64>,
    /// Slowest answer per class label.
    pub slowest: BTreeMap<String, Duration>,
    pub violations: Vec<String>,
    pub posts: HashMap<String, PostFate>,
    pub total: u64,
}

impl Tally {
    pub fn count(&self, target: Target, label: &str) -> u64 {
        self.counts
            .get(&(target, label.to_owned()))
            .copied()
            .unwrap_or(0)
    }

    pub fn slowest(&self) -> Duration {
        self.slowest.values().copied().max().unwrap_or_default()
    }

    fn merge(&mut self, other: Tally) {
        for (key, n) in other.counts {
            *self.counts.entry(key).or_default() += n;
        }
        for (label, d) in other.slowest {
            let slot = self.slowest.entry(label).or_default();
            *slot = (*slot).max(d);
        }
        self.violations.extend(other.violations);
        self.posts.extend(other.posts);
        self.total += other.total;
    }
}

/// Runs `clients` loops until `stop`; each sends to the targets in turn.
pub async fn run(base: String, clients: usize, limit: Duration, stop: Arc<AtomicBool>) -> Tally {
    let mut tasks = Vec::new();
    for client in 0..clients {
        tasks.push(tokio::spawn(one_client(
            base.clone(),
            client,
            limit,
            Arc::clone(&stop),
        )));
    }
    let mut tally = Tally::default();
    for task in tasks {
        tally.merge(task.await.expect("client task"));
    }
    tally
}

async fn one_client(base: String, client: usize, limit: Duration, stop: Arc<AtomicBool>) -> Tally {
    // The client gives up well after `limit`: a hang shows as a timeout, a slow answer as a
    // latency above `limit`.
    let http = reqwest::Client::builder()
        .timeout(limit + Duration::from_secs(5))
        .build()
        .expect("client");
    let mut tally = Tally::default();
    let mut n = 0usize;
    while !stop.load(Relaxed) {
        let target = Target::ALL[(client + n) % Target::ALL.len()];
        let id = format!("order-{client}-{n}");
        let request = match target {
            Target::Cached => http.get(format!("{base}/proxy/cached/item/{}", n % 4)),
            Target::Degraded => http.get(format!("{base}/proxy/degraded/search")),
            Target::Plain => http.get(format!("{base}/proxy/plain/status")),
            Target::Queued => http
                .post(format!("{base}/proxy/queued/orders"))
                .body(id.clone()),
        };
        n += 1;
        tally.total += 1;
        let started = Instant::now();
        let answer = async {
            let response = request.send().await?;
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let body = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, headers, body))
        }
        .await;
        let took = started.elapsed();
        let (status, headers, body) = match answer {
            Ok(answer) => answer,
            Err(err) => {
                tally.violations.push(format!(
                    "{} after {took:?}: no complete answer: {err}",
                    target.name()
                ));
                continue;
            }
        };
        match classify(target, status, &headers, &body) {
            Ok(class) => {
                let label = class.label();
                if took > limit {
                    tally.violations.push(format!(
                        "{} {label} took {took:?} > {limit:?}",
                        target.name()
                    ));
                }
                let slot = tally.slowest.entry(label.clone()).or_default();
                *slot = (*slot).max(took);
                *tally.counts.entry((target, label)).or_default() += 1;
                if target == Target::Queued {
                    let fate = match class {
                        Class::Upstream2xx => PostFate::Delivered,
                        Class::Queued(queue_id) => PostFate::Queued(queue_id),
                        _ => PostFate::Refused,
                    };
                    tally.posts.insert(id, fate);
                }
            }
            Err(why) => tally.violations.push(why),
        }
    }
    tally
}
