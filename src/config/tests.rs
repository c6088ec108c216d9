//! Whole-load tests: every refusal names file, key, value and why; overrides apply; the rendered
//! configuration loads back to the same thing.

use std::time::Duration;

use super::*;

const BASE: &str = r#"
[[admin.tokens]]
name = "ops"
token = "inline-secret-token"
role = "admin"

[upstreams.plex]
url = "http://127.0.0.1:32400"
failure_threshold = 3

[upstreams.uptime-kuma]
url = "http://127.0.0.1:3001"

[upstreams.hdbits]
url = "http://127.0.0.1:18082"
fallback = "degraded"

[upstreams.hdbits.degraded]
status = 200
body = "{}"
"#;

fn load(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    load_from_str(text, "gw.toml", env.iter().copied())
}

fn refused(text: &str, env: &[(&str, &str)]) -> ConfigError {
    match load(text, env) {
        Ok(config) => panic!("accepted: {config:?}"),
        Err(err) => err,
    }
}

/// Asserts the key path, the value, and that the message carries file, key, value and reason.
#[track_caller]
fn check(err: &ConfigError, path: &str, value: &str, reason: &str) {
    assert_eq!(err.file(), "gw.toml", "{err}");
    assert_eq!(err.key().path(), Some(path), "{err}");
    assert_eq!(err.value(), value, "{err}");
    assert!(err.reason().contains(reason), "reason of: {err}");
    let message = err.to_string();
    assert!(message.starts_with("gw.toml"), "{message}");
    for part in [path, value, reason] {
        assert!(message.contains(part), "{part:?} missing from: {message}");
    }
}

