//! Helpers shared by the integration tests: the gateway binary as a process, a throwaway
//! PostgreSQL, store fixtures, temporary folders.
// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

pub mod gateway_process;
pub mod ports;
pub mod postgres;
pub mod prometheus;
pub mod raw_http;
pub mod served;
pub mod store;
pub mod temp_dir;
pub mod wait;
