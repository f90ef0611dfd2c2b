//! A loopback HTTP/1.1 proxy in front of an agent that makes the faults a real Consul never
//! makes on demand: 500s, slow answers, garbage, refused connections.
//!
//! One request per connection: the request's `Connection` header is rewritten to `close`, so
//! the upstream closes after its answer and the proxy copies bytes until then (chunked
//! answers and blocking queries pass through untouched). Every request is recorded with the
//! status it got.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// The body of an injected 500, plain text as Consul's own errors are.
pub const INJECTED_FAILURE: &str = "fault proxy: injected failure";

/// The HTML error page of [`Garbage::Html502`], as a load balancer in front of Consul gives.
pub const HTML_502: &str = "<html><body><h1>502 Bad Gateway</h1></body></html>";

/// Answers that are not Consul's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Garbage {
    /// `502` with an HTML page, without asking the upstream.
    Html502,
    /// The upstream's answer with its status and headers, its body cut in half.
    TruncatedJson,
}

/// One request as the proxy saw it.
#[derive(Debug, Clone)]
pub struct Call {
    /// The request method.
    pub method: String,
    /// The request target: path and query.
    pub target: String,
    /// The status the client got (0: none, the connection closed first).
    pub status: u16,
    /// When the request arrived.
    pub at: Instant,
}

#[derive(Default)]
struct Shared {
    failures: AtomicU32,
    delay: Mutex<Option<Duration>>,
    garbage: Mutex<Option<Garbage>>,
    calls: Mutex<Vec<Call>>,
}

impl Shared {
    fn take_failure(&self) -> bool {
        self.failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }
}

/// The proxy on 127.0.0.1 (port picked at start); stops, dropping every connection, when
/// dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    upstream: SocketAddr,
    shared: Arc<Shared>,
    /// The accept loop, which owns the listener and every connection; `None` while refusing.
    accept: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy")
            .field("addr", &self.addr)
            .field("upstream", &self.upstream)
            .finish_non_exhaustive()
    }
}

impl FaultProxy {
    /// Starts a pass-through proxy to `upstream` on 127.0.0.1:0. Must be called inside a
    /// tokio runtime, which runs the proxy.
    pub fn start(upstream: SocketAddr) -> FaultProxy {
        let listener = listen(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let proxy = FaultProxy {
            addr,
            upstream,
            shared: Arc::default(),
            accept: Mutex::new(None),
        };
        *proxy.accept.lock().unwrap() = Some(proxy.accept_loop(listener));
        proxy
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Clears every fault: requests pass through again, connections are accepted again.
    pub async fn pass_through(&self) {
        self.fail_next(0);
        self.set_delay(None);
        self.set_garbage(None);
        self.set_refusing(false).await;
    }

    /// The next `n` requests are answered `500` with [`INJECTED_FAILURE`] and never reach the
    /// upstream (`u32::MAX`: all of them, until reset).
    pub fn fail_next(&self, n: u32) {
        self.shared.failures.store(n, Ordering::SeqCst);
    }

    /// Every request waits `delay` before it is handled (`None`: no delay). A request whose
    /// client gives up while it waits never reaches the upstream.
    pub fn set_delay(&self, delay: Option<Duration>) {
        *self.shared.delay.lock().unwrap() = delay.filter(|d| !d.is_zero());
    }

    /// Every answer is `garbage` (`None`: the upstream's answers again).
    pub fn set_garbage(&self, garbage: Option<Garbage>) {
        *self.shared.garbage.lock().unwrap() = garbage;
    }

    /// `true`: stops listening, dropping every open connection, so connecting is refused (as
    /// when nothing runs on the port) once this returns; `false`: listens again on the same
    /// address.
    pub async fn set_refusing(&self, on: bool) {
        if on {
            let running = self.accept.lock().unwrap().take();
            if let Some(accept) = running {
                accept.abort();
                // Resolves once the task, and with it the listener, is dropped.
                let _ = accept.await;
            }
        } else {
            let mut accept = self.accept.lock().unwrap();
            if accept.is_none() {
                let listener = listen(self.addr).expect("listen again on the same address");
                *accept = Some(self.accept_loop(listener));
            }
        }
    }

    /// Every request so far, in the order their answers started.
    pub fn calls(&self) -> Vec<Call> {
        self.shared.calls.lock().unwrap().clone()
    }

    /// Requests whose path starts with `path` that were answered `status`.
    pub fn count(&self, path: &str, status: u16) -> usize {
        self.shared
            .calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.target.starts_with(path) && c.status == status)
            .count()
    }

    fn accept_loop(&self, listener: tokio::net::TcpListener) -> JoinHandle<()> {
        let (shared, upstream) = (self.shared.clone(), self.upstream);
        tokio::spawn(async move {
            // Aborting this task drops the set, which aborts every connection.
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        if let Ok((client, _)) = accepted {
                            connections.spawn(handle(client, upstream, shared.clone()));
                        }
                    }
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        })
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(accept) = self.accept.lock().unwrap().take() {
            accept.abort();
        }
    }
}

