#[discoverable::discoverable(
    name = "cool app",
    prefix = "oops",
    interval = "soon",
    port = 3000,
    strip = "yes"
)]
async fn serve_app(listener: tokio::net::TcpListener, app: axum::Router) -> std::io::Result<()> {
    axum::serve(listener, app).await
}

fn main() {
    let _ = serve_app;
}
