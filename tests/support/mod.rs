//! Helpers shared by the store's integration tests: a throwaway PostgreSQL and store fixtures.
// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

pub mod postgres;
pub mod store;
