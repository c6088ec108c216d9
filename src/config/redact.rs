//! Credentials out of every URL that is shown: in errors, logs, `check-config` and spans.
//!
//! Why text rules rather than a URL parser: a URL that fails to parse (a `/` or `?` left
//! unencoded in a password) is exactly the one an error message repeats, so redaction must
//! work on any text, and in doubt hide too much rather than too little.

use std::borrow::Cow;

use url::form_urlencoded;

use super::render::REDACTED as HIDDEN;

/// `url` with every credential replaced by `<redacted>`: the password of its userinfo
/// (`user:secret@host`, also when the password holds `@`, `/`, `?` or `#`) and the value of
/// every query or fragment parameter whose name, `%`-decoded, names a secret (`password`,
/// `sslpassword`, `passwd`, `token`, `api_key`, `X-Plex-Token`, ...). Text without a credential
/// comes back borrowed, unchanged.
pub fn redact_url(url: &str) -> Cow<'_, str> {
    let Some(start) = url.find("://").map(|i| i + 3) else {
        return redact_params(url);
    };
    let rest = &url[start..];
    let authority_end = rest.find(['/', '?', '#', '\\']).unwrap_or(rest.len());
    // An `@` past the authority may end a userinfo whose password holds `/`, `?` or `#`
    // (which the parser would read as a path): in doubt, the last `@` ends it.
    let at = if rest[authority_end..].contains('@') {
        rest.rfind('@')
    } else {
        rest[..authority_end].rfind('@')
    };
    // A userinfo without `:` is a user name alone, not a secret.
    let password = at.and_then(|at| rest[..at].find(':').map(|colon| (colon, at)));
    let Some((colon, at)) = password else {
        return redact_params(url);
    };
    let tail = &url[start + at..];
    let mut out = String::with_capacity(url.len());
    out.push_str(&url[..start + colon + 1]);
    out.push_str(HIDDEN);
    out.push_str(&redact_params(tail));
    Cow::Owned(out)
}

/// `text` with [`redact_url`] applied to every `scheme://…` in it (a URL ends at white space
/// or a quote): for messages that may quote a URL, such as a configuration error's value.
pub fn redact_urls_in(text: &str) -> Cow<'_, str> {
    let mut out = String::new();
    let mut copied = 0;
    let mut from = 0;
    while let Some(found) = text[from..].find("://") {
        let separator = from + found;
        let start = text[..separator]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
            .map_or(0, |i| i + 1)
            .max(copied);
        let end = text[separator..]
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '`'))
            .map_or(text.len(), |i| separator + i);
        if let Cow::Owned(redacted) = redact_url(&text[start..end]) {
            out.push_str(&text[copied..start]);
            out.push_str(&redacted);
            copied = end;
        }
        from = end.max(separator + 3);
    }
    if copied == 0 {
        return Cow::Borrowed(text);
    }
    out.push_str(&text[copied..]);
    Cow::Owned(out)
}

/// The values of secret-naming parameters after the first `?` or `#` hidden.
fn redact_params(text: &str) -> Cow<'_, str> {
    let Some(open) = text.find(['?', '#']) else {
        return Cow::Borrowed(text);
    };
    let mut out = String::new();
    let mut copied = 0;
    let mut pos = open + 1;
    while pos <= text.len() {
        let end = text[pos..]
            .find(['&', ';', '#', '?'])
            .map_or(text.len(), |i| pos + i);
        let pair = &text[pos..end];
        if let Some(eq) = pair.find('=')
            && eq + 1 < pair.len()
            && names_a_secret(&pair[..eq])
        {
            out.push_str(&text[copied..pos + eq + 1]);
            out.push_str(HIDDEN);
            copied = end;
        }
        pos = end + 1;
    }
    if copied == 0 {
        return Cow::Borrowed(text);
    }
    out.push_str(&text[copied..]);
    Cow::Owned(out)
}

/// Whether a parameter called `name` (as written, maybe `%`-encoded) carries a secret. Broad
/// on purpose: hiding a harmless value costs nothing, showing a secret cannot be undone.
fn names_a_secret(name: &str) -> bool {
    // Names are read on every traced request: no allocation unless there is `%` to decode or
    // the name is unusually long.
    let decoded = if name.contains(['%', '+']) {
        form_urlencoded::parse(name.as_bytes())
            .next()
            .map_or(Cow::Borrowed(name), |(key, _)| Cow::Owned(key.into_owned()))
    } else {
        Cow::Borrowed(name)
    };
    let letters = decoded
        .bytes()
        .filter(u8::is_ascii_alphanumeric)
        .map(|b| b.to_ascii_lowercase());
    let mut short = [0u8; 64];
    if decoded.len() <= short.len() {
        let mut len = 0;
        for b in letters {
            short[len] = b;
            len += 1;
        }
        is_secret_name(std::str::from_utf8(&short[..len]).unwrap_or_default())
    } else {
        is_secret_name(&String::from_utf8(letters.collect()).unwrap_or_default())
    }
}

