// Serve calls inside blocks, closures, async blocks and macro arguments are all found.
#[discoverable::discoverable(name = "cool_app")]
async fn serve_app(listener: tokio::net::TcpListener, app: axum::Router) -> std::io::Result<()> {
    let server = async move {
        let serve = |listener, app| axum::serve(listener, app);
        serve(listener, app).await
    };
    tokio::spawn(server).await.expect("server task")
}

#[discoverable::discoverable(name = "other_app")]
async fn serve_until_signal(
    listener: tokio::net::TcpListener,
    app: axum::Router,
) -> std::io::Result<()> {
    tokio::select! {
        result = axum::serve(listener, app) => result,
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

#[test]
fn compiles() {
    let _ = serve_app;
    let _ = serve_until_signal;
}
