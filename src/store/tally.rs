//! Pending requests and their body bytes, per upstream and in all, kept in step with enqueue
//! and finish: the queue's bounds are checked against these figures, never by counting rows
//! per request. They are recounted from the database once it is ready and, at most once a
//! second, before a request would be refused (another replica may have delivered some).

use std::collections::HashMap;

use crate::fallback::QueueBounds;

/// Requests and body bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Tally {
    pub(super) requests: u64,
    pub(super) bytes: u64,
}

impl Tally {
    fn add(&mut self, bytes: u64) {
        self.requests = self.requests.saturating_add(1);
        self.bytes = self.bytes.saturating_add(bytes);
    }

    fn remove(&mut self, bytes: u64) {
        self.requests = self.requests.saturating_sub(1);
        self.bytes = self.bytes.saturating_sub(bytes);
    }

    /// Which bound one more request of `bytes` would pass, in words.
    fn passes(
        &self,
        bytes: u64,
        bounds: QueueBounds,
        whose: &dyn Fn() -> String,
    ) -> Option<String> {
        if self.requests >= bounds.max_requests {
            return Some(format!(
                "{} {} pending requests (queue_max_requests = {})",
                whose(),
                self.requests,
                bounds.max_requests
            ));
        }
        if self.bytes.saturating_add(bytes) > bounds.max_bytes {
            return Some(format!(
                "{} {} bytes pending and this request has {bytes} (queue_max_bytes = {})",
                whose(),
                self.bytes,
                bounds.max_bytes
            ));
        }
        None
    }
}

/// The figures of every upstream and their sum.
#[derive(Debug, Default)]
pub(super) struct Tallies {
    by_upstream: HashMap<String, Tally>,
    total: Tally,
}

impl Tallies {
    /// Counts one request of `bytes` for `upstream`, unless that would pass `own` (the
    /// upstream's bounds) or `all` (the gateway's): then says which, and counts nothing.
    pub(super) fn reserve(
        &mut self,
        upstream: &str,
        bytes: u64,
        own: QueueBounds,
        all: QueueBounds,
    ) -> Result<(), String> {
        let mine = self.by_upstream.get(upstream).copied().unwrap_or_default();
        let refusal = mine
            .passes(bytes, own, &|| format!("upstream `{upstream}` holds"))
            .or_else(|| {
                self.total
                    .passes(bytes, all, &|| "the gateway's queue holds".to_owned())
            });
        if let Some(bound) = refusal {
            return Err(bound);
        }
        self.by_upstream
            .entry(upstream.to_owned())
            .or_default()
            .add(bytes);
        self.total.add(bytes);
        Ok(())
    }

    /// Forgets one request of `bytes` for `upstream` (finished, or not kept after all).
    pub(super) fn release(&mut self, upstream: &str, bytes: u64) {
        if let Some(mine) = self.by_upstream.get_mut(upstream) {
            mine.remove(bytes);
            if mine.requests == 0 {
                self.by_upstream.remove(upstream);
            }
        }
        self.total.remove(bytes);
    }

    /// Replaces every figure with `counted`.
    pub(super) fn replace(&mut self, counted: HashMap<String, Tally>) {
        self.total = counted.values().fold(Tally::default(), |sum, t| Tally {
            requests: sum.requests.saturating_add(t.requests),
            bytes: sum.bytes.saturating_add(t.bytes),
        });
        self.by_upstream = counted;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: QueueBounds = QueueBounds {
        max_requests: 3,
        max_bytes: 100,
    };

    #[test]
    fn reserves_within_the_upstreams_and_the_gateways_bounds() {
        let own = QueueBounds {
            max_requests: 2,
            max_bytes: 60,
        };
        let mut t = Tallies::default();
        assert_eq!(t.reserve("a", 30, own, ALL), Ok(()));
        assert_eq!(t.reserve("a", 30, own, ALL), Ok(()));
        let refused = t.reserve("a", 1, own, ALL).unwrap_err();
        assert!(refused.contains("queue_max_requests = 2"), "{refused}");
        let refused = t.reserve("b", 41, own, ALL).unwrap_err();
        assert!(refused.contains("the gateway's queue"), "{refused}");
        assert_eq!(t.reserve("b", 40, own, ALL), Ok(()));
        assert!(t.reserve("c", 0, own, ALL).is_err(), "3 requests in all");
        t.release("a", 30);
        assert_eq!(t.reserve("c", 0, own, ALL), Ok(()));
        t.release("zzz", 5);
        t.replace(HashMap::from([(
            "a".to_owned(),
            Tally {
                requests: 1,
                bytes: 10,
            },
        )]));
        assert_eq!(
            t.total,
            Tally {
                requests: 1,
                bytes: 10
            }
        );
    }
}
