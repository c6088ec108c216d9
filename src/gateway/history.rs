//! Follows every transition: replays an upstream's queue as soon as its breaker closes, and
//! keeps the transition history in the store.

use std::sync::Arc;

use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;

use super::Gateway;

pub(super) async fn follow(gateway: Arc<Gateway>, mut shutdown: watch::Receiver<bool>) {
    let mut transitions = gateway.transitions().subscribe();
    loop {
        tokio::select! {
            received = transitions.recv() => match received {
                Ok(transition) => {
                    gateway.replayers.on_transition(&transition);
                    if let Err(error) = gateway.store.record_transition(&transition).await {
                        tracing::debug!(%error, "transition not kept in the store");
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "transition history fell behind");
                }
                Err(RecvError::Closed) => return,
            },
            _ = shutdown.changed() => return,
        }
    }
}
