//! A gRPC greeter served with the attribute, and a client calling it through a channel
//! balanced over Consul's passing instances.
//!
//! ```sh
//! cargo run -p discoverable-devagent -- --addr 127.0.0.1:8500 &   # or a real Consul agent
//! BIND_ADDR=127.0.0.1:50051 cargo run --example grpc
//! ```
//!
//! Listens where `BIND_ADDR` says (default `0.0.0.0:50051`) and prints `listening on
//! http://ADDR` once bound. Once the instance is registered, the client greets it three times
//! through `Discovery::grpc_channel("greeter")` and prints the replies; the server keeps
//! serving until SIGTERM or Ctrl-C, which deregister it and drain the calls in flight. Start
//! more copies on other ports and the client's calls spread over them.

#[path = "support/greeter.rs"]
mod greeter;

use discoverable::Discovery;
use discoverable::grpc::Routes;
use greeter::{Greeter, GreeterClient};

#[discoverable::discoverable(name = "greeter", grpc)]
async fn serve_greeter(listener: tokio::net::TcpListener) -> std::io::Result<()> {
    let instance = listener.local_addr()?.to_string();
    discoverable::serve(
        listener,
        Routes::new(Greeter {
            instance,
            serving: None,
        }),
    )
    .await
}

/// Greets the service three times through the balanced channel, once Consul lists it.
async fn greet() -> Result<(), Box<dyn std::error::Error>> {
    let discovery = Discovery::from_env()?;
    let mut watch = discovery.watch("greeter").start();
    watch.wait_for(|set| !set.is_empty()).await;
    let mut client = GreeterClient::new(discovery.grpc_channel("greeter"));
    for name in ["Ada", "Grace", "Barbara"] {
        println!("{}", client.say_hello(name).await?.message);
    }
    Ok(())
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let addr = std::env::var("BIND_ADDR").unwrap_or_else(|_| "0.0.0.0:50051".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    let server = tokio::spawn(serve_greeter(listener));
    if let Err(e) = greet().await {
        eprintln!("the client could not greet the service: {e}");
    }
    server.await.map_err(std::io::Error::other)?
}
