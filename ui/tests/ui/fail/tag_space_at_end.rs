#[discoverable::discoverable(name = "cool_app", tags = ["blue green", "v1 "])]
async fn serve_app(listener: tokio::net::TcpListener, app: axum::Router) -> std::io::Result<()> {
    axum::serve(listener, app).await
}

fn main() {
    let _ = serve_app;
}
