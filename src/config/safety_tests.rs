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
