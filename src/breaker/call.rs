//! Guarded calls: a closure run through the breaker, its result classified into an outcome, the
//! caller handed back its value or an [`Error`] that says whether the breaker turned the call away.
//!
//! ```
//! use breakerbox::breaker::Error;
//! use breakerbox::{Breaker, BreakerConfig};
//!
//! let tmdb = Breaker::new("tmdb", BreakerConfig::default());
//! let answer: Result<u32, Error<&str>> = tmdb.call_sync(|| Ok(42));
//! assert_eq!(answer.ok(), Some(42));
//!
//! let failed = tmdb.call_sync(|| Err::<u32, _>("connection refused"));
//! assert!(!failed.as_ref().is_err_and(Error::is_rejected));
//! assert_eq!(failed.unwrap_err().into_inner(), Some("connection refused"));
//! ```

use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::pin;
use std::task::Poll;

use super::circuit::Breaker;
use super::permit::{Outcome, Rejected};

/// Why a guarded call gave no value.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error<E> {
    /// The breaker turned the call away: the closure did not run.
    Rejected(Rejected),
    /// The closure ran and returned this error.
    Inner(E),
    /// The closure did not finish before its deadline: it was dropped, and the call counted as
    /// a timeout.
    TimedOut,
}

impl<E> Error<E> {
    /// Whether the breaker turned the call away (the dependency was not called).
    pub fn is_rejected(&self) -> bool {
        matches!(self, Error::Rejected(_))
    }

    /// The closure's own error, if it ran.
    pub fn into_inner(self) -> Option<E> {
        match self {
            Error::Inner(error) => Some(error),
            Error::Rejected(_) | Error::TimedOut => None,
        }
    }

    /// Whether the call ran out of time (see [`Breaker::call_until`]).
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::TimedOut)
    }

    /// The rejection, if the breaker turned the call away.
    pub fn rejection(&self) -> Option<&Rejected> {
        match self {
            Error::Rejected(rejected) => Some(rejected),
            Error::Inner(_) | Error::TimedOut => None,
        }
    }
}

impl<E: fmt::Display> fmt::Display for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Rejected(rejected) => rejected.fmt(f),
            Error::Inner(error) => error.fmt(f),
            Error::TimedOut => f.write_str("the call did not finish before its deadline"),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for Error<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Rejected(rejected) => Some(rejected),
            Error::Inner(error) => Some(error),
            Error::TimedOut => None,
        }
    }
}

/// The default classification: `Ok` is a success, `Err` a failure.
pub fn success_or_failure<T, E>(result: &Result<T, E>) -> Outcome {
    match result {
        Ok(_) => Outcome::Success,
        Err(_) => Outcome::Failure,
    }
}

impl Breaker {
    /// Runs `call` through the breaker: `Ok` counts as a success, `Err` as a failure. A dropped
    /// (cancelled) future records nothing and frees its half-open slot.
    pub async fn call<T, E, F, Fut>(&self, call: F) -> Result<T, Error<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.call_with(success_or_failure, call).await
    }

    /// [`call`](Self::call) with `classify` deciding what each result means for the breaker
    /// (a 404 that is no failure, an error to ignore, a `Retry-After` hint).
    pub async fn call_with<T, E, F, Fut, C>(&self, classify: C, call: F) -> Result<T, Error<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        C: FnOnce(&Result<T, E>) -> Outcome,
    {
        let permit = self.try_acquire().map_err(Error::Rejected)?;
        let result = call().await;
        permit.record(classify(&result));
        result.map_err(Error::Inner)
    }

    /// [`call`](Self::call) bounded by `deadline`, any future that completes when time is up
    /// (`tokio::time::sleep(…)`, or another runtime's timer: the core runs on none). If the
    /// deadline comes first, the call's future is dropped, the call counts as a timeout and the
    /// caller gets [`Error::TimedOut`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use std::time::Duration;
    /// use breakerbox::{Breaker, BreakerConfig};
    ///
    /// let tmdb = Breaker::new("tmdb", BreakerConfig::default());
    /// let slow = tmdb
    ///     .call_until(tokio::time::sleep(Duration::from_millis(10)), || async {
    ///         tokio::time::sleep(Duration::from_secs(60)).await;
    ///         Ok::<_, std::io::Error>("movie")
    ///     })
    ///     .await;
    /// assert!(slow.is_err_and(|e| e.is_timeout()));
    /// assert_eq!(tmdb.snapshot().timeouts, 1);
    /// # }
    /// ```
    pub async fn call_until<T, E, F, Fut, D>(&self, deadline: D, call: F) -> Result<T, Error<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        D: Future<Output = ()>,
    {
        self.call_with_until(success_or_failure, deadline, call)
            .await
    }

    /// [`call_with`](Self::call_with) bounded by `deadline`, as [`call_until`](Self::call_until).
    pub async fn call_with_until<T, E, F, Fut, C, D>(
        &self,
        classify: C,
        deadline: D,
        call: F,
    ) -> Result<T, Error<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        C: FnOnce(&Result<T, E>) -> Outcome,
        D: Future<Output = ()>,
    {
        let permit = self.try_acquire().map_err(Error::Rejected)?;
        let (mut call, mut deadline) = (pin!(call()), pin!(deadline));
        // The call is polled first, so one that is ready when time is up still counts.
        let finished = poll_fn(|cx| match call.as_mut().poll(cx) {
            Poll::Ready(result) => Poll::Ready(Some(result)),
            Poll::Pending => deadline.as_mut().poll(cx).map(|()| None),
        })
        .await;
        match finished {
            Some(result) => {
                permit.record(classify(&result));
                result.map_err(Error::Inner)
            }
            None => {
                permit.record(Outcome::Timeout);
                Err(Error::TimedOut)
            }
        }
    }

    /// The synchronous twin of [`call`](Self::call).
    pub fn call_sync<T, E>(&self, call: impl FnOnce() -> Result<T, E>) -> Result<T, Error<E>> {
        self.call_sync_with(success_or_failure, call)
    }

    /// The synchronous twin of [`call_with`](Self::call_with).
    pub fn call_sync_with<T, E>(
        &self,
        classify: impl FnOnce(&Result<T, E>) -> Outcome,
        call: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, Error<E>> {
        let permit = self.try_acquire().map_err(Error::Rejected)?;
        let result = call();
        permit.record(classify(&result));
        result.map_err(Error::Inner)
    }
}
