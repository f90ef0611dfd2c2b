//! `serve`: the lifecycle of a discoverable instance.
//!
//! 1. Reads the listener's bound address and works out the advertised one
//!    ([`ServiceBuilder::advertise_address`](crate::ServiceBuilder::advertise_address)).
//! 2. Starts serving the app with [`DiscoveryLayer`](crate::DiscoveryLayer) added, probes its
//!    own health route once, then registers with Consul, the check already in the probed
//!    state (passing), so the instance is routable after one round trip. If Consul cannot be
//!    reached the app keeps serving and registration retries in the background (capped
//!    exponential backoff with jitter), unless `fail_fast` is set.
//! 3. While running: notices when Consul lost the registration (agent restarted without
//!    state, or an operator deregistered the instance) and registers again; in TTL mode,
//!    reports the health every third of the TTL.
//! 4. On SIGTERM, SIGINT, the user's shutdown future, or [`Instance::shutdown`]: the health
//!    route answers 503, the instance is deregistered (bounded), the grace period passes so
//!    routers drop it, the listener closes, in-flight requests finish (bounded), `serve`
//!    returns.
//!
//! If serving ends any other way (the server fails, the serve future is dropped, the serving
//! task panics), the instance is still deregistered, best effort.
//!
//! Owns the server task, the registrar task and the shutdown order; Consul calls go through
//! [`consul::Client`](crate::consul::Client).

mod address;
mod guard;
mod primary_ip;
mod probe;
mod registrar;
mod signal;

use std::convert::Infallible;
use std::fmt;
use std::future::{Future, IntoFuture};
use std::io;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::Request;
use axum::response::Response;
use axum::serve::IncomingStream;
use pin_project_lite::pin_project;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_service::Service as TowerService;
use tracing::Instrument as _;
use tracing::instrument::WithSubscriber as _;

use crate::consul::Client;
use crate::error::Error;
use crate::instance::Instance;
use crate::layer::Discovered;
use crate::service::Service;
use crate::task::AbortOnDrop;

use guard::DeregisterGuard;
use registrar::Registrar;

type ShutdownSignal = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Serves `make_service` on `listener` as a discoverable instance of `service`.
///
/// Takes what `axum::serve` takes: a `Router`, `router.into_make_service()` or
/// `router.into_make_service_with_connect_info::<SocketAddr>()`. Await it (it returns when
/// shutdown is complete), optionally after [`Serve::with_graceful_shutdown`].
///
/// ```no_run
/// use axum::{routing::get, Router};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let service = discoverable_runtime::Service::builder("cool_app").prefix("/oops").build()?;
/// let app = Router::new().route("/", get(|| async { "home page" }));
/// let listener = tokio::net::TcpListener::bind("0.0.0.0:3000").await?;
/// discoverable_runtime::serve(service, listener, app).await?;
/// # Ok(())
/// # }
/// ```
///
/// Accepted connections have `TCP_NODELAY` set, as tonic's and Go's servers do.
///
/// Serving is over TCP only: Consul's check and the routers reach the instance at an address
/// and port, so a `tokio::net::UnixListener` cannot be registered (see [`ServeListener`]).
pub fn serve<L, M, S>(service: Service, listener: L, make_service: M) -> Serve<M, S>
where
    L: ServeListener,
    M: for<'a> TowerService<IncomingStream<'a, TcpListener>, Error = Infallible, Response = S>,
{
    serve_attribute(Ok(service), listener, make_service)
}

/// The attribute's entry: the service comes from the generated builder call, made anew for
/// each serve call (so each reads the environment when it starts, and is its own instance).
///
/// A service that cannot be built here means a setting in the environment cannot be used
/// (everything the attribute itself says was checked at compile time): awaiting the serve
/// call then prints `error: invalid setting <VARIABLE>: ...` on stderr and ends the process
/// with exit code 2, as a command-line parser does with a bad flag. The process's `main`
/// could only print the error's `Debug` form, which for an `io::Error` is not a sentence.
#[doc(hidden)]
pub fn serve_attribute<L, M, S>(
    service: Result<Service, Error>,
    listener: L,
    make_service: M,
) -> Serve<M, S>
where
    L: ServeListener,
    M: for<'a> TowerService<IncomingStream<'a, TcpListener>, Error = Infallible, Response = S>,
{
    Serve {
        service,
        protocol: Protocol::Http,
        server: Server::Plain {
            listener: listener.into_tcp(),
            make_service,
        },
        shutdown: None,
        _marker: PhantomData,
    }
}

