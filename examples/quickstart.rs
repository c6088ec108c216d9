//! A breaker guarding a dependency that goes down and comes back, with every transition printed.
//!
//! Run with: cargo run --example quickstart

// The example runs in real time: it reads the system's clock.
#![allow(clippy::disallowed_methods)]

use std::sync::Arc;
use std::thread::sleep;
use std::time::{Duration, Instant};

use breakerbox::{Breaker, BreakerConfig, ConfigError, Transition};

/// A pretend dependency: healthy for 1 s, down for 2 s, then healthy again.
fn call_dependency(started: Instant) -> Result<&'static str, &'static str> {
    match started.elapsed().as_millis() {
        1000..3000 => Err("connection refused"),
        _ => Ok("200 OK"),
    }
}

fn main() -> Result<(), ConfigError> {
    let config = BreakerConfig::builder()
        .failure_threshold(3)
        .open_duration(Duration::from_millis(800))
        .half_open_success_threshold(2)
        .build()?;
    let breaker = Breaker::builder("demo", config)
        .listener(Arc::new(|t: &Transition| {
            println!(
                "  >> {}: {} -> {} because {}",
                t.breaker, t.from, t.to, t.reason
            );
        }))
        .build();

    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(5) {
        let at = started.elapsed().as_secs_f64();
        match breaker.try_acquire() {
            Ok(permit) => match call_dependency(started) {
                Ok(reply) => {
                    println!("{at:5.2}s  called: {reply}");
                    permit.success();
                }
                Err(error) => {
                    println!("{at:5.2}s  called: {error}");
                    permit.failure();
                }
            },
            Err(rejected) => println!("{at:5.2}s  not called: {rejected}"),
        }
        sleep(Duration::from_millis(200));
    }

    let snapshot = breaker.snapshot();
    println!(
        "\nstate {}, {} requests: {} ok, {} failed, {} rejected",
        snapshot.state,
        snapshot.total_requests,
        snapshot.successful_requests,
        snapshot.failed_requests,
        snapshot.rejected_requests
    );
    Ok(())
}
