//! Check runners (HTTP, TCP, TTL) and the reaper, with Consul's timings and output texts.
//!
//! - HTTP: the first request goes out after a uniform random delay in `[0, Interval)` (Consul's
//!   `RandomStagger`), then one every `Interval` (at least 1s). `GET` unless `Method` says
//!   otherwise, with `Header`, `User-Agent: Consul Health Check`, `Accept: text/plain, text/*, */*`,
//!   `Timeout` (default 10s) and no keep-alive. 2xx is passing, 429 warning, anything else or no
//!   answer critical. Output: `HTTP GET <url>: 200 OK Output: <body, first 4KB>`, or Go's error
//!   text, e.g. `Get "<url>": dial tcp 127.0.0.1:1: connect: connection refused`.
//! - TCP: a connect every `Interval`; `TCP connect <addr>: Success` or Go's dial error.
//! - Both honour `SuccessBeforePassing`, `FailuresBeforeWarning` and `FailuresBeforeCritical`.
//! - TTL: armed at registration; each update re-arms it; on expiry the check turns critical with
//!   `TTL expired` (or `TTL expired (last output before timeout follows): <output>`).
//! - Reaper: every `reap_interval`, a service with a check critical for longer than its
//!   `DeregisterCriticalServiceAfter` (raised to `deregister_critical_min`) is deregistered.
//!
//! The runners live in [`Runners`], beside the state and keyed by check ID: the state holds what
//! a check is, the registry the task that runs it. Changes to the checks' registrations go
//! through [`Runners::write`], after which the registry follows the state: a runner for each
//! check registered anew (dropping the one it replaces), none for a check removed; dropping a
//! [`Runner`] aborts its task. Runners write results with the check's generation, so a runner
//! that lost a race with a re-registration cannot overwrite the new check.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio::task::{AbortHandle, JoinHandle};

use crate::decode::{CheckDef, OUTPUT_MAX};
use crate::state::{Check, State, Status, Store};

/// Consul's `MinInterval`: shorter intervals are raised to this.
pub(crate) const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// Consul's default HTTP/TCP check timeout.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// A running check task; dropping it stops the task.
#[derive(Debug)]
struct Runner {
    handle: AbortHandle,
    /// Wakes a TTL runner after its timer was re-armed.
    notify: Arc<Notify>,
}

