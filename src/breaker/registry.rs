//! Named breakers built from shared defaults plus per-name settings, reconciled on reload.
//!
//! Lookups read an immutable map through `arc-swap`: no lock is taken on the hot path, however
//! many threads look up however many breakers. Adding a breaker copies the map (rare: at start-up,
//! on first use of a name and at [`Registry::reconcile`]).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;

use super::circuit::Breaker;
use super::clock::{Clock, Nanos, SystemClock};
use super::config::BreakerConfig;
use super::events::{CallListener, CallListeners, Listener, Listeners};
use super::jitter::{Jitter, SplitMix};
use super::snapshot::Snapshot;

type Map = HashMap<Arc<str>, Arc<Breaker>>;

/// A set of named breakers sharing a clock, a jitter source and listeners.
pub struct Registry {
    defaults: BreakerConfig,
    clock: Arc<dyn Clock>,
    jitter: Arc<dyn Jitter>,
    listeners: Listeners,
    call_listeners: CallListeners,
    breakers: ArcSwap<Map>,
    /// The settings of each named breaker; held while the map is replaced, so writers take
    /// turns and lookups never wait.
    named: Mutex<HashMap<Arc<str>, BreakerConfig>>,
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
    call_listeners: CallListeners,
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

    /// Adds a listener told of every call of every breaker (see
    /// [`BreakerBuilder::call_listener`](super::BreakerBuilder::call_listener)).
    pub fn call_listener(mut self, listener: Arc<dyn CallListener>) -> Self {
        self.call_listeners = self.call_listeners.with(listener);
        self
    }

    /// The registry, with every named breaker created and closed.
    pub fn build(self) -> Registry {
        let registry = Registry {
            defaults: self.defaults,
            clock: self.clock,
            jitter: self.jitter,
            listeners: self.listeners,
            call_listeners: self.call_listeners,
            breakers: ArcSwap::from_pointee(Map::new()),
            named: Mutex::new(HashMap::new()),
        };
        registry.reconcile(self.overrides);
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
            call_listeners: CallListeners::default(),
        }
    }

    fn make(&self, name: &Arc<str>, config: BreakerConfig) -> Arc<Breaker> {
        Arc::new(
            Breaker::builder(Arc::clone(name), config)
                .clock(Arc::clone(&self.clock))
                .jitter(Arc::clone(&self.jitter))
                .listeners(&self.listeners, &self.call_listeners)
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
        let named = self.named.lock().unwrap_or_else(PoisonError::into_inner);
        let current = self.breakers.load_full();
        if let Some(breaker) = current.get(name) {
            return Arc::clone(breaker);
        }
        let name: Arc<str> = Arc::from(name);
        let config = named
            .get(&name)
            .cloned()
            .unwrap_or_else(|| self.defaults.clone());
        let breaker = self.make(&name, config);
        let mut next = Map::clone(&current);
        next.insert(name, Arc::clone(&breaker));
        self.breakers.store(Arc::new(next));
        breaker
    }

    /// Makes the registry hold exactly the breakers of `configs` (a reload): a breaker whose
    /// settings are unchanged is kept, state and all; one whose settings changed is replaced by
    /// a new, closed breaker; a name not in `configs` is removed. Breakers handed out earlier
    /// stay usable, but a replaced or removed one is no longer looked up.
    pub fn reconcile<N>(&self, configs: impl IntoIterator<Item = (N, BreakerConfig)>)
    where
        N: Into<Arc<str>>,
    {
        self.prepare(configs).commit();
    }

    /// What [`reconcile`](Self::reconcile) would make of `configs`, not yet in force: the
    /// caller can build what depends on the new breakers, and [`commit`](Reconciliation::commit)
    /// only once all of it succeeded (dropping it changes nothing).
    pub fn prepare<N>(
        &self,
        configs: impl IntoIterator<Item = (N, BreakerConfig)>,
    ) -> Reconciliation<'_>
    where
        N: Into<Arc<str>>,
    {
        let current = self.breakers.load();
        let mut breakers = Map::new();
        let mut named = HashMap::new();
        for (name, config) in configs {
            let name: Arc<str> = name.into();
            let breaker = match current.get(&name) {
                Some(kept) if *kept.config() == config => Arc::clone(kept),
                _ => self.make(&name, config.clone()),
            };
            breakers.insert(Arc::clone(&name), breaker);
            named.insert(name, config);
        }
        Reconciliation {
            registry: self,
            breakers,
            named,
        }
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

    /// The earliest instant at which some breaker changes state by itself (an open breaker's
    /// turn to half-open); `None` while none is open.
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

/// A reconciled set of breakers waiting to be put in force (see [`Registry::prepare`]).
#[must_use = "nothing changes until `commit`"]
pub struct Reconciliation<'r> {
    registry: &'r Registry,
    breakers: Map,
    named: HashMap<Arc<str>, BreakerConfig>,
}

impl Reconciliation<'_> {
    /// The breaker `name` will have once committed.
    pub fn get(&self, name: &str) -> Option<&Arc<Breaker>> {
        self.breakers.get(name)
    }

    /// Puts these breakers in force, replacing whatever the registry held.
    pub fn commit(self) {
        let mut named = self
            .registry
            .named
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.registry.breakers.store(Arc::new(self.breakers));
        *named = self.named;
    }
}

