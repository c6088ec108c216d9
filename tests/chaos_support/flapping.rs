//! A loopback HTTP/1.1 upstream written on raw TCP so it can misbehave the ways real servers do:
//! stop listening (connection refused), answer too late, answer 5xx, or reset the connection.
//! Every answer it gives carries `x-chaos-upstream: {phase}`, so a client can tell the upstream's
//! answers from the gateway's.

// Real servers and processes run in real time: waiting on them reads the system's clock.
#![allow(clippy::disallowed_methods)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the upstream does with the requests that arrive while it lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// 200 at once.
    Healthy,
    /// Not listening: connections are refused, open ones are closed.
    Down,
    /// 200, but only after [`Flapping::slow_delay`] (longer than the gateway's call timeout).
    Slow,
    /// 500, 502, 503, 504 in turn.
    Errors,
    /// The connection is reset (SO_LINGER 0) after the request is read; every other time after
    /// half a status line.
    Reset,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Healthy => "healthy",
            Phase::Down => "down",
            Phase::Slow => "slow",
            Phase::Errors => "5xx",
            Phase::Reset => "reset",
        }
    }
}

/// The flapping upstream. Cheap to clone.
#[derive(Clone)]
pub struct Flapping {
    pub addr: SocketAddr,
    phase: watch::Sender<Phase>,
    slow_delay: Duration,
    /// POST bodies (order ids) the upstream processed: answered 200 in the healthy phase.
    committed: Arc<Mutex<HashMap<String, u32>>>,
    /// Requests received, per phase.
    received: Arc<Mutex<HashMap<Phase, u64>>>,
    turn: Arc<AtomicU64>,
}

impl Flapping {
    /// Starts healthy on a port below the kernel's ephemeral range, so no outgoing connection
    /// takes the port while the upstream is down and it can listen on it again.
    pub async fn start(slow_delay: Duration) -> Self {
        let listener = bind_low_port().await;
        let addr = listener.local_addr().expect("addr");
        let (phase, _) = watch::channel(Phase::Healthy);
        let flapping = Flapping {
            addr,
            phase,
            slow_delay,
            committed: Arc::default(),
            received: Arc::default(),
            turn: Arc::default(),
        };
        tokio::spawn(flapping.clone().listen(Some(listener)));
        flapping
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set(&self, phase: Phase) {
        self.phase.send_replace(phase);
    }

    /// How many times the upstream processed the POST whose body is `id`.
    pub fn committed(&self, id: &str) -> u32 {
        self.committed
            .lock()
            .expect("lock")
            .get(id)
            .copied()
            .unwrap_or(0)
    }

    pub fn committed_ids(&self) -> HashMap<String, u32> {
        self.committed.lock().expect("lock").clone()
    }

    pub fn received(&self) -> HashMap<Phase, u64> {
        self.received.lock().expect("lock").clone()
    }

    /// Accepts while the phase is not `Down`; listens again when it ends.
    async fn listen(self, mut listener: Option<TcpListener>) {
        let mut phases = self.phase.subscribe();
        loop {
            if *phases.borrow_and_update() == Phase::Down {
                // Closed: the port refuses connections until the phase changes.
                drop(listener.take());
                if phases.changed().await.is_err() {
                    return;
                }
                continue;
            }
            let bound = match listener.take() {
                Some(l) => l,
                None => rebind(self.addr).await,
            };
            tokio::select! {
                accepted = bound.accept() => {
                    if let Ok((socket, _)) = accepted {
                        let _ = socket.set_nodelay(true);
                        tokio::spawn(self.clone().serve(socket));
                    }
                }
                changed = phases.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
            }
            listener = Some(bound);
        }
    }

    /// One keep-alive connection: request after request until the client closes it, the
    /// upstream goes down, or a phase ends it.
    async fn serve(self, mut socket: TcpStream) {
        let mut phases = self.phase.subscribe();
        let mut buffer = Vec::with_capacity(1024);
        loop {
            let request = tokio::select! {
                request = read_request(&mut socket, &mut buffer) => request,
                _ = phases.wait_for(|p| *p == Phase::Down) => return,
            };
            let Some(request) = request else { return };
            let phase = *self.phase.borrow();
            *self
                .received
                .lock()
                .expect("lock")
                .entry(phase)
                .or_default() += 1;
            let turn = self.turn.fetch_add(1, Relaxed);
            let written = match phase {
                Phase::Healthy => {
                    if request.method == "POST" {
                        *self
                            .committed
                            .lock()
                            .expect("lock")
                            .entry(request.body.clone())
                            .or_default() += 1;
                    }
                    respond(&mut socket, 200, phase, &request).await
                }
                Phase::Slow => {
                    // Too late: the gateway has given up by now. The upstream does not count
                    // it as processed (the caller is gone), like a handler whose request
                    // context was cancelled.
                    tokio::time::sleep(self.slow_delay).await;
                    respond(&mut socket, 200, phase, &request).await
                }
                Phase::Errors => {
                    let status = [500, 502, 503, 504][(turn % 4) as usize];
                    respond(&mut socket, status, phase, &request).await
                }
                Phase::Reset | Phase::Down => {
                    let partial: &[u8] = match turn % 3 {
                        0 => b"",
                        1 => b"HTTP/1.1 200 OK\r\ncontent-le",
                        _ => b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 64\r\nx-chaos-upstream: reset\r\n\r\n{\"from\":\"upstr",
                    };
                    let _ = socket.write_all(partial).await;
                    let _ = socket.flush().await;
                    let _ = socket.set_zero_linger();
                    return;
                }
            };
            if written.is_err() {
                return;
            }
        }
    }
}

async fn bind_low_port() -> TcpListener {
    let start = 20_000 + u16::try_from(std::process::id() % 5_000).unwrap_or(0);
    for port in (start..32_000).step_by(7) {
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)).await {
            return listener;
        }
    }
    panic!("no free port below 32000 on 127.0.0.1");
}

