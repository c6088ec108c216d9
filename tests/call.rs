//! Guarded calls: `Breaker::call` and its synchronous twin, with and without a classifier.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use breakerbox::breaker::{Error, NoJitter};
use breakerbox::{Breaker, BreakerConfig, ManualClock, Outcome, State};

fn breaker(clock: &ManualClock) -> Breaker {
    let config = BreakerConfig::builder()
        .failure_threshold(2)
        .open_duration(Duration::from_secs(30))
        .build()
        .expect("valid");
    Breaker::builder("tmdb", config)
        .clock(Arc::new(clock.clone()))
        .jitter(Arc::new(NoJitter))
        .build()
}

#[tokio::test]
async fn failures_trip_and_a_rejected_call_never_runs() {
    let clock = ManualClock::new();
    let tmdb = breaker(&clock);
    let ran = AtomicUsize::new(0);
    for _ in 0..2 {
        let err = tmdb
            .call(|| async {
                ran.fetch_add(1, Ordering::SeqCst);
                Err::<(), _>("connection refused")
            })
            .await
            .expect_err("fails");
        assert!(!err.is_rejected());
        assert_eq!(err.into_inner(), Some("connection refused"));
    }
    assert_eq!(tmdb.state(), State::Open);
    let err = tmdb
        .call(|| async {
            ran.fetch_add(1, Ordering::SeqCst);
            Ok::<_, &str>(1)
        })
        .await
        .expect_err("rejected");
    assert!(err.is_rejected());
    assert_eq!(
        err.rejection().and_then(|r| r.retry_after()),
        Some(Duration::from_secs(30))
    );
    assert_eq!(err.into_inner(), None);
    assert_eq!(
        ran.load(Ordering::SeqCst),
        2,
        "the rejected closure never ran"
    );

    clock.advance(Duration::from_secs(30));
    let value = tmdb.call(|| async { Ok::<_, &str>(7) }).await;
    assert_eq!(value, Ok(7));
    assert_eq!(tmdb.state(), State::Closed, "the probe closed it");
}

#[test]
fn a_classifier_decides_what_counts_as_failure() {
    let clock = ManualClock::new();
    let tmdb = breaker(&clock);
    // A 404 is the caller's business, not the dependency's failure.
    let not_found = |r: &Result<u16, u16>| match r {
        Ok(_) | Err(404) => Outcome::Success,
        Err(_) => Outcome::Failure,
    };
    for _ in 0..5 {
        let err = tmdb
            .call_sync_with(not_found, || Err(404))
            .expect_err("404");
        assert_eq!(err, Error::Inner(404));
    }
    assert_eq!(tmdb.state(), State::Closed);
    for _ in 0..2 {
        let _ = tmdb.call_sync_with(not_found, || Err(503));
    }
    assert_eq!(tmdb.state(), State::Open);
    assert!(
        tmdb.call_sync(|| Ok::<_, u16>(1))
            .is_err_and(|e| e.is_rejected())
    );
}

#[tokio::test]
async fn a_cancelled_call_records_nothing_and_frees_its_probe_slot() {
    let clock = ManualClock::new();
    let tmdb = breaker(&clock);
    tmdb.trip().expect("tripped");
    clock.advance(Duration::from_secs(30));
    let hanging = tmdb.call(std::future::pending::<Result<(), ()>>);
    // Poll once so the probe permit is taken, then cancel.
    let mut hanging = Box::pin(hanging);
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    assert!(hanging.as_mut().poll(&mut cx).is_pending());
    assert_eq!(tmdb.snapshot().half_open_probes, 1);
    drop(hanging);
    assert_eq!(tmdb.snapshot().half_open_probes, 0);
    assert_eq!(tmdb.state(), State::HalfOpen);
    assert_eq!(tmdb.call(|| async { Ok::<_, ()>(()) }).await, Ok(()));
    assert_eq!(tmdb.state(), State::Closed);
}

