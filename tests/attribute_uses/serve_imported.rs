//! A `serve` imported inside the function is recognised, under its own name or another, and
//! the import needs no `#[allow(unused_imports)]` of the user's.

#[discoverable::discoverable(name = "cool_app")]
async fn imported(listener: tokio::net::TcpListener, app: axum::Router) -> std::io::Result<()> {
    use axum::serve;
    serve(listener, app).await
}

#[discoverable::discoverable(name = "cool_app")]
async fn renamed(listener: tokio::net::TcpListener, app: axum::Router) -> std::io::Result<()> {
    use discoverable::serve as run;
    run(listener, app).await
}

#[discoverable::discoverable(name = "cool_app", health = "/up")]
async fn own_health_route(listener: tokio::net::TcpListener) -> std::io::Result<()> {
    // With the health route moved to /up, /health is the app's own.
    let app = axum::Router::new().route("/health", axum::routing::get(|| async { "mine" }));
    axum::serve(listener, app).await
}

#[test]
fn compiles() {
    let _ = (imported, renamed, own_health_route);
}
