//! The listener: accepts connections and serves HTTP/1.1 on them (over TLS when configured),
//! and can stop and start again on the same port.
//!
//! Consul serves its HTTP API over HTTP/1.1. Each connection runs in a task of one `JoinSet`
//! owned by the accept loop, so stopping (the `unavailable` fault, shutdown) closes the listener
//! *and* drops every open connection at once; clients with pooled keep-alive connections then
//! fail like clients of a dead agent instead of being served by a listener that is supposedly
//! gone. The accept loop collects each connection's task as soon as it ends: a finished task
//! kept in the set would hold its whole future's memory (several KiB) until the next accept.
//!
//! With TLS, the handshake runs in the connection's task, bounded by [`HANDSHAKE_TIMEOUT`], so a
//! client that never finishes it holds up nobody else.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use axum::body::Body;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

use crate::api;
use crate::state::Shared;

/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A listening (or paused) HTTP server for one agent.
pub(crate) struct Server {
    addr: SocketAddr,
    shared: Arc<Shared>,
    /// `Some`: every connection is TLS.
    tls: Option<TlsAcceptor>,
    running: Mutex<Option<Running>>,
    /// Serialises stop/start so two toggles cannot interleave.
    toggle: tokio::sync::Mutex<()>,
    stopped: AtomicBool,
}

/// The accept loop, which owns the connections it accepted; dropping it stops both.
struct Running {
    accept: JoinHandle<()>,
    /// Asks the accept loop to close the listener and end its connections.
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        // Dropping the accept loop's future drops its JoinSet, which aborts the connections.
        self.accept.abort();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // Listening again on the same port right after closing it must not fail on TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

impl Server {
    /// Binds `addr` and starts serving.
    pub(crate) async fn start(
        addr: SocketAddr,
        shared: Arc<Shared>,
        tls: Option<TlsAcceptor>,
    ) -> io::Result<Arc<Server>> {
        Server::start_on(bind(addr)?, shared, tls)
    }

    /// Starts serving on a listener bound by the caller.
    pub(crate) fn start_on(
        listener: TcpListener,
        shared: Arc<Shared>,
        tls: Option<TlsAcceptor>,
    ) -> io::Result<Arc<Server>> {
        let server = Arc::new(Server {
            addr: listener.local_addr()?,
            shared,
            tls,
            running: Mutex::new(None),
            toggle: tokio::sync::Mutex::new(()),
            stopped: AtomicBool::new(false),
        });
        *lock(&server.running) = Some(server.serve(listener));
        Ok(server)
    }

    /// The bound address.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether connections are TLS.
    pub(crate) fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    fn serve(self: &Arc<Self>, listener: TcpListener) -> Running {
        let (stop, stopped) = oneshot::channel();
        let accept = tokio::spawn(accept_loop(
            listener,
            stopped,
            Arc::downgrade(self),
            self.shared.clone(),
            self.tls.clone(),
        ));
        Running {
            accept,
            stop: Some(stop),
        }
    }

    /// Closes the listener and drops every connection; returns once the port is closed and
    /// every connection has ended.
    pub(crate) async fn stop_listening(&self) {
        let _guard = self.toggle.lock().await;
        let Some(mut running) = lock(&self.running).take() else {
            return;
        };
        if let Some(stop) = running.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut running.accept).await;
        tracing::info!(addr = %self.addr, "stopped listening");
    }

    /// Listens again on the same address (no-op if listening or shut down).
    pub(crate) async fn start_listening(self: &Arc<Self>) -> io::Result<()> {
        let _guard = self.toggle.lock().await;
        if self.stopped.load(Ordering::SeqCst) || lock(&self.running).is_some() {
            return Ok(());
        }
        let listener = bind(self.addr)?;
        *lock(&self.running) = Some(self.serve(listener));
        tracing::info!(addr = %self.addr, "listening again");
        Ok(())
    }

    /// Stops for good: listener, connections, and no restart afterwards.
    pub(crate) async fn shutdown(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.stop_listening().await;
    }

    /// Stops for good without waiting (for `Drop`).
    pub(crate) fn abort(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        drop(lock(&self.running).take());
    }
}

/// Accepts connections until `stop` fires (or its sender goes), collecting each connection's
/// task as it ends; then closes the listener and ends the connections still open. Requests get
/// `server`, weak because the server owns this loop, for the fault switches that stop and start
/// listening.
async fn accept_loop(
    listener: TcpListener,
    mut stop: oneshot::Receiver<()>,
    server: Weak<Server>,
    shared: Arc<Shared>,
    tls: Option<TlsAcceptor>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stop => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let (server, shared, tls) = (server.clone(), shared.clone(), tls.clone());
                    connections.spawn(serve_connection(stream, server, shared, tls));
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    drop(listener);
    connections.shutdown().await;
}

async fn serve_connection(
    stream: TcpStream,
    server: Weak<Server>,
    shared: Arc<Shared>,
    tls: Option<TlsAcceptor>,
) {
    let _ = stream.set_nodelay(true);
    match tls {
        None => serve_http(TokioIo::new(stream), server, shared).await,
        // Boxed, so that a plain connection's task (whose size is that of its largest path)
        // is not as large as a TLS session's state: under 1 KiB instead of over 4.
        Some(acceptor) => Box::pin(serve_tls(stream, server, shared, acceptor)).await,
    }
}

async fn serve_tls(
    stream: TcpStream,
    server: Weak<Server>,
    shared: Arc<Shared>,
    acceptor: TlsAcceptor,
) {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => serve_http(TokioIo::new(stream), server, shared).await,
        // A client that does not trust the agent, or lacks a client certificate: its own
        // error says why; the agent only notes it.
        Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
        Err(_) => tracing::debug!(bound = ?HANDSHAKE_TIMEOUT, "TLS handshake timed out"),
    }
}

async fn serve_http<I>(io: I, server: Weak<Server>, shared: Arc<Shared>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let (server, shared) = (server.clone(), shared.clone());
        async move { Ok::<_, Infallible>(api::handle(shared, server, req.map(Body::new)).await) }
    });
    if let Err(e) = http1::Builder::new().serve_connection(io, service).await {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}
