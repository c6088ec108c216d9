//! A loopback peer for `scripts/bench-proxy-tracing`: accepts OTLP/HTTP exports on
//! `POST /v1/traces` and discards them, and answers every other request with `200 ok`, so one
//! process is both the trace receiver and the upstream behind the gateway.
//!
//! Run with: cargo run --release --example otlp_sink -- 127.0.0.1:4318

use axum::Router;
use axum::routing::{any, post};

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:4318".to_owned());
    let app = Router::new()
        .route("/v1/traces", post(|| async { "" }))
        .fallback(any(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("otlp_sink listening on {addr}");
    axum::serve(listener, app).await
}
