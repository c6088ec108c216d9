//! The chaos suite's parts: a flapping upstream, the gateway process, the load and the
//! classification of every answer.

#![allow(dead_code, unreachable_pub)]

pub mod classify;
pub mod flapping;
pub mod load;
pub mod process;

// The helpers every test target shares (chaos.rs declares only this module).
#[path = "../support/mod.rs"]
mod support;
