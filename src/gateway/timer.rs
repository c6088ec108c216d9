//! Wakes exactly when an open breaker is due to turn half-open, so its state (and the state
//! gauge, and the alerts) change on time even when no request arrives.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::Gateway;

/// Slack past a deadline: the breakers' clock is refreshed every millisecond.
const SLACK: Duration = Duration::from_millis(2);

pub(super) async fn run(gateway: Arc<Gateway>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let next = gateway
            .breakers()
            .iter()
            .filter_map(|breaker| breaker.next_deadline())
            .min();
        let wait =
            next.map(|deadline| deadline.saturating_duration_since(gateway.clock().now()) + SLACK);
        tokio::select! {
            () = sleep_or_forever(wait) => {
                for breaker in gateway.breakers() {
                    breaker.tick();
                }
            }
            // A transition may have set an earlier deadline: look again.
            () = gateway.telemetry().changed() => {}
            _ = shutdown.changed() => return,
        }
    }
}

async fn sleep_or_forever(wait: Option<Duration>) {
    match wait {
        Some(wait) => tokio::time::sleep(wait).await,
        None => std::future::pending().await,
    }
}
