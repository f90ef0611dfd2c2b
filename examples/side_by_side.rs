//! The seed's situation: a `monolith` and its rewrite `v2` on one machine, `/v1/...` routed to
//! the monolith and `/v2/...` to v2, without hand-editing a proxy.
//!
//! Each service is an async function with its own `#[discoverable]` attribute; a prefix router
//! built on the public `Discovery` API routes by the `urlprefix-` tags it reads from Consul.
//! In production that router is Fabio: point it at the same Consul
//! (`fabio -registry.consul.addr $CONSUL_HTTP_ADDR`) and it builds the same table.
//!
//! ```sh
//! cargo run -p discoverable-devagent -- --addr 127.0.0.1:8500 &
//! cargo run --example side_by_side
//! curl localhost:9999/v1/users    # answered by the monolith
//! curl localhost:9999/v2/users    # answered by v2
//! ```
//!
//! Addresses come from `MONOLITH_ADDR` (default `0.0.0.0:9001`), `V2_ADDR` (`0.0.0.0:9002`) and
//! `ROUTER_ADDR` (`0.0.0.0:9999`); Consul from `CONSUL_HTTP_ADDR`. Each prints
//! `<name> listening on http://ADDR` once bound. SIGTERM or Ctrl-C deregisters both, then
//! stops.

#[path = "support/router.rs"]
mod router;

use axum::{Router, routing::get};
use std::future::IntoFuture;

use tokio::net::TcpListener;

fn addr(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_owned())
}

async fn bind(name: &str, var: &str, default: &str) -> std::io::Result<TcpListener> {
    let listener = TcpListener::bind(addr(var, default)).await?;
    println!("{name} listening on http://{}", listener.local_addr()?);
    Ok(listener)
}

/// The monolith: everything under `/v1`.
#[discoverable::discoverable(name = "monolith", prefix = "/v1", meta(generation = "1"))]
async fn monolith() -> std::io::Result<()> {
    let app = Router::new()
        .fallback(|uri: axum::http::Uri| async move { format!("monolith: {}\n", uri.path()) });
    axum::serve(
        bind("monolith", "MONOLITH_ADDR", "0.0.0.0:9001").await?,
        app,
    )
    .await
}

/// The rewrite: everything under `/v2`; Fabio strips nothing, so it sees `/v2/...` paths.
#[discoverable::discoverable(name = "v2", prefix = "/v2", meta(generation = "2"))]
async fn v2() -> std::io::Result<()> {
    let app = Router::new()
        .route("/v2/hello", get(|| async { "hello from v2\n" }))
        .fallback(|uri: axum::http::Uri| async move { format!("v2: {}\n", uri.path()) });
    axum::serve(bind("v2", "V2_ADDR", "0.0.0.0:9002").await?, app).await
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let discovery = discoverable::Discovery::from_env()?;
    let router = router::PrefixRouter::new(discovery).app();
    let listener = bind("router", "ROUTER_ADDR", "0.0.0.0:9999").await?;
    // Both services stop on SIGTERM / Ctrl-C (deregister, grace period, drain); the router
    // stops with them.
    let services = async {
        let (m, v) = tokio::join!(monolith(), v2());
        m.and(v)
    };
    tokio::select! {
        done = services => done?,
        done = axum::serve(listener, router).into_future() => done?,
    }
    Ok(())
}
