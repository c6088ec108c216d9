//! Sorting every answer the clients get into the classes the contract allows; anything else
//! is a violation, described for the failure message.

use reqwest::header::HeaderMap;
use serde_json::Value;

/// The upstreams of the chaos configuration, one per fallback, all in front of the same
/// flapping server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    /// `fallback = "cache"`, GETs of a few items.
    Cached,
    /// `fallback = "degraded"`, GETs; retries off so the calls can be counted exactly.
    Degraded,
    /// `fallback = "queue"`, POSTs of order ids.
    Queued,
    /// `fallback = "error"`, GETs.
    Plain,
}

impl Target {
    pub const ALL: [Target; 4] = [
        Target::Cached,
        Target::Degraded,
        Target::Queued,
        Target::Plain,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Target::Cached => "cached",
            Target::Degraded => "degraded",
            Target::Queued => "queued",
            Target::Plain => "plain",
        }
    }
}

pub const DEGRADED_BODY: &str = r#"{"results":[],"degraded":true}"#;

/// What a client got.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Class {
    /// The upstream's own 200 (healthy phase).
    Upstream2xx,
    /// The upstream's own 5xx, passed on because no fallback could answer instead.
    Upstream5xx,
    /// `X-Breakerbox-Fallback: cache` with `Age`.
    Cache,
    /// The configured degraded answer.
    Degraded,
    /// 202 `{"queued":true,"id":…}`.
    Queued(String),
    /// A JSON 503 with `Retry-After` and this error code.
    Error503(String),
}

impl Class {
    /// The class without its id, for counting.
    pub fn label(&self) -> String {
        match self {
            Class::Upstream2xx => "upstream 2xx".into(),
            Class::Upstream5xx => "upstream 5xx".into(),
            Class::Cache => "fallback cache".into(),
            Class::Degraded => "fallback degraded".into(),
            Class::Queued(_) => "fallback queue (202)".into(),
            Class::Error503(code) => format!("503 {code}"),
        }
    }
}

/// Sorts one answer, or says why it breaks the contract.
pub fn classify(
    target: Target,
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Class, String> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let text = String::from_utf8_lossy(body);
    let json = || serde_json::from_slice::<Value>(body).ok();
    let describe = || format!("{} {status} {headers:?} {text}", target.name());
    match header("x-breakerbox-fallback") {
        Some("cache") => {
            let age_ok = header("age").is_some_and(|a| a.parse::<u64>().is_ok());
            let from_healthy =
                json().is_some_and(|v| v["from"] == "upstream" && v["phase"] == "healthy");
            if target == Target::Cached && status == 200 && age_ok && from_healthy {
                return Ok(Class::Cache);
            }
            return Err(format!("bad cache answer: {}", describe()));
        }
        Some("degraded") => {
            if target == Target::Degraded && status == 200 && text == DEGRADED_BODY {
                return Ok(Class::Degraded);
            }
            return Err(format!("bad degraded answer: {}", describe()));
        }
        Some("queue") => {
            let id = json().and_then(|v| {
                (v["queued"] == true)
                    .then(|| v["id"].as_str().map(str::to_owned))
                    .flatten()
            });
            return match id {
                Some(id) if target == Target::Queued && status == 202 && !id.is_empty() => {
                    Ok(Class::Queued(id))
                }
                _ => Err(format!("bad queue answer: {}", describe())),
            };
        }
        Some(other) => return Err(format!("unknown fallback {other}: {}", describe())),
        None => {}
    }
    if let Some(phase) = header("x-chaos-upstream") {
        let marked = json().is_some_and(|v| v["from"] == "upstream" && v["phase"] == phase);
        if !marked {
            return Err(format!("upstream header without its body: {}", describe()));
        }
        return match (status, phase) {
            (200, "healthy") => Ok(Class::Upstream2xx),
            // A slow answer must never reach a client: the call timeout is shorter.
            (200, _) => Err(format!("late upstream answer passed on: {}", describe())),
            (500..=599, "5xx") if matches!(target, Target::Cached | Target::Plain) => {
                Ok(Class::Upstream5xx)
            }
            _ => Err(format!(
                "upstream failure not replaced by the fallback: {}",
                describe()
            )),
        };
    }
    if status != 503 {
        return Err(format!("neither upstream nor fallback: {}", describe()));
    }
    let retry_after_ok =
        header("retry-after").is_some_and(|v| v.parse::<u64>().is_ok_and(|s| s >= 1));
    let json_type = header("content-type") == Some("application/json");
    let code = json().and_then(|v| {
        let object = v.as_object()?;
        let shaped = object.len() == 2 && object.get("message").is_some_and(Value::is_string);
        shaped
            .then(|| object.get("error")?.as_str().map(str::to_owned))
            .flatten()
    });
    let allowed: &[&str] = match target {
        Target::Cached | Target::Plain => {
            &["circuit_open", "upstream_unavailable", "upstream_timeout"]
        }
        Target::Queued => &["queue_full"],
        Target::Degraded => &[],
    };
    match code {
        Some(code) if retry_after_ok && json_type && allowed.contains(&code.as_str()) => {
            Ok(Class::Error503(code))
        }
        _ => Err(format!("503 off the contract: {}", describe())),
    }
}