/// A listener with `SO_REUSEADDR`, so the address can be taken again while connections the
/// proxy closed are still in `TIME_WAIT`.
fn listen(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

const MAX_HEAD: usize = 64 * 1024;

/// One request: read it, apply the faults in the order the dev agent does (delay, failure),
/// then garbage or forward.
async fn handle(mut client: TcpStream, upstream: SocketAddr, shared: Arc<Shared>) {
    let at = Instant::now();
    let Some(request) = read_request(&mut client).await else {
        return;
    };
    let record = |status: u16| {
        shared.calls.lock().unwrap().push(Call {
            method: request.method.clone(),
            target: request.target.clone(),
            status,
            at,
        });
    };
    let delay = *shared.delay.lock().unwrap();
    if let Some(delay) = delay {
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = client_gone(&mut client) => return record(0),
        }
    }
    if shared.take_failure() {
        record(500);
        return answer(
            &mut client,
            500,
            "text/plain; charset=utf-8",
            INJECTED_FAILURE,
        )
        .await;
    }
    let garbage = *shared.garbage.lock().unwrap();
    match garbage {
        Some(Garbage::Html502) => {
            record(502);
            answer(&mut client, 502, "text/html", HTML_502).await;
        }
        Some(Garbage::TruncatedJson) => {
            // HTTP/1.0 upstream, so its body comes unchunked until it closes.
            let Some(raw) = exchange(upstream, &request, "HTTP/1.0").await else {
                return record(0);
            };
            let Some(end) = find(&raw, b"\r\n\r\n") else {
                return record(0);
            };
            let head = String::from_utf8_lossy(&raw[..end]);
            let mut lines = head.split("\r\n");
            let status_line = lines.next().unwrap_or_default();
            let status = status_code(status_line);
            let body = &raw[end + 4..];
            let cut = &body[..body.len() / 2];
            let mut out = format!(
                "HTTP/1.1 {}\r\n",
                status_line.split_once(' ').map_or("502", |(_, s)| s)
            );
            for line in lines {
                let name = line
                    .split(':')
                    .next()
                    .unwrap_or_default()
                    .to_ascii_lowercase();
                if !matches!(
                    name.as_str(),
                    "content-length" | "transfer-encoding" | "connection"
                ) {
                    out.push_str(line);
                    out.push_str("\r\n");
                }
            }
            out.push_str(&format!(
                "Content-Length: {}\r\nConnection: close\r\n\r\n",
                cut.len()
            ));
            record(status);
            let _ = client.write_all(out.as_bytes()).await;
            let _ = client.write_all(cut).await;
            let _ = client.shutdown().await;
        }
        None => forward(client, upstream, &request, record).await,
    }
}