/// `bare`: a parameter name in lower case, letters and digits only.
fn is_secret_name(bare: &str) -> bool {
    const WITHIN: [&str; 11] = [
        "pass",
        "pwd",
        "secret",
        "token",
        "apikey",
        "accesskey",
        "privatekey",
        "auth",
        "credential",
        "signature",
        "session",
    ];
    const EXACTLY: [&str; 3] = ["key", "sig", "jwt"];
    WITHIN.iter().any(|w| bare.contains(w)) || EXACTLY.contains(&bare)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Whatever a password holds (`@`, `/`, `?`, `#`, `:`, `%`), and wherever a secret
        /// parameter sits in the query, the secret is not shown.
        #[test]
        fn no_password_or_secret_parameter_is_ever_shown(
            user in "[a-z]{1,8}",
            password in "Z[a-zA-Z0-9@/?#:%&=._~-]{3,16}",
            host in "[a-z]{1,8}(:[0-9]{1,5})?",
            name in "(password|sslpassword|passwd|api_key|X-Plex-Token|access_token|Pass%77ord)",
            before in "(sslmode=disable&)?",
            secret in "Y[a-zA-Z0-9._~-]{5,12}",
        ) {
            let url = format!("postgres://{user}:{password}@{host}/db");
            let shown = redact_url(&url);
            prop_assert!(!shown.contains(&password), "{url} -> {shown}");
            let url = format!("http://{host}/x?{before}{name}={secret}&page=2");
            let shown = redact_url(&url);
            prop_assert!(!shown.contains(&secret), "{url} -> {shown}");
            prop_assert!(shown.ends_with("&page=2"), "{url} -> {shown}");
        }
    }

    #[test]
    fn every_credential_form_is_hidden() {
        for (url, shown) in [
            (
                "postgres://gw:s3cret@db:5432/gw?sslmode=disable",
                "postgres://gw:<redacted>@db:5432/gw?sslmode=disable",
            ),
            // An `@` inside the password: the last one ends the userinfo.
            ("postgres://gw:p@ss@db/gw", "postgres://gw:<redacted>@db/gw"),
            // `/`, `?` and `#` inside the password (the URL no longer parses).
            ("postgres://gw:a/b@db/gw", "postgres://gw:<redacted>@db/gw"),
            ("postgres://gw:a?b@db/gw", "postgres://gw:<redacted>@db/gw"),
            ("postgres://gw:a#b@db/gw", "postgres://gw:<redacted>@db/gw"),
            ("postgres://gw:12/x@db/gw", "postgres://gw:<redacted>@db/gw"),
            // Percent-encoded passwords.
            (
                "postgres://gw:a%2Fb%40c@db/gw",
                "postgres://gw:<redacted>@db/gw",
            ),
            // Query parameters, plain and with an encoded name.
            (
                "postgres://gw@db/gw?password=x1&sslmode=require",
                "postgres://gw@db/gw?password=<redacted>&sslmode=require",
            ),
            (
                "postgres://db/gw?user=gw&sslpassword=x2",
                "postgres://db/gw?user=gw&sslpassword=<redacted>",
            ),
            (
                "postgres://db/gw?passwd=x3",
                "postgres://db/gw?passwd=<redacted>",
            ),
            (
                "postgres://db/gw?Pass%77ord=x4",
                "postgres://db/gw?Pass%77ord=<redacted>",
            ),
            (
                "http://tmdb/3/movie?api_key=x5&language=en",
                "http://tmdb/3/movie?api_key=<redacted>&language=en",
            ),
            (
                "http://plex/library?X-Plex-Token=x6",
                "http://plex/library?X-Plex-Token=<redacted>",
            ),
            (
                "http://a/b?access_token=x7",
                "http://a/b?access_token=<redacted>",
            ),
            (
                "http://a/cb#token=x8&state=1",
                "http://a/cb#token=<redacted>&state=1",
            ),
            ("/items?TOKEN=x9;page=2", "/items?TOKEN=<redacted>;page=2"),
            ("/x?a+token=x12", "/x?a+token=<redacted>"),
            (
                "/x?a_very_long_parameter_name_that_goes_on_and_on_and_on_then_says_token=x13",
                "/x?a_very_long_parameter_name_that_goes_on_and_on_and_on_then_says_token=<redacted>",
            ),
            // Both at once.
            (
                "postgres://gw:x10@db/gw?password=x11",
                "postgres://gw:<redacted>@db/gw?password=<redacted>",
            ),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }

    #[test]
    fn urls_without_credentials_are_left_alone() {
        for url in [
            "sqlite://breakerbox.db",
            "sqlite::memory:",
            "sqlite:///var/lib/breakerbox/gw.db?mode=rwc",
            "postgres://gw@db:5432/gw?sslmode=disable&application_name=breakerbox",
            "http://[::1]:8080/api",
            "http://a/search?q=token&key_id=3&passenger",
        ] {
            assert!(
                matches!(redact_url(url), Cow::Borrowed(u) if u == url),
                "{url}"
            );
        }
    }

    #[test]
    fn urls_inside_a_message_are_redacted() {
        let message = r#"store.url = "postgres://gw:s3cret@db/gw?token=t0k": unsupported"#;
        assert_eq!(
            redact_urls_in(message),
            r#"store.url = "postgres://gw:<redacted>@db/gw?token=<redacted>": unsupported"#
        );
        let two = "from http://u:p1@a/x to https://b/y?api_key=k2 failed";
        assert_eq!(
            redact_urls_in(two),
            "from http://u:<redacted>@a/x to https://b/y?api_key=<redacted> failed"
        );
        let plain = "no URL here: a://";
        assert!(matches!(redact_urls_in(plain), Cow::Borrowed(_)));
    }
}