impl Drop for Runner {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

/// The agent's check runners, one per check that runs (HTTP, TCP, gRPC, TTL), keyed by check
/// ID.
pub(crate) struct Runners {
    store: Arc<Store>,
    runners: Mutex<BTreeMap<String, Runner>>,
    /// Runner tasks alive, counted by the tasks themselves.
    alive: Arc<AtomicUsize>,
}

impl Runners {
    /// No runners yet, for the checks of `store`.
    pub(crate) fn new(store: Arc<Store>) -> Runners {
        Runners {
            store,
            runners: Mutex::new(BTreeMap::new()),
            alive: Arc::new(AtomicUsize::new(0)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Runner>> {
        self.runners.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes the state as [`Store::write`] does, then starts a runner for each check the
    /// change registered (replacing the runner of the check it replaced) and stops the runner
    /// of each check it removed.
    pub(crate) fn write<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        self.store.write(|st| {
            let result = f(st);
            for id in st.take_changed_checks() {
                match st.checks.get(&id) {
                    Some(check) => self.start(check),
                    None => drop(self.lock().remove(&id)),
                }
            }
            result
        })
    }

    /// Tells the runner of check `id` that its TTL was re-armed.
    pub(crate) fn rearm(&self, id: &str) {
        if let Some(runner) = self.lock().get(id) {
            runner.notify.notify_one();
        }
    }

    /// How many runner tasks are alive.
    pub(crate) fn alive(&self) -> usize {
        self.alive.load(Ordering::SeqCst)
    }

    /// Stops every runner.
    pub(crate) fn stop_all(&self) {
        let runners = std::mem::take(&mut *self.lock());
        drop(runners);
    }

    /// Starts the runner `check` needs (HTTP, TCP, gRPC or TTL), replacing any it had.
    fn start(&self, check: &Check) {
        let notify = Arc::new(Notify::new());
        let (id, generation, def) = (check.id.clone(), check.generation, check.def.clone());
        let store = self.store.clone();
        let alive = Alive::new(&self.alive);
        let handle = if check.ttl.is_some() {
            let notify = notify.clone();
            tokio::spawn(alive.during(run_ttl(store, id, generation, notify)))
        } else if !def.http.is_empty() {
            tokio::spawn(alive.during(run_periodic(store, id, generation, def, Kind::Http)))
        } else if !def.tcp.is_empty() {
            tokio::spawn(alive.during(run_periodic(store, id, generation, def, Kind::Tcp)))
        } else if !def.grpc.is_empty() {
            tokio::spawn(alive.during(run_periodic(store, id, generation, def, Kind::Grpc)))
        } else {
            // UDP, H2PING, alias: kept at their initial status.
            drop(self.lock().remove(&check.id));
            return;
        };
        let runner = Runner {
            handle: handle.abort_handle(),
            notify,
        };
        let old = self.lock().insert(check.id.clone(), runner);
        drop(old);
    }
}

/// Counts a runner task in [`Runners::alive`] from its start until it ends or is aborted.
struct Alive(Arc<AtomicUsize>);

impl Alive {
    fn new(count: &Arc<AtomicUsize>) -> Alive {
        count.fetch_add(1, Ordering::SeqCst);
        Alive(count.clone())
    }

    /// `task`, counted while it lives (the count drops with the future, also when aborted).
    async fn during(self, task: impl Future<Output = ()>) {
        let _alive = self;
        task.await
    }
}

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Http,
    Tcp,
    Grpc,
}

async fn run_periodic(store: Arc<Store>, id: String, generation: u64, def: CheckDef, kind: Kind) {
    let interval = def
        .interval
        .positive()
        .unwrap_or(MIN_INTERVAL)
        .max(MIN_INTERVAL);
    let timeout = def.timeout.positive().unwrap_or(DEFAULT_TIMEOUT);
    let client = match kind {
        Kind::Http => http_client(&def),
        Kind::Grpc => grpc_client(&def, timeout),
        Kind::Tcp => Ok(None),
    };
    let client = match client {
        Ok(client) => client,
        Err(e) => {
            store.write(|st| st.set_check(&id, Some(generation), Status::Critical, &e));
            return;
        }
    };
    let mut thresholds = Thresholds::new(&def);
    // Consul's RandomStagger: the first run somewhere within the first interval.
    let stagger = rand::random_range(0..interval.as_nanos().max(1) as u64);
    tokio::time::sleep(Duration::from_nanos(stagger)).await;
    loop {
        let (status, output) = match (&client, kind) {
            (Some(client), Kind::Grpc) => grpc_once(client, &def).await,
            (Some(client), _) => http_once(client, &def).await,
            (None, _) => tcp_once(&def.tcp, timeout).await,
        };
        if let Some(status) = thresholds.observe(status) {
            let output = def.truncate_output(&output);
            let changed = store.write(|st| st.set_check(&id, Some(generation), status, &output));
            if changed {
                tracing::debug!(check = %id, status = status.as_str(), "check status");
            }
        }
        tokio::time::sleep(interval).await;
    }
}

/// `SuccessBeforePassing`, `FailuresBeforeWarning`, `FailuresBeforeCritical`: how many results
/// in a row it takes to change the status, as Consul's `StatusHandler` counts them.
struct Thresholds {
    successes: i64,
    failures: i64,
    success_before_passing: i64,
    failures_before_warning: i64,
    failures_before_critical: i64,
}

impl Thresholds {
    fn new(def: &CheckDef) -> Thresholds {
        Thresholds {
            successes: 0,
            failures: 0,
            success_before_passing: def.success_before_passing,
            // Defaults to FailuresBeforeCritical when not set.
            failures_before_warning: if def.failures_before_warning == 0 {
                def.failures_before_critical
            } else {
                def.failures_before_warning
            },
            failures_before_critical: def.failures_before_critical,
        }
    }

    /// The status to record after one result, if the thresholds allow a change.
    fn observe(&mut self, status: Status) -> Option<Status> {
        if status == Status::Critical {
            self.failures += 1;
            self.successes = 0;
            if self.failures >= self.failures_before_critical {
                Some(Status::Critical)
            } else if self.failures >= self.failures_before_warning {
                Some(Status::Warning)
            } else {
                None
            }
        } else {
            self.successes += 1;
            self.failures = 0;
            (self.successes >= self.success_before_passing).then_some(status)
        }
    }
}

/// The HTTP checks' clients, one per combination of what a client fixes (redirects followed,
/// certificates verified, the system's roots loaded), shared by every check with it. A
/// client loads the system's root certificates when it is built: tens of milliseconds and
/// about 100 KiB each, which a client per check cost every registration and every
/// registered instance. Each request carries its check's timeout, and no connection is kept
/// between runs (Consul's HTTP checks disable keep-alive).
static HTTP_CLIENTS: Mutex<Vec<(HttpClientKey, reqwest::Client)>> = Mutex::new(Vec::new());

/// Redirects disabled, certificates not verified, no roots needed.
type HttpClientKey = (bool, bool, bool);

fn http_client(def: &CheckDef) -> Result<Option<reqwest::Client>, String> {
    // Plain HTTP that cannot be redirected to HTTPS verifies nothing: no roots to load.
    let no_roots = def.http.starts_with("http://") && def.disable_redirects;
    let key = (def.disable_redirects, def.tls_skip_verify, no_roots);
    let mut clients = HTTP_CLIENTS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, client)) = clients.iter().find(|(k, _)| *k == key) {
        return Ok(Some(client.clone()));
    }
    let redirects = if def.disable_redirects {
        reqwest::redirect::Policy::none()
    } else {
        reqwest::redirect::Policy::limited(10)
    };
    let mut builder = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .redirect(redirects)
        .tls_danger_accept_invalid_certs(def.tls_skip_verify);
    if no_roots {
        builder = builder.tls_certs_only(Vec::new());
    }
    let client = builder
        .build()
        .map_err(|e| format!("building the HTTP client failed: {e}"))?;
    clients.push((key, client.clone()));
    Ok(Some(client))
}

/// The client of a gRPC check: HTTP/2, with prior knowledge unless `GRPCUseTLS` (then
/// negotiated by ALPN, the certificate verified unless `TLSSkipVerify`).
fn grpc_client(def: &CheckDef, timeout: Duration) -> Result<Option<reqwest::Client>, String> {
    let mut builder = reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none());
    builder = if def.grpc_use_tls {
        builder.tls_danger_accept_invalid_certs(def.tls_skip_verify)
    } else {
        builder.http2_prior_knowledge().tls_certs_only(Vec::new())
    };
    builder
        .build()
        .map(Some)
        .map_err(|e| format!("building the gRPC client failed: {e}"))
}

