#[discoverable::discoverable(name = "cool_app")]
async fn serve_app(listener: tokio::net::TcpListener, app: axum::Router) -> std::io::Result<()> {
    let service = discoverable::Service::builder("cool_app").build().unwrap();
    discoverable::serve(service, listener, app).await
}

fn main() {
    let _ = serve_app;
}
