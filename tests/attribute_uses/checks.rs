use discoverable::Health;

async fn database_ready() -> bool {
    true
}

mod health {
    pub async fn queue() -> discoverable::Health {
        discoverable::Health::Up
    }

    // A plain fn returning a future: `checks` takes it as it takes an async fn.
    #[allow(clippy::manual_async_fn)]
    pub fn cache() -> impl std::future::Future<Output = bool> + Send {
        async { true }
    }
}

async fn r#disk() -> Health {
    Health::from(true)
}

#[discoverable::discoverable(
    name = "cool_app",
    checks = [database_ready, health::queue, health::cache, r#disk],
)]
async fn serve_app(listener: tokio::net::TcpListener, app: axum::Router) -> std::io::Result<()> {
    axum::serve(listener, app).await
}

#[test]
fn compiles() {
    let _ = serve_app;
}
