#[discoverable::discoverable(name = "cool_app")]
async fn serve_app(listener: tokio::net::TcpListener, app: axum::Router) -> std::io::Result<()> {
    axum::serve(listener, app.into_make_service()).await
}

#[test]
fn compiles() {
    let _ = serve_app;
}
