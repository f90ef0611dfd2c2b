//! The `helloworld.Greeter` gRPC service, written against tonic's server and client building
//! blocks with its two messages declared by hand: what `tonic-prost-build` generates from the
//! `.proto` below, kept this small so the examples and tests need neither `protoc` nor a build
//! script.
//!
//! ```proto
//! syntax = "proto3";
//! package helloworld;
//! service Greeter {
//!   rpc SayHello (HelloRequest) returns (HelloReply);
//!   // `count` replies, `pause_ms` apart; with `count` 0, replies until shutdown begins.
//!   rpc SayHellos (HelloRequest) returns (stream HelloReply);
//! }
//! message HelloRequest { string name = 1; uint32 count = 2; uint32 pause_ms = 3; }
//! message HelloReply { string message = 1; }
//! ```

#![allow(dead_code)]

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio_stream::Stream;
use tonic::server::NamedService;
use tonic_prost::ProstCodec;

/// `helloworld.HelloRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HelloRequest {
    /// Who to greet.
    #[prost(string, tag = "1")]
    pub name: String,
    /// How many replies `SayHellos` streams; 0: until the server's shutdown begins.
    #[prost(uint32, tag = "2")]
    pub count: u32,
    /// Milliseconds between them.
    #[prost(uint32, tag = "3")]
    pub pause_ms: u32,
}

/// `helloworld.HelloReply`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HelloReply {
    /// The greeting, naming the instance that answered.
    #[prost(string, tag = "1")]
    pub message: String,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The server side; `instance` names who answers in every reply.
#[derive(Clone)]
pub struct Greeter {
    pub instance: String,
    /// The discoverable instance serving it: an endless `SayHellos` (count 0) ends with a last
    /// reply when its shutdown begins. Without it an endless stream goes on until it is cut.
    pub serving: Option<discoverable::Instance>,
}

impl NamedService for Greeter {
    const NAME: &'static str = "helloworld.Greeter";
}

impl tower::Service<http::Request<tonic::body::Body>> for Greeter {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let greeter = self.clone();
        match request.uri().path() {
            "/helloworld.Greeter/SayHello" => Box::pin(async move {
                let mut grpc = tonic::server::Grpc::new(ProstCodec::default());
                Ok(grpc.unary(SayHello(greeter), request).await)
            }),
            "/helloworld.Greeter/SayHellos" => Box::pin(async move {
                let mut grpc = tonic::server::Grpc::new(ProstCodec::default());
                Ok(grpc.server_streaming(SayHellos(greeter), request).await)
            }),
            _ => Box::pin(async { Ok(tonic::Status::unimplemented("no such method").into_http()) }),
        }
    }
}

struct SayHello(Greeter);

impl tonic::server::UnaryService<HelloRequest> for SayHello {
    type Response = HelloReply;
    type Future = BoxFuture<Result<tonic::Response<HelloReply>, tonic::Status>>;

    fn call(&mut self, request: tonic::Request<HelloRequest>) -> Self::Future {
        let message = format!("hello {} from {}", request.get_ref().name, self.0.instance);
        Box::pin(async move { Ok(tonic::Response::new(HelloReply { message })) })
    }
}

struct SayHellos(Greeter);

type Replies = Pin<Box<dyn Stream<Item = Result<HelloReply, tonic::Status>> + Send>>;

impl tonic::server::ServerStreamingService<HelloRequest> for SayHellos {
    type Response = HelloReply;
    type ResponseStream = Replies;
    type Future = BoxFuture<Result<tonic::Response<Replies>, tonic::Status>>;

    fn call(&mut self, request: tonic::Request<HelloRequest>) -> Self::Future {
        let HelloRequest {
            name,
            count,
            pause_ms,
        } = request.into_inner();
        let instance = self.0.instance.clone();
        let pause = Duration::from_millis(pause_ms.into());
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        if count == 0 {
            // Endless: until shutdown begins, then a last reply, and the stream ends with
            // status OK instead of being cut at the drain's bound.
            let shutting_down = self.0.serving.as_ref().map(|s| s.shutting_down());
            tokio::spawn(async move {
                let shutting_down = async move {
                    match shutting_down {
                        Some(shutting_down) => shutting_down.await,
                        None => std::future::pending().await,
                    }
                };
                tokio::pin!(shutting_down);
                for n in 1.. {
                    let message = format!("hello {name} ({n}) from {instance}");
                    if tx.send(Ok(HelloReply { message })).await.is_err() {
                        return;
                    }
                    tokio::select! {
                        () = &mut shutting_down => break,
                        () = tokio::time::sleep(pause) => {}
                    }
                }
                let message = format!("goodbye {name} from {instance}: shutting down");
                let _ = tx.send(Ok(HelloReply { message })).await;
            });
        } else {
            tokio::spawn(async move {
                for n in 1..=count {
                    let message = format!("hello {name} ({n} of {count}) from {instance}");
                    if tx.send(Ok(HelloReply { message })).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(pause).await;
                }
            });
        }
        let replies: Replies = Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx));
        Box::pin(async move { Ok(tonic::Response::new(replies)) })
    }
}

/// The client side, on any tonic channel (a balanced one from `Discovery::grpc_channel`).
#[derive(Clone)]
pub struct GreeterClient {
    grpc: tonic::client::Grpc<tonic::transport::Channel>,
}

impl GreeterClient {
    pub fn new(channel: tonic::transport::Channel) -> Self {
        GreeterClient {
            grpc: tonic::client::Grpc::new(channel),
        }
    }

    /// `SayHello`.
    pub async fn say_hello(&mut self, name: &str) -> Result<HelloReply, tonic::Status> {
        self.ready().await?;
        let request = tonic::Request::new(HelloRequest {
            name: name.to_owned(),
            ..HelloRequest::default()
        });
        let path = http::uri::PathAndQuery::from_static("/helloworld.Greeter/SayHello");
        let reply = self
            .grpc
            .unary(request, path, ProstCodec::default())
            .await?;
        Ok(reply.into_inner())
    }

    /// `SayHellos`: `count` replies, `pause` apart (0: until the server's shutdown begins).
    pub async fn say_hellos(
        &mut self,
        name: &str,
        count: u32,
        pause: Duration,
    ) -> Result<tonic::Streaming<HelloReply>, tonic::Status> {
        self.ready().await?;
        let request = tonic::Request::new(HelloRequest {
            name: name.to_owned(),
            count,
            pause_ms: pause.as_millis().try_into().unwrap_or(u32::MAX),
        });
        let path = http::uri::PathAndQuery::from_static("/helloworld.Greeter/SayHellos");
        let replies = self
            .grpc
            .server_streaming(request, path, ProstCodec::default())
            .await?;
        Ok(replies.into_inner())
    }

    async fn ready(&mut self) -> Result<(), tonic::Status> {
        self.grpc
            .ready()
            .await
            .map_err(|e| tonic::Status::unavailable(format!("no instance ready: {e}")))
    }
}