/// What an instance speaks, which decides its Consul check and its routes.
#[derive(Debug, Clone)]
pub(crate) enum Protocol {
    /// HTTP: an HTTP check on the health route (or the TTL check).
    Http,
    /// gRPC: a `GRPC` check, and a Fabio route for each of these services. The instance is
    /// claimed when the serve call is made, because its health service is built then.
    #[cfg(feature = "grpc")]
    Grpc {
        services: Vec<&'static str>,
        instance: Instance,
        /// Served over TLS: the check and the routes say so.
        tls: Option<crate::service::CheckTls>,
    },
}

/// The instance a serve call of `service` runs: the service's own the first time, a sibling
/// with an ID of its own for every serve call after that.
pub(crate) fn claim_instance(service: &Service) -> Instance {
    match service.instance() {
        first if first.claim() => first,
        served => {
            let sibling = served.sibling();
            sibling.claim();
            tracing::debug!(served = %served.id(), id = %sibling.id(), "this Service is served already; serving another instance of it");
            sibling
        }
    }
}

/// A serve call of `protocol` on `server`, for the gRPC entries.
#[cfg(feature = "grpc")]
pub(crate) fn serve_protocol<M, S>(
    service: Result<Service, Error>,
    server: Server<M>,
    protocol: Protocol,
) -> Serve<M, S> {
    Serve {
        service,
        protocol,
        server,
        shutdown: None,
        _marker: PhantomData,
    }
}

/// What a serve call serves: an app on a TCP listener, or a server its protocol starts itself
/// (gRPC over TLS, features `grpc` and `tls`).
pub(crate) enum Server<M> {
    Plain {
        listener: TcpListener,
        make_service: M,
    },
    #[cfg(all(feature = "grpc", feature = "tls"))]
    Started(Start),
}

/// Ends a server gracefully when it completes.
pub(crate) type CloseSignal = Pin<Box<dyn Future<Output = ()> + Send>>;
/// A running server: ends when it has closed, gracefully or not.
pub(crate) type ServerFuture = Pin<Box<dyn Future<Output = io::Result<()>> + Send>>;

/// A server ready to start once the instance it serves is known.
pub(crate) struct Start {
    /// The listener's address.
    pub(crate) bound: io::Result<std::net::SocketAddr>,
    /// Starts serving; every connection's service is wrapped for `Instance`.
    pub(crate) start: Box<dyn FnOnce(Instance, CloseSignal) -> ServerFuture + Send>,
    /// Whether the server speaks TLS, which the plain-TCP health probe cannot.
    pub(crate) tls: bool,
}

impl Start {
    /// Serves `make_service` on `listener` with axum's server, each connection's service in
    /// [`Discovered`].
    pub(crate) fn axum<L, M, S>(listener: L, make_service: M, tls: bool) -> Start
    where
        L: axum::serve::Listener<Addr = std::net::SocketAddr>,
        L::Io: NoDelay,
        M: for<'a> TowerService<IncomingStream<'a, L>, Error = Infallible, Response = S>
            + Send
            + 'static,
        for<'a> <M as TowerService<IncomingStream<'a, L>>>::Future: Send,
        S: TowerService<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
        S::Future: Send,
    {
        Start {
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
            tls,
        }
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

/// What [`serve`] serves on: a `tokio::net::TcpListener`, and nothing else.
///
/// A discoverable instance is registered in Consul at an address and a port, where Consul's
/// HTTP check and the routers reach it, so it serves over TCP; a Unix socket (which
/// `axum::serve` also takes) cannot be registered. With another listener, the compiler says
/// so at the listener argument. Sealed: it cannot be implemented outside this crate.
#[diagnostic::on_unimplemented(
    message = "discoverable serves over TCP only: Consul's check and the routers reach an instance at an address and port, so `{Self}` cannot be registered",
    label = "expected a `tokio::net::TcpListener`",
    note = "bind one with `tokio::net::TcpListener::bind(\"0.0.0.0:3000\").await?`"
)]
pub trait ServeListener: sealed::Sealed {
    #[doc(hidden)]
    fn into_tcp(self) -> TcpListener;
}

