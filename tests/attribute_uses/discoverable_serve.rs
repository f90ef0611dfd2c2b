#[discoverable::discoverable(name = "cool_app")]
async fn serve_app(listener: tokio::net::TcpListener, app: axum::Router) -> std::io::Result<()> {
    discoverable::serve(listener, app).await
}

#[discoverable::discoverable(name = "other_app")]
async fn serve_other(listener: tokio::net::TcpListener, app: axum::Router) -> std::io::Result<()> {
    ::discoverable::serve(listener, app)
        .with_graceful_shutdown(std::future::pending())
        .await
}

#[test]
fn compiles() {
    let _ = serve_app;
    let _ = serve_other;
}
