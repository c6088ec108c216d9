//! Bearer tokens with roles: viewers read, admins act. Tokens are compared in constant time
//! and never logged.

use axum::http::{HeaderMap, header};

use super::error::ApiError;
use crate::config::{Role, Token};

/// Checks the request's bearer token against `tokens` and requires at least `needed`.
/// No or unknown token → 401; a known token with a lower role → 403.
pub fn authorize(headers: &HeaderMap, tokens: &[Token], needed: Role) -> Result<Role, ApiError> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            let (scheme, token) = value.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .filter(|token| !token.is_empty())
        .ok_or_else(ApiError::unauthorized)?;
    // Every token is compared, so the time taken does not say which one (if any) matched.
    let role = tokens
        .iter()
        .filter(|token| token.secret.matches(presented.as_bytes()))
        .map(|token| token.role)
        .fold(None, |best: Option<Role>, role| {
            Some(best.map_or(role, |b| b.max(role)))
        })
        .ok_or_else(ApiError::unauthorized)?;
    if role.allows(needed) {
        Ok(role)
    } else {
        Err(ApiError::forbidden(needed.as_str()))
    }
}
