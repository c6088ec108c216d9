//! The request queue's replay on a real SQLite store: order, stopping at the first failure,
//! final 4xx, and the replayer task woken by the gateway.

mod support;

use std::sync::Arc;
use std::time::Duration;

use breakerbox::fallback::queue::{RequestQueue, spawn_replayer};
use breakerbox::fallback::{Delivery, Durability, Enqueue, QueueError, QueueStatus};
use breakerbox::store::StoreOptions;
use support::store::{Recorder, open, open_with, request};
use support::temp_dir::TempDir;
use support::wait::wait_until;

#[tokio::test]
async fn replay_delivers_in_order_and_stops_at_the_first_failure() {
    let dir = TempDir::new();
    let store = open(&dir.sqlite_url("r.db")).await;
    let queue = RequestQueue::new(store.clone());
    let reqs: Vec<_> = (0..5).map(|n| request("qbittorrent", n)).collect();
    for r in &reqs {
        assert_eq!(queue.enqueue(r.clone()).await, Ok(Durability::Stored));
    }
    let failed = Delivery::Failed {
        reason: "connection refused".into(),
    };
    let deliver = Recorder::scripted(vec![
        Delivery::Delivered { status: 200 },
        Delivery::Delivered { status: 404 },
        failed.clone(),
    ]);
    let report = queue
        .replay("qbittorrent", &*deliver)
        .await
        .expect("replay");
    assert_eq!((report.delivered, report.stopped_by), (2, Some(failed)));
    let ids = |range: std::ops::Range<usize>| reqs[range].iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(deliver.ids(), ids(0..3));

    // The failed one stays pending with one attempt counted, and goes first next time.
    let report = queue
        .replay("qbittorrent", &*deliver)
        .await
        .expect("replay");
    assert_eq!((report.delivered, report.stopped_by), (3, None));
    let mut expected = ids(0..3);
    expected.extend(ids(2..5));
    assert_eq!(
        deliver.ids(),
        expected,
        "nothing delivered twice but the failed attempt"
    );
    assert_eq!(deliver.seen()[3].attempts, 1);
    assert_eq!(
        queue
            .replay("qbittorrent", &*deliver)
            .await
            .expect("replay")
            .delivered,
        0
    );

    let entries = store.queue_entries(10).await;
    let status_of = |id| {
        entries
            .iter()
            .find(|e| e.id == id)
            .map(|e| (e.status.clone(), e.attempts))
    };
    assert_eq!(
        status_of(reqs[1].id),
        Some((QueueStatus::Delivered { status: 404 }, 1))
    );
    assert_eq!(
        status_of(reqs[2].id),
        Some((QueueStatus::Delivered { status: 200 }, 2))
    );

    queue.close();
    assert_eq!(
        queue.enqueue(request("qbittorrent", 9)).await,
        Err(QueueError::ShuttingDown)
    );
}

#[tokio::test]
async fn a_long_replay_prunes_finished_requests_as_it_goes() {
    let dir = TempDir::new();
    let keep = 2;
    let store = open_with(
        &dir.sqlite_url("p.db"),
        StoreOptions::default().finished_keep(keep),
    )
    .await;
    // Every delivery may prune: the replay itself keeps the finished rows down, not only
    // the replayer's cycle after it.
    let queue = RequestQueue::new(store.clone()).prune_every(Duration::ZERO);
    for n in 0..8 {
        queue
            .enqueue(request("qbittorrent", n))
            .await
            .expect("enqueue");
    }
    let deliver = Recorder::scripted(Vec::new());
    let report = queue
        .replay("qbittorrent", &*deliver)
        .await
        .expect("replay");
    assert_eq!(report.delivered, 8);
    let finished = store
        .queue_entries(100)
        .await
        .iter()
        .filter(|e| e.status != QueueStatus::Pending)
        .count();
    assert_eq!(finished, keep, "finished rows left after the replay");
}

#[tokio::test]
async fn replayer_runs_when_woken_and_ends_on_shutdown() {
    let dir = TempDir::new();
    let queue = Arc::new(
        RequestQueue::new(open(&dir.sqlite_url("w.db")).await)
            .replay_every(Duration::from_secs(3600)),
    );
    let deliver = Recorder::scripted(vec![Delivery::Rejected]);
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let replayer = spawn_replayer(Arc::clone(&queue), "qbittorrent", deliver.clone(), shutdown);
    let reqs: Vec<_> = (0..3).map(|n| request("qbittorrent", n)).collect();
    for r in &reqs {
        queue.enqueue(r.clone()).await.expect("enqueue");
    }
    // The first run may already have happened (on an empty queue); a wake runs it again.
    replayer.wake();
    let seen = Arc::clone(&deliver);
    wait_until(
        "the rejected first attempt",
        Duration::from_secs(10),
        || {
            let seen = Arc::clone(&seen);
            async move { !seen.ids().is_empty() }
        },
    )
    .await;
    replayer.wake(); // the breaker "closed"
    let seen = Arc::clone(&deliver);
    wait_until("every request delivered", Duration::from_secs(10), || {
        let seen = Arc::clone(&seen);
        async move { seen.ids().len() == 4 }
    })
    .await;
    let mut expected = vec![reqs[0].id];
    expected.extend(reqs.iter().map(|r| r.id));
    assert_eq!(deliver.ids(), expected);

    stop.send(true).expect("replayer listening");
    tokio::time::timeout(Duration::from_secs(10), replayer.join())
        .await
        .expect("ended");
}

/// A delivery that takes `takes` and, halfway, asks another replica's store for the request.
#[derive(Debug)]
struct SlowDelivery {
    other: breakerbox::store::Store,
    takes: Duration,
    seen_by_other: std::sync::Mutex<Option<bool>>,
}

impl breakerbox::fallback::Deliver for SlowDelivery {
    fn deliver<'a>(
        &'a self,
        _request: &'a breakerbox::fallback::QueuedRequest,
    ) -> futures_util::future::BoxFuture<'a, Delivery> {
        Box::pin(async move {
            tokio::time::sleep(self.takes / 2).await;
            let claimed = self.other.claim_next("qbittorrent").await.expect("claim");
            *self.seen_by_other.lock().expect("lock") = Some(claimed.is_some());
            tokio::time::sleep(self.takes / 2).await;
            Delivery::Delivered { status: 200 }
        })
    }
}

#[tokio::test]
async fn a_claim_is_renewed_while_its_delivery_is_under_way() {
    let dir = TempDir::new();
    let url = dir.sqlite_url("lease.db");
    let lease = Duration::from_secs(1);
    let mine = open_with(&url, StoreOptions::default().claim_lease(lease)).await;
    let other = open_with(&url, StoreOptions::default().claim_lease(lease)).await;
    let queue = RequestQueue::new(mine.clone());
    queue
        .enqueue(request("qbittorrent", 0))
        .await
        .expect("enqueue");
    // Three leases long: without renewal the other replica could claim it halfway.
    let deliver = SlowDelivery {
        other,
        takes: lease * 3,
        seen_by_other: std::sync::Mutex::new(None),
    };
    let report = queue.replay("qbittorrent", &deliver).await.expect("replay");
    assert_eq!(report.delivered, 1);
    assert_eq!(
        *deliver.seen_by_other.lock().expect("lock"),
        Some(false),
        "a live replica's claim never runs out under a slow delivery"
    );
}
