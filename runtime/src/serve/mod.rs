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
//!    reports the health every third of the TTL. The running instances of one service in a
//!    process share one client of the agent and one blocking read on their registrations
//!    (`agent`).
//! 4. On SIGTERM, SIGINT, the user's shutdown future, or [`Instance::shutdown`]: the health
//!    route answers 503, the instance is deregistered (bounded), the grace period passes so
//!    routers drop it, the listener closes, in-flight requests finish (bounded), `serve`
//!    returns.
//!
//! If serving ends any other way (the server fails, the serve future is dropped, the serving
//! task panics), the instance is still deregistered, best effort.
//!
//! This module is axum's entry: [`serve`] turns an app into the one value the lifecycle takes
//! (`server::Server`: the server to start, how Consul checks it, the tags it adds), as the
//! gRPC entry does for tonic services. `lifecycle` runs it, step by step; Consul calls go
//! through [`consul::Client`](crate::consul::Client).

mod address;
pub(crate) mod agent;
mod guard;
mod lifecycle;
mod primary_ip;
mod probe;
mod registrar;
pub(crate) mod server;
mod signal;

use std::convert::Infallible;
use std::fmt;
use std::future::{Future, IntoFuture};
use std::io;
use std::marker::PhantomData;
use std::pin::Pin;

use axum::extract::Request;
use axum::response::Response;
use axum::serve::IncomingStream;
use tokio::net::TcpListener;
use tower_service::Service as TowerService;
use tracing::instrument::WithSubscriber as _;

use crate::error::Error;
use crate::instance::Instance;
#[cfg(doc)]
use crate::service::Service;

use server::Server;

/// The user's own shutdown future.
type ShutdownSignal = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Serves `make_service` on `listener` as a discoverable instance of `service`.
///
/// Takes what `axum::serve` takes: a `Router`, `router.into_make_service()` or
/// `router.into_make_service_with_connect_info::<SocketAddr>()`. Await it (it returns when
/// shutdown is complete), optionally after [`Serve::with_graceful_shutdown`].
///
/// `service` is a [`Service`], of which each serve call runs a new instance with an ID of its
/// own ([`Serve::instance`] returns it), or an [`Instance`] minted beforehand with
/// [`Service::new_instance`], to hand to the app first. An instance is served once: serving
/// it again fails with `InvalidInput`.
///
/// ```no_run
/// use axum::{routing::get, Router};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let service = discoverable::Service::builder("cool_app").prefix("/oops").build()?;
/// let app = Router::new().route("/", get(|| async { "home page" }));
/// let listener = tokio::net::TcpListener::bind("0.0.0.0:3000").await?;
/// let serving = discoverable::serve(service, listener, app);
/// println!("serving as {}", serving.instance().id());
/// serving.await?;
/// # Ok(())
/// # }
/// ```
///
/// Accepted connections have `TCP_NODELAY` set, as tonic's and Go's servers do.
///
/// Serving is over TCP only: Consul's check and the routers reach the instance at an address
/// and port, so a `tokio::net::UnixListener` cannot be registered (see [`ServeListener`]).
pub fn serve<L, M, S>(service: impl Into<Instance>, listener: L, make_service: M) -> Serve<M, S>
where
    L: ServeListener,
    M: for<'a> TowerService<IncomingStream<'a, TcpListener>, Error = Infallible, Response = S>,
{
    Serve {
        instance: service.into(),
        app: App::Axum {
            listener: listener.into_tcp(),
            make_service,
        },
        shutdown: None,
        _marker: PhantomData,
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
    instance: Instance,
    app: App<M>,
    shutdown: Option<ShutdownSignal>,
    _marker: PhantomData<fn() -> S>,
}

/// What a serve call serves: an app for axum's server, or a server an entry point made
/// already (the gRPC one).
enum App<M> {
    Axum {
        listener: TcpListener,
        make_service: M,
    },
    #[cfg_attr(
        not(feature = "grpc"),
        expect(dead_code, reason = "made by the gRPC entry only")
    )]
    Ready(Server),
}

impl<M, S> fmt::Debug for Serve<M, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("Serve");
        debug.field("instance", &self.instance);
        match &self.app {
            App::Axum { listener, .. } => debug.field("listener", listener),
            App::Ready(server) => debug.field("server", server),
        };
        debug.finish_non_exhaustive()
    }
}

impl<M, S> Serve<M, S> {
    /// A serve call of `instance` on a server an entry point has made.
    #[cfg(feature = "grpc")]
    pub(crate) fn ready(instance: Instance, server: Server) -> Self {
        Serve {
            instance,
            app: App::Ready(server),
            shutdown: None,
            _marker: PhantomData,
        }
    }

    /// The instance this serve call runs: its ID, its health, its shutdown switch.
    pub fn instance(&self) -> &Instance {
        &self.instance
    }

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
        let Serve {
            instance,
            app,
            shutdown,
            ..
        } = self;
        let serving = async move {
            if !instance.claim() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "instance {} is served already; serve the Service to run another \
                         instance of it (each with an ID of its own)",
                        instance.id()
                    ),
                ));
            }
            let server = match app {
                App::Axum {
                    listener,
                    make_service,
                } => Server::axum(listener, make_service),
                App::Ready(server) => server,
            };
            lifecycle::run(instance, server, shutdown)
                .await
                .map_err(into_io)
        };
        Box::pin(serving.with_subscriber(crate::log::dispatch()))
    }
}

/// Start-up failed: `fail_fast` is set and the instance could not register. Inside the
/// `io::Error` a serve call returns, where the attribute's `main` finds it.
#[derive(Debug)]
pub(crate) struct StartFailed(pub(crate) Error);

impl fmt::Display for StartFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "registration failed and fail_fast is set: {}", self.0)
    }
}

impl std::error::Error for StartFailed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// For the attribute's `main`, which passes its outcome through this: when `outcome` is an
/// error from a start-up that failed (`fail_fast`), prints it as one line on stderr and ends
/// the process with exit code 2, as for a setting that cannot be used; anything else is
/// returned as it is.
pub fn exit_on_start_failure<R: 'static>(outcome: R) -> R {
    use std::any::Any;
    let any = &outcome as &dyn Any;
    let io = if let Some(Err(e)) = any.downcast_ref::<io::Result<()>>() {
        Some(e)
    } else if let Some(Err(e)) = any.downcast_ref::<Result<(), Box<dyn std::error::Error>>>() {
        e.downcast_ref::<io::Error>()
    } else if let Some(Err(e)) =
        any.downcast_ref::<Result<(), Box<dyn std::error::Error + Send + Sync>>>()
    {
        e.downcast_ref::<io::Error>()
    } else {
        None
    };
    if let Some(failed) = io
        .and_then(io::Error::get_ref)
        .and_then(|e| e.downcast_ref::<StartFailed>())
    {
        eprintln!("error: {failed}");
        std::process::exit(2);
    }
    outcome
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
