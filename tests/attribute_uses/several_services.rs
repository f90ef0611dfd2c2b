use axum::{Router, routing::get};

#[discoverable::discoverable(name = "monolith", prefix = "/v1")]
async fn monolith(listener: tokio::net::TcpListener) -> std::io::Result<()> {
    let app = Router::new().route("/", get(|| async { "v1" }));
    axum::serve(listener, app).await
}

#[discoverable::discoverable(name = "v2", prefix = "/v2", strip = true)]
async fn v2(listener: tokio::net::TcpListener) -> std::io::Result<()> {
    let app = Router::new().route("/", get(|| async { "v2" }));
    axum::serve(listener, app).await
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    // The test only needs the program to compile and start.
    if std::env::var_os("DISCOVERABLE_UI_SERVE").is_none() {
        return Ok(());
    }
    let one = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let two = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    tokio::try_join!(monolith(one), v2(two))?;
    Ok(())
}

#[test]
fn main_starts() {
    main().expect("`main` returns Ok");
}
