//! Breaker data becomes Prometheus series here and nowhere else: transitions (from the
//! listener), call outcomes (from each proxied response's [`ProxyOutcome`] and each queue
//! [`Replay`]) and the gauges
//! refreshed from snapshots. Only breakers of the configuration are tracked, so label values
//! stay bounded: an outcome for a name not tracked records nothing.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;

use super::series::BreakerSeries;
use crate::breaker::{Breaker, Snapshot, Transition};
use crate::outcome::{Decision, Delivery, ProxyOutcome, Replay, RetryStop};

/// The series of every tracked breaker of one gateway.
#[derive(Debug, Default)]
pub(super) struct Metrics {
    /// Read on every proxied response; replaced whole (rarely) by [`Metrics::track`].
    tracked: ArcSwap<BTreeMap<Arc<str>, Tracked>>,
    /// Orders the replacements of `tracked`.
    writing: Mutex<()>,
}

#[derive(Debug, Clone)]
struct Tracked {
    series: Arc<BreakerSeries>,
    /// The breaker in force under this name (weak: the breaker's listener holds us).
    breaker: Weak<Breaker>,
    slow_after: Option<Duration>,
}

impl Metrics {
    /// Tracks exactly `breakers` from now on: registers the series of a new name (every one at
    /// 0), and shows the state of a breaker that is new under its name (a reload rebuilds a
    /// changed upstream's breaker, closed). Idempotent.
    pub(super) fn track(&self, breakers: &[Arc<Breaker>]) {
        let _writing = self.writing.lock().unwrap_or_else(PoisonError::into_inner);
        let current = self.tracked.load();
        let mut next = BTreeMap::new();
        for breaker in breakers {
            let name = breaker.name();
            let known = current.get(name);
            let series = known.map_or_else(
                || Arc::new(BreakerSeries::register(name)),
                |t| Arc::clone(&t.series),
            );
            let same =
                known.is_some_and(|t| std::ptr::eq(t.breaker.as_ptr(), Arc::as_ptr(breaker)));
            if !same {
                let snapshot = breaker.snapshot();
                let generation = snapshot.generation;
                series.show_state(snapshot.state, snapshot.state_changed_at, || {
                    breaker.snapshot().generation == generation
                });
                series.failure_ratio(snapshot.failure_ratio);
            }
            let tracked = Tracked {
                series,
                breaker: Arc::downgrade(breaker),
                slow_after: breaker.config().slow_call_duration(),
            };
            next.insert(Arc::clone(name), tracked);
        }
        self.tracked.store(Arc::new(next));
    }

    /// The mean latency of `breaker`'s permitted attempts so far.
    pub(super) fn average_latency(&self, breaker: &str) -> Option<Duration> {
        self.tracked.load().get(breaker)?.series.average_latency()
    }

    /// A state change: counted, and shown if it is still the breaker's latest (listeners of two
    /// quick transitions may run in either order; the later state must stay).
    pub(super) fn transition(&self, t: &Transition) {
        let Some(tracked) = self.tracked_or_new(&t.breaker) else {
            return;
        };
        tracked.series.transitioned(t.from, t.to, t.recovery);
        let breaker = tracked.breaker.upgrade();
        tracked.series.show_state(t.to, t.wall, || match &breaker {
            Some(breaker) => breaker.snapshot().generation == t.generation,
            // Not tracked yet (the store's breaker while the store opens): the event is all
            // there is to go by.
            None => true,
        });
    }

    /// The tracked entry for `name`, registering it if the configuration's breaker reports a
    /// transition before [`track`](Self::track) first saw it. Only breakers built from the
    /// configuration carry our listener, so the name is bounded.
    fn tracked_or_new(&self, name: &Arc<str>) -> Option<Tracked> {
        if let Some(tracked) = self.tracked.load().get(name) {
            return Some(tracked.clone());
        }
        let _writing = self.writing.lock().unwrap_or_else(PoisonError::into_inner);
        let mut next = BTreeMap::clone(&self.tracked.load());
        let tracked = next
            .entry(Arc::clone(name))
            .or_insert_with(|| Tracked {
                series: Arc::new(BreakerSeries::register(name)),
                breaker: Weak::new(),
                slow_after: None,
            })
            .clone();
        self.tracked.store(Arc::new(next));
        Some(tracked)
    }

    /// Records one queue replay.
    pub(super) fn replayed(&self, upstream: &str, replay: &Replay) {
        let tracked = self.tracked.load();
        let Some(tracked) = tracked.get(upstream) else {
            return;
        };
        for attempt in &replay.attempts {
            tracked
                .series
                .attempt(attempt.outcome, attempt.duration, tracked.slow_after);
        }
        if replay.delivery == Delivery::Rejected {
            tracked.series.rejected();
        }
    }

    /// Records one proxied request from its outcome.
    pub(super) fn proxied(&self, outcome: &ProxyOutcome) {
        let tracked = self.tracked.load();
        let Some(tracked) = tracked.get(outcome.upstream.as_str()) else {
            return;
        };
        let series = &tracked.series;
        for attempt in &outcome.attempts {
            series.attempt(attempt.outcome, attempt.duration, tracked.slow_after);
        }
        // The breaker refused a call when its first attempt was turned away (a decision was
        // made but nothing was attempted) or when it turned a retry away.
        let first_refused = outcome.attempts.is_empty()
            && matches!(
                outcome.decision,
                Some(Decision::Rejected | Decision::Fallback)
            );
        if first_refused {
            series.rejected();
        }
        if outcome.retry_stop == Some(RetryStop::BreakerRejected) {
            series.rejected();
        }
        if let Some(kind) = outcome.fallback {
            series.fallback(kind);
            if outcome.error == Some("queue_full") {
                series.queue_refused();
            }
        }
        series.retries(
            outcome.retries(),
            outcome.retry_stop == Some(RetryStop::BudgetExhausted),
        );
    }

    /// Refreshes the gauges read from snapshots and the queue (`depth` is `None` when it could
    /// not be read in time: the last figures stay).
    pub(super) fn refresh(
        &self,
        snapshots: &BTreeMap<String, Snapshot>,
        depth: Option<&BTreeMap<String, u64>>,
    ) {
        for (name, tracked) in self.tracked.load().iter() {
            if let Some(snapshot) = snapshots.get(&**name) {
                tracked.series.failure_ratio(snapshot.failure_ratio);
            }
            if let Some(depth) = depth {
                tracked
                    .series
                    .queue_depth(depth.get(&**name).copied().unwrap_or(0));
            }
        }
    }
}
