//! Durations as the configuration reads them (`humantime`, after trimming): parsing never panics,
//! a parsed duration prints back to itself, and the loader either takes the value or names the
//! key it refused.
#![no_main]

use breakerbox::config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = humantime::parse_duration(text.trim());
    if let Ok(d) = parsed {
        let printed = humantime::format_duration(d).to_string();
        assert_eq!(
            humantime::parse_duration(&printed).ok(),
            Some(d),
            "{printed}"
        );
    }
    let value = toml::Value::String(text.to_owned()).to_string();
    let file = format!("[defaults]\ncall_timeout = {value}\n");
    match config::load_from_str(&file, "fuzz.toml", Vec::<(String, String)>::new()) {
        Ok(_) => assert!(parsed.is_ok(), "accepted {text:?} that humantime refuses"),
        Err(err) => assert_eq!(err.key().path(), Some("defaults.call_timeout"), "{err}"),
    }
});
