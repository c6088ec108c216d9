//! Delivery of queued requests to the upstream that has their name when they are replayed
//! (a reload replaces an upstream whose settings change), with the replay's telemetry.

use std::fmt;
use std::sync::Weak;

use futures_util::future::BoxFuture;

use super::Gateway;
use crate::fallback::{Deliver, Delivery, QueuedRequest};

/// Delivers through the gateway's upstreams in force; fails once the gateway is gone.
pub(super) struct ByName(pub(super) Weak<Gateway>);

impl fmt::Debug for ByName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ByName")
    }
}

impl Deliver for ByName {
    fn deliver<'a>(&'a self, request: &'a QueuedRequest) -> BoxFuture<'a, Delivery> {
        Box::pin(async move {
            let name = &request.upstream;
            let gateway = self.0.upgrade();
            let upstream = gateway.as_ref().and_then(|g| g.upstream_named(name));
            match (gateway, upstream) {
                (Some(gateway), Some(upstream)) => {
                    let replay = upstream.replay(request).await;
                    gateway.telemetry().record_replay(name, &replay);
                    replay.delivery
                }
                _ => Delivery::Failed {
                    reason: format!("upstream `{name}` is no longer configured"),
                },
            }
        })
    }
}
