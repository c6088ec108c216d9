//! Serving: bind, serve until told to stop, drain in-flight requests, then persist the queue.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::connection::Guarded;
use super::descriptors;
use super::limits::{Registry, Slot, effective_max};
use super::listener::TrackedStream;
use crate::api::{self, App};
use crate::config::Config;
use crate::gateway::{Gateway, StartError};
use crate::telemetry;

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
    descriptors::raise_limit();
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
    let server = gateway.in_force().config.server.clone();
    let limits = Limits {
        header_read_timeout: server.header_read_timeout,
        idle_timeout: server.idle_timeout,
        registry: Registry::new(
            effective_max(server.max_connections, descriptors::soft_limit()),
            Arc::clone(gateway.clock()),
        ),
    };
    let served = accept_loop(listener, app, &limits, stop).await;
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

/// The connection settings in force (read at start: a reload does not change them).
#[derive(Debug)]
struct Limits {
    header_read_timeout: Duration,
    idle_timeout: Duration,
    registry: Arc<Registry>,
}

/// Accepts connections until `stop`, then waits for every connection to finish its requests.
async fn accept_loop(
    mut listener: TcpListener,
    app: App,
    limits: &Limits,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(());
    tokio::spawn(async move {
        stop.await;
        drop(stop_rx);
    });
    // Every connection task holds a receiver; the sender sees them all gone once they end.
    let (done_tx, done_rx) = watch::channel(());
    tokio::spawn(reap(
        Arc::clone(&limits.registry),
        limits.idle_timeout,
        stop_tx.clone(),
    ));
    loop {
        let (stream, peer) = tokio::select! {
            // axum's accept: it logs and backs off on errors such as too many open files.
            accepted = axum::serve::Listener::accept(&mut listener) => accepted,
            () = stop_tx.closed() => break,
        };
        let Some(slot) = limits.registry.admit(peer) else {
            // Every connection is busy: this one closes unanswered.
            drop(stream);
            continue;
        };
        let connection = Connection {
            stream,
            peer,
            slot,
            app: app.clone(),
            header_read_timeout: limits.header_read_timeout,
        };
        let stop_tx = stop_tx.clone();
        let done_rx = done_rx.clone();
        tokio::spawn(async move {
            connection.serve(&stop_tx).await;
            drop(done_rx);
        });
    }
    drop(done_rx);
    drop(listener);
    done_tx.closed().await;
    Ok(())
}

/// Closes idle connections until `stop`: a round every quarter of `idle` (between 10 ms and
/// 1 s), so a connection closes at most that much later than `idle` after its last request.
async fn reap(registry: Arc<Registry>, idle: Duration, stop: watch::Sender<()>) {
    let tick = (idle / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
    let mut rounds = tokio::time::interval(tick);
    rounds.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = rounds.tick() => {
                registry.reap(idle);
            }
            () = stop.closed() => return,
        }
    }
}

/// One accepted connection, before it is served.
struct Connection {
    stream: TcpStream,
    peer: SocketAddr,
    slot: Slot,
    app: App,
    header_read_timeout: Duration,
}

impl Connection {
    /// Serves HTTP/1 on the connection until it closes, a limit closes it, or `stop` asks it to
    /// finish its request in flight and close.
    async fn serve(self, stop: &watch::Sender<()>) {
        let liveness = Arc::clone(self.slot.liveness());
        let stream =
            TrackedStream::new(self.stream, Arc::clone(&liveness), self.header_read_timeout);
        let service = Guarded::new(
            self.app,
            self.peer,
            Arc::clone(stream.framing()),
            Arc::clone(&liveness),
        );
        // No hyper timer: its head timeout takes a timer per request. The stream bounds each
        // head; the registry's reaper closes idle connections.
        let builder = hyper::server::conn::http1::Builder::new();
        let mut conn = pin!(
            builder
                .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
                .with_upgrades()
        );
        let mut stopping = pin!(stop.closed());
        let mut draining = false;
        loop {
            tokio::select! {
                // hyper first: the others rarely fire, and their polls are cheap loads.
                biased;
                served = conn.as_mut() => {
                    if let Err(error) = served {
                        tracing::trace!(client = %self.peer, %error, "connection ended");
                    }
                    break;
                }
                () = std::future::poll_fn(|cx| liveness.poll_evicted(cx)) => break,
                () = &mut stopping, if !draining => {
                    conn.as_mut().graceful_shutdown();
                    draining = true;
                }
            }
        }
        if let Some(limit) = liveness.closed_by() {
            telemetry::connection_closed(limit, self.peer);
        }
        drop(self.slot);
    }
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