/// gRPC's status codes by number, as grpc-go names them in its error texts.
const GRPC_CODES: [&str; 17] = [
    "OK",
    "Canceled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
];

/// `grpc.health.v1.HealthCheckResponse.ServingStatus` names, by number.
const SERVING_STATUSES: [&str; 4] = ["UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"];

/// One gRPC check run: `grpc.health.v1.Health/Check` on `host:port[/service]`, passing only
/// on `SERVING`, with Consul's outputs ("gRPC check <target>: success", "gRPC <target>
/// serving status: NOT_SERVING") and grpc-go's error texts ("rpc error: code = ... desc =
/// ...").
async fn grpc_once(client: &reqwest::Client, def: &CheckDef) -> (Status, String) {
    let target = def.grpc.as_str();
    let (server, service) = target.split_once('/').unwrap_or((target, ""));
    let scheme = if def.grpc_use_tls { "https" } else { "http" };
    // A HealthCheckRequest: field 1, the service name, left out when empty; in one gRPC frame.
    let mut message = Vec::new();
    if !service.is_empty() {
        message.push(0x0a);
        push_varint(&mut message, service.len() as u64);
        message.extend_from_slice(service.as_bytes());
    }
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
    frame.extend_from_slice(&message);
    let rpc_error = |code: usize, desc: &str| {
        let name = GRPC_CODES.get(code).copied().unwrap_or("Unknown");
        (
            Status::Critical,
            format!("rpc error: code = {name} desc = {desc}"),
        )
    };
    let answer = client
        .post(format!("{scheme}://{server}/grpc.health.v1.Health/Check"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(frame)
        .send()
        .await;
    let answer = match answer {
        Ok(answer) => answer,
        Err(e) if e.is_timeout() => return rpc_error(4, "context deadline exceeded"),
        Err(e) => {
            let detail = grpc_transport_error(&e, server);
            return rpc_error(
                14,
                &format!("connection error: desc = \"transport: {detail}\""),
            );
        }
    };
    // A refusal comes as headers only (a "trailers-only" answer).
    if let Some(code) = answer
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&code| code != 0)
    {
        let message = answer
            .headers()
            .get("grpc-message")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        return rpc_error(code, &percent_decode(&message));
    }
    if answer.status() != reqwest::StatusCode::OK {
        let status = answer.status();
        return rpc_error(
            14,
            &format!("unexpected HTTP status code received from server: {status}"),
        );
    }
    let body = match answer.bytes().await {
        Ok(body) => body,
        Err(e) if e.is_timeout() => return rpc_error(4, "context deadline exceeded"),
        Err(e) => return rpc_error(14, &e.to_string()),
    };
    // One frame holding a HealthCheckResponse; its field 1 is the status (0 when left out).
    let status = body.get(5..).map_or(0, |message| match message {
        [0x08, rest @ ..] => read_varint(rest).unwrap_or(0),
        _ => 0,
    });
    if status == 1 {
        return (Status::Passing, format!("gRPC check {target}: success"));
    }
    let name = usize::try_from(status)
        .ok()
        .and_then(|s| SERVING_STATUSES.get(s).copied())
        .map_or_else(|| status.to_string(), str::to_owned);
    (
        Status::Critical,
        format!("gRPC {target} serving status: {name}"),
    )
}

fn push_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn read_varint(bytes: &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for (i, byte) in bytes.iter().take(10).enumerate() {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// grpc-message is percent-encoded (gRPC's HTTP/2 mapping).
fn percent_decode(message: &str) -> String {
    percent_encoding::percent_decode_str(message)
        .decode_utf8_lossy()
        .into_owned()
}

/// One HTTP check run, with Consul's status mapping and output.
async fn http_once(client: &reqwest::Client, def: &CheckDef) -> (Status, String) {
    let method = if def.method.is_empty() {
        "GET"
    } else {
        def.method.as_str()
    };
    // Go's `urlErrorOp`: "Get", "Post", ...
    let op: String = method
        .chars()
        .take(1)
        .chain(method.chars().skip(1).flat_map(char::to_lowercase))
        .collect();
    let fail = |detail: String| (Status::Critical, format!("{op} {:?}: {detail}", def.http));
    let Ok(m) = reqwest::Method::from_bytes(method.as_bytes()) else {
        return fail(format!("net/http: invalid method {method:?}"));
    };
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::USER_AGENT,
        reqwest::header::HeaderValue::from_static("Consul Health Check"),
    );
    headers.insert(
        reqwest::header::ACCEPT,
        reqwest::header::HeaderValue::from_static("text/plain, text/*, */*"),
    );
    for (name, values) in &def.header {
        let Ok(name) = reqwest::header::HeaderName::from_bytes(name.as_bytes()) else {
            return fail(format!("net/http: invalid header field name {name:?}"));
        };
        // A header of the definition replaces the default of the same name.
        headers.remove(&name);
        for value in values {
            let Ok(value) = reqwest::header::HeaderValue::from_str(value) else {
                return fail(format!("net/http: invalid header field value for {name:?}"));
            };
            headers.append(name.clone(), value);
        }
    }
    let timeout = def.timeout.positive().unwrap_or(DEFAULT_TIMEOUT);
    let mut req = client
        .request(m, &def.http)
        .headers(headers)
        .timeout(timeout);
    if !def.body.is_empty() {
        req = req.body(def.body.clone());
    }
    let mut resp = match req.send().await {
        Ok(r) => r,
        Err(e) => return fail(go_error(&e, &def.http)),
    };
    let code = resp.status();
    let mut body = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() < OUTPUT_MAX {
                    let room = OUTPUT_MAX - body.len();
                    body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                }
            }
            Ok(None) => break,
            Err(e) => return fail(go_error(&e, &def.http)),
        }
    }
    let status = match code.as_u16() {
        200..=299 => Status::Passing,
        429 => Status::Warning,
        _ => Status::Critical,
    };
    let output = format!(
        "HTTP {method} {}: {} {} Output: {}",
        def.http,
        code.as_u16(),
        code.canonical_reason().unwrap_or(""),
        String::from_utf8_lossy(&body)
    );
    (status, output)
}