impl fmt::Debug for Reconciliation<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reconciliation")
            .field("breakers", &self.breakers.len())
            .finish_non_exhaustive()
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::breaker::{ManualClock, NoJitter, State};

    fn config(open_for: u64) -> BreakerConfig {
        BreakerConfig::builder()
            .open_duration(Duration::from_secs(open_for))
            .build()
            .expect("valid")
    }

    fn registry(clock: &Arc<ManualClock>) -> Registry {
        Registry::builder(config(60))
            .clock(Arc::clone(clock) as Arc<dyn Clock>)
            .jitter(Arc::new(NoJitter))
            .breaker("kept", config(30))
            .breaker("changed", config(30))
            .breaker("dropped", config(30))
            .build()
    }

    #[test]
    fn reconcile_keeps_unchanged_replaces_changed_and_removes_the_rest() {
        let clock = Arc::new(ManualClock::new());
        let registry = registry(&clock);
        let kept = registry.get("kept").expect("built");
        let changed = registry.get("changed").expect("built");
        kept.trip();
        changed.trip();

        registry.reconcile([
            ("kept", config(30)),
            ("changed", config(45)),
            ("new", config(5)),
        ]);

        let now_kept = registry.get("kept").expect("still configured");
        assert!(Arc::ptr_eq(&kept, &now_kept), "same settings: same breaker");
        assert_eq!(now_kept.state(), State::Open, "its state survives");
        let now_changed = registry.get("changed").expect("still configured");
        assert!(
            !Arc::ptr_eq(&changed, &now_changed),
            "new settings: new breaker"
        );
        assert_eq!(now_changed.state(), State::Closed);
        assert_eq!(
            now_changed.config().open_duration(),
            Duration::from_secs(45)
        );
        assert!(registry.get("dropped").is_none(), "no longer configured");
        assert_eq!(registry.get("new").map(|b| b.state()), Some(State::Closed));
        assert_eq!(registry.len(), 3);
        // A removed name comes back with the defaults, not its old settings.
        let again = registry.get_or_create("dropped");
        assert_eq!(again.config().open_duration(), Duration::from_secs(60));
    }

    #[test]
    fn a_prepared_reconciliation_changes_nothing_until_committed() {
        let clock = Arc::new(ManualClock::new());
        let registry = registry(&clock);
        let changed = registry.get("changed").expect("built");
        let prepared = registry.prepare([("changed", config(45))]);
        let next = Arc::clone(prepared.get("changed").expect("prepared"));
        assert!(!Arc::ptr_eq(&changed, &next));
        assert!(Arc::ptr_eq(
            &changed,
            &registry.get("changed").expect("in force")
        ));
        assert_eq!(registry.len(), 3);
        drop(prepared);
        assert_eq!(registry.len(), 3, "dropped: nothing changed");

        registry.prepare([("changed", config(45))]).commit();
        assert_eq!(registry.len(), 1);
        let committed = registry.get("changed").expect("in force");
        assert_eq!(committed.config().open_duration(), Duration::from_secs(45));
    }

    #[test]
    fn next_deadline_is_the_earliest_turn_to_half_open() {
        let clock = Arc::new(ManualClock::new());
        let registry = registry(&clock);
        assert_eq!(registry.next_deadline(), None, "nothing open");

        registry.reconcile([("kept", config(30)), ("changed", config(10))]);
        let start = clock.now();
        registry.get("kept").expect("kept").trip();
        clock.advance(Duration::from_secs(5));
        registry.get("changed").expect("changed").trip();
        assert_eq!(
            registry.next_deadline(),
            Some(start.saturating_add(Duration::from_secs(15)))
        );

        clock.advance(Duration::from_secs(10));
        assert_eq!(registry.tick(), 1, "only the earlier one is due");
        assert_eq!(
            registry.next_deadline(),
            Some(start.saturating_add(Duration::from_secs(30)))
        );
        clock.advance(Duration::from_secs(15));
        assert_eq!(registry.tick(), 1);
        assert_eq!(registry.next_deadline(), None, "both half-open");
    }
}
