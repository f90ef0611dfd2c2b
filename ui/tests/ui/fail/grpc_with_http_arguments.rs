#[discoverable::discoverable(name = "greeter", grpc, health = "/up", prefix = "/g", strip = true, ttl = "15s")]
async fn serve_greeter(listener: tokio::net::TcpListener, app: axum::Router) -> std::io::Result<()> {
    discoverable::serve(listener, app).await
}

fn main() {
    let _ = serve_greeter;
}
