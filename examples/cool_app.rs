//! The seed service: `cool_app`, routed by Fabio under `/oops`.
//!
//! Like the Go service it replaces, its handler answers `home page` on every path, so a
//! router forwarding `/oops` (or anything else) gets an answer.
//!
//! ```sh
//! cargo run -p discoverable-devagent -- --addr 127.0.0.1:8500 &   # or a real Consul agent
//! BIND_ADDR=127.0.0.1:3000 cargo run --example cool_app
//! curl localhost:8500/v1/health/service/cool_app?passing
//! ```
//!
//! `GET /slow?ms=N` answers after N milliseconds (default 1000), to watch shutdown drain a
//! request in flight.
//!
//! Listens where `BIND_ADDR` says (default `0.0.0.0:3000`, the seed's address) and prints
//! `listening on http://ADDR` once bound. SIGTERM or Ctrl-C deregisters, then drains.

use axum::{Router, routing::get};

async fn home() -> &'static str {
    "home page"
}

#[derive(serde::Deserialize)]
struct Slow {
    ms: Option<u64>,
}

async fn slow(axum::extract::Query(q): axum::extract::Query<Slow>) -> &'static str {
    tokio::time::sleep(std::time::Duration::from_millis(q.ms.unwrap_or(1000))).await;
    "slow page"
}

#[discoverable::discoverable(name = "cool_app", prefix = "/oops", meta(version = "1"))]
#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let app = Router::new()
        .route("/", get(home))
        .route("/slow", get(slow))
        .fallback(home);
    let addr = std::env::var("BIND_ADDR").unwrap_or_else(|_| "0.0.0.0:3000".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await
}
