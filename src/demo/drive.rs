//! The demo's traffic generator: steady requests through the gateway, and one printed line
//! whenever the kind of answer an upstream gives changes.

use std::collections::HashMap;
use std::time::Duration;

use reqwest::header::HeaderMap;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};

use crate::config::{Config, Fallback, UpstreamConfig};
use crate::fallback::degraded::FALLBACK_HEADER;
use crate::outcome::FallbackKind;

use super::server::DEMO_HEADER;

/// Time between two rounds of requests.
const INTERVAL: Duration = Duration::from_millis(500);
/// Longest a request may take before it counts as unanswered.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Most requests in flight at once (slow upstreams hold theirs for a while).
const MAX_IN_FLIGHT: usize = 256;

/// One upstream to send traffic to through the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The upstream's name, as in `/proxy/NAME/...`.
    pub name: String,
    /// The path to GET (the health path, or `/ping`).
    pub path: String,
    /// Whether to POST a small JSON body too (upstreams whose fallback queues).
    pub post: bool,
}

impl From<&UpstreamConfig> for Target {
    fn from(upstream: &UpstreamConfig) -> Self {
        Target {
            name: upstream.name.clone(),
            path: upstream
                .health_path
                .clone()
                .unwrap_or_else(|| "/ping".to_owned()),
            post: upstream.fallback == Fallback::Queue,
        }
    }
}

/// A name alone: GET `/ping`, no POSTs.
impl From<String> for Target {
    fn from(name: String) -> Self {
        Target {
            name,
            path: "/ping".to_owned(),
            post: false,
        }
    }
}

impl From<&str> for Target {
    fn from(name: &str) -> Self {
        Target::from(name.to_owned())
    }
}

/// Every upstream of `config` as a target (health path; POSTs for queue upstreams).
pub fn targets(config: &Config) -> Vec<Target> {
    config.upstreams.values().map(Target::from).collect()
}

/// Sends traffic through the gateway at `gateway` (a base URL such as `http://127.0.0.1:8080`)
/// until `shutdown` turns true or its sender is dropped: every 500 ms, per target, a GET of its
/// path and, for queue targets, a POST. Prints one line to stdout whenever the kind of answer
/// (upstream, cache, degraded, queued, rejected, error) of a target changes.
///
/// Pass [`targets`] for health paths and POSTs; plain names (`Vec<String>`) work too.
pub async fn drive<T: Into<Target>>(
    gateway: &str,
    targets: Vec<T>,
    shutdown: watch::Receiver<bool>,
) {
    let targets = targets.into_iter().map(Into::into).collect();
    drive_with(gateway, targets, shutdown, INTERVAL, |line| {
        println!("{line}")
    })
    .await;
}

/// [`drive`] with the interval and the line sink as parameters.
pub(crate) async fn drive_with(
    gateway: &str,
    targets: Vec<Target>,
    mut shutdown: watch::Receiver<bool>,
    interval: Duration,
    mut emit: impl FnMut(&str),
) {
    let gateway = gateway.trim_end_matches('/').to_owned();
    let client = match reqwest::Client::builder().timeout(REQUEST_TIMEOUT).build() {
        Ok(client) => client,
        Err(error) => {
            emit(&format!(
                "demo traffic: cannot build an HTTP client: {error}"
            ));
            return;
        }
    };
    let width = targets.iter().map(|t| t.name.len()).max().unwrap_or(0);
    let start = Instant::now();
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let stop = async move {
        let _ = shutdown.wait_for(|stop| *stop).await;
    };
    tokio::pin!(stop);
    let mut in_flight = JoinSet::new();
    let mut seq = 0u64;
    // Per (target, is_post): the sequence number and kind of the latest answer shown.
    let mut last: HashMap<(usize, bool), (u64, AnswerKind)> = HashMap::new();
    loop {
        tokio::select! {
            () = &mut stop => break,
            _ = ticker.tick() => {
                for (index, target) in targets.iter().enumerate() {
                    for post in [false, true] {
                        if (post && !target.post) || in_flight.len() >= MAX_IN_FLIGHT {
                            continue;
                        }
                        seq += 1;
                        let request = request(&client, &gateway, target, post, seq);
                        in_flight.spawn(async move { (index, post, seq, send(request).await) });
                    }
                }
            }
            Some(done) = in_flight.join_next() => {
                let Ok((index, post, seq, answer)) = done else { continue };
                let key = (index, post);
                let newer = last.get(&key).is_none_or(|(shown, _)| *shown < seq);
                let changed = last.get(&key).is_none_or(|(_, kind)| *kind != answer.kind);
                if !newer {
                    continue;
                }
                last.insert(key, (seq, answer.kind.clone()));
                if changed {
                    let name = &targets[index].name;
                    let method = if post { "POST " } else { "" };
                    let secs = start.elapsed().as_secs_f64();
                    emit(&format!("{secs:>5.1}s  {name:<width$} {method}{}", answer.text));
                }
            }
        }
    }
    in_flight.abort_all();
}

