//! What can go wrong with the store, worded for the person reading the log.

use std::time::Duration;

use crate::breaker::State;

/// A store operation that did not happen. Messages never contain the database password.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// `store.url` cannot be used to connect.
    #[error("store.url {url} cannot be used: {reason}")]
    InvalidUrl {
        /// The URL with any password redacted.
        url: String,
        /// Why.
        reason: String,
    },
    /// The SQLite database file cannot be opened or created (a start-up error).
    #[error("cannot open the SQLite database {path:?} (store.url {url}): {reason}")]
    Open {
        /// The URL as configured.
        url: String,
        /// The file it names.
        path: String,
        /// Why, as precisely as the file system and SQLite say.
        reason: String,
    },
    /// Creating or updating the tables failed.
    #[error("cannot prepare the tables of {url}: {source}")]
    Migrate {
        /// The URL with any password redacted.
        url: String,
        /// What the migration runner said.
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    /// The database was unreachable at start and has not been reached since.
    #[error("the store has not reached {url} yet; it keeps retrying in the background")]
    Connecting {
        /// The URL with any password redacted.
        url: String,
    },
    /// The `database` breaker turned the call away: the store counts as unavailable.
    #[error("the store is unavailable: its `database` breaker is {state}{}", retry_text(*.retry_after))]
    Unavailable {
        /// The breaker's state.
        state: State,
        /// Time left until the breaker lets a probe through, if known.
        retry_after: Option<Duration>,
    },
    /// The call took longer than `store.call_timeout`.
    #[error("{op} took longer than store.call_timeout ({after:?})")]
    Timeout {
        /// The operation, e.g. `enqueue`.
        op: &'static str,
        /// The timeout.
        after: Duration,
    },
    /// The database answered with an error.
    #[error("{op} failed: {source}")]
    Query {
        /// The operation, e.g. `claim_next`.
        op: &'static str,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// A stored row cannot be turned back into a record.
    #[error("stored {what} cannot be read: {reason}")]
    Corrupt {
        /// Which record, e.g. `queued request 0190…`.
        what: String,
        /// Why.
        reason: String,
    },
}

fn retry_text(retry_after: Option<Duration>) -> String {
    match retry_after {
        Some(after) => format!(" (next attempt in {:.1}s)", after.as_secs_f64()),
        None => String::new(),
    }
}

impl StoreError {
    /// Whether the error means "the database cannot be used right now" (as opposed to a bug or a
    /// bad row): callers may keep the data in memory and try again later.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Connecting { .. }
            | StoreError::Unavailable { .. }
            | StoreError::Timeout { .. } => true,
            StoreError::Query { source, .. } => !matches!(
                source,
                sqlx::Error::ColumnDecode { .. }
                    | sqlx::Error::ColumnNotFound(_)
                    | sqlx::Error::Decode(_)
                    | sqlx::Error::Encode(_)
            ),
            _ => false,
        }
    }
}
