//! The same service without the attribute: the builder, `DiscoveryLayer`'s health route, and
//! `discoverable::serve`, with the check chosen at run time.
//!
//! ```sh
//! BIND_ADDR=127.0.0.1:3000 cargo run --example layer            # HTTP check
//! BIND_ADDR=127.0.0.1:3000 CHECK_TTL=6s cargo run --example layer  # TTL check kept alive by the runtime
//! ```
//!
//! `GET /admin/degrade` and `GET /admin/restore` set the instance's health by hand through its
//! [`discoverable::Instance`] handle (Consul: warning, so Fabio stops routing to it).
//! `GET /events` is a server-sent event stream, a tick a second, that ends cleanly with a last
//! `bye` event when shutdown begins (`Instance::shutting_down`), so a client sees its end
//! instead of a cut connection and can reconnect to another instance.

use std::convert::Infallible;
use std::time::Duration;

use axum::{Router, body::Body, extract::State, response::IntoResponse, routing::get};
use discoverable::{Health, Instance, Service};
use tokio::sync::mpsc;
use tokio_stream::{StreamExt as _, wrappers::ReceiverStream};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut builder = Service::builder("cool_app").prefix("/oops").tag("no-macro");
    if let Ok(ttl) = std::env::var("CHECK_TTL") {
        builder = builder.ttl(humantime_duration(&ttl)?);
    }
    let service = builder.build()?;
    // The instance this process runs, minted before serving so the handlers can hold it.
    let instance = service.new_instance();
    let app = Router::new()
        .route("/", get(|| async { "home page" }))
        .route("/admin/degrade", get(degrade))
        .route("/admin/restore", get(restore))
        .route("/events", get(events))
        .with_state(instance.clone());

    let addr = std::env::var("BIND_ADDR").unwrap_or_else(|_| "0.0.0.0:3000".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    discoverable::serve(instance, listener, app).await?;
    Ok(())
}

async fn degrade(State(instance): State<Instance>) -> String {
    instance.set_health(Health::Degraded);
    format!("{} degraded\n", instance.id())
}

async fn restore(State(instance): State<Instance>) -> String {
    instance.clear_health();
    format!("{} restored\n", instance.id())
}

/// Ticks until shutdown begins, then a last event; the stream ends with it.
async fn events(State(instance): State<Instance>) -> impl IntoResponse {
    let (tx, rx) = mpsc::channel(4);
    let shutting_down = instance.shutting_down();
    tokio::spawn(async move {
        tokio::pin!(shutting_down);
        let mut ticks = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                () = &mut shutting_down => {
                    let _ = tx.send("event: bye\ndata: shutting down\n\n").await;
                    return;
                }
                _ = ticks.tick() => {
                    if tx.send("data: tick\n\n").await.is_err() {
                        return; // the client went away
                    }
                }
            }
        }
    });
    (
        [("content-type", "text/event-stream")],
        Body::from_stream(ReceiverStream::new(rx).map(Ok::<_, Infallible>)),
    )
}

fn humantime_duration(text: &str) -> Result<std::time::Duration, String> {
    let secs = text
        .strip_suffix('s')
        .and_then(|n| n.parse::<u64>().ok())
        .ok_or_else(|| format!("CHECK_TTL={text:?}: expected whole seconds such as \"6s\""))?;
    Ok(std::time::Duration::from_secs(secs))
}