fn request(
    client: &reqwest::Client,
    gateway: &str,
    target: &Target,
    post: bool,
    seq: u64,
) -> reqwest::RequestBuilder {
    let name = &target.name;
    if post {
        let body = serde_json::json!({ "demo": true, "seq": seq }).to_string();
        client
            .post(format!("{gateway}/proxy/{name}/ping"))
            .header("content-type", "application/json")
            .body(body)
    } else {
        let path = &target.path;
        let slash = if path.starts_with('/') { "" } else { "/" };
        client.get(format!("{gateway}/proxy/{name}{slash}{path}"))
    }
}

async fn send(request: reqwest::RequestBuilder) -> Answer {
    let response = match request.send().await {
        Ok(response) => response,
        Err(error) => return unanswered(&error),
    };
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = match response.bytes().await {
        Ok(body) => body,
        Err(error) => return unanswered(&error),
    };
    classify(status, &headers, &body)
}

fn unanswered(error: &reqwest::Error) -> Answer {
    if error.is_timeout() {
        let secs = REQUEST_TIMEOUT.as_secs();
        Answer::new(AnswerKind::NoAnswer, format!("no answer within {secs}s"))
    } else {
        let mut cause: &dyn std::error::Error = error;
        while let Some(source) = cause.source() {
            cause = source;
        }
        Answer::new(
            AnswerKind::NoAnswer,
            format!("gateway unreachable: {cause}"),
        )
    }
}

/// The kind of an answer: what a change is noticed on (an `Age` or `Retry-After` is not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AnswerKind {
    Upstream(u16),
    Cache,
    Degraded(u16),
    Queued,
    Rejected,
    Error(u16, String),
    NoAnswer,
}

/// A kind and the line that describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    pub(crate) kind: AnswerKind,
    pub(crate) text: String,
}

impl Answer {
    fn new(kind: AnswerKind, text: String) -> Self {
        Answer { kind, text }
    }
}

/// What kind of answer the gateway gave.
pub(crate) fn classify(status: u16, headers: &HeaderMap, body: &[u8]) -> Answer {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let fallback = header(FALLBACK_HEADER).and_then(FallbackKind::from_label);
    let json: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let field = |key: &str| {
        json.as_ref()
            .and_then(|j| j.get(key))
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    match fallback {
        Some(FallbackKind::Cache) => {
            let age = header("age").unwrap_or("?");
            let text = format!("answered from cache (X-Breakerbox-Fallback: cache, Age {age})");
            return Answer::new(AnswerKind::Cache, text);
        }
        Some(FallbackKind::Degraded) => {
            let text = format!("degraded answer (X-Breakerbox-Fallback: degraded, {status})");
            return Answer::new(AnswerKind::Degraded(status), text);
        }
        Some(FallbackKind::Queue) => {
            let text = format!("queued for replay ({status}, X-Breakerbox-Fallback: queue)");
            return Answer::new(AnswerKind::Queued, text);
        }
        _ => {}
    }
    if headers.contains_key(DEMO_HEADER) {
        let text = if status >= 500 {
            format!("upstream failing: {status} passed through")
        } else {
            format!("answered by the upstream ({status})")
        };
        return Answer::new(AnswerKind::Upstream(status), text);
    }
    match field("error") {
        Some(code) if code == "circuit_open" => {
            let after = header("retry-after").unwrap_or("?");
            let text = format!("rejected {status}: circuit open (Retry-After {after})");
            Answer::new(AnswerKind::Rejected, text)
        }
        Some(code) => {
            let message = field("message").unwrap_or_default();
            let text = format!("error {status} {code}: {message}");
            Answer::new(AnswerKind::Error(status, code), text)
        }
        None => {
            let text = format!("answered by the upstream ({status})");
            Answer::new(AnswerKind::Upstream(status), text)
        }
    }
}

#[cfg(test)]
#[path = "drive_tests.rs"]
mod tests;
