//! Manual breaker states as fleet state: the last operator action on each breaker, kept in
//! `manual_states` and, on PostgreSQL, announced with `NOTIFY` so every replica applies it at
//! once (a replica polls too, for what it missed while its listener was down).

use std::time::SystemTime;

use super::db::{Db, on_db};
use super::{Store, StoreError, rows};

/// The `LISTEN`/`NOTIFY` channel of manual states; the payload is the breaker's name.
pub const MANUAL_STATES_CHANNEL: &str = "breakerbox_manual_states";

const UPSERT: &str = "INSERT INTO manual_states (breaker, action, until_ms, version, set_at) \
     VALUES ($1, $2, $3, 1, $4) \
     ON CONFLICT (breaker) DO UPDATE SET action = excluded.action, \
     until_ms = excluded.until_ms, version = manual_states.version + 1, set_at = excluded.set_at \
     RETURNING version";

const ALL: &str = "SELECT breaker, action, until_ms, version FROM manual_states ORDER BY breaker";

/// A `manual_states` row: breaker, action, until_ms, version.
type Row = (String, String, Option<i64>, i64);

/// An operator action on a breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManualAction {
    /// Closed, counters cleared: the end of any manual state.
    Reset,
    /// Rejects every call, until `until` if given, else until a reset.
    ForceOpen {
        /// When the forced-open state ends by itself.
        until: Option<SystemTime>,
    },
    /// Lets every call pass until a reset.
    Disable,
}

impl ManualAction {
    /// `reset`, `force_open` or `disable`, as stored.
    pub fn as_str(&self) -> &'static str {
        match self {
            ManualAction::Reset => "reset",
            ManualAction::ForceOpen { .. } => "force_open",
            ManualAction::Disable => "disable",
        }
    }

    fn parse(action: &str, until_ms: Option<i64>) -> Option<ManualAction> {
        match action {
            "reset" => Some(ManualAction::Reset),
            "force_open" => Some(ManualAction::ForceOpen {
                until: until_ms.map(rows::from_ms),
            }),
            "disable" => Some(ManualAction::Disable),
            _ => None,
        }
    }
}

/// The last action on one breaker, and its version (it grows with every action on it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManualState {
    /// The breaker's name.
    pub breaker: String,
    /// The last action.
    pub action: ManualAction,
    /// 1 for the first action on this breaker, then 2, 3…
    pub version: u64,
}

impl Store {
    /// Stores `action` as `breaker`'s manual state and announces it to the other replicas;
    /// answers the state's new version.
    pub async fn put_manual_state(
        &self,
        breaker: &str,
        action: ManualAction,
        at: SystemTime,
    ) -> Result<u64, StoreError> {
        let until = match action {
            ManualAction::ForceOpen { until } => until.map(rows::to_ms),
            _ => None,
        };
        let query = async {
            let version: i64 = on_db!(&self.inner.db, |pool| sqlx::query_scalar(UPSERT)
                .bind(breaker)
                .bind(action.as_str())
                .bind(until)
                .bind(rows::to_ms(at))
                .fetch_one(pool)
                .await)?;
            if let Db::Postgres(pool) = &self.inner.db {
                sqlx::query("SELECT pg_notify($1, $2)")
                    .bind(MANUAL_STATES_CHANNEL)
                    .bind(breaker)
                    .execute(pool)
                    .await?;
            }
            Ok(u64::try_from(version).unwrap_or(0))
        };
        self.call("put_manual_state", query).await
    }

    /// Every breaker's last manual action, by name.
    pub async fn manual_states(&self) -> Result<Vec<ManualState>, StoreError> {
        let query = async {
            on_db!(&self.inner.db, |pool| {
                let rows: Result<Vec<Row>, _> = sqlx::query_as(ALL).fetch_all(pool).await;
                rows
            })
        };
        let found = self.call("manual_states", query).await?;
        Ok(found
            .into_iter()
            .filter_map(|(breaker, action, until, version)| {
                // A row this version does not know (written by a newer one) is left alone.
                Some(ManualState {
                    action: ManualAction::parse(&action, until)?,
                    breaker,
                    version: u64::try_from(version).unwrap_or(0),
                })
            })
            .collect())
    }

    /// A listener of the manual-state channel, on PostgreSQL (SQLite serves one process: the
    /// replica that acts is the only one).
    pub async fn listen_manual_states(
        &self,
    ) -> Option<Result<sqlx::postgres::PgListener, StoreError>> {
        let Db::Postgres(pool) = &self.inner.db else {
            return None;
        };
        let listen = async {
            let mut listener = sqlx::postgres::PgListener::connect_with(pool).await?;
            listener.listen(MANUAL_STATES_CHANNEL).await?;
            Ok(listener)
        };
        Some(self.call("listen_manual_states", listen).await)
    }
}
