//! The series of one breaker, registered once (so every one of them exists, at 0, before its
//! first event and `increase()` sees that event) and kept as handles, so recording a call is a
//! few atomic additions with no label lookup.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use metrics::{Counter, Gauge, Histogram};

use super::names::{
    BREAKER_STATE, CALL_DURATION, CALLS, FAILURE_RATIO, FALLBACKS, QUEUE_DEPTH, QUEUE_REFUSED,
    RECOVERY, RETRIES, RETRY_ATTEMPTED, RETRY_BUDGET_EXHAUSTED, SLOW_CALLS, STATE_SINCE,
    TRANSITIONS,
};
use crate::breaker::{Outcome, State};
use crate::outcome::{CallOutcome, FallbackKind};

/// Every series of one breaker (`breaker` label = its configured name).
#[derive(Debug)]
pub(super) struct BreakerSeries {
    state: [Gauge; State::ALL.len()],
    since: Gauge,
    /// `[from][to]`; `None` on the diagonal (a state never changes into itself).
    transitions: [[Option<Counter>; State::ALL.len()]; State::ALL.len()],
    /// By [`CallOutcome::PERMITTED`].
    calls: [Counter; CallOutcome::PERMITTED.len()],
    rejected: Counter,
    /// By [`CallOutcome::PERMITTED`].
    durations: [Histogram; CallOutcome::PERMITTED.len()],
    failure_ratio: Gauge,
    recovery: Histogram,
    /// The sum and count of every permitted attempt's latency, for the average the seed's
    /// dashboard JSON shows (the histogram cannot be read back).
    latency_nanos: AtomicU64,
    latency_calls: AtomicU64,
    /// By [`FallbackKind::ALL`].
    fallbacks: [Counter; FallbackKind::ALL.len()],
    queue_depth: Gauge,
    queue_refused: Counter,
    slow: Counter,
    retries_attempted: Counter,
    retries_refused: Counter,
    /// Serialises writes of the state gauges, so two transitions reported at once on two
    /// threads cannot leave the older state showing.
    showing: Mutex<()>,
}

impl BreakerSeries {
    /// Registers (or finds again: registration is idempotent) every series of `breaker` and
    /// sets the counters' initial 0.
    pub(super) fn register(breaker: &Arc<str>) -> Self {
        let name = || Arc::clone(breaker);
        let state = State::ALL
            .map(|s| metrics::gauge!(BREAKER_STATE, "breaker" => name(), "state" => s.as_str()));
        let transitions = State::ALL.map(|from| {
            State::ALL.map(|to| {
                (from != to).then(|| {
                    metrics::counter!(TRANSITIONS, "breaker" => name(), "from" => from.as_str(), "to" => to.as_str())
                })
            })
        });
        let calls = CallOutcome::PERMITTED.map(
            |outcome| metrics::counter!(CALLS, "breaker" => name(), "outcome" => outcome.as_str()),
        );
        let durations = CallOutcome::PERMITTED.map(|outcome| {
            metrics::histogram!(CALL_DURATION, "breaker" => name(), "outcome" => outcome.as_str())
        });
        let fallbacks = FallbackKind::ALL
            .map(|kind| metrics::counter!(FALLBACKS, "breaker" => name(), "kind" => kind.as_str()));
        let rejected = CallOutcome::Rejected.as_str();
        let series = Self {
            state,
            since: metrics::gauge!(STATE_SINCE, "breaker" => name()),
            transitions,
            calls,
            rejected: metrics::counter!(CALLS, "breaker" => name(), "outcome" => rejected),
            durations,
            failure_ratio: metrics::gauge!(FAILURE_RATIO, "breaker" => name()),
            recovery: metrics::histogram!(RECOVERY, "breaker" => name()),
            latency_nanos: AtomicU64::new(0),
            latency_calls: AtomicU64::new(0),
            fallbacks,
            queue_depth: metrics::gauge!(QUEUE_DEPTH, "breaker" => name()),
            queue_refused: metrics::counter!(QUEUE_REFUSED, "breaker" => name()),
            slow: metrics::counter!(SLOW_CALLS, "breaker" => name()),
            retries_attempted: metrics::counter!(RETRIES, "breaker" => name(), "result" => RETRY_ATTEMPTED),
            retries_refused: metrics::counter!(RETRIES, "breaker" => name(), "result" => RETRY_BUDGET_EXHAUSTED),
            showing: Mutex::new(()),
        };
        // A counter exists in the exposition once registered; adding 0 says so explicitly and
        // keeps any count an earlier gateway of this process made under the same name.
        let counters = series.transitions.iter().flatten().flatten();
        for counter in counters
            .chain(&series.calls)
            .chain([&series.rejected, &series.slow, &series.queue_refused])
            .chain(&series.fallbacks)
            .chain([&series.retries_attempted, &series.retries_refused])
        {
            counter.increment(0);
        }
        series
    }

