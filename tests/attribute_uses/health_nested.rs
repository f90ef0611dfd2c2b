// A `/health` route nested under a prefix is `/api/health`: the health route the attribute
// adds shadows nothing, so it compiles (a `/health` route of the app itself does not: ui/).
use axum::{Router, routing::get};

#[discoverable::discoverable(name = "cool_app")]
async fn serve_app(listener: tokio::net::TcpListener) -> std::io::Result<()> {
    let admin = Router::new().route("/health", get(|| async { "admin's own" }));
    let app = Router::new()
        .nest(
            "/api",
            Router::new().route("/health", get(|| async { "api's own" })),
        )
        .nest("/admin", admin);
    axum::serve(listener, app).await
}

#[test]
fn compiles() {
    let _ = serve_app;
}
