//! What an entry point (axum's [`serve`](crate::serve), tonic's `grpc::serve`) hands the
//! lifecycle, as one value: the server to start, how Consul checks it, and the tags it adds.
//! The lifecycle knows nothing else of the protocol.

use std::convert::Infallible;
use std::future::{Future, IntoFuture};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::response::Response;
use axum::serve::IncomingStream;
use pin_project_lite::pin_project;
use tower_service::Service as TowerService;

use crate::instance::Instance;
use crate::layer::Discovered;

/// Ends a server gracefully when it completes.
pub(crate) type CloseSignal = Pin<Box<dyn Future<Output = ()> + Send>>;
/// A running server: ends when it has closed, gracefully or not.
pub(crate) type ServerFuture = Pin<Box<dyn Future<Output = io::Result<()>> + Send>>;

/// A server ready to start once the instance it serves is known.
pub(crate) struct Server {
    /// The listener's address.
    pub(crate) bound: io::Result<SocketAddr>,
    /// Starts serving; every connection's service is wrapped for the instance.
    pub(crate) start: Box<dyn FnOnce(Instance, CloseSignal) -> ServerFuture + Send>,
    /// How Consul checks the instance (unless the service asks for a TTL check).
    pub(crate) check: Check,
    /// Tags registered before the service's own (for gRPC, a Fabio route per served service).
    pub(crate) tags: Vec<String>,
}

/// The check Consul runs against an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Check {
    /// An HTTP `GET` of the health route on the advertised address.
    Http,
    /// A `GRPC` check (`grpc.health.v1.Health/Check`) on the advertised address, over TLS
    /// when set.
    #[cfg_attr(
        not(feature = "grpc"),
        expect(dead_code, reason = "made by the gRPC entry only")
    )]
    Grpc { tls: Option<CheckTls> },
}

/// How Consul's check and the routers reach an instance served over TLS.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CheckTls {
    /// `TLSServerName`: the name the certificate is verified for.
    pub(crate) server_name: Option<String>,
    /// `TLSSkipVerify` (and Fabio's `tlsskipverify=true`): the certificate is not verified.
    pub(crate) skip_verify: bool,
}

impl Server {
    /// Serves `make_service` on `listener` with axum's server, each connection's service in
    /// [`Discovered`], checked by Consul over HTTP.
    pub(crate) fn axum<L, M, S>(listener: L, make_service: M) -> Server
    where
        L: axum::serve::Listener<Addr = SocketAddr>,
        L::Io: NoDelay,
        M: for<'a> TowerService<IncomingStream<'a, L>, Error = Infallible, Response = S>
            + Send
            + 'static,
        for<'a> <M as TowerService<IncomingStream<'a, L>>>::Future: Send,
        S: TowerService<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
        S::Future: Send,
    {
        Server {
            bound: listener.local_addr(),
            start: Box::new(move |instance, close| {
                let make = MakeDiscovered {
                    inner: make_service,
                    instance,
                };
                Box::pin(
                    axum::serve(listener, make)
                        .with_graceful_shutdown(close)
                        .into_future(),
                )
            }),
            check: Check::Http,
            tags: Vec::new(),
        }
    }

    /// Whether the instance can probe its own health route over plain HTTP/1.1 before it
    /// registers; a server that speaks TLS reads its own health instead.
    pub(crate) fn probes_over_http(&self) -> bool {
        !matches!(self.check, Check::Grpc { tls: Some(_) })
    }
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("bound", &self.bound)
            .field("check", &self.check)
            .field("tags", &self.tags)
            .finish_non_exhaustive()
    }
}

/// Connections that take `TCP_NODELAY` as they are accepted.
pub(crate) trait NoDelay {
    /// Sets `TCP_NODELAY` where it is not set yet.
    fn no_delay(&self);
}

impl NoDelay for tokio::net::TcpStream {
    fn no_delay(&self) {
        // Replies go out as they are written, as with tonic's server and Go's: with Nagle's
        // algorithm on, HTTP/2's small frames wait for the peer's delayed ACK (about 40 ms
        // on the first call of a connection).
        if let Err(e) = self.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY on an accepted connection");
        }
    }
}

/// Wraps every connection's service in [`Discovered`].
#[derive(Clone, Debug)]
struct MakeDiscovered<M> {
    inner: M,
    instance: Instance,
}

impl<'a, L, M, S> TowerService<IncomingStream<'a, L>> for MakeDiscovered<M>
where
    L: axum::serve::Listener,
    L::Io: NoDelay,
    M: TowerService<IncomingStream<'a, L>, Error = Infallible, Response = S>,
{
    type Response = Discovered<S>;
    type Error = Infallible;
    type Future = MakeFuture<M::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, stream: IncomingStream<'a, L>) -> Self::Future {
        stream.io().no_delay();
        MakeFuture {
            inner: self.inner.call(stream),
            instance: Some(self.instance.clone()),
        }
    }
}

pin_project! {
    struct MakeFuture<F> {
        #[pin]
        inner: F,
        instance: Option<Instance>,
    }
}

impl<F, S> Future for MakeFuture<F>
where
    F: Future<Output = Result<S, Infallible>>,
{
    type Output = Result<Discovered<S>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Ok(inner) = std::task::ready!(this.inner.poll(cx));
        let instance = this
            .instance
            .take()
            .expect("MakeFuture polled after completion");
        Poll::Ready(Ok(Discovered::for_connection(inner, instance)))
    }
}
