//! The listener: accepts connections and serves HTTP/1.1 on them (over TLS when configured),
//! and stops and starts again on the same port when its [`Listening`] switch says so.
//!
//! The server knows nothing of what it serves: every request goes to the handler it was started
//! with. What stops and resumes its listening (the `unavailable` fault) is a [`Listening`]
//! switch, a pair of channels to the task that owns the listener, so the handler can hold one
//! without holding the server.
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

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use axum::response::Response;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What a [`Listening`] switch asks of the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Listen,
    Pause,
    /// For good: no listening again.
    Stop,
}

/// The switch's latest position, numbered so each asker can tell when it was followed.
#[derive(Debug, Clone, Copy)]
struct Wish {
    want: Want,
    seq: u64,
}

/// Stops and resumes a server's listening. Cheap to clone; holds channels to the server's
/// task, not the server.
#[derive(Clone)]
pub(crate) struct Listening {
    wish: Arc<watch::Sender<Wish>>,
    /// The number of the last wish the server followed.
    done: watch::Receiver<u64>,
}

/// The server's end of a [`Listening`] switch.
pub(crate) struct Orders {
    wish: watch::Receiver<Wish>,
    done: watch::Sender<u64>,
}

/// A new switch, asking to listen, and the end a [`Server`] takes orders from.
pub(crate) fn switch() -> (Listening, Orders) {
    let (wish, wish_rx) = watch::channel(Wish {
        want: Want::Listen,
        seq: 0,
    });
    let (done, done_rx) = watch::channel(0);
    (
        Listening {
            wish: Arc::new(wish),
            done: done_rx,
        },
        Orders {
            wish: wish_rx,
            done,
        },
    )
}

impl Listening {
    /// `false`: close the listener and drop every open connection; `true`: listen again on the
    /// same port. Returns once the server has done it, or at once if it has stopped for good.
    pub(crate) async fn set(&self, listen: bool) {
        self.ask(if listen { Want::Listen } else { Want::Pause })
            .await;
    }

    async fn ask(&self, want: Want) {
        let mut seq = 0;
        self.wish.send_modify(|wish| {
            wish.seq += 1;
            if wish.want != Want::Stop {
                wish.want = want;
            }
            seq = wish.seq;
        });
        // An error: the server's task is gone, and nothing is left to wait for.
        let _ = self.done.clone().wait_for(|&done| done >= seq).await;
    }
}

/// A listening (or paused) HTTP server. Dropping it stops it without waiting.
pub(crate) struct Server {
    addr: SocketAddr,
    tls: bool,
    listening: Listening,
    task: JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        // Dropping the task's future drops its connections' JoinSet, which aborts them.
        self.task.abort();
    }
}

/// Binds `addr` for a server.
pub(crate) fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
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
    /// Serves `listener` with `handler`, stopping and resuming as `listening`'s switch says
    /// (`orders` being its other end).
    pub(crate) fn start<H, F>(
        listener: TcpListener,
        tls: Option<TlsAcceptor>,
        max_per_client: usize,
        (listening, orders): (Listening, Orders),
        handler: H,
    ) -> io::Result<Server>
    where
        H: Fn(Request<Body>) -> F + Clone + Send + Sync + 'static,
        F: Future<Output = Response> + Send + 'static,
    {
        let addr = listener.local_addr()?;
        Ok(Server {
            addr,
            tls: tls.is_some(),
            listening,
            task: tokio::spawn(run(listener, addr, tls, max_per_client, handler, orders)),
        })
    }

    /// The bound address.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether connections are TLS.
    pub(crate) fn is_tls(&self) -> bool {
        self.tls
    }

    /// Stops for good: closes the listener and drops every connection; returns once the port
    /// is closed and every connection has ended.
    pub(crate) async fn shutdown(&self) {
        self.listening.ask(Want::Stop).await;
    }
}