impl ServeListener for TcpListener {
    fn into_tcp(self) -> TcpListener {
        self
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for tokio::net::TcpListener {}
}

/// A discoverable server; await it. Returned by [`serve`].
#[must_use = "a Serve does nothing until awaited"]
pub struct Serve<M, S> {
    service: Result<Service, Error>,
    protocol: Protocol,
    server: Server<M>,
    shutdown: Option<ShutdownSignal>,
    _marker: PhantomData<fn() -> S>,
}

impl<M, S> fmt::Debug for Serve<M, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("Serve");
        debug.field("service", &self.service);
        match &self.server {
            Server::Plain { listener, .. } => debug.field("listener", listener),
            #[cfg(all(feature = "grpc", feature = "tls"))]
            Server::Started(start) => debug.field("bound", &start.bound).field("tls", &start.tls),
        };
        debug.finish_non_exhaustive()
    }
}

impl<M, S> Serve<M, S> {
    /// Also shuts down gracefully when `signal` completes (SIGTERM and SIGINT still do).
    pub fn with_graceful_shutdown<F>(mut self, signal: F) -> Self
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.shutdown = Some(Box::pin(signal));
        self
    }
}

impl<M, S> IntoFuture for Serve<M, S>
where
    M: for<'a> TowerService<IncomingStream<'a, TcpListener>, Error = Infallible, Response = S>
        + Send
        + 'static,
    for<'a> <M as TowerService<IncomingStream<'a, TcpListener>>>::Future: Send,
    S: TowerService<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
    type Output = io::Result<()>;
    type IntoFuture = Pin<Box<dyn Future<Output = io::Result<()>> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        let serving = async move {
            let service = match self.service {
                Ok(service) => service,
                Err(e) => {
                    eprintln!("error: {e}");
                    std::process::exit(2)
                }
            };
            let start = match self.server {
                Server::Plain {
                    listener,
                    make_service,
                } => Start::axum(listener, make_service, false),
                #[cfg(all(feature = "grpc", feature = "tls"))]
                Server::Started(start) => start,
            };
            run(service, self.protocol, start, self.shutdown)
                .await
                .map_err(into_io)
        };
        Box::pin(serving.with_subscriber(crate::log::dispatch()))
    }
}

fn into_io(e: Error) -> io::Error {
    match e {
        Error::Io(e) => e,
        e @ (Error::Config { .. } | Error::InvalidService(_)) => {
            io::Error::new(io::ErrorKind::InvalidInput, e)
        }
        e => io::Error::other(e),
    }
}

