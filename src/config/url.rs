//! Validated addresses: an upstream's `http(s)://` base URL and the store's database URL.

use std::fmt;

use url::{ParseError, Url};

use super::redact::redact_url;

/// The base URL of an upstream: `http` or `https`, a host, an optional port and base path; no
/// query, fragment or credentials. A trailing `/` is dropped so paths can be appended.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct UpstreamUrl {
    url: String,
    https: bool,
    host: String,
    port: u16,
    path_start: usize,
}

impl UpstreamUrl {
    /// Parses and checks `text` with the `url` crate; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<UpstreamUrl, String> {
        // The parser quietly drops such characters; a URL holding them is a typo.
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("must not contain spaces or control characters".into());
        }
        let not_a_url = || "not a URL: expected http://host[:port][/path]".to_owned();
        let (_, rest) = text.split_once("://").ok_or_else(not_a_url)?;
        let parsed = Url::parse(text).map_err(|e| match e {
            ParseError::EmptyHost => "has no host".to_owned(),
            ParseError::InvalidPort => {
                let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
                let port = authority.rsplit_once(':').map_or("", |(_, p)| p);
                format!("port `{port}` is not a number from 1 to 65535")
            }
            ParseError::InvalidIpv6Address => "holds an invalid IPv6 address".to_owned(),
            ParseError::RelativeUrlWithoutBase => not_a_url(),
            other => format!("not a valid URL ({other})"),
        })?;
        let https = match parsed.scheme() {
            "http" => false,
            "https" => true,
            other => {
                return Err(format!(
                    "scheme `{other}` is not supported; use http or https"
                ));
            }
        };
        if parsed.query().is_some() {
            return Err("must not have a query (the caller's query is forwarded)".into());
        }
        if parsed.fragment().is_some() {
            return Err("must not have a fragment".into());
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err("must not carry credentials (user@host)".into());
        }
        let host = parsed.host_str().unwrap_or_default();
        if host.is_empty() {
            return Err("has no host".into());
        }
        // The URL standard lets through characters no host name holds (`$`, `!`, ...).
        if !host.starts_with('[')
            && !host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        {
            return Err(format!("`{host}` is not a valid host name"));
        }
        let port = match parsed.port_or_known_default() {
            Some(0) => return Err("port `0` is not a number from 1 to 65535".into()),
            Some(port) => port,
            None if https => 443,
            None => 80,
        };
        let url = parsed.as_str().trim_end_matches('/').to_owned();
        let path_start = url.len() - parsed.path().trim_end_matches('/').len();
        Ok(UpstreamUrl {
            url,
            https,
            host: host.to_owned(),
            port,
            path_start,
        })
    }

    /// The URL as text, without a trailing `/`.
    pub fn as_str(&self) -> &str {
        &self.url
    }

    /// `"https"` or `"http"`.
    pub fn scheme(&self) -> &'static str {
        if self.https { "https" } else { "http" }
    }

    /// The host name or address (an IPv6 address keeps its brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port, explicit or the scheme's default.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The base path requests are appended to: empty or `/api`-like, never ending in `/`.
    pub fn path(&self) -> &str {
        &self.url[self.path_start..]
    }
}

impl fmt::Display for UpstreamUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url)
    }
}

impl fmt::Debug for UpstreamUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UpstreamUrl({:?})", self.url)
    }
}

/// Which database a [`StoreUrl`] points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoreKind {
    /// A SQLite file (`sqlite://breakerbox.db`) or `sqlite::memory:`.
    Sqlite,
    /// A PostgreSQL server (`postgres://user@host/db`).
    Postgres,
}

/// The database URL. Display and Debug hide a password in it; [`as_str`](Self::as_str) gives the
/// real URL for connecting.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct StoreUrl {
    url: String,
    kind: StoreKind,
}

impl StoreUrl {
    /// Parses and checks `text`; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<StoreUrl, String> {
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("must not contain spaces or control characters".into());
        }
        let unsupported = "unsupported database; use sqlite://FILE or postgres://user@host/db";
        // A `/`, `?` or `#` left unencoded in a password makes the parser read a port or a
        // path there; say so instead of calling the database unsupported.
        let unencoded = "cannot be parsed: a `/`, `?` or `#` in the user name or password must be \
                         percent-encoded (`%2F`, `%3F`, `%23`)";
        let parsed = Url::parse(text).map_err(|_| {
            if text.contains('@') {
                unencoded
            } else {
                unsupported
            }
            .to_owned()
        })?;
        let names_something = parsed.host_str().is_some_and(|h| !h.is_empty())
            || !parsed.path().trim_start_matches('/').is_empty();
        let kind = match parsed.scheme() {
            "sqlite" if names_something => StoreKind::Sqlite,
            "sqlite" => return Err("names no database file (e.g. sqlite://breakerbox.db)".into()),
            "postgres" | "postgresql" if names_something => StoreKind::Postgres,
            "postgres" | "postgresql" => {
                return Err("names no server (e.g. postgres://user@localhost/breakerbox)".into());
            }
            _ => return Err(unsupported.into()),
        };
        if kind == StoreKind::Postgres {
            if parsed.path().contains('@') {
                return Err(unencoded.into());
            }
            check_postgres_parameters(&parsed)?;
        }
        // Kept as given: it is what the database driver reads.
        Ok(StoreUrl {
            url: text.to_owned(),
            kind,
        })
    }

    /// The URL as given, password included: for connecting only, never for logs.
    pub fn as_str(&self) -> &str {
        &self.url
    }

    /// SQLite or PostgreSQL.
    pub fn kind(&self) -> StoreKind {
        self.kind
    }

    /// The URL with every credential replaced by `<redacted>` ([`redact_url`]).
    pub fn redacted(&self) -> String {
        redact_url(&self.url).into_owned()
    }
}

