//! Feature `reqwest-middleware`: a real reqwest client through `BreakerMiddleware` against a
//! real HTTP server on 127.0.0.1 whose answer each request names.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use breakerbox::breaker::{NoJitter, Rejected};
use breakerbox::layer::BreakerMiddleware;
use breakerbox::{Breaker, BreakerConfig, ManualClock, Outcome, State};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A server answering `GET /<status>` with that status (and `Retry-After: 30` on `/503-hint`),
/// counting the requests it got.
async fn server() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bound");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let served = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&served);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut head = vec![0; 4096];
                let read = stream.read(&mut head).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&head[..read]).into_owned();
                let path = head.split(' ').nth(1).unwrap_or("/200").to_owned();
                let (status, hint) = match path.trim_start_matches('/') {
                    "503-hint" => ("503", "Retry-After: 30\r\n"),
                    other => (other, ""),
                };
                let answer = format!(
                    "HTTP/1.1 {status} X\r\n{hint}Content-Length: 2\r\nConnection: close\r\n\r\nok"
                );
                let _ = stream.write_all(answer.as_bytes()).await;
            });
        }
    });
    (base, served)
}

fn client(breaker: &Arc<Breaker>) -> reqwest_middleware::ClientWithMiddleware {
    reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(BreakerMiddleware::new(Arc::clone(breaker)))
        .build()
}

fn breaker(config: BreakerConfig) -> Arc<Breaker> {
    Arc::new(
        Breaker::builder("tmdb", config)
            .clock(Arc::new(ManualClock::new()))
            .jitter(Arc::new(NoJitter))
            .build(),
    )
}

#[tokio::test]
async fn server_errors_trip_and_an_open_breaker_never_sends() {
    let (base, served) = server().await;
    let config = BreakerConfig::builder()
        .failure_threshold(2)
        .build()
        .expect("valid");
    let tmdb = breaker(config);
    let client = client(&tmdb);
    let found = client
        .get(format!("{base}/404"))
        .send()
        .await
        .expect("answered");
    assert_eq!(found.status(), 404);
    assert_eq!(
        tmdb.snapshot().successful_requests,
        1,
        "a 404 is the API's answer"
    );
    for _ in 0..2 {
        let failed = client
            .get(format!("{base}/500"))
            .send()
            .await
            .expect("answered");
        assert_eq!(failed.status(), 500);
    }
    assert_eq!(tmdb.state(), State::Open);
    let err = client
        .get(format!("{base}/200"))
        .send()
        .await
        .expect_err("rejected");
    let rejected = match &err {
        reqwest_middleware::Error::Middleware(inner) => inner.downcast_ref::<Rejected>(),
        reqwest_middleware::Error::Reqwest(_) => None,
    };
    assert!(rejected.is_some(), "{err:?}");
    assert_eq!(
        served.load(Ordering::SeqCst),
        3,
        "the rejected request never left"
    );
}

#[tokio::test]
async fn transport_errors_fail_and_a_retry_after_hint_opens_for_it() {
    let closed_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bound");
        listener.local_addr().expect("address").port()
    };
    let config = BreakerConfig::builder()
        .failure_threshold(1)
        .honor_retry_after(true)
        .open_duration(Duration::from_secs(60))
        .build()
        .expect("valid");
    let tmdb = breaker(config.clone());
    let refused = client(&tmdb)
        .get(format!("http://127.0.0.1:{closed_port}/"))
        .send()
        .await;
    assert!(refused.is_err());
    assert_eq!(tmdb.snapshot().failed_requests, 1);
    assert_eq!(tmdb.state(), State::Open);

    let (base, _) = server().await;
    let tmdb = breaker(config);
    let hinted = client(&tmdb)
        .get(format!("{base}/503-hint"))
        .send()
        .await
        .expect("answered");
    assert_eq!(hinted.status(), 503);
    let rejection = tmdb.try_acquire().expect_err("open");
    assert_eq!(rejection.retry_after(), Some(Duration::from_secs(30)));
}

#[tokio::test]
async fn a_classifier_decides_what_counts() {
    let (base, _) = server().await;
    let tmdb = breaker(BreakerConfig::default());
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(
            BreakerMiddleware::new(Arc::clone(&tmdb)).classify(|result| match result {
                Ok(response) if response.status() == 404 => Outcome::Failure,
                _ => Outcome::Success,
            }),
        )
        .build();
    client
        .get(format!("{base}/404"))
        .send()
        .await
        .expect("answered");
    assert_eq!(tmdb.snapshot().failed_requests, 1);
}