#[test]
fn an_empty_file_gives_the_documented_defaults() {
    let config = load("", &[]).expect("valid");
    assert_eq!(config.server.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(config.server.max_body_bytes, 10 * 1024 * 1024);
    assert_eq!(config.server.max_header_bytes, 16 * 1024);
    assert_eq!(config.store.url.as_str(), "sqlite://breakerbox.db");
    assert_eq!(config.store.breaker, crate::BreakerConfig::default());
    assert_eq!(config.health.check_interval, Duration::from_secs(30));
    assert_eq!(config.health.detailed_cache, Duration::from_secs(10));
    assert!(!config.chaos.enabled);
    assert!(config.admin.tokens.is_empty() && config.upstreams.is_empty());
}

#[test]
fn upstreams_layer_over_defaults() {
    let text = format!(
        "[defaults]\nfailure_threshold = 7\nwindow = \"30s\"\ncall_timeout = \"750ms\"\n\
         failure_statuses = [503, 500, 503]\n[store]\nfailure_threshold = 2\n{BASE}"
    );
    let config = load(&text, &[]).expect("valid");
    let plex = &config.upstreams["plex"];
    assert_eq!(plex.breaker.failure_threshold(), 3);
    assert_eq!(plex.breaker.window(), Duration::from_secs(30));
    assert_eq!(plex.call_timeout, Duration::from_millis(750));
    assert_eq!(plex.failure_statuses, vec![500, 503]);
    assert!(plex.is_failure_status(503) && !plex.is_failure_status(502));
    assert_eq!(plex.fallback, Fallback::Error);
    assert_eq!(
        (plex.retry_budget_percent, plex.retry_min_per_second),
        (20, 3)
    );
    assert_eq!(
        config.upstreams["uptime-kuma"].breaker.failure_threshold(),
        7
    );
    assert_eq!(config.store.breaker.failure_threshold(), 2);
    assert_eq!(config.store.breaker.window(), Duration::from_secs(30));
    let degraded = &config.upstreams["hdbits"].fallback;
    assert_eq!(
        degraded,
        &Fallback::Degraded {
            status: 200,
            body: "{}".into(),
            content_type: "application/json".into()
        }
    );
    assert_eq!(
        config.admin.tokens[0].secret.expose(),
        "inline-secret-token"
    );
    assert_eq!(config.admin.tokens[0].role, Role::Admin);
}

#[test]
fn impossible_values_are_refused_with_their_key() {
    let up = "[upstreams.plex]\nurl = \"http://127.0.0.1:1\"\n";
    let cases: &[(String, &str, &str, &str)] = &[
        (
            format!("{up}failure_threshold = 0"),
            "upstreams.plex.failure_threshold",
            "0",
            "must be at least 1",
        ),
        (
            "[defaults]\nfailure_rate_threshold = 150".into(),
            "defaults.failure_rate_threshold",
            "150",
            "must be a percentage from 1 to 100",
        ),
        (
            format!("{up}retry_budget_percent = 101"),
            "upstreams.plex.retry_budget_percent",
            "101",
            "must be a percentage from 0 to 100",
        ),
        (
            "[defaults]\nwindow = \"60 parsecs\"".into(),
            "defaults.window",
            "\"60 parsecs\"",
            "not a duration",
        ),
        (
            "[store]\nfailure_threshold = 0".into(),
            "store.failure_threshold",
            "0",
            "must be at least 1",
        ),
        (
            "[store]\nqueue_memory_capacity = 0".into(),
            "store.queue_memory_capacity",
            "0",
            "must be at least 1",
        ),
        (
            "[store]\nqueue_finished_retention = \"0s\"".into(),
            "store.queue_finished_retention",
            "\"0s\"",
            "must be positive",
        ),
        (
            "[store]\nqueue_finished_keep = -1".into(),
            "store.queue_finished_keep",
            "-1",
            "must be at least 0",
        ),
        (
            "[store]\nqueue_max_bytes = 0".into(),
            "store.queue_max_bytes",
            "0",
            "must be at least 1",
        ),
        (
            "[store]\ncache_max_entries = 0".into(),
            "store.cache_max_entries",
            "0",
            "must be at least 1",
        ),
        (
            "[defaults]\nqueue_max_requests = 0".into(),
            "defaults.queue_max_requests",
            "0",
            "must be at least 1",
        ),
        (
            "[upstreams.q]\nurl = \"http://q\"\nfallback = \"queue\"\nqueue_max_bytes = -5".into(),
            "upstreams.q.queue_max_bytes",
            "-5",
            "must be at least 1",
        ),
        (
            "[store]\nurl = \"mysql://u:hunter2@db/x\"".into(),
            "store.url",
            "\"mysql://u:<redacted>@db/x\"",
            "unsupported database",
        ),
        (
            "[upstreams.plex]\nurl = \"plex:32400\"".into(),
            "upstreams.plex.url",
            "\"plex:32400\"",
            "not a URL",
        ),
        (
            "[upstreams.plex]\nurl = \"http://plex:99999\"".into(),
            "upstreams.plex.url",
            "\"http://plex:99999\"",
            "port `99999`",
        ),
        (
            "[upstreams.plex]\nfailure_threshold = 3".into(),
            "upstreams.plex.url",
            "(missing)",
            "needs the base URL",
        ),
        (
            format!("{up}fallback = \"degraded\""),
            "upstreams.plex.fallback",
            "\"degraded\"",
            "needs a [upstreams.plex.degraded] table",
        ),
        (
            format!("{up}fallback = \"cache\"\n[upstreams.plex.degraded]\nstatus = 200"),
            "upstreams.plex.degraded",
            "(table)",
            "only applies with fallback = \"degraded\", but fallback is \"cache\"",
        ),
        (
            format!("{up}fallback = \"retry\""),
            "upstreams.plex.fallback",
            "\"retry\"",
            "expected cache, degraded, queue or error",
        ),
        (
            format!("{up}cache_ttl = \"5m\""),
            "upstreams.plex.cache_ttl",
            "\"5m\"",
            "only applies with fallback = \"cache\"",
        ),
        (
            format!("{up}fallback = \"degraded\"\n[upstreams.plex.degraded]\nstatus = 700"),
            "upstreams.plex.degraded.status",
            "700",
            "from 100 to 599",
        ),
        (
            format!("{up}health_path = \"identity\""),
            "upstreams.plex.health_path",
            "\"identity\"",
            "must start with `/`",
        ),
        (
            format!("{up}failure_statuses = [500, 600]"),
            "upstreams.plex.failure_statuses",
            "[500, 600]",
            "600 is not an HTTP status code",
        ),
        (
            "[upstreams.Plex]\nurl = \"http://127.0.0.1:1\"".into(),
            "upstreams.Plex",
            "{ url = \"http://127.0.0.1:1\" }",
            "lower-case letters",
        ),
        (
            "[upstreams.database]\nurl = \"http://127.0.0.1:1\"".into(),
            "upstreams.database",
            "{ url = \"http://127.0.0.1:1\" }",
            "the store's breaker",
        ),
        (
            "[upstreams.uptime-kuma]\nurl = \"http://a\"\n[upstreams.uptime_kuma]\nurl = \"http://b\""
                .into(),
            "upstreams.uptime_kuma",
            "",
            "duplicate upstream: `uptime-kuma` and `uptime_kuma`",
        ),
        (
            "[server]\nlisten = \"localhost\"".into(),
            "server.listen",
            "\"localhost\"",
            "not an IP address with a port",
        ),
        (
            "[health]\ncheck_interval = \"0s\"".into(),
            "health.check_interval",
            "\"0s\"",
            "must be positive",
        ),
        (
            "[defaults]\nopen_duration = \"10s\"\nopen_duration_max = \"20s\"\n[upstreams.plex]\nurl = \"http://a\"\nopen_duration = \"30s\"".into(),
            "defaults.open_duration_max",
            "20s",
            "must be at least `open_duration` (as inherited by [upstreams.plex])",
        ),
        (
            "[defaults]\nslow_call_rate_threshold = 80".into(),
            "defaults.slow_call_rate_threshold",
            "Some(80)",
            "needs `slow_call_duration`",
        ),
    ];
    for (text, path, value, reason) in cases {
        let err = refused(text, &[]);
        check(&err, path, value, reason);
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }
}

#[test]
fn wrong_types_and_unknown_keys_are_refused() {
    let err = refused("[defaults]\nfailure_threshold = \"5\"", &[]);
    check(
        &err,
        "defaults.failure_threshold",
        "\"5\"",
        "expected an integer, found a string",
    );
    assert_eq!(err.kind(), ErrorKind::WrongType);
    let err = refused("[defaults]\nwindow = 60", &[]);
    check(&err, "defaults.window", "60", "expected a duration string");
    let err = refused("upstreams = 3", &[]);
    check(&err, "upstreams", "3", "expected a table, found an integer");
    let err = refused(
        "[upstreams.plex]\nurl = \"http://a\"\nfailure_treshold = 3",
        &[],
    );
    check(
        &err,
        "upstreams.plex.failure_treshold",
        "3",
        "unknown key `failure_treshold` in [upstreams.plex]; did you mean `failure_threshold`?",
    );
    assert_eq!(err.kind(), ErrorKind::UnknownKey);
    let err = refused("[servr]\nlisten = \"127.0.0.1:1\"", &[]);
    check(
        &err,
        "servr",
        "{ listen = \"127.0.0.1:1\" }",
        "unknown key `servr` at the top level; did you mean `server`?",
    );
    let err = refused("[chaos]\nenabled = true\ncolour = 1", &[]);
    check(&err, "chaos.colour", "1", "known keys: enabled");
}

#[test]
fn toml_syntax_errors_and_duplicate_tables_have_positions() {
    let text = "[upstreams.plex]\nurl = \"http://a\"\n\n[upstreams.plex]\nurl = \"http://b\"\n";
    let err = refused(text, &[]);
    check(
        &err,
        "upstreams.plex",
        "[upstreams.plex]",
        "duplicate upstream `plex`",
    );
    assert!(err.reason().contains("first defined at line 1"), "{err}");
    assert_eq!(err.position(), Some((4, 12)));
    assert!(
        err.to_string().starts_with("gw.toml:4:12: upstreams.plex"),
        "{err}"
    );
    let err = refused("[defaults]\nwindow = 60s\n", &[]);
    check(&err, "defaults.window", "window = 60s", "invalid TOML");
    assert_eq!(err.kind(), ErrorKind::Syntax);
}

#[test]
fn token_mistakes_are_refused_without_showing_secrets() {
    let cases = [
        (
            "name = \"ops\"\ntoken = \"s3cret-long-enough-x\"\nrole = \"root\"",
            "admin.tokens[0].role",
            "\"root\"",
            "unknown role; expected \"admin\" or \"viewer\"",
        ),
        (
            "name = \"ops\"\ntoken_env = \"GW_TOKEN_UNSET\"",
            "admin.tokens[0].token_env",
            "\"GW_TOKEN_UNSET\"",
            "environment variable GW_TOKEN_UNSET is not set",
        ),
        (
            "name = \"ops\"\ntoken = \"s3cret-long-enough-x\"\ntoken_env = \"GW_TOKEN\"",
            "admin.tokens[0].token_env",
            "\"GW_TOKEN\"",
            "either `token` or `token_env`, not both",
        ),
        (
            "name = \"ops\"",
            "admin.tokens[0].token",
            "(missing)",
            "needs `token` (the secret) or `token_env`",
        ),
        (
            "token = \"s3cret-long-enough-x\"",
            "admin.tokens[0].name",
            "(missing)",
            "every token needs a name",
        ),
        (
            "name = \"ops\"\ntoken = 12345",
            "admin.tokens[0].token",
            "<redacted>",
            "expected a string, found an integer",
        ),
        (
            "name = \"ops\"\ntokn = \"s3cret-long-enough-x\"",
            "admin.tokens[0].tokn",
            "<redacted>",
            "did you mean `token`?",
        ),
    ];
    for (body, path, value, reason) in cases {
        let err = refused(&format!("[[admin.tokens]]\n{body}\n"), &[("GW_TOKEN", "x")]);
        check(&err, path, value, reason);
        assert!(!err.to_string().contains("s3cret") && !err.to_string().contains("12345"));
    }
    let two = "[[admin.tokens]]\nname = \"ops\"\ntoken = \"aaaaaaaaaaaaaaaa\"\n[[admin.tokens]]\nname = \"ops\"\ntoken = \"bbbbbbbbbbbbbbbb\"\n";
    check(
        &refused(two, &[]),
        "admin.tokens[1].name",
        "\"ops\"",
        "duplicate token name",
    );
}

#[test]
fn token_env_reads_the_injected_environment() {
    let text = "[[admin.tokens]]\nname = \"ops\"\ntoken_env = \"GW_TOKEN\"\n";
    let config = load(text, &[("GW_TOKEN", "from-env-secret-value")]).expect("valid");
    let token = &config.admin.tokens[0];
    assert_eq!(token.secret.expose(), "from-env-secret-value");
    assert_eq!(token.source, SecretSource::Env("GW_TOKEN".into()));
    assert_eq!(
        token.role,
        Role::Viewer,
        "the default role is the weaker one"
    );
    assert!(!format!("{config:?}").contains("from-env-secret-value"));
    let err = refused(text, &[("GW_TOKEN", "")]);
    check(
        &err,
        "admin.tokens[0].token_env",
        "\"GW_TOKEN\"",
        "is set but empty",
    );
}

#[test]
fn breakerbox_variables_override_the_file() {
    let env = [
        ("BREAKERBOX_SERVER_LISTEN", "0.0.0.0:9090"),
        ("BREAKERBOX_DEFAULTS_WINDOW", "30s"),
        ("BREAKERBOX_UPSTREAMS_UPTIME_KUMA_FAILURE_THRESHOLD", "9"),
        ("BREAKERBOX_UPSTREAMS_PLEX_FAILURE_STATUSES", "502, 503"),
        ("BREAKERBOX_UPSTREAMS_HDBITS_DEGRADED_STATUS", "503"),
        ("BREAKERBOX_STORE_URL", "postgres://gw:pw@127.0.0.1/gw"),
        ("BREAKERBOX_CHAOS_ENABLED", "true"),
        ("BREAKERBOX_HEALTH_CHECK_INTERVAL", "250ms"),
        (
            "BREAKERBOX_ADMIN_TOKENS_OPS_TOKEN",
            "env-secret-token-value",
        ),
        ("BREAKERBOX_CONFIG", "/etc/breakerbox.toml"),
        ("BREAKERBOX_LOG", "debug"),
    ];
    let config = load(BASE, &env).expect("valid");
    assert_eq!(config.server.listen.to_string(), "0.0.0.0:9090");
    assert_eq!(config.defaults.breaker.window(), Duration::from_secs(30));
    assert_eq!(
        config.upstreams["plex"].breaker.window(),
        Duration::from_secs(30)
    );
    assert_eq!(
        config.upstreams["uptime-kuma"].breaker.failure_threshold(),
        9
    );
    assert_eq!(config.upstreams["plex"].failure_statuses, vec![502, 503]);
    assert!(matches!(
        config.upstreams["hdbits"].fallback,
        Fallback::Degraded { status: 503, .. }
    ));
    assert_eq!(config.store.url.kind(), StoreKind::Postgres);
    assert!(config.chaos.enabled);
    assert_eq!(config.health.check_interval, Duration::from_millis(250));
    assert_eq!(
        config.admin.tokens[0].secret.expose(),
        "env-secret-token-value"
    );
}

#[test]
fn an_override_of_the_secret_replaces_the_files_token_env() {
    let text = "[[admin.tokens]]\nname = \"ci-bot\"\ntoken_env = \"UNSET_VAR\"\n";
    let config = load(
        text,
        &[(
            "BREAKERBOX_ADMIN_TOKENS_CI_BOT_TOKEN",
            "t0k-long-enough-token",
        )],
    )
    .expect("valid");
    assert_eq!(
        config.admin.tokens[0].secret.expose(),
        "t0k-long-enough-token"
    );
    assert_eq!(config.admin.tokens[0].source, SecretSource::Inline);
}

#[test]
fn upstream_names_are_resolved_against_the_file() {
    let text = "[upstreams.plex]\nurl = \"http://a\"\n[upstreams.plex-call]\nurl = \"http://b\"\n";
    let env = [
        ("BREAKERBOX_UPSTREAMS_PLEX_CALL_TIMEOUT", "2s"),
        ("BREAKERBOX_UPSTREAMS_PLEX_CALL_URL", "http://c:8"),
    ];
    let config = load(text, &env).expect("valid");
    assert_eq!(
        config.upstreams["plex"].call_timeout,
        Duration::from_secs(2)
    );
    assert_eq!(config.upstreams["plex"].url.as_str(), "http://a");
    assert_eq!(config.upstreams["plex-call"].url.as_str(), "http://c:8");
    assert_eq!(
        config.upstreams["plex-call"].call_timeout,
        Duration::from_secs(3)
    );
}

#[test]
fn seed_variables_are_honoured_and_breakerbox_ones_win() {
    let env = [
        ("CIRCUIT_BREAKER_UPTIME_KUMA_THRESHOLD", "4"),
        ("CIRCUIT_BREAKER_UPTIME_KUMA_TIMEOUT_SECONDS", "45"),
        ("CIRCUIT_BREAKER_DATABASE_THRESHOLD", "2"),
        ("CIRCUIT_BREAKER_DATABASE_TIMEOUT_SECONDS", "15"),
        ("CIRCUIT_BREAKER_PLEX_THRESHOLD", "8"),
        ("BREAKERBOX_UPSTREAMS_PLEX_FAILURE_THRESHOLD", "6"),
        ("CIRCUIT_BREAKER_PLEX_ENABLED", "true"),
        ("HEALTH_CHECK_INTERVAL_SECONDS", "12"),
        ("DETAILED_HEALTH_CACHE_SECONDS", "0"),
    ];
    let config = load(BASE, &env).expect("valid");
    let kuma = &config.upstreams["uptime-kuma"].breaker;
    assert_eq!(
        (kuma.failure_threshold(), kuma.open_duration()),
        (4, Duration::from_secs(45))
    );
    let db = &config.store.breaker;
    assert_eq!(
        (db.failure_threshold(), db.open_duration()),
        (2, Duration::from_secs(15))
    );
    assert_eq!(config.upstreams["plex"].breaker.failure_threshold(), 6);
    assert_eq!(config.health.check_interval, Duration::from_secs(12));
    assert_eq!(config.health.detailed_cache, Duration::ZERO);
}

#[test]
fn bad_environment_values_name_the_variable() {
    let err = refused(
        BASE,
        &[("BREAKERBOX_UPSTREAMS_PLEX_FAILURE_THRESHOLD", "0")],
    );
    check(
        &err,
        "upstreams.plex.failure_threshold",
        "0",
        "must be at least 1",
    );
    assert_eq!(
        err.key().env_var(),
        Some("BREAKERBOX_UPSTREAMS_PLEX_FAILURE_THRESHOLD")
    );
    assert!(err.to_string().starts_with(
        "gw.toml: BREAKERBOX_UPSTREAMS_PLEX_FAILURE_THRESHOLD (environment, overrides upstreams.plex.failure_threshold) = 0:"
    ), "{err}");
    let cases = [
        (
            "BREAKERBOX_DEFAULTS_WINDOW",
            "soon",
            "defaults.window",
            "\"soon\"",
            "not a duration",
        ),
        (
            "BREAKERBOX_CHAOS_ENABLED",
            "maybe",
            "chaos.enabled",
            "\"maybe\"",
            "expected true or false, found a string",
        ),
        (
            "BREAKERBOX_SERVER_MAX_BODY_BYTES",
            "10MB",
            "server.max_body_bytes",
            "\"10MB\"",
            "expected an integer, found a string",
        ),
        (
            "CIRCUIT_BREAKER_PLEX_THRESHOLD",
            "three",
            "upstreams.plex.failure_threshold",
            "\"three\"",
            "expected an integer",
        ),
        (
            "HEALTH_CHECK_INTERVAL_SECONDS",
            "soon",
            "health.check_interval",
            "\"soon\"",
            "whole number of seconds",
        ),
        (
            "BREAKERBOX_DEFAULTS_FAILURE_TRESHOLD",
            "3",
            "defaults.failure_treshold",
            "\"3\"",
            "[defaults] has no key `failure_treshold`",
        ),
        (
            "BREAKERBOX_UPSTREAMS_PLEX_COLOUR",
            "red",
            "upstreams.plex.colour",
            "\"red\"",
            "[upstreams.plex] has no key `colour`",
        ),
        (
            "BREAKERBOX_UPSTREAMS_JELLYFIN_URL",
            "http://a",
            "upstreams.jellyfin_url",
            "\"http://a\"",
            "names no upstream of the file (known: hdbits, plex, uptime-kuma)",
        ),
        (
            "CIRCUIT_BREAKER_JELLYFIN_THRESHOLD",
            "3",
            "upstreams.jellyfin.failure_threshold",
            "\"3\"",
            "`JELLYFIN` is neither DATABASE nor an upstream",
        ),
        (
            "BREAKERBOX_ADMIN_TOKENS_NOBODY_TOKEN",
            "x",
            "admin.tokens",
            "<redacted>",
            "for a token of the file (known: ops)",
        ),
    ];
    for (var, raw, path, value, reason) in cases {
        let err = refused(BASE, &[(var, raw)]);
        check(&err, path, value, reason);
        assert_eq!(err.key().env_var(), Some(var), "{err}");
        assert!(err.to_string().contains(var), "{err}");
    }
}

#[test]
fn ambiguous_upstream_variables_are_refused() {
    let text = "[upstreams.a-b]\nurl = \"http://a\"\n[upstreams.a_b]\nurl = \"http://b\"\n";
    let err = refused(text, &[("BREAKERBOX_UPSTREAMS_A_B_URL", "http://c")]);
    check(
        &err,
        "upstreams.a_b_url",
        "\"http://c\"",
        "ambiguous: could mean upstream a-b or a_b",
    );
}

/// Tokens compared apart from their secrets, which the rendering hides.
fn without_secrets(mut config: Config) -> Config {
    for token in &mut config.admin.tokens {
        token.secret = Secret::new(String::new());
    }
    config
}

#[test]
fn the_effective_configuration_round_trips() {
    let text = format!(
        "[defaults]\nopen_duration_max = \"10m\"\nslow_call_duration = \"1500ms\"\n\
         slow_call_rate_threshold = 80\nhonor_retry_after = true\njitter = 0\n\
         [store]\nurl = \"postgres://gw@127.0.0.1/gw\"\ncall_timeout = \"2s\"\n\
         queue_memory_capacity = 500\nqueue_finished_retention = \"10m\"\nqueue_finished_keep = 0\n\
         [chaos]\nenabled = true\n[health]\ndetailed_cache = \"0s\"\n\
         [[admin.tokens]]\nname = \"env\"\ntoken_env = \"GW_TOKEN\"\n{BASE}\
         [upstreams.tmdb]\nurl = \"https://api.themoviedb.org/3/\"\nfallback = \"cache\"\n\
         cache_ttl = \"90s\"\nhealth_path = \"/configuration\"\nfailure_statuses = []\n\
         [upstreams.qbittorrent]\nurl = \"http://127.0.0.1:8081\"\nfallback = \"queue\"\n"
    );
    let env = [("GW_TOKEN", "env-secret-token-value")];
    let config = load(&text, &env).expect("valid");
    let rendered = config.to_toml();
    assert!(
        !rendered.contains("inline-secret-token") && !rendered.contains("env-secret-token-value")
    );
    assert!(rendered.contains("token = \"<redacted>\""), "{rendered}");
    assert!(rendered.contains("token_env = \"GW_TOKEN\""), "{rendered}");
    // The placeholder is no secret: it is refused as a token, so the rendering loads back once
    // the file's own secret is put back.
    let err = refused(&rendered, &env);
    assert!(err.reason().contains("at least 16 characters"), "{err}");
    let restored = rendered.replace(
        &format!("token = \"{REDACTED}\""),
        "token = \"inline-secret-token\"",
    );
    let again = load(&restored, &env).expect("the rendering loads");
    assert_eq!(
        again.admin.tokens[0].secret.expose(),
        "env-secret-token-value"
    );
    assert_eq!(again.admin.tokens[1].secret.expose(), "inline-secret-token");
    assert_eq!(without_secrets(again), without_secrets(config));
}

#[test]
fn queue_limits_come_from_the_store_section_or_the_environment() {
    let defaults = load("", &[]).expect("valid").store;
    assert_eq!(
        (
            defaults.queue_memory_capacity,
            defaults.queue_finished_retention,
            defaults.queue_finished_keep
        ),
        (10_000, Duration::from_secs(3600), 10_000)
    );
    let text = "[store]\nqueue_memory_capacity = 250\nqueue_finished_retention = \"15m\"\n";
    let env = [("BREAKERBOX_STORE_QUEUE_FINISHED_KEEP", "42")];
    let store = load(text, &env).expect("valid").store;
    assert_eq!(
        (
            store.queue_memory_capacity,
            store.queue_finished_retention,
            store.queue_finished_keep
        ),
        (250, Duration::from_secs(900), 42)
    );
}

#[test]
fn queue_and_cache_bounds_come_from_the_file_defaults_or_the_environment() {
    let text = format!(
        "[store]\nqueue_max_requests = 500\ncache_max_bytes = 1000\n\
         [defaults]\nqueue_max_bytes = 2048\n{BASE}\
         [upstreams.q]\nurl = \"http://127.0.0.1:8081\"\nfallback = \"queue\"\n\
         queue_max_requests = 7\n\
         [upstreams.r]\nurl = \"http://127.0.0.1:8082\"\nfallback = \"queue\"\n"
    );
    let env = [("BREAKERBOX_UPSTREAMS_R_QUEUE_MAX_REQUESTS", "9")];
    let config = load(&text, &env).expect("valid");
    let s = &config.store;
    assert_eq!(
        (s.queue_max_requests, s.queue_max_bytes),
        (500, 1024 * 1024 * 1024)
    );
    assert_eq!((s.cache_max_entries, s.cache_max_bytes), (10_000, 1000));
    let (q, r) = (&config.upstreams["q"], &config.upstreams["r"]);
    assert_eq!((q.queue_max_requests, q.queue_max_bytes), (7, 2048));
    assert_eq!((r.queue_max_requests, r.queue_max_bytes), (9, 2048));
    let rendered = config.to_toml();
    for key in [
        "queue_max_requests = 7",
        "queue_max_bytes = 2048",
        "cache_max_entries = 10000",
    ] {
        assert!(rendered.contains(key), "{key}: {rendered}");
    }
    // The rendered token placeholder is refused as a token: put the file's secret back.
    let restored = rendered.replace(
        &format!("token = \"{REDACTED}\""),
        "token = \"inline-secret-token\"",
    );
    let again = load(&restored, &[]).expect("the rendering loads");
    assert_eq!(again.upstreams["r"].queue_max_requests, 9);
    assert_eq!(again.store.cache_max_bytes, 1000);
}

#[test]
fn the_rendering_hides_database_passwords() {
    let config = load("[store]\nurl = \"postgres://gw:hunter2@db/gw\"", &[]).expect("valid");
    let rendered = config.to_toml();
    assert!(
        rendered.contains("url = \"postgres://gw:<redacted>@db/gw\""),
        "{rendered}"
    );
    assert!(!rendered.contains("hunter2") && !format!("{config:?}").contains("hunter2"));
}

#[test]
fn a_missing_file_is_named() {
    let err = super::load("/nonexistent/breakerbox.toml").expect_err("no such file");
    assert_eq!(err.kind(), ErrorKind::Io);
    assert!(
        err.to_string()
            .starts_with("/nonexistent/breakerbox.toml: cannot read the configuration file:"),
        "{err}"
    );
}

#[test]
fn an_array_is_never_read_as_a_table() {
    // serde fills a struct from an array by position; a table must be written as a table.
    for (text, path) in [
        ("chaos = [true]", "chaos"),
        ("server = [\"127.0.0.1:1\"]", "server"),
        (
            "[store]\nurl = \"sqlite::memory:\"\n[upstreams.plex]\nurl = \"http://a\"\nfallback = \"degraded\"\ndegraded = [200]",
            "upstreams.plex.degraded",
        ),
    ] {
        let err = refused(text, &[]);
        assert_eq!(err.key().path(), Some(path), "{err}");
        assert!(
            err.reason().starts_with("expected a table, found an array"),
            "{err}"
        );
    }
}

#[test]
fn misspelt_keys_are_matched_against_every_key_of_their_table() {
    let err = refused("[store]\nfailure_treshold = 2", &[]);
    check(
        &err,
        "store.failure_treshold",
        "2",
        "unknown key `failure_treshold` in [store]; did you mean `failure_threshold`?",
    );
    let text = "[upstreams.plex]\nurl = \"http://a\"\nfallback = \"degraded\"\n\
                [upstreams.plex.degraded]\nstatsu = 200";
    let err = refused(text, &[]);
    check(
        &err,
        "upstreams.plex.degraded.statsu",
        "200",
        "did you mean `status`?",
    );
    let err = refused("[defaults]\nfailure_statuses = [500, \"502\"]", &[]);
    check(
        &err,
        "defaults.failure_statuses[1]",
        "\"502\"",
        "expected an integer, found a string",
    );
}

#[test]
fn credentials_and_trusted_proxies_are_read_checked_and_rendered() {
    let config = load("", &[]).expect("valid");
    assert!(
        config.server.trusted_proxies.is_empty(),
        "no proxy is trusted by default"
    );
    let defaults = &config.defaults.credentials;
    assert!(defaults.headers.contains(&"x-plex-token".to_owned()));
    assert!(defaults.params.contains(&"api_key".to_owned()));

    let text = "[server]\ntrusted_proxies = [\"10.0.0.0/8\", \"::1\", \"192.168.1.7/24\"]\n\
                [defaults]\ncredential_params = [\"Sig\"]\n\
                [upstreams.plex]\nurl = \"http://127.0.0.1:1\"\nfallback = \"cache\"\n\
                credential_headers = [\"X-Tenant\", \"x-tenant\"]\n";
    let config = load(text, &[]).expect("valid");
    let shown: Vec<String> = config
        .server
        .trusted_proxies
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(shown, ["10.0.0.0/8", "::1/128", "192.168.1.0/24"]);
    let plex = &config.upstreams["plex"].credentials;
    assert_eq!(
        (&plex.headers[..], &plex.params[..]),
        (&["x-tenant".to_owned()][..], &["sig".to_owned()][..])
    );
    let again = load(&config.to_toml(), &[]).expect("the rendering loads");
    assert_eq!(again, config);

    let env = [
        (
            "BREAKERBOX_SERVER_TRUSTED_PROXIES",
            "10.1.0.0/16, 10.2.0.0/16",
        ),
        ("BREAKERBOX_UPSTREAMS_PLEX_CREDENTIAL_PARAMS", "auth"),
    ];
    let config = load(text, &env).expect("valid");
    assert_eq!(config.server.trusted_proxies.len(), 2);
    assert_eq!(config.upstreams["plex"].credentials.params, ["auth"]);

    let up = "[upstreams.plex]\nurl = \"http://127.0.0.1:1\"\n";
    let err = refused("[server]\ntrusted_proxies = [\"10.0.0.0/33\"]", &[]);
    check(
        &err,
        "server.trusted_proxies",
        "[\"10.0.0.0/33\"]",
        "\"10.0.0.0/33\" is not a CIDR",
    );
    let err = refused(&format!("{up}credential_headers = [\"X Token\"]"), &[]);
    check(
        &err,
        "upstreams.plex.credential_headers",
        "[\"X Token\"]",
        "is not a header name",
    );
    let err = refused("[defaults]\ncredential_params = [\"a&b\"]", &[]);
    check(
        &err,
        "defaults.credential_params",
        "[\"a&b\"]",
        "is not a query parameter name",
    );
    let err = refused("[server]\ntrusted_proxies = \"10.0.0.0/8\"", &[]);
    assert_eq!(err.key().path(), Some("server.trusted_proxies"), "{err}");
}

#[test]
fn half_open_max_wait_is_read_checked_overridden_and_rendered() {
    let text = "[defaults]\nhalf_open_max_wait = \"20s\"\n[upstreams.plex]\nurl = \"http://a\"\n\
                half_open_max_wait = \"5s\"\n[upstreams.tmdb]\nurl = \"http://b\"\n";
    let env = [("BREAKERBOX_UPSTREAMS_TMDB_HALF_OPEN_MAX_WAIT", "7s")];
    let config = load_from_str(text, "gw.toml", env).expect("valid");
    assert_eq!(
        config.upstreams["plex"].breaker.half_open_max_wait(),
        Some(Duration::from_secs(5))
    );
    assert_eq!(
        config.upstreams["tmdb"].breaker.half_open_max_wait(),
        Some(Duration::from_secs(7))
    );
    let rendered = config.to_toml();
    assert!(
        rendered.contains("half_open_max_wait = \"5s\""),
        "{rendered}"
    );

    let no_env = std::iter::empty::<(String, String)>();
    let err = load_from_str("[defaults]\nhalf_open_max_wait = \"0s\"", "gw.toml", no_env)
        .expect_err("zero refused");
    assert!(
        err.to_string().contains("defaults.half_open_max_wait"),
        "{err}"
    );
}

#[test]
fn consecutive_failures_window_is_read_checked_and_rendered() {
    let config = load("", &[]).expect("valid");
    assert_eq!(
        config.defaults.breaker.consecutive_failures_window(),
        crate::breaker::ConsecutiveFailuresWindow::Window
    );
    let text =
        "[upstreams.plex]\nurl = \"http://a\"\nconsecutive_failures_window = \"unbounded\"\n";
    let config = load(text, &[]).expect("valid");
    assert_eq!(
        config.upstreams["plex"]
            .breaker
            .consecutive_failures_window(),
        crate::breaker::ConsecutiveFailuresWindow::Unbounded
    );
    assert!(
        config
            .to_toml()
            .contains("consecutive_failures_window = \"unbounded\"")
    );
    let err = refused("[defaults]\nconsecutive_failures_window = \"hourly\"", &[]);
    check(
        &err,
        "defaults.consecutive_failures_window",
        "\"hourly\"",
        "expected \"window\" or \"unbounded\"",
    );
}

#[test]
fn window_type_and_window_calls_are_read_checked_overridden_and_rendered() {
    use crate::breaker::WindowType;
    let config = load("", &[]).expect("valid");
    assert_eq!(config.defaults.breaker.window_type(), WindowType::Time);
    let text = "[defaults]\nwindow_type = \"count\"\nwindow_calls = 50\n\
                [upstreams.plex]\nurl = \"http://a\"\n[upstreams.tmdb]\nurl = \"http://b\"\n";
    let env = [("BREAKERBOX_UPSTREAMS_TMDB_WINDOW_CALLS", "20")];
    let config = load(text, &env).expect("valid");
    let plex = &config.upstreams["plex"].breaker;
    assert_eq!(
        (plex.window_type(), plex.window_calls()),
        (WindowType::Count, 50)
    );
    assert_eq!(config.upstreams["tmdb"].breaker.window_calls(), 20);
    let again = load(&config.to_toml(), &[]).expect("the rendering loads");
    assert_eq!(again.upstreams["tmdb"].breaker.window_calls(), 20);
    assert!(config.to_toml().contains("window_type = \"count\""));
    let env = [("BREAKERBOX_UPSTREAMS_PLEX_WINDOW_TYPE", "time")];
    let config = load(
        "[upstreams.plex]\nurl = \"http://a\"\nwindow_type = \"count\"\n",
        &env,
    )
    .expect("valid");
    assert_eq!(
        config.upstreams["plex"].breaker.window_type(),
        WindowType::Time
    );

    let err = refused("[defaults]\nwindow_type = \"calls\"", &[]);
    check(
        &err,
        "defaults.window_type",
        "\"calls\"",
        "expected \"time\" or \"count\"",
    );
    let err = refused("[defaults]\nwindow_calls = 30", &[]);
    check(
        &err,
        "defaults.window_calls",
        "30",
        "applies only with `window_type = \"count\"`",
    );
    let err = refused(
        "[defaults]\nwindow_type = \"count\"\nwindow_calls = 5\nminimum_calls = 10",
        &[],
    );
    check(
        &err,
        "defaults.minimum_calls",
        "10",
        "must be at most `window_calls`",
    );
}

#[test]
fn claim_lease_is_read_checked_overridden_and_rendered() {
    let config = load("", &[]).expect("valid");
    assert_eq!(config.store.claim_lease, Duration::from_secs(15));
    let config = load(
        "[store]\nclaim_lease = \"20s\"",
        &[("BREAKERBOX_STORE_CLAIM_LEASE", "5s")],
    )
    .expect("valid");
    assert_eq!(config.store.claim_lease, Duration::from_secs(5));
    let again = load(&config.to_toml(), &[]).expect("the rendering loads");
    assert_eq!(again.store.claim_lease, Duration::from_secs(5));
    let err = refused("[store]\nclaim_lease = \"500ms\"", &[]);
    check(&err, "store.claim_lease", "500ms", "must be at least 1s");
}

#[test]
fn open_duration_multiplier_is_read_checked_overridden_and_rendered() {
    let text = "[defaults]\nopen_duration_max = \"10m\"\nopen_duration_multiplier = 1.5\n\
                [upstreams.plex]\nurl = \"http://a\"\n[upstreams.tmdb]\nurl = \"http://b\"\n\
                open_duration_multiplier = 3\n";
    let config = load(
        text,
        &[("BREAKERBOX_UPSTREAMS_PLEX_OPEN_DURATION_MULTIPLIER", "1.25")],
    )
    .expect("valid");
    assert_eq!(
        config.upstreams["plex"].breaker.open_duration_multiplier(),
        1.25
    );
    assert_eq!(
        config.upstreams["tmdb"].breaker.open_duration_multiplier(),
        3.0
    );
    let again = load(&config.to_toml(), &[]).expect("the rendering loads");
    assert_eq!(
        again.defaults.breaker.open_duration_multiplier(),
        1.5,
        "{}",
        config.to_toml()
    );
    let err = refused(
        "[defaults]\nopen_duration_max = \"10m\"\nopen_duration_multiplier = 0.5",
        &[],
    );
    assert_eq!(
        err.key().path(),
        Some("defaults.open_duration_multiplier"),
        "{err}"
    );
    let err = refused("[defaults]\nopen_duration_multiplier = 3", &[]);
    assert!(
        err.to_string().contains("needs `open_duration_max`"),
        "{err}"
    );
}