/// The detail of a failed request, worded like Go's `net/http` client errors.
fn go_error(e: &reqwest::Error, url: &str) -> String {
    if e.is_timeout() {
        return "context deadline exceeded (Client.Timeout exceeded while awaiting headers)".into();
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if let Some(text) = dial_error(io) {
                return format!("dial tcp {}: {text}", host_port(url));
            }
        }
        source = err.source();
    }
    chain_text(e)
}

/// The transport's part of a failed gRPC check, worded as grpc-go's: a dial error, a TLS
/// handshake that failed (the certificate's fault as Go's `x509` says it), or the chain of
/// errors.
fn grpc_transport_error(e: &reqwest::Error, server: &str) -> String {
    use tokio_rustls::rustls::{CertificateError, Error as TlsError};
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(mut err) = source {
        // An I/O error carrying another (rustls's, from the TLS connector, inside another
        // I/O error) keeps it as its payload, not as its source.
        while let Some(inner) = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            err = inner;
        }
        if let Some(tls) = err.downcast_ref::<TlsError>() {
            let why = match tls {
                TlsError::InvalidCertificate(CertificateError::UnknownIssuer) => {
                    "tls: failed to verify certificate: x509: certificate signed by unknown authority".to_owned()
                }
                TlsError::InvalidCertificate(
                    CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
                ) => format!("tls: failed to verify certificate: x509: certificate is not valid for {}", host_of(server)),
                TlsError::InvalidCertificate(
                    CertificateError::Expired
                    | CertificateError::ExpiredContext { .. }
                    | CertificateError::NotValidYet
                    | CertificateError::NotValidYetContext { .. },
                ) => "tls: failed to verify certificate: x509: certificate has expired or is not yet valid".to_owned(),
                other => format!("tls: {other}"),
            };
            return format!("authentication handshake failed: {why}");
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if let Some(text) = dial_error(io) {
                return format!("Error while dialing: dial tcp {server}: {text}");
            }
        }
        source = err.source();
    }
    chain_text(e)
}

