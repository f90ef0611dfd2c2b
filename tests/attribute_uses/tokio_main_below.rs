use axum::{Router, routing::get};

#[discoverable::discoverable(name = "cool_app", prefix = "/oops")]
#[tokio::main]
async fn main() -> std::io::Result<()> {
    let app = Router::new().route("/", get(|| async { "home page" }));
    // The test only needs the program to compile and start.
    if std::env::var_os("DISCOVERABLE_UI_SERVE").is_none() {
        return Ok(());
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    axum::serve(listener, app).await
}

#[test]
fn main_starts() {
    main().expect("`main` returns Ok");
}
