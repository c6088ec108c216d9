//! Serving: bind, serve until told to stop, drain in-flight requests, then persist the queue.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;

use super::connection::Connections;
use super::listener::FramingListener;
use crate::api;
use crate::config::Config;
use crate::gateway::{Gateway, StartError};

/// Why the gateway stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// It could not start.
    #[error(transparent)]
    Start(#[from] StartError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The configured `[server] listen`.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The server failed while running.
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
}

/// Starts the gateway for `config` and serves on `[server] listen` until SIGTERM or Ctrl-C,
/// then drains and shuts down cleanly.
pub async fn run(config: Config, config_path: Option<PathBuf>) -> Result<(), ServeError> {
    let addr = config.server.listen;
    let gateway = Gateway::start(config, config_path).await?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    serve(gateway, listener, termination()).await
}

/// Serves `gateway` on `listener` until `stop` resolves; in-flight requests finish, then the
/// gateway's background work stops and its queue is written to the store.
pub async fn serve(
    gateway: Arc<Gateway>,
    listener: TcpListener,
    stop: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let tasks = gateway.spawn_tasks();
    let addr = listener.local_addr()?;
    tracing::info!(%addr, upstreams = gateway.in_force().upstreams.len(), "breakerbox is serving");
    let app = api::app(Arc::clone(&gateway));
    // Connections are read through a framing tracker; each gets the service behind a check that
    // refuses what the tracker flagged, and the client's address as `ConnectInfo<SocketAddr>`.
    let served = axum::serve(FramingListener::new(listener), Connections::new(app))
        .with_graceful_shutdown(stop)
        .await;
    tracing::info!("draining done; persisting the queue");
    gateway.shutdown().await;
    for task in tasks {
        if let Err(error) = task.await {
            tracing::error!(%error, "background task ended abnormally");
        }
    }
    crate::telemetry::flush_traces().await;
    served.map_err(ServeError::Io)
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn termination() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(error) => {
                    tracing::error!(%error, "cannot watch SIGTERM; Ctrl-C still stops");
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: draining in-flight requests"),
            _ = tokio::signal::ctrl_c() => tracing::info!("Ctrl-C: draining in-flight requests"),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
