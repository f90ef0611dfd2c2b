// Any async fn that serves, a method included.
struct App {
    router: axum::Router,
}

impl App {
    #[discoverable::discoverable(name = "cool_app")]
    async fn serve(self, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        axum::serve(listener, self.router).await
    }
}

#[test]
fn compiles() {
    let _app = App {
        router: axum::Router::new(),
    };
    let _ = App::serve;
}
