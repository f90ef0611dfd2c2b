//! `grpc`: the serve call in the body serves tonic services through `discoverable::grpc`.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::task::{Context, Poll};

use discoverable::grpc::Routes;

/// A service that answers every call `UNIMPLEMENTED`.
#[derive(Clone)]
struct Echo;

impl tonic::server::NamedService for Echo {
    const NAME: &'static str = "test.Echo";
}

impl tower::Service<http::Request<tonic::body::Body>> for Echo {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: http::Request<tonic::body::Body>) -> Self::Future {
        ready(Ok(tonic::Status::unimplemented("echo").into_http()))
    }
}

#[discoverable::discoverable(name = "greeter", grpc, prefix = "/greeter", interval = "20s")]
async fn serve_greeter(listener: tokio::net::TcpListener) -> std::io::Result<()> {
    discoverable::serve(listener, Routes::new(Echo)).await
}

#[test]
fn compiles() {
    let _ = serve_greeter;
}
