//! The running gateway: the configuration in force, one [`Upstream`] per configured upstream,
//! every breaker in one [`Registry`], the pipeline, and the tasks that keep them current
//! (deadline timer, transition history and queue replay, gauges, health probes, hot reload).
//! This module wires them; each job lives in its own file or room.

mod bus;
mod by_name;
mod gauges;
mod history;
mod manual;
mod reload;
mod system;
mod timer;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::watch;

use crate::breaker::{Breaker, BreakerConfig, Clock, Listener, Nanos, Registry, Snapshot};
use crate::coarse_clock::CoarseClock;
use crate::config::{Config, DATABASE_BREAKER};
use crate::fallback::cache::{CacheLimits, ResponseCache};
use crate::fallback::queue::RequestQueue;
use crate::fallback::replay::Replayers;
use crate::fallback::{CacheStore, Enqueue};
use crate::pipeline::Pipeline;
use crate::store::{Store, StoreError};
use crate::telemetry::Telemetry;
use crate::upstream::{HttpClients, ProbeHandle, Upstream, UpstreamError};

pub use bus::TransitionBus;
pub use reload::ReloadError;
pub use system::SystemFigures;

/// The configuration in force and the upstreams built from it. Replaced whole on reload.
#[derive(Debug)]
pub struct InForce {
    /// The configuration in force.
    pub config: Arc<Config>,
    /// Every upstream by name.
    pub upstreams: BTreeMap<String, Arc<Upstream>>,
}

/// The gateway's shared state, handed to every request handler.
#[derive(Debug)]
pub struct Gateway {
    in_force: ArcSwap<InForce>,
    config_path: Option<PathBuf>,
    /// The file's fingerprint when the configuration was read, for the watcher.
    config_read_at: Option<reload::Fingerprint>,
    clock: Arc<dyn Clock>,
    telemetry: Telemetry,
    transitions: Arc<TransitionBus>,
    pipeline: Pipeline,
    /// The HTTP clients every upstream calls through, kept across reloads.
    clients: HttpClients,
    /// Every breaker by name: one per upstream and the store's.
    breakers: Arc<Registry>,
    /// The store's breaker, also in `breakers`; kept for the life of the store.
    database: Arc<Breaker>,
    store: Store,
    queue: Arc<RequestQueue>,
    replayers: Replayers,
    probes: Mutex<BTreeMap<String, ProbeHandle>>,
    /// When the gateway started, on its clock.
    started: Nanos,
    in_flight: AtomicUsize,
    system: system::Sampler,
    manual: manual::ManualStates,
    shutdown: watch::Sender<bool>,
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The store could not be opened.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// An upstream could not be built.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
}

impl Gateway {
    /// Opens the store and builds the gateway for `config` (read from `config_path`, if any,
    /// for reloads). Must run inside a tokio runtime: health probes start here.
    pub async fn start(
        config: Config,
        config_path: Option<PathBuf>,
    ) -> Result<Arc<Gateway>, StartError> {
        if config.admin.tokens.is_empty() {
            // Allowed at start (a first run, a proxy-only gateway); a reload may not get here.
            tracing::warn!("no admin token is configured: every /admin route answers 401");
        }
        let clock: Arc<dyn Clock> = match CoarseClock::new(Duration::from_millis(1)) {
            Ok(clock) => Arc::new(clock),
            Err(_) => Arc::new(crate::breaker::SystemClock::new()),
        };
        let telemetry = Telemetry::new();
        let transitions = Arc::new(TransitionBus::new(1024));
        let breakers = Arc::new(
            Registry::builder(BreakerConfig::default())
                .clock(Arc::clone(&clock))
                .listener(telemetry.listener())
                .listener(Arc::clone(&transitions) as Arc<dyn Listener>)
                .breaker(DATABASE_BREAKER, config.store.breaker.clone())
                .build(),
        );
        let database = breakers.get_or_create(DATABASE_BREAKER);
        let store = Store::connect(&config.store, Arc::clone(&database)).await?;
        let queue = Arc::new(RequestQueue::new(store.clone()));
        let cache_store: Arc<dyn CacheStore> = Arc::new(store.clone());
        let enqueue: Arc<dyn Enqueue> = queue.clone();
        let pipeline = Pipeline::new(
            ResponseCache::with_store(
                CacheLimits::sized(
                    config.store.cache_max_entries,
                    config.store.cache_max_bytes,
                    CacheLimits::default().max_entry_bytes,
                ),
                cache_store,
            ),
            Some(enqueue),
        )
        .with_max_body_bytes(config.server.max_body_bytes)
        .with_trusted_proxies(config.server.trusted_proxies.iter().copied());
        let (shutdown, _) = watch::channel(false);
        let started = clock.now();
        let gateway = Arc::new_cyclic(|this| Gateway {
            in_force: ArcSwap::from_pointee(InForce {
                config: Arc::new(config.clone()),
                upstreams: BTreeMap::new(),
            }),
            config_read_at: config_path.as_deref().and_then(reload::fingerprint),
            config_path,
            clock,
            telemetry,
            transitions,
            pipeline,
            clients: HttpClients::new(),
            breakers,
            database,
            store,
            replayers: Replayers::new(
                Arc::clone(&queue),
                Arc::new(by_name::ByName(this.clone())),
                shutdown.subscribe(),
            ),
            queue,
            probes: Mutex::new(BTreeMap::new()),
            started,
            in_flight: AtomicUsize::new(0),
            system: system::Sampler::default(),
            manual: manual::ManualStates::default(),
            shutdown,
        });
        gateway.apply(config)?;
        // Operator actions of the fleet are in force before this replica serves.
        gateway.sync_manual_states().await;
        Ok(gateway)
    }

