//! Header rules at the proxy boundary: hop-by-hop headers stay on their hop, and the upstream
//! learns who asked through `X-Forwarded-*`, as the gateway saw it unless a trusted proxy said.

use std::net::IpAddr;

use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Headers that describe one connection, never forwarded (RFC 9110 §7.6.1), besides those
/// named by `Connection` and every `Proxy-*`.
const HOP_BY_HOP: [HeaderName; 6] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// Headers that tell the upstream who asked and how; they shape answers (links, redirects) yet
/// are not in the cache key, so only the gateway or a proxy it trusts may set them.
const SAID_BY_PROXIES: [HeaderName; 4] = [
    header::FORWARDED,
    X_FORWARDED_HOST,
    X_FORWARDED_PROTO,
    X_REAL_IP,
];

/// Removes hop-by-hop headers: the fixed set, every `Proxy-*`, and every header the
/// `Connection` header names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Any header `Connection` names is only removed when `Connection` is present, so one look
    // at the names finds the usual case, nothing to remove, without a lookup per name.
    let any = headers
        .keys()
        .any(|name| HOP_BY_HOP.contains(name) || name.as_str().starts_with("proxy-"));
    if !any {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
    let proxy: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with("proxy-"))
        .cloned()
        .collect();
    for name in proxy {
        headers.remove(name);
    }
}

/// The headers to send upstream: the client's end-to-end headers without `Host` (the HTTP
/// client sets the upstream's) and `Content-Length` (recomputed from the buffered body), plus
/// `X-Forwarded-For` (the client appended), `X-Forwarded-Proto`, `X-Forwarded-Host` and
/// `X-Real-IP`. `Forwarded` and those three are the gateway's own unless `from_trusted_proxy`,
/// when what the proxy in front set is kept. Takes the incoming map over rather than copying it.
pub fn outgoing(
    mut headers: HeaderMap,
    client: Option<IpAddr>,
    from_trusted_proxy: bool,
) -> HeaderMap {
    // Read before anything is removed: `Connection` may name `X-Forwarded-For` itself.
    let forwarded_for = client.and_then(|ip| forwarded_for(&headers, ip));
    strip_hop_by_hop(&mut headers);
    let host = headers.remove(header::HOST);
    headers.remove(header::CONTENT_LENGTH);
    // One look at the names finds the usual case, none sent, without a lookup per name; past
    // it, none of them is in the map unless a trusted proxy's is kept.
    if !from_trusted_proxy && headers.keys().any(|name| SAID_BY_PROXIES.contains(name)) {
        for name in SAID_BY_PROXIES {
            headers.remove(name);
        }
    }
    let kept =
        |headers: &HeaderMap, name: &HeaderName| from_trusted_proxy && headers.contains_key(name);
    // Room for the four below, so adding them never regrows the map.
    headers.reserve(4);
    let real_ip = forwarded_for.map(|(chain, client)| {
        headers.insert(X_FORWARDED_FOR, chain);
        client
    });
    if !kept(&headers, &X_FORWARDED_PROTO) {
        // The gateway itself only speaks plain HTTP; TLS ends in front of it, which sets this.
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
    }
    if let Some(host) = host
        && !kept(&headers, &X_FORWARDED_HOST)
    {
        headers.insert(X_FORWARDED_HOST, host);
    }
    if let Some(ip) = real_ip
        && !kept(&headers, &X_REAL_IP)
    {
        headers.insert(X_REAL_IP, ip);
    }
    headers
}

/// Whether `client` is one of the `trusted` proxies.
pub(crate) fn is_trusted(trusted: &[ipnet::IpNet], client: Option<IpAddr>) -> bool {
    // The usual case, no trusted proxy, costs nothing but this check.
    !trusted.is_empty() && client.is_some_and(|ip| trusted.iter().any(|net| net.contains(&ip)))
}

