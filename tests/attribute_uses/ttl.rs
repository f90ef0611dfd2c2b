#[discoverable::discoverable(
    name = "cool_app",
    prefix = "/oops",
    ttl = "15s",
    deregister_after = "5m"
)]
async fn serve_app(listener: tokio::net::TcpListener, app: axum::Router) -> std::io::Result<()> {
    axum::serve(listener, app).await
}

#[test]
fn compiles() {
    let _ = serve_app;
}
