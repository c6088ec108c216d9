//! The HTTP clients the upstreams share. A client holds a connection pool (keyed by scheme, host
//! and port), a TLS configuration and a resolver: building one per upstream made 10,000 upstreams
//! take half a minute and over a gigabyte to start. Everything that differs between upstreams is
//! set per request (the call's timeout, its headers) except the connect timeout, which the
//! connector only takes whole, so there is one client per distinct connect timeout.
//!
//! hyper-util's pooled client is used directly (HTTP/1.1, keep-alive): a gateway needs none of
//! what a general-purpose client adds on top (redirects, proxies, cookies, default headers), and
//! reqwest's layers cost a third of the gateway's instructions per proxied request
//! (docs/benchmarks.md).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_rustls::{ConfigBuilderExt as _, HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

/// The client an upstream calls through: plain HTTP or HTTPS, whole request bodies.
pub(crate) type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A client could not be built (the platform's certificate verifier failed to start).
pub type ClientError = rustls::Error;

/// How long an idle pooled connection is kept (reqwest's default, which this replaced).
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// TCP keepalive on upstream connections, so a dead peer of an idle one is noticed.
const TCP_KEEPALIVE: Duration = Duration::from_secs(15);

/// Clients by connect timeout. Cheap to share behind an `Arc`; a client handed out is a cheap
/// clone of the shared one.
#[derive(Debug, Default)]
pub struct HttpClients {
    by_connect_timeout: Mutex<HashMap<Duration, HttpClient>>,
}

impl HttpClients {
    /// No client built yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The client whose connect timeout is `connect_timeout`, built on first use.
    pub(crate) fn get(&self, connect_timeout: Duration) -> Result<HttpClient, ClientError> {
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

fn build(connect_timeout: Duration) -> Result<HttpClient, ClientError> {
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(connect_timeout));
    http.set_nodelay(true);
    http.set_keepalive(Some(TCP_KEEPALIVE));
    // The TLS layer takes `https` URLs; plain ones pass through it untouched.
    http.enforce_http(false);
    // A process-wide provider if one was installed, else the one compiled in.
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
    // HTTP/1.1 only, so no ALPN is offered (the connector refuses a preset one).
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .try_with_platform_verifier()?
        .with_no_client_auth();
    let connector = HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    // No redirect is followed (a gateway passes them to its client; following one could leave
    // the upstream) and no ambient HTTP_PROXY is consulted: this client does neither.
    Ok(Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .build(connector))
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
