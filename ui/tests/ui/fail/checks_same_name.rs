mod db {
    pub async fn ready() -> bool {
        true
    }
}

mod cache {
    pub async fn ready() -> bool {
        true
    }
}

#[discoverable::discoverable(name = "cool_app", checks = [db::ready, cache::ready])]
async fn serve_app(listener: tokio::net::TcpListener, app: axum::Router) -> std::io::Result<()> {
    axum::serve(listener, app).await
}

fn main() {
    let _ = serve_app;
}