struct Request {
    method: String,
    target: String,
    version: String,
    /// Header lines other than the connection-scoped ones, as received.
    headers: Vec<String>,
    body: Vec<u8>,
}

impl Request {
    fn head(&self, version: &str) -> String {
        let mut out = format!("{} {} {version}\r\n", self.method, self.target);
        for line in &self.headers {
            out.push_str(line);
            out.push_str("\r\n");
        }
        out.push_str("Connection: close\r\n\r\n");
        out
    }
}

async fn read_request(client: &mut TcpStream) -> Option<Request> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    let end = loop {
        if let Some(end) = find(&raw, b"\r\n\r\n") {
            break end;
        }
        if raw.len() > MAX_HEAD {
            return None;
        }
        let n = client.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let (method, target, version) = (
        request_line.next()?.to_owned(),
        request_line.next()?.to_owned(),
        request_line.next().unwrap_or("HTTP/1.1").to_owned(),
    );
    let mut length = 0usize;
    let mut headers = Vec::new();
    for line in lines {
        let (name, value) = line.split_once(':')?;
        let name = name.trim().to_ascii_lowercase();
        match name.as_str() {
            "connection" | "keep-alive" | "proxy-connection" => continue,
            "content-length" => length = value.trim().parse().ok()?,
            "transfer-encoding" => return None, // Consul's clients send lengths.
            _ => {}
        }
        headers.push(line.to_owned());
    }
    let mut body = raw[end + 4..].to_vec();
    if body.len() < length {
        let start = body.len();
        body.resize(length, 0);
        client.read_exact(&mut body[start..]).await.ok()?;
    }
    Some(Request {
        method,
        target,
        version,
        headers,
        body,
    })
}

/// Passes the request on and the answer back as it comes, until the upstream closes (or the
/// client does: a blocking query it gave up on ends here too).
async fn forward(
    mut client: TcpStream,
    upstream: SocketAddr,
    request: &Request,
    record: impl Fn(u16),
) {
    // Nothing listens upstream: the client's connection closes without an answer, as it
    // would with nothing there.
    let Ok(mut up) = TcpStream::connect(upstream).await else {
        return record(0);
    };
    let head = request.head(&request.version);
    if up.write_all(head.as_bytes()).await.is_err() || up.write_all(&request.body).await.is_err() {
        return record(0);
    }
    let mut first = Vec::new();
    let mut recorded = false;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = tokio::select! {
            read = up.read(&mut buf) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            },
            () = client_gone(&mut client) => break,
        };
        if !recorded {
            first.extend_from_slice(&buf[..n.min(256)]);
            if let Some(eol) = find(&first, b"\r\n") {
                record(status_code(&String::from_utf8_lossy(&first[..eol])));
                recorded = true;
            }
        }
        if client.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    if !recorded {
        record(0);
    }
    let _ = client.shutdown().await;
}

/// Sends the request with `version` and reads the whole answer until the upstream closes.
async fn exchange(upstream: SocketAddr, request: &Request, version: &str) -> Option<Vec<u8>> {
    let mut up = TcpStream::connect(upstream).await.ok()?;
    up.write_all(request.head(version).as_bytes()).await.ok()?;
    up.write_all(&request.body).await.ok()?;
    let mut raw = Vec::new();
    up.read_to_end(&mut raw).await.ok()?;
    Some(raw)
}