/// Listens on `addr` again after a down phase (the port is ours; a moment may pass before the
/// kernel lets go of it).
async fn rebind(addr: SocketAddr) -> TcpListener {
    let started = Instant::now();
    loop {
        match TcpListener::bind(addr).await {
            Ok(listener) => return listener,
            Err(err) => {
                assert!(
                    started.elapsed() < Duration::from_secs(10),
                    "cannot listen on {addr} again: {err}"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

pub struct Request {
    pub method: String,
    pub path: String,
    pub body: String,
}

/// Reads one request (Content-Length bodies only: the gateway buffers bodies); `None` when the
/// connection ends or the request cannot be parsed.
async fn read_request(socket: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<Request> {
    let head_end = loop {
        if let Some(at) = find(buffer, b"\r\n\r\n") {
            break at + 4;
        }
        if buffer.len() > 64 * 1024 {
            return None;
        }
        let mut chunk = [0u8; 4096];
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut start = lines.next()?.split(' ');
    let method = start.next()?.to_owned();
    let path = start.next()?.to_owned();
    let length: usize = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    while buffer.len() < head_end + length {
        let mut chunk = [0u8; 4096];
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
    let body = String::from_utf8_lossy(&buffer[head_end..head_end + length]).into_owned();
    buffer.drain(..head_end + length);
    Some(Request { method, path, body })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

async fn respond(
    socket: &mut TcpStream,
    status: u16,
    phase: Phase,
    request: &Request,
) -> std::io::Result<()> {
    let body = serde_json::json!({
        "from": "upstream",
        "phase": phase.as_str(),
        "path": request.path,
    })
    .to_string();
    let reason = match status {
        200 => "OK",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Gateway Timeout",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         x-chaos-upstream: {}\r\n\r\n",
        body.len(),
        phase.as_str()
    );
    // One write: head and body in separate small segments would wait out the client's
    // delayed ACK (Nagle), 40 ms per answer.
    socket.write_all(format!("{head}{body}").as_bytes()).await?;
    socket.flush().await
}
