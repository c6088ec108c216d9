//! The two databases behind one enum: opening them, and the embedded migrations they share.

use std::borrow::Cow;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

use crate::config::{StoreKind, StoreUrl};

use super::StoreError;

/// A pool of either database. Cloning shares the pool.
#[derive(Debug, Clone)]
pub(super) enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs the same block against whichever pool `$db` holds; `$pool` is a `&Pool<_>` inside it.
/// The SQL in this module is portable, so the block is written once.
macro_rules! on_db {
    ($db:expr, |$pool:ident| $body:expr) => {
        match $db {
            $crate::store::db::Db::Sqlite($pool) => $body,
            $crate::store::db::Db::Postgres($pool) => $body,
        }
    };
}
pub(super) use on_db;

/// The migrations, in order. Each file is applied once; sqlx records them in `_sqlx_migrations`
/// and, on PostgreSQL, holds an advisory lock so replicas starting together do not race.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("migrations/0001_init.sql")),
    (
        2,
        "queue_finished_at",
        include_str!("migrations/0002_queue_finished_at.sql"),
    ),
    (
        3,
        "queue_pending_indexes",
        include_str!("migrations/0003_queue_pending_indexes.sql"),
    ),
    (
        4,
        "cache_bounds",
        include_str!("migrations/0004_cache_bounds.sql"),
    ),
    (
        5,
        "manual_states",
        include_str!("migrations/0005_manual_states.sql"),
    ),
];

fn migrator() -> Migrator {
    let migrations = MIGRATIONS
        .iter()
        .map(|&(version, description, sql)| {
            Migration::new(
                version,
                Cow::Borrowed(description),
                MigrationType::Simple,
                sql.into_sql_str(),
                false,
            )
        })
        .collect();
    Migrator::with_migrations(migrations)
}

/// SQLite's `journal_size_limit`: the most bytes the WAL file keeps once checkpointed (64 MiB).
pub(crate) const JOURNAL_SIZE_LIMIT: u64 = 64 * 1024 * 1024;

/// The least time opening and preparing the database is given at start, whatever the store's
/// `call_timeout`.
pub(super) const START_TIMEOUT: Duration = Duration::from_secs(10);

impl Db {
    /// Opens the database `url` names. SQLite is opened (and created) at once so that a bad path
    /// stops the start; PostgreSQL is connected lazily so that the gateway starts without it.
    pub(super) async fn open(url: &StoreUrl, call_timeout: Duration) -> Result<Db, StoreError> {
        match url.kind() {
            StoreKind::Sqlite => open_sqlite(url, call_timeout).await.map(Db::Sqlite),
            StoreKind::Postgres => {
                let options =
                    PgConnectOptions::from_str(url.as_str()).map_err(|e| invalid(url, e))?;
                let pool = PgPoolOptions::new()
                    .max_connections(10)
                    .acquire_timeout(call_timeout)
                    .connect_lazy_with(options);
                Ok(Db::Postgres(pool))
            }
        }
    }

    /// Applies the migrations that have not been applied yet.
    pub(super) async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        let migrator = migrator();
        on_db!(self, |pool| migrator.run(pool).await)
    }

    /// (connections in use, idle connections).
    pub(super) fn pool_counts(&self) -> (u32, u32) {
        let (size, idle) = on_db!(self, |pool| (pool.size(), pool.num_idle()));
        let idle = u32::try_from(idle).unwrap_or(u32::MAX);
        (size.saturating_sub(idle), idle)
    }

    /// Closes every connection (waits for the ones in use to come back).
    pub(super) async fn close(&self) {
        on_db!(self, |pool| pool.close().await)
    }
}

async fn open_sqlite(url: &StoreUrl, call_timeout: Duration) -> Result<SqlitePool, StoreError> {
    let options = SqliteConnectOptions::from_str(url.as_str()).map_err(|e| invalid(url, e))?;
    let path = options.get_filename().to_path_buf();
    // sqlx renames an in-memory database to a shared-cache URI, so ask the URL itself.
    let text = url.as_str().to_ascii_lowercase();
    let in_memory = text.contains(":memory:") || text.contains("mode=memory");
    let open_error = |reason: String| StoreError::Open {
        url: url.redacted(),
        path: path.display().to_string(),
        reason,
    };
    if !in_memory {
        check_sqlite_path(&path).map_err(open_error)?;
    }
    let options = options
        .create_if_missing(true)
        // WAL lets readers (the admin API) run while the queue writes; NORMAL sync is durable
        // across a process crash (kill -9), which is what the queue promises.
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(sqlx::sqlite::SqliteSynchronous::Normal)
        .busy_timeout(call_timeout)
        // After a checkpoint the WAL file is truncated to this, instead of keeping the largest
        // size a burst of writes ever gave it.
        .pragma("journal_size_limit", JOURNAL_SIZE_LIMIT.to_string());
    // An in-memory database exists once per connection: keep exactly one.
    let max = if in_memory { 1 } else { 4 };
    SqlitePoolOptions::new()
        .max_connections(max)
        // Opening (creating the file, switching to WAL) may take longer than one call is
        // allowed, on a busy machine more than a second; later acquires are bounded by each
        // call's own timeout anyway.
        .acquire_timeout(call_timeout.max(START_TIMEOUT))
        .connect_with(options)
        .await
        .map_err(|e| open_error(e.to_string()))
}

/// Says precisely why a database file cannot be created, before SQLite's terse "unable to open
/// database file" would.
fn check_sqlite_path(path: &Path) -> Result<(), String> {
    if path.is_dir() {
        return Err("it is a folder, not a file".into());
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    match std::fs::metadata(parent) {
        Err(e) => Err(format!(
            "its folder {:?} cannot be used: {e}",
            parent.display()
        )),
        Ok(meta) if !meta.is_dir() => Err(format!("{:?} is not a folder", parent.display())),
        Ok(_) => Ok(()),
    }
}

fn invalid(url: &StoreUrl, error: sqlx::Error) -> StoreError {
    StoreError::InvalidUrl {
        url: url.redacted(),
        reason: error.to_string(),
    }
}
