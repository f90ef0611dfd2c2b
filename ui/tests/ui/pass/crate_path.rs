// A crate that re-exports discoverable, as a company platform crate might.
mod platform {
    pub use ::discoverable;
}

#[platform::discoverable::discoverable(name = "cool_app", crate = "crate::platform::discoverable")]
async fn serve_app(listener: tokio::net::TcpListener, app: axum::Router) -> std::io::Result<()> {
    crate::platform::discoverable::serve(listener, app).await
}

#[platform::discoverable::discoverable(name = "other_app", crate = "crate::platform::discoverable")]
async fn serve_other(listener: tokio::net::TcpListener, app: axum::Router) -> std::io::Result<()> {
    axum::serve(listener, app).await
}

fn main() {
    let _ = serve_app;
    let _ = serve_other;
}
