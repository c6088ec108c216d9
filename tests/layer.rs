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

/// Polls `future` once: its output if it is ready at once.
fn poll_once<F: Future>(future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(output) => Some(output),
        std::task::Poll::Pending => None,
    }
}

/// A service that is never ready: it would make a caller wait forever in `poll_ready`.
#[derive(Clone)]
struct NeverReady(Arc<AtomicUsize>);

impl Service<()> for NeverReady {
    type Response = ();
    type Error = BoxError;
    type Future = std::future::Ready<Result<(), BoxError>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), BoxError>> {
        self.0.fetch_add(1, Ordering::SeqCst);
        std::task::Poll::Pending
    }

    fn call(&mut self, _: ()) -> Self::Future {
        unreachable!("never ready, never called")
    }
}

#[tokio::test]
async fn a_rejection_never_waits_for_the_inner_service_to_be_ready() {
    let clock = ManualClock::new();
    let breaker = breaker(&clock, 1);
    breaker.trip().expect("tripped");
    let polled = Arc::new(AtomicUsize::new(0));
    let service = CircuitBreakerLayer::new(Arc::clone(&breaker)).layer(NeverReady(polled.clone()));
    // `oneshot` waits for `poll_ready`: with the breaker open it must answer at once.
    let answer = poll_once(service.clone().oneshot(()))
        .expect("answered without waiting for the inner service");
    let err = answer.expect_err("rejected");
    assert!(is_rejection(&err).is_some(), "{err}");
    assert_eq!(
        polled.load(Ordering::SeqCst),
        0,
        "the inner service was not even asked"
    );

    // Closed, readiness is the inner service's again (and its permit is held meanwhile).
    breaker.reset();
    let mut waiting = service.clone();
    let ready = poll_once(waiting.ready());
    assert!(ready.is_none(), "closed: waits for the inner service");
    assert!(polled.load(Ordering::SeqCst) > 0);
}