/// The server's task: serves while its switch asks to listen, closes the listener and its
/// connections when it asks to pause, binds the same address again when it asks to listen,
/// and ends when it asks to stop. It reports each wish followed.
async fn run<H, F>(
    listener: TcpListener,
    addr: SocketAddr,
    tls: Option<TlsAcceptor>,
    max_per_client: usize,
    handler: H,
    mut orders: Orders,
) where
    H: Fn(Request<Body>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response> + Send + 'static,
{
    let mut listener = Some(listener);
    loop {
        if let Some(listener) = listener.take() {
            accept_loop(listener, &tls, max_per_client, &handler, &mut orders).await;
            tracing::info!(%addr, "stopped listening");
        } else if orders.wish.changed().await.is_err() {
            return;
        }
        let wish = *orders.wish.borrow_and_update();
        match wish.want {
            Want::Listen => match bind(addr) {
                Ok(bound) => {
                    listener = Some(bound);
                    tracing::info!(%addr, "listening again");
                }
                Err(e) => {
                    tracing::error!(error = %e, "could not listen again on the same port");
                }
            },
            Want::Pause => {}
            Want::Stop => {
                orders.done.send_replace(wish.seq);
                return;
            }
        }
        orders.done.send_replace(wish.seq);
    }
}

/// Accepts connections until the switch asks for anything but listening, collecting each
/// connection's task as it ends; then closes the listener and ends the connections still open.
///
/// A client IP that holds `max_per_client` connections already (0: no limit) has its next one
/// answered `429 Too Many Requests` and closed, as Consul's `limits.http_max_conns_per_client`
/// does; a blocking query holds its connection for its whole wait.
async fn accept_loop<H, F>(
    listener: TcpListener,
    tls: &Option<TlsAcceptor>,
    max_per_client: usize,
    handler: &H,
    orders: &mut Orders,
) where
    H: Fn(Request<Body>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response> + Send + 'static,
{
    // Each task ends with the client IP whose count it held, if it held one.
    let mut connections: JoinSet<Option<IpAddr>> = JoinSet::new();
    let mut per_client: HashMap<IpAddr, usize> = HashMap::new();
    loop {
        tokio::select! {
            changed = orders.wish.changed() => {
                if changed.is_err() {
                    break;
                }
                let wish = *orders.wish.borrow_and_update();
                if wish.want != Want::Listen {
                    break;
                }
                orders.done.send_replace(wish.seq);
            }
            Some(ended) = connections.join_next(), if !connections.is_empty() => {
                if let Ok(Some(ip)) = ended {
                    if let Some(open) = per_client.get_mut(&ip) {
                        *open -= 1;
                        if *open == 0 {
                            per_client.remove(&ip);
                        }
                    }
                }
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let ip = peer.ip();
                    let open = per_client.entry(ip).or_default();
                    if max_per_client > 0 && *open >= max_per_client {
                        tracing::debug!(%ip, open = *open, "too many connections from one client; answering 429");
                        connections.spawn(async move {
                            too_many_connections(stream).await;
                            None
                        });
                    } else {
                        *open += 1;
                        let connection = serve_connection(stream, handler.clone(), tls.clone());
                        connections.spawn(async move {
                            connection.await;
                            Some(ip)
                        });
                    }
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

/// What Consul answers a connection over its per-client limit, before reading anything.
const TOO_MANY_CONNECTIONS: &str =
    "Your IP is issuing too many concurrent connections, please rate limit your calls\n";

/// Answers `429 Too Many Requests` as Consul does and closes the connection. What the client
/// sent meanwhile is read and dropped for a moment first, so that closing does not reset the
/// connection before the client has read the answer.
async fn too_many_connections(mut stream: TcpStream) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let answer = format!(
        "HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{TOO_MANY_CONNECTIONS}",
        TOO_MANY_CONNECTIONS.len()
    );
    if stream.write_all(answer.as_bytes()).await.is_err() {
        return;
    }
    let _ = stream.shutdown().await;
    let mut sink = [0u8; 1024];
    let _ = tokio::time::timeout(Duration::from_millis(200), async {
        while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
}

async fn serve_connection<H, F>(stream: TcpStream, handler: H, tls: Option<TlsAcceptor>)
where
    H: Fn(Request<Body>) -> F + Send + Sync + 'static,
    F: Future<Output = Response> + Send + 'static,
{
    let _ = stream.set_nodelay(true);
    match tls {
        None => serve_http(TokioIo::new(stream), handler).await,
        // Boxed, so that a plain connection's task (whose size is that of its largest path)
        // is not as large as a TLS session's state: under 1 KiB instead of over 4.
        Some(acceptor) => Box::pin(serve_tls(stream, handler, acceptor)).await,
    }
}

async fn serve_tls<H, F>(stream: TcpStream, handler: H, acceptor: TlsAcceptor)
where
    H: Fn(Request<Body>) -> F + Send + Sync + 'static,
    F: Future<Output = Response> + Send + 'static,
{
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => serve_http(TokioIo::new(stream), handler).await,
        // A client that does not trust the agent, or lacks a client certificate: its own
        // error says why; the agent only notes it.
        Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
        Err(_) => tracing::debug!(bound = ?HANDSHAKE_TIMEOUT, "TLS handshake timed out"),
    }
}

async fn serve_http<I, H, F>(io: I, handler: H)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    H: Fn(Request<Body>) -> F + Send + Sync + 'static,
    F: Future<Output = Response> + Send + 'static,
{
    let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
        let answer = handler(req.map(Body::new));
        async move { Ok::<_, Infallible>(answer.await) }
    });
    if let Err(e) = http1::Builder::new().serve_connection(io, service).await {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_switch_stops_and_resumes_listening_and_answers_once_stopped() {
        let listener = bind(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
        let (listening, orders) = switch();
        let handler = |_req| async { Response::new(Body::empty()) };
        let server =
            Server::start(listener, None, 0, (listening.clone(), orders), handler).unwrap();
        let addr = server.addr();
        assert!(TcpStream::connect(addr).await.is_ok());
        listening.set(false).await;
        assert!(TcpStream::connect(addr).await.is_err(), "refused");
        listening.set(true).await;
        assert!(TcpStream::connect(addr).await.is_ok(), "same port again");
        server.shutdown().await;
        assert!(TcpStream::connect(addr).await.is_err(), "shut down");
        // Once stopped for good, the switch answers at once and listens no more.
        let soon = Duration::from_secs(5);
        tokio::time::timeout(soon, listening.set(true))
            .await
            .unwrap();
        assert!(TcpStream::connect(addr).await.is_err(), "still shut down");
        drop(server);
        tokio::time::timeout(soon, listening.set(false))
            .await
            .unwrap();
    }
}
