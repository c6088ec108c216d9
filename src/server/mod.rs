//! The gateway on the wire: the listener (with its framing checks on every request head), each
//! connection's HTTP/1 service, the bounds on connections in time and number, and serving until a termination signal, then draining.

mod connection;
mod descriptors;
pub mod framing;
mod limits;
mod listener;
mod rewrite;
mod serve;

pub use serve::{ServeError, run, serve, termination};
