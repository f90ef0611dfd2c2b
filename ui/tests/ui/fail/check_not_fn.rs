const DATABASE_READY: bool = true;

#[discoverable::discoverable(name = "cool_app", checks = [DATABASE_READY])]
async fn serve_app(listener: tokio::net::TcpListener, app: axum::Router) -> std::io::Result<()> {
    axum::serve(listener, app).await
}

fn main() {
    let _ = serve_app;
}
