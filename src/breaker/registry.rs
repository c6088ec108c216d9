//! Named breakers built from shared defaults plus per-name overrides.
//!
//! Lookups read an immutable map through `arc-swap`: no lock is taken on the hot path, however
//! many threads look up however many breakers. Adding a breaker copies the map (rare: at start-up
//! and on first use of a name).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;

use super::circuit::Breaker;
use super::clock::{Clock, Nanos, SystemClock};
use super::config::BreakerConfig;
use super::events::{Listener, Listeners};
use super::jitter::{Jitter, SplitMix};
use super::snapshot::Snapshot;

type Map = HashMap<Arc<str>, Arc<Breaker>>;

/// A set of named breakers sharing a clock, a jitter source and listeners.
pub struct Registry {
    defaults: BreakerConfig,
    overrides: HashMap<Arc<str>, BreakerConfig>,
    clock: Arc<dyn Clock>,
    jitter: Arc<dyn Jitter>,
    listeners: Listeners,
    breakers: ArcSwap<Map>,
    writer: Mutex<()>,
}

/// Builds a [`Registry`].
#[must_use]
#[derive(Debug)]
pub struct RegistryBuilder {
    defaults: BreakerConfig,
    overrides: HashMap<Arc<str>, BreakerConfig>,
    clock: Arc<dyn Clock>,
    jitter: Arc<dyn Jitter>,
    listeners: Listeners,
}

impl RegistryBuilder {
    /// The settings of breaker `name`; it is created when the registry is built.
    pub fn breaker(mut self, name: impl Into<Arc<str>>, config: BreakerConfig) -> Self {
        self.overrides.insert(name.into(), config);
        self
    }

    /// The clock every breaker reads (default: [`SystemClock`]).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The randomness for grown open durations (default: [`SplitMix`]).
    pub fn jitter(mut self, jitter: Arc<dyn Jitter>) -> Self {
        self.jitter = jitter;
        self
    }

    /// Adds a listener told of every transition of every breaker.
    pub fn listener(mut self, listener: Arc<dyn Listener>) -> Self {
        self.listeners = self.listeners.with(listener);
        self
    }

    /// The registry, with every named breaker created and closed.
    pub fn build(self) -> Registry {
        let registry = Registry {
            defaults: self.defaults,
            overrides: self.overrides,
            clock: self.clock,
            jitter: self.jitter,
            listeners: self.listeners,
            breakers: ArcSwap::from_pointee(Map::new()),
            writer: Mutex::new(()),
        };
        let map: Map = registry
            .overrides
            .iter()
            .map(|(name, config)| (Arc::clone(name), registry.make(name, config.clone())))
            .collect();
        registry.breakers.store(Arc::new(map));
        registry
    }
}

impl Registry {
    /// A builder whose breakers use `defaults` unless given their own settings.
    pub fn builder(defaults: BreakerConfig) -> RegistryBuilder {
        RegistryBuilder {
            defaults,
            overrides: HashMap::new(),
            clock: Arc::new(SystemClock::new()),
            jitter: Arc::new(SplitMix::default()),
            listeners: Listeners::default(),
        }
    }

    fn make(&self, name: &Arc<str>, config: BreakerConfig) -> Arc<Breaker> {
        Arc::new(
            Breaker::builder(Arc::clone(name), config)
                .clock(Arc::clone(&self.clock))
                .jitter(Arc::clone(&self.jitter))
                .listeners(&self.listeners)
                .build(),
        )
    }

    /// The breaker named `name`, if it exists.
    #[inline]
    pub fn get(&self, name: &str) -> Option<Arc<Breaker>> {
        self.breakers.load().get(name).cloned()
    }

    /// The breaker named `name`, created with its own settings or the defaults if missing.
    pub fn get_or_create(&self, name: &str) -> Arc<Breaker> {
        if let Some(breaker) = self.get(name) {
            return breaker;
        }
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let current = self.breakers.load_full();
        if let Some(breaker) = current.get(name) {
            return Arc::clone(breaker);
        }
        let name: Arc<str> = Arc::from(name);
        let config = self
            .overrides
            .get(&name)
            .cloned()
            .unwrap_or_else(|| self.defaults.clone());
        let breaker = self.make(&name, config);
        let mut next = Map::clone(&current);
        next.insert(name, Arc::clone(&breaker));
        self.breakers.store(Arc::new(next));
        breaker
    }

    /// The settings new breakers get unless named otherwise.
    pub fn defaults(&self) -> &BreakerConfig {
        &self.defaults
    }

    /// The clock every breaker reads.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Number of breakers.
    pub fn len(&self) -> usize {
        self.breakers.load().len()
    }

    /// Whether there are no breakers.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every breaker, sorted by name.
    pub fn breakers(&self) -> Vec<Arc<Breaker>> {
        let mut all: Vec<_> = self.breakers.load().values().cloned().collect();
        all.sort_by(|a, b| a.name().cmp(b.name()));
        all
    }

    /// A snapshot of every breaker, sorted by name.
    pub fn snapshots(&self) -> Vec<Snapshot> {
        self.breakers().iter().map(|b| b.snapshot()).collect()
    }

    /// Resets every breaker.
    pub fn reset_all(&self) {
        for breaker in self.breakers.load().values() {
            breaker.reset();
        }
    }

    /// The earliest instant at which some breaker changes state by itself.
    pub fn next_deadline(&self) -> Option<Nanos> {
        self.breakers
            .load()
            .values()
            .filter_map(|b| b.next_deadline())
            .min()
    }

    /// Applies every transition due by now; returns how many happened.
    pub fn tick(&self) -> usize {
        self.breakers.load().values().filter(|b| b.tick()).count()
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("breakers", &self.len())
            .field("defaults", &self.defaults)
            .finish_non_exhaustive()
    }
}
