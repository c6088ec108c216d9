//! Configurations that would open a hole are refused at load: an upstream named like a fixed
//! path segment of a route (its admin URL would reach the route instead), and an admin token
//! short enough to guess or holding whitespace.

use super::*;

fn refused(text: &str, env: &[(&str, &str)]) -> ConfigError {
    match load_from_str(text, "gw.toml", env.iter().copied()) {
        Ok(config) => panic!("accepted: {config:?}"),
        Err(err) => err,
    }
}

#[test]
fn upstream_names_that_routes_would_shadow_are_refused() {
    for name in [
        "reset-all",
        "breakers",
        "queue",
        "events",
        "metrics",
        "health",
    ] {
        let err = refused(
            &format!("[upstreams.{name}]\nurl = \"http://127.0.0.1:9\"\n"),
            &[],
        );
        assert_eq!(
            err.key().path(),
            Some(format!("upstreams.{name}").as_str()),
            "{err}"
        );
        assert!(err.reason().contains("route"), "{err}");
    }
}

#[test]
fn admin_tokens_shorter_than_16_characters_or_with_whitespace_are_refused() {
    for (token, why) in [
        ("s3cret", "at least 16 characters"),
        ("fifteen-chars-x", "at least 16 characters"),
        ("a long pass phrase here", "whitespace"),
        ("tab\tinside-a-long-token", "whitespace"),
    ] {
        let text = format!("[[admin.tokens]]\nname = \"ops\"\ntoken = \"{token}\"\n");
        let err = refused(&text, &[]);
        assert_eq!(err.key().path(), Some("admin.tokens[0].token"), "{err}");
        assert!(err.reason().contains(why), "{err}");
        assert!(
            !err.to_string().contains(token),
            "the secret is printed: {err}"
        );
        // The same from the environment.
        let text = "[[admin.tokens]]\nname = \"ops\"\ntoken_env = \"GW_TOKEN\"\n";
        let err = refused(text, &[("GW_TOKEN", token)]);
        assert_eq!(err.key().path(), Some("admin.tokens[0].token_env"), "{err}");
        assert!(err.reason().contains(why), "{err}");
        assert!(
            !err.to_string().contains(token),
            "the secret is printed: {err}"
        );
    }
    let text = "[[admin.tokens]]\nname = \"ops\"\ntoken = \"sixteen-chars-xy\"\n";
    load_from_str(text, "gw.toml", Vec::<(String, String)>::new()).expect("16 characters pass");
}

#[test]
fn connection_bounds_have_defaults_refuse_zero_and_follow_the_environment() {
    let defaults = load_from_str("", "gw.toml", Vec::<(String, String)>::new())
        .expect("valid")
        .server;
    assert_eq!(
        defaults.header_read_timeout,
        std::time::Duration::from_secs(10)
    );
    assert_eq!(defaults.idle_timeout, std::time::Duration::from_secs(60));
    assert_eq!(defaults.max_connections, 10_000);
    for (key, value) in [
        ("header_read_timeout", "\"0s\""),
        ("idle_timeout", "\"0s\""),
        ("max_connections", "0"),
    ] {
        let err = refused(&format!("[server]\n{key} = {value}\n"), &[]);
        assert_eq!(
            err.key().path(),
            Some(format!("server.{key}").as_str()),
            "{err}"
        );
    }
    let env = [
        ("BREAKERBOX_SERVER_HEADER_READ_TIMEOUT", "2s"),
        ("BREAKERBOX_SERVER_IDLE_TIMEOUT", "500ms"),
        ("BREAKERBOX_SERVER_MAX_CONNECTIONS", "64"),
    ];
    let config = load_from_str("", "gw.toml", env.iter().copied()).expect("valid");
    assert_eq!(
        config.server.header_read_timeout,
        std::time::Duration::from_secs(2)
    );
    assert_eq!(
        config.server.idle_timeout,
        std::time::Duration::from_millis(500)
    );
    assert_eq!(config.server.max_connections, 64);
    let rendered = config.to_toml();
    for line in [
        "header_read_timeout = \"2s\"",
        "idle_timeout = \"500ms\"",
        "max_connections = 64",
    ] {
        assert!(rendered.contains(line), "{line} missing from:\n{rendered}");
    }
}
