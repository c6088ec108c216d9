//! Feature `reqwest-middleware`: a breaker guarding every request of a
//! [`reqwest_middleware::ClientWithMiddleware`], the way Rust programs call HTTP APIs such as
//! TMDB.
//!
//! ```no_run
//! # async fn run() -> Result<(), reqwest_middleware::Error> {
//! use std::sync::Arc;
//! use breakerbox::layer::BreakerMiddleware;
//! use breakerbox::{Breaker, BreakerConfig};
//!
//! let tmdb = Arc::new(Breaker::new("tmdb", BreakerConfig::default()));
//! let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
//!     .with(BreakerMiddleware::new(tmdb))
//!     .build();
//! let movie = client.get("https://api.themoviedb.org/3/movie/603").send().await?;
//! # Ok(()) }
//! ```

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Request, Response, StatusCode};
use reqwest_middleware::{Middleware, Next};

use crate::breaker::{Breaker, Outcome, Rejected};

/// What a finished request means for the breaker.
pub type ClassifyResponse = dyn Fn(&reqwest_middleware::Result<Response>) -> Outcome + Send + Sync;

/// Guards every request of a client with one breaker: an open breaker answers at once with a
/// middleware error holding [`Rejected`] (`err.is::<Rejected>()` on its source), and the
/// request never leaves the process.
pub struct BreakerMiddleware {
    breaker: Arc<Breaker>,
    classify: Arc<ClassifyResponse>,
}

impl BreakerMiddleware {
    /// Counts as the gateway does: a 5xx or a transport error is a failure, a request that ran
    /// out of time a timeout, a 429 or 503 with `Retry-After: <seconds>` a failure carrying
    /// that hint (opening the breaker for it when `honor_retry_after` is on); everything else,
    /// 4xx included, a success.
    pub fn new(breaker: Arc<Breaker>) -> Self {
        Self {
            breaker,
            classify: Arc::new(gateway_rules),
        }
    }

    /// The same middleware with `classify` deciding what each result means.
    pub fn classify(
        mut self,
        classify: impl Fn(&reqwest_middleware::Result<Response>) -> Outcome + Send + Sync + 'static,
    ) -> Self {
        self.classify = Arc::new(classify);
        self
    }

    /// The breaker guarding the client.
    pub fn breaker(&self) -> &Arc<Breaker> {
        &self.breaker
    }
}

impl std::fmt::Debug for BreakerMiddleware {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BreakerMiddleware")
            .field("breaker", self.breaker.name())
            .finish_non_exhaustive()
    }
}

/// [`BreakerMiddleware::new`]'s classification.
pub fn gateway_rules(result: &reqwest_middleware::Result<Response>) -> Outcome {
    match result {
        Err(reqwest_middleware::Error::Reqwest(error)) if error.is_timeout() => Outcome::Timeout,
        Err(_) => Outcome::Failure,
        Ok(response) => {
            let status = response.status();
            let hinted = status == StatusCode::TOO_MANY_REQUESTS
                || status == StatusCode::SERVICE_UNAVAILABLE;
            let hint = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.trim().parse::<u64>().ok());
            match hint {
                Some(seconds) if hinted => Outcome::RetryAfter(Duration::from_secs(seconds)),
                _ if status.is_server_error() => Outcome::Failure,
                _ => Outcome::Success,
            }
        }
    }
}

#[async_trait::async_trait]
impl Middleware for BreakerMiddleware {
    async fn handle(
        &self,
        request: Request,
        extensions: &mut http::Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let permit = self
            .breaker
            .try_acquire()
            .map_err(reqwest_middleware::Error::middleware::<Rejected>)?;
        let result = next.run(request, extensions).await;
        permit.record((self.classify)(&result));
        result
    }
}
