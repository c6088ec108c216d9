//! The in-process pattern: a TMDB-like client behind a breaker, answering from a cache while
//! TMDB is down and refreshing it once TMDB is back. No network: the "API" is a function that
//! fails on schedule, and time is a manual clock, so the whole story runs in an instant.
//!
//! Run with: cargo run --example tmdb_cache --no-default-features

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use breakerbox::breaker::Error;
use breakerbox::{Breaker, BreakerConfig, ConfigError, ManualClock, Transition};

/// What the API answers, or why it could not.
#[derive(Debug, Clone, PartialEq)]
enum ApiError {
    Unavailable,
    NotFound,
}

/// A pretend TMDB: down between 10 s and 40 s, knows movies 1 to 999.
fn fetch_title(clock: &ManualClock, id: u32) -> Result<String, ApiError> {
    use breakerbox::Clock as _;
    let now = clock.now().0 / 1_000_000_000;
    match (now, id) {
        (10..40, _) => Err(ApiError::Unavailable),
        (_, 1..=999) => Ok(format!("movie #{id} (fetched at {now} s)")),
        _ => Err(ApiError::NotFound),
    }
}

/// Where an answer came from.
#[derive(Debug, PartialEq)]
enum Source {
    Api,
    Cache,
    Nothing,
}

struct Tmdb {
    breaker: Breaker,
    clock: ManualClock,
    cache: HashMap<u32, String>,
}

impl Tmdb {
    fn title(&mut self, id: u32) -> (Source, Option<String>) {
        // A 404 is the caller's business, not TMDB being down: it never trips the breaker.
        let classify = |r: &Result<String, ApiError>| match r {
            Ok(_) | Err(ApiError::NotFound) => breakerbox::Outcome::Success,
            Err(ApiError::Unavailable) => breakerbox::Outcome::Failure,
        };
        match self
            .breaker
            .call_sync_with(classify, || fetch_title(&self.clock, id))
        {
            Ok(title) => {
                self.cache.insert(id, title.clone());
                (Source::Api, Some(title))
            }
            Err(Error::Inner(ApiError::NotFound)) => (Source::Api, None),
            // Down, or the breaker turned the call away: the cache answers if it can.
            Err(_) => match self.cache.get(&id) {
                Some(title) => (Source::Cache, Some(title.clone())),
                None => (Source::Nothing, None),
            },
        }
    }
}

fn main() -> Result<(), ConfigError> {
    let clock = ManualClock::new();
    let config = BreakerConfig::builder()
        .failure_threshold(3)
        .open_duration(Duration::from_secs(15))
        .build()?;
    let breaker = Breaker::builder("tmdb", config)
        .clock(Arc::new(clock.clone()))
        .listener(Arc::new(|t: &Transition| {
            println!("  >> {}: {} -> {} ({})", t.breaker, t.from, t.to, t.reason);
        }))
        .build();
    let mut tmdb = Tmdb {
        breaker,
        clock: clock.clone(),
        cache: HashMap::new(),
    };

    let mut sources = Vec::new();
    for second in 0..60u64 {
        let id = [603, 155, 27][second as usize % 3];
        let (source, title) = tmdb.title(id);
        if second % 5 == 0 || source != Source::Api {
            println!(
                "{second:>3} s  {:<7} {}",
                format!("{source:?}"),
                title.as_deref().unwrap_or("(no answer)")
            );
        }
        sources.push(source);
        clock.advance(Duration::from_secs(1));
    }

    // The story this example tells, checked: served from the API, then from the cache while
    // TMDB was down (the breaker open, TMDB not called), then from the API again.
    let cached = sources.iter().filter(|s| **s == Source::Cache).count();
    assert!(
        cached >= 20,
        "the cache answered through the outage ({cached} times)"
    );
    assert_eq!(sources.last(), Some(&Source::Api), "recovered by the end");
    println!(
        "served {} from TMDB and {cached} from the cache; breaker {}",
        sources.iter().filter(|s| **s == Source::Api).count(),
        tmdb.breaker.state()
    );
    Ok(())
}
