//! The shipped example configuration loads with nothing set and carries every seed preset with
//! the seeds' numbers.

use std::path::Path;
use std::time::Duration;

use breakerbox::config::{self, Config, Fallback, Role, StoreKind};

const NO_ENV: [(&str, &str); 0] = [];

fn example() -> Config {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/breakerbox.toml");
    let text = std::fs::read_to_string(&path).expect("examples/breakerbox.toml is readable");
    match config::load_from_str(&text, "examples/breakerbox.toml", NO_ENV) {
        Ok(config) => config,
        Err(err) => panic!("the example must load with an empty environment: {err}"),
    }
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn every_seed_preset_has_the_seed_numbers() {
    let config = example();
    // (name, failures, open, call timeout, fallback kind, port)
    let presets = [
        ("plex", 3, 30, 3, "cache", 32400),
        ("overseerr", 5, 60, 5, "error", 5055),
        ("uptime-kuma", 5, 60, 10, "error", 3001),
        ("tmdb", 5, 60, 3, "cache", 18081),
        ("hdbits", 3, 90, 3, "degraded", 18082),
        ("qbittorrent", 3, 30, 3, "queue", 8081),
    ];
    let names: Vec<&str> = config.upstreams.keys().map(String::as_str).collect();
    let mut expected: Vec<&str> = presets.iter().map(|p| p.0).collect();
    expected.sort_unstable();
    assert_eq!(names, expected);
    for (name, failures, open, timeout, fallback, port) in presets {
        let upstream = &config.upstreams[name];
        assert_eq!(upstream.name, name);
        assert_eq!(upstream.breaker.failure_threshold(), failures, "{name}");
        assert_eq!(upstream.breaker.open_duration(), secs(open), "{name}");
        assert_eq!(upstream.call_timeout, secs(timeout), "{name}");
        assert_eq!(upstream.fallback.kind(), fallback, "{name}");
        assert_eq!(upstream.url.host(), "127.0.0.1", "{name}");
        assert_eq!(upstream.url.port(), port, "{name}");
    }
    assert_eq!(
        config.upstreams["plex"].health_path.as_deref(),
        Some("/identity")
    );
    assert_eq!(
        config.upstreams["hdbits"].fallback,
        Fallback::Degraded {
            status: 200,
            body: r#"{"results":[],"degraded":true}"#.into(),
            content_type: "application/json".into(),
        }
    );
}

#[test]
fn the_database_breaker_and_the_rest() {
    let config = example();
    assert_eq!(config.store.url.kind(), StoreKind::Sqlite);
    assert_eq!(config.store.url.as_str(), "sqlite://breakerbox.db");
    assert_eq!(config.store.breaker.failure_threshold(), 2);
    assert_eq!(config.store.breaker.open_duration(), secs(15));
    assert_eq!(config.server.listen.to_string(), "127.0.0.1:8080");
    assert!(config.chaos.enabled);
    let roles: Vec<Role> = config.admin.tokens.iter().map(|t| t.role).collect();
    assert_eq!(roles, [Role::Admin, Role::Viewer]);
    assert_eq!(config.health.check_interval, secs(30));
    assert_eq!(config.health.detailed_cache, secs(10));
}

#[test]
fn the_example_renders_and_loads_back() {
    let config = example();
    let rendered = config.to_toml();
    assert!(!rendered.contains("demo-admin-token"), "{rendered}");
    // The placeholder is no secret and is refused as a token; with secrets put back it loads.
    let err = config::load_from_str(&rendered, "effective.toml", NO_ENV).expect_err("refused");
    assert!(err.reason().contains("at least 16 characters"), "{err}");
    let restored = rendered.replace(
        &format!("token = \"{}\"", config::REDACTED),
        "token = \"a-restored-secret-token\"",
    );
    let again = config::load_from_str(&restored, "effective.toml", NO_ENV).expect("loads");
    assert_eq!(again.upstreams, config.upstreams);
    assert_eq!(again.store, config.store);
    assert_eq!(again.defaults, config.defaults);
    assert_eq!(
        (again.server, again.chaos, again.health),
        (config.server, config.chaos, config.health)
    );
}

#[test]
fn the_seed_variables_retune_the_example() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/breakerbox.toml");
    let text = std::fs::read_to_string(path).expect("readable");
    let env = [
        ("CIRCUIT_BREAKER_HDBITS_THRESHOLD", "4"),
        ("CIRCUIT_BREAKER_DATABASE_TIMEOUT_SECONDS", "20"),
        ("BREAKERBOX_UPSTREAMS_UPTIME_KUMA_CALL_TIMEOUT", "1500ms"),
    ];
    let config = config::load_from_str(&text, "examples/breakerbox.toml", env).expect("loads");
    assert_eq!(config.upstreams["hdbits"].breaker.failure_threshold(), 4);
    assert_eq!(config.store.breaker.open_duration(), secs(20));
    assert_eq!(
        config.upstreams["uptime-kuma"].call_timeout,
        Duration::from_millis(1500)
    );
}
