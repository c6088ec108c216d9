//! The HTTP clients the upstreams share. A client holds a connection pool (keyed by scheme, host
//! and port), a TLS configuration and a resolver: building one per upstream made 10,000 upstreams
//! take half a minute and over a gigabyte to start. Everything that differs between upstreams is
//! set per request (the call's timeout, its headers) except the connect timeout, which reqwest
//! only takes per client, so there is one client per distinct connect timeout.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// Clients by connect timeout. Cheap to share behind an `Arc`; a client handed out is a cheap
/// clone of the shared one.
#[derive(Debug, Default)]
pub struct HttpClients {
    by_connect_timeout: Mutex<HashMap<Duration, reqwest::Client>>,
}

impl HttpClients {
    /// No client built yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The client whose connect timeout is `connect_timeout`, built on first use.
    pub fn get(&self, connect_timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
        let mut clients = self
            .by_connect_timeout
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(client) = clients.get(&connect_timeout) {
            return Ok(client.clone());
        }
        let client = build(connect_timeout)?;
        clients.insert(connect_timeout, client.clone());
        Ok(client)
    }

    /// How many distinct clients exist.
    pub fn len(&self) -> usize {
        self.by_connect_timeout
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether no client was built yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn build(connect_timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        // A gateway passes redirects to its client; following them could leave the upstream.
        .redirect(reqwest::redirect::Policy::none())
        // Upstreams are addressed directly; an ambient HTTP_PROXY must not reroute them.
        .no_proxy()
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_client_per_distinct_connect_timeout() {
        let clients = HttpClients::new();
        assert!(clients.is_empty());
        clients.get(Duration::from_secs(5)).expect("client");
        clients.get(Duration::from_secs(5)).expect("client");
        assert_eq!(clients.len(), 1);
        clients.get(Duration::from_secs(2)).expect("client");
        assert_eq!(clients.len(), 2);
    }
}
