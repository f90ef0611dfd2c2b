#[discoverable::discoverable(name = "cool_app", meta("consul-version" = "1"))]
async fn serve_app(listener: tokio::net::TcpListener, app: axum::Router) -> std::io::Result<()> {
    axum::serve(listener, app).await
}

fn main() {
    let _ = serve_app;
}
