//! The running gateway: the configuration in force, one [`Upstream`] (with its breaker) per
//! configured upstream, the pipeline, and the tasks that keep them current (deadline timer,
//! health probes, hot reload).

mod bus;
mod reload;
mod system;
mod timer;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use futures_util::future::BoxFuture;
use tokio::sync::watch;

use crate::breaker::{Breaker, BreakerConfig, Clock, Listener, Registry, Snapshot};
use crate::coarse_clock::CoarseClock;
use crate::config::{Config, DATABASE_BREAKER, Fallback};
use crate::fallback::cache::{CacheLimits, ResponseCache};
use crate::fallback::queue::{Replayer, RequestQueue, spawn_replayer};
use crate::fallback::{CacheStore, Deliver, Delivery, Enqueue, QueuedRequest};
use crate::pipeline::Pipeline;
use crate::store::{Store, StoreError};
use crate::telemetry::Telemetry;
use crate::upstream::{HttpClients, ProbeHandle, Upstream, UpstreamError};

use std::fmt;

pub use bus::TransitionBus;
pub use reload::ReloadError;
pub use system::SystemFigures;

/// The configuration in force and the upstreams built from it. Replaced whole on reload.
#[derive(Debug)]
pub struct Runtime {
    /// The configuration in force.
    pub config: Arc<Config>,
    /// Every upstream by name.
    pub upstreams: BTreeMap<String, Arc<Upstream>>,
}

