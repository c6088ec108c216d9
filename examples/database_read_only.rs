//! The in-process pattern for a database: an sqlx pool (SQLite, in memory) behind the
//! `database` breaker. While the database fails, the application keeps serving the rows it last
//! read, in a read-only mode that refuses writes with a clear answer, and goes back to the
//! database once the breaker closes. No network; the outage is a lock held by another task.
//!
//! Run with: cargo run --example database_read_only

use std::sync::Arc;
use std::time::Duration;

use breakerbox::breaker::Error;
use breakerbox::{Breaker, BreakerConfig, ManualClock, State, Transition};
use sqlx::sqlite::{SqlitePool, SqlitePoolOptions};

/// The application's view of its database.
struct Library {
    pool: SqlitePool,
    breaker: Breaker,
    /// The rows last read: what read-only mode serves.
    last_rows: Vec<String>,
}

#[derive(Debug, PartialEq)]
enum Mode {
    ReadWrite,
    ReadOnly,
}

impl Library {
    async fn titles(&mut self) -> (Mode, Vec<String>) {
        let read = self
            .breaker
            .call(|| async {
                sqlx::query_scalar::<_, String>("SELECT title FROM movies ORDER BY title")
                    .fetch_all(&self.pool)
                    .await
            })
            .await;
        match read {
            Ok(rows) => {
                self.last_rows.clone_from(&rows);
                (Mode::ReadWrite, rows)
            }
            Err(_) => (Mode::ReadOnly, self.last_rows.clone()),
        }
    }

    async fn add(&mut self, title: &str) -> Result<(), String> {
        let insert = self
            .breaker
            .call(|| async {
                sqlx::query("INSERT INTO movies (title) VALUES ($1)")
                    .bind(title)
                    .execute(&self.pool)
                    .await
            })
            .await;
        match insert {
            Ok(_) => Ok(()),
            Err(Error::Rejected(rejected)) => Err(format!("read-only for now: {rejected}")),
            Err(error) => Err(format!("not saved: {error}")),
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_millis(200))
        .connect("sqlite::memory:")
        .await?;
    sqlx::query("CREATE TABLE movies (title TEXT NOT NULL)")
        .execute(&pool)
        .await?;
    let clock = ManualClock::new();
    let config = BreakerConfig::builder()
        .failure_threshold(2)
        .open_duration(Duration::from_secs(15))
        .build()?;
    let breaker = Breaker::builder("database", config)
        .clock(Arc::new(clock.clone()))
        .listener(Arc::new(|t: &Transition| {
            println!("  >> {}: {} -> {} ({})", t.breaker, t.from, t.to, t.reason);
        }))
        .build();
    let mut library = Library {
        pool: pool.clone(),
        breaker,
        last_rows: Vec::new(),
    };

    library.add("The Matrix").await?;
    library.add("Heat").await?;
    let (mode, rows) = library.titles().await;
    println!("{mode:?}: {rows:?}");
    assert_eq!((mode, rows.len()), (Mode::ReadWrite, 2));

    // The outage: another holder takes the pool's only connection, so every query times out.
    let held = pool.acquire().await?;
    for _ in 0..2 {
        let (mode, rows) = library.titles().await;
        println!("{mode:?}: {rows:?} (the database did not answer)");
        assert_eq!((mode, rows.len()), (Mode::ReadOnly, 2));
    }
    assert_eq!(library.breaker.state(), State::Open);
    let refused = library.add("Alien").await.expect_err("read-only");
    println!("write refused at once: {refused}");

    // The database is back; after the open duration one probe closes the breaker.
    drop(held);
    clock.advance(Duration::from_secs(15));
    library.add("Alien").await?;
    let (mode, rows) = library.titles().await;
    println!("{mode:?}: {rows:?}");
    assert_eq!((mode, rows.len()), (Mode::ReadWrite, 3));
    assert_eq!(library.breaker.state(), State::Closed);
    Ok(())
}
