#[discoverable::discoverable(name = "cool_app")]
#[tokio::main]
async fn main() -> std::io::Result<()> {
    let listener = tokio::net::UnixListener::bind("/tmp/cool_app.sock")?;
    axum::serve(listener, axum::Router::new()).await
}
