//! The gateway on the wire: the listener (with its framing checks on every request head), each
//! connection's HTTP/1 service, and serving until a termination signal, then draining.

mod connection;
pub mod framing;
mod listener;
mod serve;

pub use serve::{ServeError, run, serve, termination};
