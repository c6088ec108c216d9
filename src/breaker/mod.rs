//! The breaker core: pure state machine, rolling window, registry and events. No I/O, no async
//! runtime; time comes from a [`Clock`].
//!
//! # Vocabulary
//!
//! - **closed**: calls pass; outcomes are counted in a rolling window.
//! - **trip** (closed → **open**): when `failure_threshold` consecutive failures happen within
//!   the rolling window (unless `consecutive_failures_window` is `unbounded`), or the
//!   failure rate reaches `failure_rate_threshold` over at least `minimum_calls` calls in the
//!   window, or (if set) the slow-call rate reaches `slow_call_rate_threshold` likewise, or a
//!   failure carries a `Retry-After` hint and `honor_retry_after` is on. Only a failure is judged
//!   against the failure rules, and a slow success against the slow-call rule only: a success
//!   never trips on failures, so a trip never depends on how long a success took.
//! - **open**: calls are rejected with the time left; after `open_duration` (doubling per
//!   consecutive trip up to `open_duration_max`, with jitter) the breaker turns **half_open** on
//!   the next call or [`Breaker::tick`], whichever comes first; [`Breaker::next_deadline`] says
//!   when.
//! - **half_open**: at most `half_open_max_calls` probes at once; `half_open_success_threshold`
//!   successes close the breaker, any failure re-opens it.
//! - **forced_open** / **disabled**: manual states ending only with **reset**; disabled lets every
//!   call pass and still counts outcomes.
//!
//! Timeouts are failures. Every transition, and every reset, force-open or disable, bumps the
//! breaker's generation; an outcome reported on a permit from an earlier generation is dropped,
//! so a slow call from before a trip or a reset decides nothing in the new cycle.

mod call;
mod circuit;
mod clock;
mod config;
mod count_window;
mod events;
#[cfg(feature = "metrics")]
mod export;
mod jitter;
#[cfg(any(feature = "gateway", feature = "metrics"))]
pub(crate) mod names;
mod permit;
mod registry;
mod snapshot;
mod state;
#[cfg(feature = "tracing")]
mod trace;
mod window;

pub use call::{Error, success_or_failure};
pub use circuit::{Breaker, BreakerBuilder, Trip};
pub use clock::{Clock, ManualClock, Nanos, SharedReading, SystemClock};
pub use config::{
    BreakerConfig, BreakerConfigBuilder, ConfigError, ConsecutiveFailuresWindow, Percent,
    WindowType,
};
pub use events::{CallEvent, CallListener, Listener, Transition};
#[cfg(feature = "metrics")]
pub use export::BreakerMetrics;
pub use jitter::{Jitter, NoJitter, SplitMix};
pub use permit::{Outcome, Permit, Rejected};
pub use registry::{Reconciliation, Registry, RegistryBuilder};
pub use snapshot::Snapshot;
pub use state::{State, TransitionReason};
#[cfg(feature = "tracing")]
pub use trace::TransitionSpans;
pub use window::Counts;
