use axum::serve;

#[discoverable::discoverable(name = "cool_app")]
async fn serve_app(listener: tokio::net::TcpListener, app: axum::Router) -> std::io::Result<()> {
    serve(listener, app).await
}

fn main() {
    let _ = serve_app;
}
