//! `config::load_from_str` with arbitrary text (and, after a NUL byte, `KEY=VALUE` lines as the
//! environment): it never panics, and every error names the file, a position or key, and why.
#![no_main]

use breakerbox::config::{self, Key};
use libfuzzer_sys::fuzz_target;

const FILE: &str = "fuzz.toml";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (toml, env) = text.split_once('\0').unwrap_or((text, ""));
    let env: Vec<(String, String)> = env
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (format!("BREAKERBOX_{k}"), v.to_owned()))
        .collect();
    match config::load_from_str(toml, FILE, env) {
        Ok(config) => {
            // What check-config prints must load again.
            let shown = config.to_toml();
            if let Err(err) = config::load_from_str(&shown, FILE, Vec::<(String, String)>::new()) {
                // Tokens are printed redacted, so only a token may differ; anything else is a bug.
                assert!(
                    err.key()
                        .path()
                        .is_some_and(|p| p.starts_with("admin.tokens")),
                    "the effective configuration does not load again: {err}\n{shown}"
                );
            }
        }
        Err(err) => {
            assert_eq!(err.file(), FILE);
            let message = err.to_string();
            assert!(message.starts_with(FILE), "{message}");
            assert!(!err.reason().is_empty(), "{message}");
            let located = err.position().is_some() || !matches!(err.key(), Key::File);
            assert!(located, "neither a position nor a key: {message}");
        }
    }
});
