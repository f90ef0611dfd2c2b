use std::net::SocketAddr;

use axum::{Router, extract::ConnectInfo, routing::get};

#[discoverable::discoverable(name = "cool_app")]
async fn serve_app(listener: tokio::net::TcpListener) -> std::io::Result<()> {
    let app = Router::new().route(
        "/",
        get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.to_string() }),
    );
    ::axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await
}

#[test]
fn compiles() {
    let _ = serve_app;
}
