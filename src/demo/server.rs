//! One demo upstream on loopback: an axum server whose answers follow its [`Behaviour`], and a
//! supervisor that closes and reopens the port for the refused spells.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;

use super::behaviour::{Behaviour, Mode};

/// Header on every answer of a demo upstream, so the traffic generator can tell the upstream's
/// own answers from the gateway's.
pub(super) const DEMO_HEADER: &str = "x-demo-upstream";

/// Requests received, per method.
#[derive(Debug, Default)]
pub(super) struct Stats(Mutex<BTreeMap<String, u64>>);

impl Stats {
    fn count(&self, method: &str) {
        let mut counts = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *counts.entry(method.to_owned()).or_default() += 1;
    }

    pub(super) fn snapshot(&self) -> BTreeMap<String, u64> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

/// What the handlers of one upstream share.
#[derive(Debug)]
pub(super) struct Shared {
    pub(super) name: String,
    pub(super) behaviour: Behaviour,
    pub(super) start: Instant,
    pub(super) stats: Stats,
}

impl Shared {
    fn mode(&self) -> Mode {
        self.behaviour.mode_at(self.start.elapsed())
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/__demo/stats", get(stats))
        .fallback(answer)
        .with_state(shared)
}

async fn stats(State(shared): State<Arc<Shared>>) -> Response {
    let counts = shared.stats.snapshot();
    let total: u64 = counts.values().sum();
    let body = serde_json::json!({
        "upstream": shared.name,
        "behaviour": shared.behaviour.describe(),
        "requests": counts,
        "total": total,
    });
    json(&shared.name, StatusCode::OK, body)
}

async fn answer(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let method = request.method().as_str().to_owned();
    let path = request.uri().path().to_owned();
    shared.stats.count(&method);
    let mode = shared.mode();
    // Read (a bounded amount of) the body so the connection stays reusable.
    let received = axum::body::to_bytes(request.into_body(), 64 * 1024)
        .await
        .map(|bytes| bytes.len())
        .unwrap_or(0);
    let ok = |shared: &Shared| {
        let body = serde_json::json!({
            "upstream": shared.name, "ok": true, "method": method, "path": path,
            "received_bytes": received,
        });
        json(&shared.name, StatusCode::OK, body)
    };
    match mode {
        Mode::Healthy => ok(&shared),
        Mode::Slow(delay) => {
            tokio::time::sleep(delay).await;
            ok(&shared)
        }
        Mode::Failing => {
            let body = serde_json::json!({
                "upstream": shared.name, "ok": false, "why": "failing on purpose (demo)",
            });
            json(&shared.name, StatusCode::INTERNAL_SERVER_ERROR, body)
        }
        // Only in the instant between a refused spell starting and the supervisor closing the
        // port: answer like a server going away.
        Mode::Refusing => {
            let mut response = json(
                &shared.name,
                StatusCode::SERVICE_UNAVAILABLE,
                serde_json::json!({ "upstream": shared.name, "ok": false, "why": "going down" }),
            );
            response
                .headers_mut()
                .insert("connection", HeaderValue::from_static("close"));
            response
        }
    }
}

fn json(name: &str, status: StatusCode, body: serde_json::Value) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(name) {
        response.headers_mut().insert(DEMO_HEADER, value);
    }
    response
}

/// Keeps one upstream's port open or closed as its behaviour says, until `shutdown` turns true
/// (or its sender goes away). `listener` is the port bound at start.
pub(super) async fn supervise(
    shared: Arc<Shared>,
    mut listener: Option<TcpListener>,
    addr: SocketAddr,
    mut shutdown: watch::Receiver<bool>,
) {
    let app = router(Arc::clone(&shared));
    // Bumped whenever the port closes: every open connection then fails its next read or
    // write, so a client's pooled keep-alive connection cannot outlive a refused spell.
    let (epoch, _) = watch::channel(0u64);
    let stop = async move {
        let _ = shutdown.wait_for(|stop| *stop).await;
    };
    tokio::pin!(stop);
    loop {
        let elapsed = shared.start.elapsed();
        let listens = shared.behaviour.mode_at(elapsed).listens();
        let change = shared.behaviour.until_listen_change(elapsed);
        let next = async move {
            match change {
                Some(wait) => tokio::time::sleep(wait).await,
                None => std::future::pending().await,
            }
        };
        if !listens {
            drop(listener.take());
            epoch.send_modify(|e| *e += 1);
            tokio::select! {
                () = &mut stop => break,
                () = next => continue,
            }
        }
        let bound = match listener.take() {
            Some(bound) => bound,
            None => match TcpListener::bind(addr).await {
                Ok(bound) => bound,
                Err(error) => {
                    tracing::warn!(upstream = %shared.name, %addr, %error, "demo upstream cannot reopen its port; retrying in 1s");
                    tokio::select! {
                        () = &mut stop => break,
                        () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    }
                }
            },
        };
        let conns = Conns {
            listener: bound,
            epoch: epoch.subscribe(),
        };
        let serve = axum::serve(conns, app.clone()).into_future();
        tokio::select! {
            () = &mut stop => break,
            () = next => {}
            result = serve => {
                if let Err(error) = result {
                    tracing::warn!(upstream = %shared.name, %error, "demo upstream stopped serving");
                }
            }
        }
    }
    // Dropping `epoch` kills every connection still open.
}

/// The listener handed to axum: each accepted stream dies when the port closes.
struct Conns {
    listener: TcpListener,
    epoch: watch::Receiver<u64>,
}

impl axum::serve::Listener for Conns {
    type Io = DemoStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (DemoStream, SocketAddr) {
        loop {
            match self.listener.accept().await {
                Ok((stream, peer)) => return (DemoStream::new(stream, &self.epoch), peer),
                // Out of file descriptors and the like: wait a little rather than spin.
                Err(error) => {
                    tracing::debug!(%error, "demo upstream accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

/// A TCP stream that fails every read and write once its upstream's port has closed.
struct DemoStream {
    inner: TcpStream,
    closed: Pin<Box<dyn Future<Output = ()> + Send>>,
    dead: bool,
}

impl DemoStream {
    fn new(inner: TcpStream, epoch: &watch::Receiver<u64>) -> Self {
        let mut epoch = epoch.clone();
        let born = *epoch.borrow_and_update();
        let closed = Box::pin(async move {
            // A dropped sender (the supervisor ended) closes the connection too.
            let _ = epoch.wait_for(|now| *now != born).await;
        });
        DemoStream {
            inner,
            closed,
            dead: false,
        }
    }

    fn check(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        if !self.dead && self.closed.as_mut().poll(cx).is_ready() {
            self.dead = true;
        }
        if self.dead {
            Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "demo upstream went down",
            ))
        } else {
            Ok(())
        }
    }
}

impl AsyncRead for DemoStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.check(cx)?;
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for DemoStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.check(cx)?;
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.check(cx)?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
