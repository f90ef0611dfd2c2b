#[discoverable::discoverable(name = "cool_app")]
async fn serve_app(listener: tokio::net::TcpListener, app: axum::Router) -> std::io::Result<()> {
    axum::serve(listener, app).await
}

#[test]
fn compiles() {
    let _ = serve_app;
}