/// Resolves once the client closed its side (or its connection failed). Bytes it sends
/// meanwhile are dropped: one request per connection.
async fn client_gone(client: &mut TcpStream) {
    let mut buf = [0u8; 1024];
    loop {
        match client.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

async fn answer(client: &mut TcpStream, status: u16, content_type: &str, body: &str) {
    let reason = match status {
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        _ => "",
    };
    let out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = client.write_all(out.as_bytes()).await;
    let _ = client.shutdown().await;
}

fn status_code(status_line: &str) -> u16 {
    status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{self, Answer};

    /// An upstream that answers every request `200` with the request's line and its
    /// `Connection` header as a JSON body, then closes.
    async fn upstream() -> (SocketAddr, JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            while let Ok((mut c, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let Some(r) = read_request(&mut c).await else {
                        return;
                    };
                    let body = format!(
                        r#"{{"line": "{} {}", "body": {}}}"#,
                        r.method,
                        r.target,
                        r.body.len()
                    );
                    answer(&mut c, 200, "application/json", &body).await;
                });
            }
        });
        (addr, task)
    }

    async fn get(proxy: &FaultProxy, path: &'static str) -> Result<Answer, String> {
        let addr = proxy.addr();
        tokio::task::spawn_blocking(move || {
            http::request(addr, "PUT", path, &[], b"12345", Duration::from_secs(5))
        })
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn passes_through_fails_delays_garbles_and_refuses() {
        let (up, _task) = upstream().await;
        let proxy = FaultProxy::start(up);

        let a = get(&proxy, "/v1/a?x=1").await.unwrap();
        assert_eq!(a.status, 200);
        assert_eq!(a.body, r#"{"line": "PUT /v1/a?x=1", "body": 5}"#);

        proxy.fail_next(2);
        for _ in 0..2 {
            let a = get(&proxy, "/v1/b").await.unwrap();
            assert_eq!((a.status, a.body.as_str()), (500, INJECTED_FAILURE));
        }
        assert_eq!(get(&proxy, "/v1/b").await.unwrap().status, 200);
        assert_eq!(proxy.count("/v1/b", 500), 2);
        assert_eq!(proxy.count("/v1/", 200), 2);

        proxy.set_delay(Some(Duration::from_millis(300)));
        let asked = Instant::now();
        assert_eq!(get(&proxy, "/v1/c").await.unwrap().status, 200);
        assert!(asked.elapsed() >= Duration::from_millis(300));
        proxy.set_delay(None);

        proxy.set_garbage(Some(Garbage::Html502));
        let a = get(&proxy, "/v1/d").await.unwrap();
        assert_eq!((a.status, a.body.as_str()), (502, HTML_502));
        assert_eq!(a.header("content-type"), Some("text/html"));
        proxy.set_garbage(Some(Garbage::TruncatedJson));
        let a = get(&proxy, "/v1/d").await.unwrap();
        assert_eq!(a.status, 200);
        // Half of `{"line": "PUT /v1/d", "body": 5}`.
        assert_eq!(a.body, r#"{"line": "PUT /v"#);
        assert!(a.json().is_err());
        proxy.set_garbage(None);

        proxy.set_refusing(true).await;
        let refused = get(&proxy, "/v1/e").await.unwrap_err();
        assert!(refused.contains("refused"), "{refused}");
        proxy.set_refusing(false).await;
        assert_eq!(get(&proxy, "/v1/e").await.unwrap().status, 200);

        proxy.fail_next(u32::MAX);
        proxy.pass_through().await;
        assert_eq!(get(&proxy, "/v1/f").await.unwrap().status, 200);
        let calls = proxy.calls();
        assert_eq!(calls.len(), 9, "{calls:?}");
        assert!(calls.iter().all(|c| c.method == "PUT"));
    }

    #[tokio::test]
    async fn a_delayed_request_whose_client_left_never_reaches_the_upstream() {
        let (up, _task) = upstream().await;
        let proxy = FaultProxy::start(up);
        proxy.set_delay(Some(Duration::from_millis(400)));
        let addr = proxy.addr();
        let gave_up = tokio::task::spawn_blocking(move || {
            http::request(addr, "PUT", "/v1/g", &[], b"", Duration::from_millis(100))
        })
        .await
        .unwrap();
        assert!(gave_up.is_err());
        tokio::time::sleep(Duration::from_millis(600)).await;
        let calls = proxy.calls();
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].status, 0, "{calls:?}");
    }
}