#[test]
fn call_events_tell_each_call_s_end_and_slowness() {
    use std::sync::Mutex;
    let clock = ManualClock::new();
    let config = BreakerConfig::builder()
        .failure_threshold(2)
        .slow_call_duration(Some(Duration::from_millis(100)))
        .build()
        .expect("valid");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    let tmdb = Breaker::builder("tmdb", config)
        .clock(Arc::new(clock.clone()))
        .call_listener(Arc::new(
            move |name: &str, event: breakerbox::breaker::CallEvent, took: Option<Duration>| {
                sink.lock().expect("lock").push(format!(
                    "{name}:{}{}{}",
                    event.as_str(),
                    if event.is_slow() { "(slow)" } else { "" },
                    took.map_or(String::new(), |t| format!(" {}ms", t.as_millis()))
                ));
            },
        ))
        .build();
    tmdb.try_acquire().expect("closed").success();
    tmdb.try_acquire()
        .expect("closed")
        .record_timed(Outcome::Success, Duration::from_secs(1));
    let slow_answer = tmdb.try_acquire().expect("closed");
    clock.advance(Duration::from_millis(250));
    slow_answer.timeout();
    tmdb.try_acquire().expect("closed").ignore();
    drop(tmdb.try_acquire().expect("closed"));
    tmdb.try_acquire().expect("closed").failure();
    assert!(tmdb.try_acquire().is_err(), "tripped");
    assert_eq!(
        *seen.lock().expect("lock"),
        [
            "tmdb:success 0ms",
            "tmdb:success(slow) 1000ms",
            "tmdb:timeout(slow) 250ms",
            "tmdb:ignored 0ms",
            "tmdb:ignored 0ms",
            "tmdb:failure 0ms",
            "tmdb:rejected",
        ]
    );
}

/// Sets its flag when dropped, to see that a timed-out call's future is given up.
struct DropFlag(Arc<AtomicUsize>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test(start_paused = true)]
async fn a_deadline_bounds_the_call_and_counts_a_timeout() {
    let clock = ManualClock::new();
    let tmdb = breaker(&clock);
    let dropped = Arc::new(AtomicUsize::new(0));
    for _ in 0..2 {
        let flag = DropFlag(Arc::clone(&dropped));
        let err = tmdb
            .call_until(tokio::time::sleep(Duration::from_secs(3)), || async move {
                let _flag = flag;
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok::<_, &str>("movie")
            })
            .await
            .expect_err("timed out");
        assert!(err.is_timeout() && !err.is_rejected());
        assert_eq!(err.into_inner(), None);
    }
    assert_eq!(
        dropped.load(Ordering::SeqCst),
        2,
        "each slow call was dropped"
    );
    let snapshot = tmdb.snapshot();
    assert_eq!((snapshot.timeouts, snapshot.failed_requests), (2, 0));
    assert_eq!(
        tmdb.state(),
        State::Open,
        "two timeouts trip like two failures"
    );
    let err = tmdb
        .call_until(tokio::time::sleep(Duration::from_secs(3)), || async {
            Ok::<_, &str>("movie")
        })
        .await
        .expect_err("rejected");
    assert!(err.is_rejected());
}

#[tokio::test(start_paused = true)]
async fn a_call_within_its_deadline_is_classified_as_usual() {
    let clock = ManualClock::new();
    let tmdb = breaker(&clock);
    let started = tokio::time::Instant::now();
    let answer = tmdb
        .call_until(tokio::time::sleep(Duration::from_secs(3)), || async {
            tokio::time::sleep(Duration::from_secs(2)).await;
            Ok::<_, &str>("movie")
        })
        .await;
    assert_eq!(answer, Ok("movie"));
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(2),
        "no wait for the deadline"
    );
    let not_found = tmdb
        .call_with_until(
            |result: &Result<u16, u16>| match result {
                Err(404) => Outcome::Success,
                Err(_) => Outcome::Failure,
                Ok(_) => Outcome::Success,
            },
            tokio::time::sleep(Duration::from_secs(3)),
            || async { Err::<u16, u16>(404) },
        )
        .await;
    assert_eq!(not_found.map_err(Error::into_inner), Err(Some(404)));
    let snapshot = tmdb.snapshot();
    assert_eq!((snapshot.successful_requests, snapshot.timeouts), (2, 0));
}
