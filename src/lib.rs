//! breakerbox: circuit breakers for the dependencies of a service, in-process or as a gateway.
//!
//! The [`breaker`] module is the core: a pure, fast circuit breaker with a rolling window,
//! half-open probes capped by RAII permits, and transition events. [`layer`] applies it to any
//! tower `Service`.
//!
//! Feature `gateway` (on by default) adds the resilience gateway itself: the server, the proxy
//! pipeline, fallbacks, the store, telemetry and the command line. A program that only wants
//! breakers depends on `breakerbox = { version = "…", default-features = false }` and gets the
//! core and the tower layer with none of the gateway's dependencies.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use breakerbox::{Breaker, BreakerConfig, ManualClock, State};
//!
//! let clock = ManualClock::new();
//! let config = BreakerConfig::builder()
//!     .failure_threshold(3)
//!     .open_duration(Duration::from_secs(30))
//!     .build()?;
//! let breaker = Breaker::builder("plex", config)
//!     .clock(Arc::new(clock.clone()))
//!     .listener(Arc::new(|t: &breakerbox::Transition| {
//!         println!("{}: {} -> {} ({})", t.breaker, t.from, t.to, t.reason)
//!     }))
//!     .build();
//!
//! // Three failures in a row trip the breaker.
//! for _ in 0..3 {
//!     let permit = breaker.try_acquire().expect("closed");
//!     permit.failure();
//! }
//! assert_eq!(breaker.state(), State::Open);
//!
//! // While open, calls are turned away with the time left.
//! let rejected = breaker.try_acquire().unwrap_err();
//! assert_eq!(rejected.retry_after(), Some(Duration::from_secs(30)));
//!
//! // After the open duration one probe goes through; its success closes the breaker.
//! clock.advance(Duration::from_secs(30));
//! let probe = breaker.try_acquire().expect("half-open probe");
//! assert!(breaker.try_acquire().is_err(), "only one probe at a time");
//! probe.success();
//! assert_eq!(breaker.state(), State::Closed);
//! # Ok::<(), breakerbox::ConfigError>(())
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

pub mod breaker;
mod coarse_clock;
pub mod layer;

#[cfg(feature = "gateway")]
pub mod api;
#[cfg(feature = "gateway")]
pub mod config;
#[cfg(feature = "gateway")]
pub mod demo;
#[cfg(feature = "gateway")]
pub mod fallback;
#[cfg(feature = "gateway")]
pub mod gateway;
#[cfg(feature = "gateway")]
pub mod outcome;
#[cfg(feature = "gateway")]
pub mod pipeline;
#[cfg(feature = "gateway")]
pub mod server;
#[cfg(feature = "gateway")]
pub mod status;
#[cfg(feature = "gateway")]
pub mod store;
#[cfg(feature = "gateway")]
pub mod telemetry;
#[cfg(feature = "gateway")]
pub mod upstream;

pub use breaker::{
    Breaker, BreakerConfig, Clock, ConfigError, ManualClock, Outcome, Permit, Registry, Rejected,
    Snapshot, State, SystemClock, Transition, TransitionReason,
};
pub use coarse_clock::CoarseClock;
