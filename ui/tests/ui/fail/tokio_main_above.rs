use axum::{Router, routing::get};

#[tokio::main]
#[discoverable::discoverable(name = "cool_app", prefix = "/oops")]
async fn main() -> std::io::Result<()> {
    let app = Router::new().route("/", get(|| async { "home page" }));
    let listener = tokio::net::TcpListener::bind("0.0.0.0:3000").await?;
    axum::serve(listener, app).await
}
