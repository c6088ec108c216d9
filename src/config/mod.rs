//! The gateway's configuration: TOML plus environment overrides, validated once into domain
//! types that the rest of the gateway trusts.
//!
//! [`load`] reads a file and the process environment; [`load_from_str`] is the same pure function
//! of (text, file name, environment), for tests and hot reload. Every refusal is one
//! [`ConfigError`] naming the file, the key (or the environment variable), the value and why.
//!
//! Overrides: every key can be set as `BREAKERBOX_<PATH>` (`BREAKERBOX_SERVER_LISTEN`,
//! `BREAKERBOX_DEFAULTS_WINDOW`, `BREAKERBOX_UPSTREAMS_UPTIME_KUMA_FAILURE_THRESHOLD`,
//! `BREAKERBOX_UPSTREAMS_HDBITS_DEGRADED_STATUS`, `BREAKERBOX_ADMIN_TOKENS_OPS_TOKEN`), and the
//! seeds' `CIRCUIT_BREAKER_<NAME>_THRESHOLD`, `CIRCUIT_BREAKER_<NAME>_TIMEOUT_SECONDS` (NAME an
//! upstream or `DATABASE`), `HEALTH_CHECK_INTERVAL_SECONDS` and `DETAILED_HEALTH_CACHE_SECONDS`
//! are honoured.
//!
//! The way through: the text becomes a TOML tree (`syntax.rs`, which words syntax errors), the
//! environment is applied to the tree (`env.rs`), serde reads the tree into the raw structs of
//! `raw.rs`, where each key is declared once, and one `TryFrom` per domain type (`convert.rs`)
//! checks values and rules between keys. `check-config` prints the same raw structs, filled from
//! the result (`render.rs`).
//!
//! ```
//! use breakerbox::config;
//!
//! let text = r#"
//!     [upstreams.plex]
//!     url = "http://127.0.0.1:32400"
//!     failure_threshold = 3
//! "#;
//! let env = [("CIRCUIT_BREAKER_PLEX_TIMEOUT_SECONDS", "45")];
//! let config = config::load_from_str(text, "breakerbox.toml", env)?;
//! let plex = &config.upstreams["plex"];
//! assert_eq!(plex.breaker.failure_threshold(), 3);
//! assert_eq!(plex.breaker.open_duration().as_secs(), 45);
//!
//! let no_env = std::iter::empty::<(String, String)>();
//! let err = config::load_from_str("[defaults]\nwindow = \"soon\"", "gw.toml", no_env)
//!     .unwrap_err();
//! assert!(err.to_string().starts_with("gw.toml: defaults.window = \"soon\": not a duration"));
//! # Ok::<(), config::ConfigError>(())
//! ```

mod convert;
mod env;
mod error;
mod raw;
mod redact;
mod render;
mod syntax;
mod types;
mod url;

#[cfg(test)]
mod safety_tests;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::Path;

pub use error::{ConfigError, ErrorKind, Key};
pub use redact::{redact_url, redact_urls_in};
pub use render::REDACTED;
pub use types::{
    AdminConfig, ChaosConfig, Config, Credentials, DATABASE_BREAKER, Defaults, Fallback,
    HealthConfig, Role, Secret, SecretSource, ServerConfig, StoreConfig, Token, UpstreamConfig,
};
pub use url::{StoreKind, StoreUrl, UpstreamUrl};

/// Loads the configuration file at `path`, with overrides from the process environment.
pub fn load(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
    let path = path.as_ref();
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::new(
            &file,
            Key::File,
            "",
            ErrorKind::Io,
            format!("cannot read the configuration file: {e}"),
        )
    })?;
    // vars_os: a variable that is not UTF-8 must not panic the loader.
    let env = std::env::vars_os().map(|(k, v)| {
        (
            k.to_string_lossy().into_owned(),
            v.to_string_lossy().into_owned(),
        )
    });
    load_from_str(&text, &file, env)
}

/// Parses and validates `text` (named `file` in errors) with overrides from `env`, a list of
/// environment variables. Pure: the same inputs always give the same result.
pub fn load_from_str<I, K, V>(text: &str, file: &str, env: I) -> Result<Config, ConfigError>
where
    I: IntoIterator<Item = (K, V)>,
    K: AsRef<str>,
    V: AsRef<str>,
{
    let env: BTreeMap<String, String> = env
        .into_iter()
        .map(|(k, v)| (k.as_ref().to_owned(), v.as_ref().to_owned()))
        .collect();
    let mut tree = syntax::parse(text, file)?;
    let origins = env::apply(&mut tree, file, &env)?;
    let builtin = convert::Inherited::default();
    error::decode(&tree)
        .and_then(|raw| {
            let at = "";
            let up = &builtin;
            Config::try_from(convert::In {
                at,
                raw,
                up,
                env: &env,
            })
        })
        .map_err(|refusal| refusal.into_error(file, &tree, &origins))
}
