// A module that re-exports discoverable, as a company platform crate might; `crate` names it
// by its path from the crate root.
mod platform {
    pub use ::discoverable;
}

#[platform::discoverable::discoverable(
    name = "cool_app",
    crate = "crate::crate_path::platform::discoverable"
)]
async fn serve_app(listener: tokio::net::TcpListener, app: axum::Router) -> std::io::Result<()> {
    crate::crate_path::platform::discoverable::serve(listener, app).await
}

#[platform::discoverable::discoverable(
    name = "other_app",
    crate = "crate::crate_path::platform::discoverable"
)]
async fn serve_other(listener: tokio::net::TcpListener, app: axum::Router) -> std::io::Result<()> {
    axum::serve(listener, app).await
}

#[test]
fn compiles() {
    let _ = serve_app;
    let _ = serve_other;
}
