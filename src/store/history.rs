//! Breaker history: every state transition appended to `breaker_transitions`.

use std::time::SystemTime;

use crate::breaker::Transition;

use super::db::on_db;
use super::{Store, StoreError, rows};

const INSERT: &str = "INSERT INTO breaker_transitions \
     (name, from_state, to_state, reason, generation, at) VALUES ($1, $2, $3, $4, $5, $6)";

const RECENT: &str = "SELECT name, from_state, to_state, reason, generation, at \
     FROM breaker_transitions ORDER BY at DESC, generation DESC LIMIT $1";

/// A `breaker_transitions` row: name, from, to, reason, generation, at.
type Row = (String, String, String, String, i64, i64);

/// One stored transition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransitionRecord {
    /// The breaker's name.
    pub name: String,
    /// State before (`closed`, `open`, `half_open`, `forced_open`, `disabled`).
    pub from: String,
    /// State after.
    pub to: String,
    /// Why, as the metric and span attribute say it (e.g. `consecutive_failures`).
    pub reason: String,
    /// The breaker's generation after the change.
    pub generation: u64,
    /// When it happened, to the millisecond.
    pub at: SystemTime,
}

impl Store {
    /// Appends `transition` to the history.
    pub async fn record_transition(&self, transition: &Transition) -> Result<(), StoreError> {
        let generation = i64::try_from(transition.generation).unwrap_or(i64::MAX);
        let query = async {
            on_db!(&self.inner.db, |pool| sqlx::query(INSERT)
                .bind(transition.breaker.as_ref())
                .bind(transition.from.as_str())
                .bind(transition.to.as_str())
                .bind(transition.reason.as_str())
                .bind(generation)
                .bind(rows::to_ms(transition.wall))
                .execute(pool)
                .await
                .map(|_| ()))
        };
        self.call("record_transition", query).await
    }

    /// The `limit` most recent transitions, newest first.
    pub async fn recent_transitions(
        &self,
        limit: usize,
    ) -> Result<Vec<TransitionRecord>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let query = async {
            on_db!(&self.inner.db, |pool| {
                let rows: Result<Vec<Row>, _> =
                    sqlx::query_as(RECENT).bind(limit).fetch_all(pool).await;
                rows
            })
        };
        let found = self.call("recent_transitions", query).await?;
        Ok(found
            .into_iter()
            .map(
                |(name, from, to, reason, generation, at)| TransitionRecord {
                    name,
                    from,
                    to,
                    reason,
                    generation: u64::try_from(generation).unwrap_or(0),
                    at: rows::from_ms(at),
                },
            )
            .collect())
    }
}