/// The incoming `X-Forwarded-For` chain with `ip` appended, and `ip` alone (for `X-Real-IP`).
fn forwarded_for(incoming: &HeaderMap, ip: IpAddr) -> Option<(HeaderValue, HeaderValue)> {
    let mut prior = incoming
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .peekable();
    let client = HeaderValue::from_str(&address(ip)).ok()?;
    if prior.peek().is_none() {
        // Both headers share the one copy of the address.
        return Some((client.clone(), client));
    }
    let mut chain = prior.collect::<Vec<&str>>().join(", ");
    chain.push_str(", ");
    chain.push_str(&address(ip));
    Some((HeaderValue::from_str(&chain).ok()?, client))
}

/// `ip` as text; an IPv4 address written by hand, as `Display` goes through the formatting
/// machinery (padding and all) and took more instructions than the rest of this module.
fn address(ip: IpAddr) -> String {
    let IpAddr::V4(v4) = ip else {
        return ip.to_string();
    };
    let mut text = String::with_capacity(15);
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            text.push('.');
        }
        if octet >= 100 {
            text.push(char::from(b'0' + octet / 100));
        }
        if octet >= 10 {
            text.push(char::from(b'0' + octet / 10 % 10));
        }
        text.push(char::from(b'0' + octet % 10));
    }
    text
}

/// A header map as the records keep headers: names and raw values, in order.
/// The headers as stored pairs, without those named in `strip` (lower case).
pub(crate) fn to_pairs(headers: &HeaderMap, strip: &[String]) -> Vec<(String, Vec<u8>)> {
    headers
        .iter()
        .filter(|(name, _)| !strip.iter().any(|s| s == name.as_str()))
        .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_removed() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("connection", "keep-alive, X-Secret-Hop"),
            ("keep-alive", "timeout=5"),
            ("x-secret-hop", "1"),
            ("proxy-authorization", "Basic eA=="),
            ("proxy-connection", "close"),
            ("te", "trailers"),
            ("trailer", "x-t"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("accept", "text/plain"),
            ("authorization", "Bearer end-to-end"),
        ] {
            headers.append(name, HeaderValue::from_static(value));
        }
        strip_hop_by_hop(&mut headers);
        let left: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, ["accept", "authorization"]);
    }

    #[test]
    fn forwarded_for_appends_the_client() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("gw.local"));
        headers.insert("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("3"));
        let out = outgoing(headers, Some(IpAddr::from([127, 0, 0, 1])), false);
        assert_eq!(out["x-forwarded-for"], "10.0.0.1, 127.0.0.1");
        assert_eq!(out["x-forwarded-proto"], "http");
        assert_eq!(out["x-forwarded-host"], "gw.local");
        assert!(!out.contains_key(header::HOST));
        assert!(!out.contains_key(header::CONTENT_LENGTH));
    }

    #[test]
    fn forwarded_for_starts_a_chain_and_survives_a_connection_naming_it() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("x-forwarded-for"),
        );
        headers.append("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        headers.append("x-forwarded-for", HeaderValue::from_static("10.0.0.2"));
        let out = outgoing(headers, Some(IpAddr::from([192, 168, 10, 200])), false);
        assert_eq!(out["x-forwarded-for"], "10.0.0.1, 10.0.0.2, 192.168.10.200");
        let out = outgoing(
            HeaderMap::new(),
            Some("::1".parse().expect("an address")),
            false,
        );
        assert_eq!(out["x-forwarded-for"], "::1");
        assert!(!outgoing(HeaderMap::new(), None, false).contains_key("x-forwarded-for"));
    }

    #[test]
    fn an_ipv4_address_is_written_as_display_writes_it() {
        for octets in [
            [0, 0, 0, 0],
            [127, 0, 0, 1],
            [9, 10, 99, 100],
            [255, 255, 255, 255],
        ] {
            let ip = IpAddr::from(octets);
            assert_eq!(address(ip), ip.to_string());
        }
        for n in (0..=u32::MAX).step_by(9_999_991) {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(n));
            assert_eq!(address(ip), ip.to_string());
        }
    }
}
