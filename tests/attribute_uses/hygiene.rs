// The service description lives in a local the user's code can neither see nor shadow.
#[discoverable::discoverable(name = "cool_app")]
async fn serve_app(listener: tokio::net::TcpListener, app: axum::Router) -> std::io::Result<()> {
    let __discoverable_service = "the user's own variable";
    let _ = __discoverable_service.len();
    axum::serve(listener, app).await
}

#[test]
fn compiles() {
    let _ = serve_app;
}
