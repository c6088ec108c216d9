//! How a service's result becomes a breaker [`Outcome`].

use crate::breaker::Outcome;

/// Judges a result of the guarded service.
pub trait Classify<Response, Error> {
    /// The outcome the breaker records for `result`.
    fn classify(&self, result: &Result<Response, Error>) -> Outcome;
}

/// Every `Ok` is a success, every `Err` a failure.
#[derive(Debug, Clone, Copy, Default)]
pub struct FailOnError;

impl<Response, Error> Classify<Response, Error> for FailOnError {
    fn classify(&self, result: &Result<Response, Error>) -> Outcome {
        match result {
            Ok(_) => Outcome::Success,
            Err(_) => Outcome::Failure,
        }
    }
}

impl<F, Response, Error> Classify<Response, Error> for F
where
    F: Fn(&Result<Response, Error>) -> Outcome,
{
    fn classify(&self, result: &Result<Response, Error>) -> Outcome {
        self(result)
    }
}