async fn run(
    service: Service,
    protocol: Protocol,
    start: Start,
    user_signal: Option<ShutdownSignal>,
) -> Result<(), Error> {
    let settings = match &protocol {
        Protocol::Http => service.settings.clone(),
        #[cfg(feature = "grpc")]
        Protocol::Grpc { services, tls, .. } => {
            let mut settings = (*service.settings).clone();
            settings.grpc = true;
            settings.grpc_tls = tls.clone();
            let routes = services
                .iter()
                .map(|name| crate::grpc::route_tag(name, tls.as_ref()));
            settings.tags.splice(0..0, routes);
            std::sync::Arc::new(settings)
        }
    };
    let instance = match protocol {
        Protocol::Http => claim_instance(&service),
        #[cfg(feature = "grpc")]
        Protocol::Grpc { instance, .. } => instance,
    };
    let bound = start.bound?;
    let advertised = address::advertise(&settings, bound)?;
    let client = Client::new(settings.consul.clone())?;

    let (close_tx, mut close_rx) = watch::channel(false);
    let server = (start.start)(
        instance.clone(),
        Box::pin(async move {
            let _ = close_rx.wait_for(|closed| *closed).await;
        }),
    );
    // Tasks are aborted if this future is dropped, so nothing outlives a dropped `serve`:
    // the registrar first, then the guard deregisters, then the server (reverse order).
    let mut server = AbortOnDrop(tokio::spawn(server));
    // Shutdown is graceful from the moment the listener serves: SIGTERM during the start-up
    // probe drains instead of ending the process.
    let terminated = signal::listen();
    tokio::pin!(terminated);
    tracing::info!(id = %instance.id(), %bound, advertised = %advertised.url(""), "serving");

    let guard = DeregisterGuard::new(settings.consul.clone(), instance.id().to_owned());
    let probed = async {
        if start.tls {
            // The probe speaks plain HTTP/1.1; over TLS the instance reads its own health.
            registrar::status_of(instance.report().await.status)
        } else {
            probe::probe(
                address::probe_addr(bound),
                instance.health_path(),
                instance.check_timeout(),
            )
            .await
        }
    };
    let status = tokio::select! {
        status = probed => status,
        () = &mut terminated => {
            // Nothing registered yet: nothing for routers to drop, so no grace period.
            tracing::info!("shutdown began before registration");
            signal::exit_on_second_signal();
            instance.begin_shutdown();
            guard.disarm();
            let _ = close_tx.send(true);
            return drain(&instance, server, settings.drain_timeout).await;
        }
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut registrar = Registrar {
        client: client.clone(),
        registration: registrar::registration(&settings, &instance, &advertised),
        instance: instance.clone(),
        ttl: match settings.check {
            discoverable_rules::CheckTiming::Ttl { ttl } => Some(ttl),
            discoverable_rules::CheckTiming::Http { .. } => None,
        },
        retry_min: settings.retry_min,
        retry_max: settings.retry_max,
        stop: stop_rx,
    };
    let mut registered = false;
    if settings.fail_fast {
        if let Err(e) = registrar.register_fail_fast(status).await {
            tracing::error!(error = %e, "registration failed and fail_fast is set; stopping");
            let _ = close_tx.send(true);
            let _ = server.await;
            guard.disarm();
            return Err(e);
        }
        registered = true;
    }
    // Every line the registrar logs names the instance, so several instances in one process
    // can be told apart.
    let span = tracing::info_span!("registrar", service = %settings.name, id = %instance.id());
    let mut registrar = AbortOnDrop(tokio::spawn(
        registrar
            .run(status, registered)
            .instrument(span)
            .with_current_subscriber(),
    ));

    let mut requested = instance.shutdown_requested();
    let user_signal = async move {
        match user_signal {
            Some(signal) => signal.await,
            None => std::future::pending().await,
        }
    };
    let early_end = tokio::select! {
        () = &mut terminated => {
            signal::exit_on_second_signal();
            None
        }
        () = user_signal => { tracing::info!("shutdown future completed"); None }
        _ = requested.wait_for(|r| *r) => { tracing::info!("shutdown requested"); None }
        ended = &mut server => Some(ended),
    };

    // 1. Health answers 503 from now on; stop registering.
    instance.begin_shutdown();
    let _ = stop_tx.send(true);
    if tokio::time::timeout(settings.deregister_timeout, &mut registrar)
        .await
        .is_err()
    {
        registrar.0.abort();
    }
    // 2. Deregister (bounded).
    deregister(&client, &instance, settings.deregister_timeout).await;
    guard.disarm();

    if let Some(ended) = early_end {
        return match ended {
            Ok(result) => {
                tracing::warn!("server stopped on its own");
                result.map_err(Error::Io)
            }
            Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
            Err(join) => Err(Error::Io(io::Error::other(join))),
        };
    }

    // 3. Grace period: routers watching Consul drop the instance.
    tracing::info!(grace = ?settings.grace_period, "waiting for routers to drop the instance");
    tokio::time::sleep(settings.grace_period).await;

    // 4. Stop accepting; finish in-flight requests (bounded).
    let _ = close_tx.send(true);
    drain(&instance, server, settings.drain_timeout).await
}

/// The last step of shutdown, once the server was told to close: in-flight requests finish
/// within `bound`, then the rest are cut.
async fn drain(
    instance: &Instance,
    mut server: AbortOnDrop<io::Result<()>>,
    bound: Duration,
) -> Result<(), Error> {
    tracing::info!(in_flight = instance.in_flight(), "draining");
    match tokio::time::timeout(bound, &mut server).await {
        Ok(Ok(result)) => result?,
        Ok(Err(join)) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
        Ok(Err(join)) => return Err(Error::Io(io::Error::other(join))),
        Err(_) => {
            tracing::warn!(
                in_flight = instance.in_flight(),
                ?bound,
                "drain bound reached; closing remaining connections"
            );
            server.0.abort();
        }
    }
    tracing::info!(id = %instance.id(), "stopped");
    Ok(())
}

async fn deregister(client: &Client, instance: &Instance, bound: Duration) {
    match tokio::time::timeout(bound, client.deregister(instance.id())).await {
        Ok(Ok(())) => tracing::info!(id = %instance.id(), "deregistered from Consul"),
        Ok(Err(Error::NotFound { .. })) => {
            tracing::debug!(id = %instance.id(), "was not registered")
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "deregistration failed; Consul removes the instance once its check has been critical for deregister_after")
        }
        Err(_) => tracing::warn!(
            ?bound,
            "deregistration timed out; Consul removes the instance once its check has been critical for deregister_after"
        ),
    }
    instance.set_registered(false);
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
        Poll::Ready(Ok(Discovered::new(inner, instance)))
    }
}