/// `e` and each of its sources, joined by `: `.
fn chain_text(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(err) = source {
        text.push_str(": ");
        text.push_str(&err.to_string());
        source = err.source();
    }
    text
}

/// The host of `host:port` (brackets of an IPv6 address removed).
fn host_of(server: &str) -> &str {
    let host = server.rsplit_once(':').map_or(server, |(host, _)| host);
    host.trim_start_matches('[').trim_end_matches(']')
}

fn dial_error(io: &std::io::Error) -> Option<&'static str> {
    use std::io::ErrorKind::*;
    match io.kind() {
        ConnectionRefused => Some("connect: connection refused"),
        ConnectionReset => Some("read: connection reset by peer"),
        TimedOut => Some("i/o timeout"),
        HostUnreachable => Some("connect: no route to host"),
        NetworkUnreachable => Some("connect: network is unreachable"),
        _ => None,
    }
}

fn host_port(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => {
            let host = u.host_str().unwrap_or_default();
            match u.port_or_known_default() {
                Some(p) => format!("{host}:{p}"),
                None => host.to_owned(),
            }
        }
        Err(_) => url.to_owned(),
    }
}

/// One TCP check run.
async fn tcp_once(addr: &str, timeout: Duration) -> (Status, String) {
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(_)) => (Status::Passing, format!("TCP connect {addr}: Success")),
        Ok(Err(e)) => {
            let detail = dial_error(&e).map_or_else(|| e.to_string(), str::to_owned);
            (Status::Critical, format!("dial tcp {addr}: {detail}"))
        }
        Err(_) => (Status::Critical, format!("dial tcp {addr}: i/o timeout")),
    }
}

