//! Loopback ports for servers a test starts (the gateway binary, PostgreSQL).

use std::net::TcpListener;

/// A 127.0.0.1 port free when asked (the server binds it right after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}