/// The query parameters the PostgreSQL driver (sqlx) reads; it would log any other one with its
/// value, a misspelt `password` included.
const POSTGRES_PARAMETERS: [&str; 19] = [
    "sslmode",
    "ssl-mode",
    "sslrootcert",
    "ssl-root-cert",
    "ssl-ca",
    "sslcert",
    "ssl-cert",
    "sslkey",
    "ssl-key",
    "statement-cache-capacity",
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "application_name",
    "options",
    "options[NAME]",
];

fn check_postgres_parameters(url: &Url) -> Result<(), String> {
    for (name, _) in url.query_pairs() {
        let known = POSTGRES_PARAMETERS.contains(&&*name)
            || (name.starts_with("options[") && name.ends_with(']'));
        if !known {
            return Err(format!(
                "`{name}` is not a connection parameter of PostgreSQL URLs; known: {}",
                POSTGRES_PARAMETERS.join(", ")
            ));
        }
    }
    Ok(())
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoreUrl({:?})", self.redacted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_urls_are_checked_and_normalised() {
        let url = UpstreamUrl::parse("HTTP://127.0.0.1:32400/api/").expect("valid");
        assert_eq!(url.as_str(), "http://127.0.0.1:32400/api");
        assert_eq!(
            (url.scheme(), url.host(), url.port()),
            ("http", "127.0.0.1", 32400)
        );
        assert_eq!(url.path(), "/api");
        let url = UpstreamUrl::parse("https://api.themoviedb.org").expect("valid");
        assert_eq!((url.port(), url.path()), (443, ""));
        let url = UpstreamUrl::parse("http://[::1]:8081").expect("valid");
        assert_eq!((url.host(), url.port()), ("[::1]", 8081));
        for (bad, why) in [
            ("ftp://host", "scheme `ftp`"),
            ("127.0.0.1:8080", "not a URL"),
            ("http://", "no host"),
            ("http://:80", "no host"),
            ("http://host:0", "port `0`"),
            ("http://host:99999", "port `99999`"),
            ("http://host/x?y=1", "query"),
            ("http://host/#x", "fragment"),
            ("http://u:p@host", "credentials"),
            ("http://ho st", "spaces"),
            ("http://[::g]:1", "IPv6"),
            ("http:/host", "not a URL"),
            ("http://exa$mple", "host name"),
        ] {
            let err = UpstreamUrl::parse(bad).expect_err(bad);
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn store_urls_hide_passwords() {
        let url = StoreUrl::parse("postgres://gw:s3cret@db:5432/gw?sslmode=disable").expect("ok");
        assert_eq!(url.kind(), StoreKind::Postgres);
        assert_eq!(
            url.to_string(),
            "postgres://gw:<redacted>@db:5432/gw?sslmode=disable"
        );
        assert!(!format!("{url:?}").contains("s3cret"));
        assert!(url.as_str().contains("s3cret"));
        let url = StoreUrl::parse("sqlite://breakerbox.db").expect("ok");
        assert_eq!(
            (url.kind(), url.to_string().as_str()),
            (StoreKind::Sqlite, "sqlite://breakerbox.db")
        );
        assert_eq!(
            StoreUrl::parse("sqlite::memory:").map(|u| u.kind()),
            Ok(StoreKind::Sqlite)
        );
        assert!(
            StoreUrl::parse("mysql://x")
                .expect_err("mysql")
                .contains("unsupported")
        );
        for (bad, why) in [
            ("postgres://gw:a/b@db/gw", "percent-encoded"),
            ("postgres://gw:a?b@db/gw", "percent-encoded"),
            ("postgres://gw:12/b@db/gw", "percent-encoded"),
            (
                "postgres://db/gw?passwd=x",
                "`passwd` is not a connection parameter",
            ),
            (
                "postgres://db/gw?Pass%77ord=x",
                "`Password` is not a connection parameter",
            ),
        ] {
            let err = StoreUrl::parse(bad).expect_err(bad);
            assert!(err.contains(why), "{bad}: {err}");
        }
        let url = "postgres://gw@db/gw?password=x&sslmode=require&options[statement_timeout]=5s";
        assert!(StoreUrl::parse(url).is_ok());
        assert!(
            StoreUrl::parse("sqlite://")
                .expect_err("empty")
                .contains("no database")
        );
    }
}