/// The gateway's shared state, handed to every request handler.
#[derive(Debug)]
pub struct Gateway {
    this: Weak<Gateway>,
    runtime: ArcSwap<Runtime>,
    config_path: Option<PathBuf>,
    /// The file's modification time when the configuration was read, for the watcher.
    config_read_at: Option<std::time::SystemTime>,
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
    replayers: Mutex<BTreeMap<String, Replayer>>,
    probes: Mutex<BTreeMap<String, ProbeHandle>>,
    started: Instant,
    in_flight: AtomicUsize,
    system: system::Sampler,
    detailed_health: Mutex<Option<(Instant, serde_json::Value)>>,
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
            ResponseCache::with_store(CacheLimits::default(), cache_store),
            Some(enqueue),
        )
        .with_max_body_bytes(config.server.max_body_bytes);
        let (shutdown, _) = watch::channel(false);
        let gateway = Arc::new_cyclic(|this| Gateway {
            this: this.clone(),
            runtime: ArcSwap::from_pointee(Runtime {
                config: Arc::new(config.clone()),
                upstreams: BTreeMap::new(),
            }),
            config_read_at: config_path.as_deref().and_then(reload::modified),
            config_path,
            clock,
            telemetry,
            transitions,
            pipeline,
            clients: HttpClients::new(),
            breakers,
            database,
            store,
            queue,
            replayers: Mutex::new(BTreeMap::new()),
            probes: Mutex::new(BTreeMap::new()),
            started: Instant::now(),
            in_flight: AtomicUsize::new(0),
            system: system::Sampler::default(),
            detailed_health: Mutex::new(None),
            shutdown,
        });
        gateway.apply(config)?;
        Ok(gateway)
    }

    /// Builds the upstreams of `config`, keeping every breaker whose settings did not change
    /// (state and all) and every upstream whose settings did not change, and puts them in force.
    fn apply(&self, config: Config) -> Result<(), UpstreamError> {
        let current = self.runtime.load();
        // The store keeps the breaker it was opened with: [store] applies after a restart.
        let database = (DATABASE_BREAKER, self.database.config().clone());
        self.breakers.reconcile(
            config
                .upstreams
                .iter()
                .map(|(name, settings)| (name.as_str(), settings.breaker.clone()))
                .chain([database]),
        );
        let mut upstreams = BTreeMap::new();
        for (name, settings) in &config.upstreams {
            let breaker = self.breakers.get_or_create(name);
            let upstream = match current.upstreams.get(name) {
                Some(kept)
                    if kept.config() == settings && Arc::ptr_eq(kept.breaker(), &breaker) =>
                {
                    Arc::clone(kept)
                }
                _ => Arc::new(Upstream::sharing(settings.clone(), breaker, &self.clients)?),
            };
            upstreams.insert(name.clone(), upstream);
        }
        let interval = config.health.check_interval;
        let runtime = Runtime {
            config: Arc::new(config),
            upstreams,
        };
        let mut probes = self.probes.lock().unwrap_or_else(PoisonError::into_inner);
        probes.retain(|name, _| {
            current.upstreams.get(name).map(Arc::as_ptr)
                == runtime.upstreams.get(name).map(Arc::as_ptr)
        });
        for (name, upstream) in &runtime.upstreams {
            if !probes.contains_key(name)
                && let Some(handle) = upstream.spawn_probe(interval)
            {
                probes.insert(name.clone(), handle);
            }
        }
        drop(probes);
        self.runtime.store(Arc::new(runtime));
        self.telemetry.track(&self.breakers());
        self.start_replayers();
        Ok(())
    }

    /// One replayer per upstream whose fallback is the queue; it delivers through whatever
    /// upstream has that name when it runs, so reloads need no restart of it.
    fn start_replayers(&self) {
        let Some(me) = self.me() else { return };
        let runtime = self.runtime.load();
        let mut replayers = self
            .replayers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for (name, upstream) in &runtime.upstreams {
            if upstream.config().fallback == Fallback::Queue && !replayers.contains_key(name) {
                let deliver: Arc<dyn Deliver> = Arc::new(ByName {
                    gateway: Arc::downgrade(&me),
                    name: name.clone(),
                });
                let replayer = spawn_replayer(
                    Arc::clone(&self.queue),
                    name.clone(),
                    deliver,
                    self.shutdown.subscribe(),
                );
                replayers.insert(name.clone(), replayer);
            }
        }
    }

    fn me(&self) -> Option<Arc<Gateway>> {
        self.this.upgrade()
    }

    /// The configuration and upstreams in force.
    pub fn runtime(&self) -> Arc<Runtime> {
        self.runtime.load_full()
    }

    /// The upstream named `name`.
    pub fn upstream_named(&self, name: &str) -> Option<Arc<Upstream>> {
        self.runtime.load().upstreams.get(name).cloned()
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
        self.started.elapsed()
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

    /// The detailed health report, built by `build` at most once per `detailed_cache`
    /// (`DETAILED_HEALTH_CACHE_SECONDS`): probing a page often must not load the gateway.
    pub fn detailed_health(&self, build: impl FnOnce() -> serde_json::Value) -> serde_json::Value {
        let fresh_for = self.runtime().config.health.detailed_cache;
        let mut cached = self
            .detailed_health
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some((at, report)) = cached.as_ref()
            && at.elapsed() < fresh_for
        {
            return report.clone();
        }
        let report = build();
        *cached = Some((Instant::now(), report.clone()));
        report
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
            tokio::spawn(follow_transitions(
                Arc::clone(self),
                self.shutdown.subscribe(),
            )),
            tokio::spawn(crate::telemetry::refresh_periodically(
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
        let replayers: Vec<Replayer> = std::mem::take(
            &mut *self
                .replayers
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        )
        .into_values()
        .collect();
        for replayer in replayers {
            replayer.join().await;
        }
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

    /// Asks the replayer of `upstream` to run now.
    fn wake_replayer(&self, upstream: &str) {
        if let Some(replayer) = self
            .replayers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(upstream)
        {
            replayer.wake();
        }
    }
}

/// Keeps the transition history in the store and replays an upstream's queue as soon as its
/// breaker closes.
async fn follow_transitions(gateway: Arc<Gateway>, mut shutdown: watch::Receiver<bool>) {
    let mut transitions = gateway.transitions().subscribe();
    loop {
        tokio::select! {
            received = transitions.recv() => match received {
                Ok(transition) => {
                    if transition.to == crate::breaker::State::Closed {
                        gateway.wake_replayer(&transition.breaker);
                    }
                    if let Err(error) = gateway.store.record_transition(&transition).await {
                        tracing::debug!(%error, "transition not kept in the store");
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "transition history fell behind");
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            },
            _ = shutdown.changed() => return,
        }
    }
}

/// Delivers queued requests through the upstream that has the name now (reloads replace
/// upstreams whose settings change).
struct ByName {
    gateway: Weak<Gateway>,
    name: String,
}

impl fmt::Debug for ByName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ByName({})", self.name)
    }
}

impl Deliver for ByName {
    fn deliver<'a>(&'a self, request: &'a QueuedRequest) -> BoxFuture<'a, Delivery> {
        Box::pin(async move {
            let gateway = self.gateway.upgrade();
            let upstream = gateway.as_ref().and_then(|g| g.upstream_named(&self.name));
            match (gateway, upstream) {
                (Some(gateway), Some(upstream)) => {
                    let replay = upstream.replay(request).await;
                    gateway.telemetry().record_replay(&self.name, &replay);
                    replay.delivery
                }
                _ => Delivery::Failed {
                    reason: format!("upstream `{}` is no longer configured", self.name),
                },
            }
        })
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
