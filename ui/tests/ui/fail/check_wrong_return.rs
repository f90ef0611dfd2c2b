async fn database_ready() -> &'static str {
    "yes"
}

#[discoverable::discoverable(name = "cool_app", checks = [database_ready])]
async fn serve_app(listener: tokio::net::TcpListener, app: axum::Router) -> std::io::Result<()> {
    axum::serve(listener, app).await
}

fn main() {
    let _ = serve_app;
}
