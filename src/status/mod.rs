//! `breakerbox status`: every breaker's state and figures from a running gateway's admin API,
//! as a plain-text table.
//!
//! [`fetch`] reads `GET {url}/admin/breakers`; [`render`] lays the rows out. Every failure is a
//! [`StatusError`] that says what to do about it.

mod parse;
mod render;

use std::time::Duration;

use crate::config::redact_url;

pub use render::{render, render_at};

/// How long [`fetch`] waits for the gateway.
const TIMEOUT: Duration = Duration::from_secs(10);

/// One breaker as the admin API reports it: the snapshot JSON the gateway writes.
pub use crate::api::SnapshotJson as BreakerRow;

/// Why [`fetch`] could not read the breakers.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StatusError {
    /// The URL is not usable.
    #[error("`{url}` is not a usable gateway URL: {why}")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        why: String,
    },
    /// Nothing listens at the URL.
    #[error("connection refused at {url} (is the gateway running? use --url to point elsewhere)")]
    Refused {
        /// The gateway's base URL.
        url: String,
    },
    /// The gateway did not answer in time.
    #[error("no answer from {url} within {}s", TIMEOUT.as_secs())]
    Timeout {
        /// The gateway's base URL.
        url: String,
    },
    /// Any other transport failure.
    #[error("cannot reach {url}: {why}")]
    Unreachable {
        /// The gateway's base URL.
        url: String,
        /// The innermost cause.
        why: String,
    },
    /// 401.
    #[error("{url} answered 401: token missing or wrong (use --token or BREAKERBOX_TOKEN)")]
    Unauthorized {
        /// The URL asked.
        url: String,
    },
    /// 403.
    #[error(
        "{url} answered 403: this token may not read the breakers (it needs the viewer or admin role)"
    )]
    Forbidden {
        /// The URL asked.
        url: String,
    },
    /// Any other non-success status.
    #[error("{url} answered {status}{}", message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Status {
        /// The URL asked.
        url: String,
        /// The status code.
        status: u16,
        /// The `message` of a JSON error answer, if any.
        message: Option<String>,
    },
    /// The answer is not the JSON the admin API gives.
    #[error("unexpected JSON from {url}: {what}")]
    Json {
        /// The URL asked.
        url: String,
        /// What was missing or wrong, with its path (`data.plex.state is missing`).
        what: String,
    },
}

/// Reads every breaker from the gateway at `url` (e.g. `http://127.0.0.1:8080`; `http://` is
/// assumed when no scheme is given) with `token` as the bearer token. Rows come sorted by name.
pub async fn fetch(url: &str, token: Option<&str>) -> Result<Vec<BreakerRow>, StatusError> {
    let base = base_url(url);
    let endpoint = format!("{base}/admin/breakers");
    // Errors name the URL; a password or token in it is not repeated.
    let shown = redact_url(&base).into_owned();
    let shown_endpoint = redact_url(&endpoint).into_owned();
    let client = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .build()
        .map_err(|e| StatusError::Unreachable {
            url: shown.clone(),
            why: innermost(&e),
        })?;
    let mut request = client.get(&endpoint);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.map_err(|e| transport(&shown, &e))?;
    let status = response.status().as_u16();
    let body = response.bytes().await.map_err(|e| transport(&shown, &e))?;
    match status {
        200 => parse::rows(&body).map_err(|what| StatusError::Json {
            url: shown_endpoint,
            what,
        }),
        401 => Err(StatusError::Unauthorized {
            url: shown_endpoint,
        }),
        403 => Err(StatusError::Forbidden {
            url: shown_endpoint,
        }),
        _ => {
            let message = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("message")?.as_str().map(str::to_owned));
            Err(StatusError::Status {
                url: shown_endpoint,
                status,
                message,
            })
        }
    }
}

/// `url` without a trailing `/`, with `http://` in front when it has no scheme.
fn base_url(url: &str) -> String {
    let url = url.trim().trim_end_matches('/');
    if url.contains("://") {
        url.to_owned()
    } else {
        format!("http://{url}")
    }
}

fn transport(base: &str, error: &reqwest::Error) -> StatusError {
    let url = base.to_owned();
    if error.is_builder() {
        return StatusError::BadUrl {
            url,
            why: innermost(error),
        };
    }
    if error.is_timeout() {
        return StatusError::Timeout { url };
    }
    if refused(error) {
        return StatusError::Refused { url };
    }
    StatusError::Unreachable {
        url,
        why: innermost(error),
    }
}

fn refused(error: &reqwest::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = cause {
        if let Some(io) = current.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return true;
        }
        cause = current.source();
    }
    false
}

fn innermost(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::base_url;

    #[test]
    fn base_url_gets_a_scheme_and_loses_its_trailing_slash() {
        assert_eq!(base_url("127.0.0.1:8080/"), "http://127.0.0.1:8080");
        assert_eq!(base_url("https://gw.example/"), "https://gw.example");
    }
}
