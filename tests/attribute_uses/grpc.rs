//! `grpc`: the serve call in the body serves tonic services through `discoverable::grpc`.

#[path = "../../examples/support/greeter.rs"]
mod greeter;

use discoverable::grpc::Routes;
use greeter::Greeter;

#[discoverable::discoverable(name = "greeter", grpc, prefix = "/greeter", interval = "20s")]
async fn serve_greeter(listener: tokio::net::TcpListener) -> std::io::Result<()> {
    discoverable::serve(
        listener,
        Routes::new(Greeter {
            instance: "a".into(),
            serving: None,
        }),
    )
    .await
}

#[test]
fn compiles() {
    let _ = serve_greeter;
}