    /// The configuration and upstreams in force.
    pub fn in_force(&self) -> Arc<InForce> {
        self.in_force.load_full()
    }

    /// The upstream named `name`.
    pub fn upstream_named(&self, name: &str) -> Option<Arc<Upstream>> {
        self.in_force.load().upstreams.get(name).cloned()
    }

    /// Every breaker (one per upstream and the store's), by name.
    pub fn breakers(&self) -> Vec<Arc<Breaker>> {
        self.breakers.breakers()
    }

    /// The breaker named `name`.
    pub fn breaker_named(&self, name: &str) -> Option<Arc<Breaker>> {
        self.breakers.get(name)
    }

    /// A snapshot of every breaker, by name.
    pub fn snapshots(&self) -> BTreeMap<String, Snapshot> {
        self.breakers()
            .iter()
            .map(|b| (b.name().to_string(), b.snapshot()))
            .collect()
    }

    /// The store's breaker.
    pub fn database_breaker(&self) -> &Arc<Breaker> {
        &self.database
    }

    /// The proxy pipeline.
    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// Where breaker events become logs, metrics and spans.
    pub fn telemetry(&self) -> &Telemetry {
        &self.telemetry
    }

    /// Every breaker transition, for the gateway's own consumers.
    pub fn transitions(&self) -> &TransitionBus {
        &self.transitions
    }

    /// The clock every breaker reads.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Where the configuration was read from.
    pub fn config_path(&self) -> Option<&PathBuf> {
        self.config_path.as_ref()
    }

    /// Time since start.
    pub fn uptime(&self) -> Duration {
        self.clock.now().saturating_duration_since(self.started)
    }

    /// Requests being served now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Counts a request as in flight until the guard is dropped.
    pub fn track_request(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(Arc::clone(self))
    }

    /// Memory, CPU and uptime of this process.
    pub fn system(&self) -> SystemFigures {
        self.system.sample(self.uptime(), self.in_flight())
    }

    /// Starts the tasks that keep the gateway current: the deadline timer (open breakers turn
    /// half-open on time with no traffic), the transition follower (history in the store, queue
    /// replay when a breaker closes), the refresh of the metric gauges and the configuration
    /// watcher. They end at [`shutdown`](Self::shutdown).
    pub fn spawn_tasks(self: &Arc<Self>) -> Vec<tokio::task::JoinHandle<()>> {
        let mut tasks = vec![
            tokio::spawn(timer::run(
                Arc::clone(&self.breakers),
                self.transitions.changes(),
                self.shutdown.subscribe(),
            )),
            tokio::spawn(history::follow(Arc::clone(self), self.shutdown.subscribe())),
            tokio::spawn(manual::follow(Arc::clone(self), self.shutdown.subscribe())),
            tokio::spawn(gauges::refresh_periodically(
                Arc::clone(self),
                self.shutdown.subscribe(),
            )),
        ];
        if self.config_path.is_some() {
            tasks.push(tokio::spawn(reload::watch(
                Arc::clone(self),
                self.config_read_at,
                self.shutdown.subscribe(),
            )));
        }
        tasks
    }

    /// A receiver that turns `true` when the gateway begins shutting down.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Stops background work, refuses new queued requests, lets replays under way finish and
    /// writes the queue's memory buffer to the store. Call after the server has drained.
    pub async fn shutdown(&self) {
        self.shutdown.send_replace(true);
        self.queue.close();
        self.replayers.join().await;
        self.probes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        self.store.close().await;
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The durable request queue.
    pub fn queue(&self) -> &Arc<RequestQueue> {
        &self.queue
    }
}

/// A request in flight; counted until dropped.
#[derive(Debug)]
pub struct InFlight(Arc<Gateway>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}
