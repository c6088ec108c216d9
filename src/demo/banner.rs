//! What `breakerbox demo` prints at start: the URLs to watch and what each upstream does.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::config::{Config, Fallback, Role};

use super::{Behaviour, loopback_ip};

/// The demo's start banner for `config`: the gateway's URL, the commands to watch it with (the
/// viewer token of the configuration in the curl lines) and one line per upstream with its
/// behaviour and fallback.
pub fn banner(config: &Config) -> String {
    let base = base_url(config.server.listen);
    let token = config
        .admin
        .tokens
        .iter()
        .filter(|t| t.role.allows(Role::Viewer))
        .min_by_key(|t| t.role)
        .map_or("TOKEN", |t| t.secret.expose());
    let auth = format!("-H 'Authorization: Bearer {token}'");
    let mut out = String::new();
    let _ = writeln!(
        out,
        "breakerbox demo: gateway on {base}, misbehaving upstreams on loopback"
    );
    let _ = writeln!(
        out,
        "Breakers trip, fall back and recover within a minute. Ctrl-C stops."
    );
    let _ = writeln!(out);
    let _ = writeln!(out, "Watch:");
    let _ = writeln!(out, "  curl {base}/health/detailed");
    let _ = writeln!(out, "  curl {auth} {base}/admin/breakers");
    let _ = writeln!(out, "  curl -N {auth} {base}/admin/events");
    let _ = writeln!(out, "  curl {base}/metrics");
    let _ = writeln!(
        out,
        "  BREAKERBOX_TOKEN={token} breakerbox status --url {base}"
    );
    let _ = writeln!(out);
    let _ = writeln!(out, "Upstreams (proxied at {base}/proxy/NAME/...):");
    let width = config.upstreams.keys().map(String::len).max().unwrap_or(0);
    for (name, upstream) in &config.upstreams {
        let url = &upstream.url;
        let what = if loopback_ip(url.host()).is_some() {
            Behaviour::for_name(name, upstream.call_timeout).describe()
        } else {
            "not loopback: the real upstream, left alone".to_owned()
        };
        let fallback = match &upstream.fallback {
            Fallback::Cache { .. } => "cache",
            Fallback::Degraded { .. } => "degraded answer",
            Fallback::Queue => "queue and replay",
            Fallback::Error => "503 circuit_open",
        };
        let _ = writeln!(
            out,
            "  {name:<width$}  {:<21}  {what}; fallback: {fallback}",
            format!("{}:{}", url.host(), url.port()),
        );
    }
    out
}

/// The URL clients use for `listen`: a wildcard address is reached on loopback.
fn base_url(listen: SocketAddr) -> String {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, listen.port()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_listen_is_reached_on_loopback() {
        assert_eq!(
            base_url("0.0.0.0:8080".parse().expect("addr")),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            base_url("[::]:9000".parse().expect("addr")),
            "http://[::1]:9000"
        );
        assert_eq!(
            base_url("127.0.0.1:8080".parse().expect("addr")),
            "http://127.0.0.1:8080"
        );
    }
}