/// Waits for the TTL deadline; on expiry marks the check critical. Re-armed by
/// [`Runners::rearm`] after a TTL update.
async fn run_ttl(store: Arc<Store>, id: String, generation: u64, notify: Arc<Notify>) {
    loop {
        let deadline = store.read(|st| {
            st.checks
                .get(&id)
                .filter(|c| c.generation == generation)
                .map(|c| c.ttl.as_ref().and_then(|t| t.deadline))
        });
        match deadline {
            None => return,
            Some(None) => notify.notified().await,
            Some(Some(at)) if at > Instant::now() => {
                tokio::select! {
                    _ = tokio::time::sleep_until(at.into()) => {}
                    _ = notify.notified() => {}
                }
            }
            Some(Some(_)) => {
                store.write(|st| {
                    let Some(check) = st.checks.get_mut(&id) else {
                        return;
                    };
                    let Some(ttl) = check.ttl.as_mut() else {
                        return;
                    };
                    // Re-check under the lock: an update may have re-armed it meanwhile.
                    if check.generation != generation
                        || ttl.deadline.is_none_or(|at| at > Instant::now())
                    {
                        return;
                    }
                    ttl.deadline = None;
                    let output = if ttl.last_output.is_empty() {
                        "TTL expired".to_owned()
                    } else {
                        format!(
                            "TTL expired (last output before timeout follows): {}",
                            ttl.last_output
                        )
                    };
                    tracing::debug!(check = %id, "TTL expired");
                    st.set_check(&id, Some(generation), Status::Critical, &output);
                });
            }
        }
    }
}

/// Deregisters services whose checks stayed critical too long, every `interval`.
pub(crate) fn spawn_reaper(runners: Arc<Runners>, interval: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(interval).await;
            runners.write(|st| {
                for id in st.services_to_reap() {
                    if st.remove_service(&id).is_some() {
                        tracing::info!(
                            service = %id,
                            "Check for service has been critical for too long; deregistered service"
                        );
                    }
                }
            });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_count_results_in_a_row() {
        let def = CheckDef {
            success_before_passing: 2,
            failures_before_warning: 1,
            failures_before_critical: 3,
            ..CheckDef::default()
        };
        let mut t = Thresholds::new(&def);
        assert_eq!(t.observe(Status::Passing), None);
        assert_eq!(t.observe(Status::Passing), Some(Status::Passing));
        assert_eq!(t.observe(Status::Critical), Some(Status::Warning));
        assert_eq!(t.observe(Status::Critical), Some(Status::Warning));
        assert_eq!(t.observe(Status::Critical), Some(Status::Critical));
        assert_eq!(t.observe(Status::Passing), None);
        // Without thresholds every result counts at once.
        let mut t = Thresholds::new(&CheckDef::default());
        assert_eq!(t.observe(Status::Critical), Some(Status::Critical));
        assert_eq!(t.observe(Status::Warning), Some(Status::Warning));
    }

    #[tokio::test]
    async fn checks_sharing_a_client_keep_their_own_timeouts() {
        let app = axum::Router::new().route(
            "/slow",
            axum::routing::get(|| async {
                tokio::time::sleep(Duration::from_millis(600)).await;
                "ok"
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/slow", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let def = |timeout_ms: u64| CheckDef {
            http: url.clone(),
            timeout: crate::decode::GoDuration(timeout_ms as i64 * 1_000_000),
            ..CheckDef::default()
        };
        let (short, long) = (def(100), def(5000));
        let plain_clients = || {
            HTTP_CLIENTS
                .lock()
                .unwrap()
                .iter()
                .filter(|(k, _)| *k == (false, false, false))
                .count()
        };
        let client = http_client(&short).unwrap().unwrap();
        assert_eq!(plain_clients(), 1);
        http_client(&long).unwrap().unwrap();
        assert_eq!(plain_clients(), 1, "the same settings share one client");
        let (status, output) = http_once(&client, &short).await;
        assert_eq!(status, Status::Critical, "{output}");
        assert!(output.contains("Client.Timeout exceeded"), "{output}");
        let (status, output) = http_once(&client, &long).await;
        assert_eq!(status, Status::Passing, "{output}");
    }

    #[test]
    fn host_port_defaults() {
        assert_eq!(host_port("http://127.0.0.1:81/x"), "127.0.0.1:81");
        assert_eq!(
            host_port("https://example.invalid/x"),
            "example.invalid:443"
        );
    }
}
