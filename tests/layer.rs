//! The tower layer against services built with `service_fn`.

use std::convert::Infallible;
use std::future::{Future, pending};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use breakerbox::breaker::NoJitter;
use breakerbox::layer::{BoxError, CircuitBreakerLayer, is_rejection};
use breakerbox::{Breaker, BreakerConfig, ManualClock, Outcome, Rejected, State};
use tower::{Layer, Service, ServiceExt, service_fn};

fn breaker(clock: &ManualClock, failure_threshold: u32) -> Arc<Breaker> {
    let config = BreakerConfig::builder()
        .failure_threshold(failure_threshold)
        .open_duration(Duration::from_secs(10))
        .build()
        .expect("valid config");
    Arc::new(
        Breaker::builder("upstream", config)
            .clock(Arc::new(clock.clone()))
            .jitter(Arc::new(NoJitter))
            .build(),
    )
}

#[tokio::test]
async fn rejected_calls_never_reach_the_inner_service() {
    let clock = ManualClock::new();
    let breaker = breaker(&clock, 2);
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let service = CircuitBreakerLayer::new(Arc::clone(&breaker)).layer(service_fn(move |_: ()| {
        counted.fetch_add(1, Ordering::SeqCst);
        async { Err::<(), BoxError>("connection refused".into()) }
    }));

    for _ in 0..2 {
        let err = service.clone().oneshot(()).await.expect_err("inner fails");
        assert!(!err.is::<Rejected>());
        assert_eq!(err.to_string(), "connection refused");
    }
    assert_eq!(breaker.state(), State::Open);

    let err = service.clone().oneshot(()).await.expect_err("rejected");
    let rejected = is_rejection(&err).expect("a rejection");
    assert_eq!(rejected.retry_after(), Some(Duration::from_secs(10)));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(breaker.snapshot().rejected_requests, 1);
}

#[tokio::test]
async fn classifier_decides_what_counts_as_failure() {
    let clock = ManualClock::new();
    let breaker = breaker(&clock, 1);
    let statuses = [404_u16, 429, 400, 404];
    let next = Arc::new(AtomicUsize::new(0));
    let inner = service_fn(move |_: ()| {
        let status = statuses[next.fetch_add(1, Ordering::SeqCst) % statuses.len()];
        async move { Ok::<u16, Infallible>(status) }
    });
    let classify = |result: &Result<u16, Infallible>| match result {
        Ok(status) if *status >= 500 => Outcome::Failure,
        _ => Outcome::Success,
    };
    let mut service = CircuitBreakerLayer::new(Arc::clone(&breaker))
        .with_classifier(classify)
        .layer(inner);

    for expected in statuses {
        let status = service.ready().await.expect("ready").call(()).await;
        assert_eq!(status.expect("4xx passes"), expected);
    }
    let snapshot = breaker.snapshot();
    assert_eq!(snapshot.state, State::Closed);
    assert_eq!(snapshot.successful_requests, 4);
    assert_eq!(snapshot.failed_requests, 0);
}

#[tokio::test]
async fn cancelled_probe_frees_its_half_open_slot() {
    let clock = ManualClock::new();
    let breaker = breaker(&clock, 1);
    breaker.trip();
    clock.advance(Duration::from_secs(10));

    type Reply = Pin<Box<dyn Future<Output = Result<(), Infallible>> + Send>>;
    let hang = Arc::new(AtomicUsize::new(1));
    let mut service =
        CircuitBreakerLayer::new(Arc::clone(&breaker)).layer(service_fn(move |_: ()| {
            let reply: Reply = if hang.fetch_sub(1, Ordering::SeqCst) == 1 {
                Box::pin(pending())
            } else {
                Box::pin(async { Ok(()) })
            };
            reply
        }));

    let stuck = service.ready().await.expect("ready").call(());
    assert_eq!(breaker.state(), State::HalfOpen);
    assert_eq!(breaker.snapshot().half_open_probes, 1);
    let err = service.ready().await.expect("ready").call(()).await;
    assert!(err.expect_err("slot taken").is::<Rejected>());

    drop(stuck);
    assert_eq!(breaker.snapshot().half_open_probes, 0);
    service
        .ready()
        .await
        .expect("ready")
        .call(())
        .await
        .expect("probe admitted and succeeds");
    assert_eq!(breaker.state(), State::Closed);
}
