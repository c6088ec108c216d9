//! `breakerbox demo`: misbehaving upstreams on loopback, a traffic generator and a banner, so a
//! newcomer sees breakers trip, fall back and recover within a minute.
//!
//! Every upstream of the configuration whose host is `127.0.0.1` or `localhost` gets a small
//! server on its port whose [`Behaviour`] is chosen by name (plex healthy, overseerr flapping,
//! uptime-kuma slow, tmdb intermittent, hdbits down, qbittorrent recovering; any other name a
//! [`Behaviour::Cycle`]). Time is `tokio::time`, measured from [`start`], so tests can pause and
//! advance it.

mod banner;
mod behaviour;
mod drive;
mod server;

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::config::Config;

pub use banner::banner;
pub use behaviour::{Behaviour, Mode};
pub use drive::{Target, drive, targets};

use server::{Shared, Stats};

/// Why the demo upstreams could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DemoError {
    /// A port could not be bound.
    #[error("cannot listen on {addr} for the demo upstream `{name}`: {source}{hint}")]
    Bind {
        /// The upstream's name.
        name: String,
        /// The address it should listen on.
        addr: SocketAddr,
        /// Why binding failed.
        source: io::Error,
        /// A hint for the usual cause, or empty.
        hint: &'static str,
    },
}

/// One demo upstream to start: a name, where it listens and how it misbehaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoSpec {
    /// The upstream's name (as in `/proxy/NAME/...`).
    pub name: String,
    /// Where it listens; port 0 picks a free port (kept across refused spells).
    pub addr: SocketAddr,
    /// What it does over time.
    pub behaviour: Behaviour,
}

/// The demo upstreams for `config`: one per upstream on a loopback host, with the behaviour of
/// its name. Upstreams elsewhere are real and left alone.
pub fn specs(config: &Config) -> Vec<DemoSpec> {
    config
        .upstreams
        .iter()
        .filter_map(|(name, upstream)| {
            let ip = loopback_ip(upstream.url.host())?;
            Some(DemoSpec {
                name: name.clone(),
                addr: SocketAddr::new(ip, upstream.url.port()),
                behaviour: Behaviour::for_name(name, upstream.call_timeout),
            })
        })
        .collect()
}

/// The address to listen on for a loopback `host`, or `None` if it is not loopback.
pub(crate) fn loopback_ip(host: &str) -> Option<IpAddr> {
    let host = host.to_ascii_lowercase();
    match host.as_str() {
        "localhost" => Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        "[::1]" => Some(IpAddr::V6(Ipv6Addr::LOCALHOST)),
        _ => host.parse::<IpAddr>().ok().filter(IpAddr::is_loopback),
    }
}

/// Starts the demo upstreams of `config` (see [`specs`]).
pub async fn start(config: &Config) -> Result<DemoUpstreams, DemoError> {
    start_with(specs(config)).await
}

/// Starts the given demo upstreams. Every port is bound before this returns (and closed again
/// at once for a behaviour that starts refused), so a port in use is an error here.
pub async fn start_with(
    specs: impl IntoIterator<Item = DemoSpec>,
) -> Result<DemoUpstreams, DemoError> {
    let start = Instant::now();
    let (shutdown, _) = watch::channel(false);
    let mut demo = DemoUpstreams {
        start,
        upstreams: BTreeMap::new(),
        shutdown,
        tasks: Vec::new(),
    };
    for spec in specs {
        if !spec.behaviour.ever_listens() {
            let entry = Entry {
                behaviour: spec.behaviour,
                server: None,
            };
            demo.upstreams.insert(spec.name, entry);
            continue;
        }
        let listener = TcpListener::bind(spec.addr)
            .await
            .map_err(|source| bind_error(&spec, source))?;
        let addr = listener
            .local_addr()
            .map_err(|source| bind_error(&spec, source))?;
        let shared = Arc::new(Shared {
            name: spec.name.clone(),
            behaviour: spec.behaviour.clone(),
            start,
            stats: Stats::default(),
        });
        // A behaviour that starts refused closes the port now, not when its task first runs.
        let listener = spec
            .behaviour
            .mode_at(Duration::ZERO)
            .listens()
            .then_some(listener);
        let task = tokio::spawn(server::supervise(
            Arc::clone(&shared),
            listener,
            addr,
            demo.shutdown.subscribe(),
        ));
        demo.tasks.push(task);
        let entry = Entry {
            behaviour: spec.behaviour,
            server: Some((addr, shared)),
        };
        demo.upstreams.insert(spec.name, entry);
    }
    Ok(demo)
}

fn bind_error(spec: &DemoSpec, source: io::Error) -> DemoError {
    let hint = if source.kind() == io::ErrorKind::AddrInUse {
        " (is a real one running there? stop it or change its url)"
    } else {
        ""
    };
    DemoError::Bind {
        name: spec.name.clone(),
        addr: spec.addr,
        source,
        hint,
    }
}

/// One demo upstream: its behaviour and, unless it never listens, its address and server.
#[derive(Debug)]
struct Entry {
    behaviour: Behaviour,
    server: Option<(SocketAddr, Arc<Shared>)>,
}

/// The running demo upstreams. Dropping it stops them too; [`shutdown`](Self::shutdown) also
/// waits for them.
#[derive(Debug)]
pub struct DemoUpstreams {
    start: Instant,
    upstreams: BTreeMap<String, Entry>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl DemoUpstreams {
    /// Where each upstream that ever listens is served, by name.
    pub fn addrs(&self) -> BTreeMap<String, SocketAddr> {
        self.upstreams
            .iter()
            .filter_map(|(name, entry)| Some((name.clone(), entry.server.as_ref()?.0)))
            .collect()
    }

    /// Where `name` is served; `None` if it is unknown or never listens.
    pub fn addr(&self, name: &str) -> Option<SocketAddr> {
        self.upstreams
            .get(name)?
            .server
            .as_ref()
            .map(|(addr, _)| *addr)
    }

    /// How `name` behaves.
    pub fn behaviour(&self, name: &str) -> Option<&Behaviour> {
        self.upstreams.get(name).map(|entry| &entry.behaviour)
    }

    /// Every upstream with its behaviour, by name.
    pub fn behaviours(&self) -> impl Iterator<Item = (&str, &Behaviour)> {
        self.upstreams
            .iter()
            .map(|(name, entry)| (name.as_str(), &entry.behaviour))
    }

    /// What `name` does right now.
    pub fn mode(&self, name: &str) -> Option<Mode> {
        Some(self.behaviour(name)?.mode_at(self.elapsed()))
    }

    /// Requests `name` has received, per method (`/__demo/stats` not counted); `None` if it is
    /// unknown or never listens.
    pub fn requests(&self, name: &str) -> Option<BTreeMap<String, u64>> {
        let (_, shared) = self.upstreams.get(name)?.server.as_ref()?;
        Some(shared.stats.snapshot())
    }

    /// Time since the demo started; every behaviour's phase is computed from it.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// Closes every port and open connection and waits (at most a second) for the servers.
    pub async fn shutdown(mut self) {
        self.shutdown.send_replace(true);
        for task in std::mem::take(&mut self.tasks) {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(1), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }
}

impl Drop for DemoUpstreams {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}