    /// Shows `state` as current since `since`, when `still_current` holds at the moment of
    /// writing (checked under the lock that orders these writes).
    pub(super) fn show_state(
        &self,
        state: State,
        since: SystemTime,
        still_current: impl FnOnce() -> bool,
    ) {
        let _showing = self.showing.lock().unwrap_or_else(PoisonError::into_inner);
        if !still_current() {
            return;
        }
        for (gauge, s) in self.state.iter().zip(State::ALL) {
            gauge.set(if s == state { 1.0 } else { 0.0 });
        }
        let secs = since
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        self.since.set(secs);
    }

    /// Counts a transition.
    pub(super) fn transitioned(&self, from: State, to: State, recovery: Option<Duration>) {
        if let Some(counter) = &self.transitions[index(from)][index(to)] {
            counter.increment(1);
        }
        if let Some(took) = recovery {
            self.recovery.record(took.as_secs_f64());
        }
    }

    /// Records one permitted attempt; `slow_after` is the breaker's `slow_call_duration`.
    pub(super) fn attempt(&self, outcome: Outcome, took: Duration, slow_after: Option<Duration>) {
        let Some(counted) = CallOutcome::of(outcome) else {
            return;
        };
        let i = counted as usize;
        self.calls[i].increment(1);
        self.durations[i].record(took.as_secs_f64());
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.latency_nanos.fetch_add(nanos, Relaxed);
        self.latency_calls.fetch_add(1, Relaxed);
        // The breaker's own rule (`>=`), on the same measurement it was given.
        if slow_after.is_some_and(|limit| took >= limit) {
            self.slow.increment(1);
        }
    }

    /// The mean latency of every permitted attempt so far, if there was one.
    pub(super) fn average_latency(&self) -> Option<Duration> {
        let calls = self.latency_calls.load(Relaxed);
        (calls > 0).then(|| Duration::from_nanos(self.latency_nanos.load(Relaxed) / calls))
    }

    /// Counts a call the breaker turned away.
    pub(super) fn rejected(&self) {
        self.rejected.increment(1);
    }

    /// Counts an answer given by a fallback.
    pub(super) fn fallback(&self, kind: FallbackKind) {
        self.fallbacks[kind as usize].increment(1);
    }

    /// Counts retries made, and a retry the budget refused.
    pub(super) fn retries(&self, attempted: u32, budget_exhausted: bool) {
        if attempted > 0 {
            self.retries_attempted.increment(u64::from(attempted));
        }
        if budget_exhausted {
            self.retries_refused.increment(1);
        }
    }

    /// The window's failure ratio, `None` (shown as -1) until it holds `minimum_calls`.
    pub(super) fn failure_ratio(&self, ratio: Option<f64>) {
        self.failure_ratio.set(ratio.unwrap_or(-1.0));
    }

    /// Counts a request the queue refused.
    pub(super) fn queue_refused(&self) {
        self.queue_refused.increment(1);
    }

    /// Requests waiting for replay.
    pub(super) fn queue_depth(&self, depth: u64) {
        self.queue_depth.set(depth as f64);
    }
}

fn index(state: State) -> usize {
    State::ALL.iter().position(|s| *s == state).unwrap_or(0)
}
