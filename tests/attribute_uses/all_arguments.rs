use discoverable::Health;

async fn database_ready() -> bool {
    true
}

mod queue {
    pub async fn connected() -> discoverable::Health {
        discoverable::Health::Degraded
    }
}

#[discoverable::discoverable(
    name = "cool_app",
    prefix = "example.com/oops",
    strip = true,
    tags = ["primary", "v2"],
    meta(version = "1.2.0", r#type = "web", "build-id" = "4f2a"),
    health = "/ready",
    interval = "15s",
    timeout = "1500ms",
    deregister_after = "1m30s",
    checks = [database_ready, queue::connected],
    fail_fast = true,
    crate = "::discoverable",
)]
async fn serve_app(listener: tokio::net::TcpListener, app: axum::Router) -> std::io::Result<()> {
    axum::serve(listener, app).await
}

#[test]
fn compiles() {
    let _ = serve_app;
    let _ = Health::Up;
}
