//! What the dev agent keeps in memory after load has come and gone. Each scenario runs against
//! a fresh agent process on loopback:
//!
//! - `idle`: started, one request answered;
//! - `blocking`: 2 000 blocking queries (`/v1/health/service/x?index=N&wait=1s`) held at once,
//!   one connection each, every one answered after its wait with the index it waited on; then
//!   the clients close their connections;
//! - `services`: 10 000 services (each its own name, with a TTL check) registered and then
//!   deregistered over 8 keep-alive connections, until the catalog holds only `consul` again;
//! - `churn`: the same 10 000 services, each deregistered right after its registration, so
//!   that at most 8 exist at a time.
//!
//! Resident memory (`VmRSS`, and `VmHWM` for the peak) is read from `/proc` once the agent has
//! closed every connection the load opened (its open descriptors are back to their count at
//! idle). A control connection opened at the start stays open throughout, so no new connection
//! reaches the agent between the load and the reading.
//!
//! The scenarios run twice: against the `devagent` binary (release build), and against this
//! executable in a child mode that runs the same agent in process and, on glibc, answers
//! `SIGUSR1` with its allocator's figures (`mallinfo2`: bytes in use, bytes taken from the
//! system) and `SIGUSR2` by returning freed memory to the system (`malloc_trim(0)`). The first
//! gives the figures a user sees; the second tells the memory the agent still holds apart from
//! memory the allocator keeps after the agent freed it.

mod common;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use common::{Conn, Proc, Report};

/// Blocking queries held at once.
const BLOCKING_QUERIES: usize = 2000;
/// How long each of them waits (Consul adds up to a sixteenth as jitter).
const BLOCKING_WAIT: Duration = Duration::from_secs(1);
/// Services registered, then deregistered.
const SERVICES: usize = 10_000;
/// Connections the registrations share.
const SERVICE_CONNECTIONS: usize = 8;
/// Bound on one scenario's load.
const SCENARIO_BOUND: Duration = Duration::from_secs(120);
/// Bound on the agent closing the load's connections after the clients did.
const CLOSE_BOUND: Duration = Duration::from_secs(10);

fn main() {
    let args = common::args();
    if args.first().map(String::as_str) == Some("--child-agent") {
        child_agent();
        return;
    }
    common::print_machine();
    raise_fd_limit(2 * BLOCKING_QUERIES as u64 + 256);
    let binary = common::release_bin("discoverable-devagent", "devagent");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");

    let mut report = Report::new("devagent_memory");
    let mut figures = Vec::new();
    for scenario in [
        Scenario::Idle,
        Scenario::Blocking,
        Scenario::Services,
        Scenario::Churn,
    ] {
        let agent = Agent::binary(&binary);
        figures.push((scenario, runtime.block_on(scenario.run(&agent)), false));
        let agent = Agent::child();
        figures.push((scenario, runtime.block_on(scenario.run(&agent)), true));
    }
    let find = |s: Scenario, child: bool| {
        figures
            .iter()
            .find(|(fs, _, fc)| *fs == s && *fc == child)
            .map(|(_, m, _)| m.clone())
            .expect("every scenario ran")
    };
    let idle = find(Scenario::Idle, false);
    let blocking = find(Scenario::Blocking, false);
    let services = find(Scenario::Services, false);
    let churn = find(Scenario::Churn, false);
    report.add("rss_idle_mib", idle.rss, "< 8", "devagent binary, started");
    report.add(
        "rss_after_blocking_mib",
        blocking.rss,
        "",
        "after 2 000 blocking queries held at once",
    );
    report.add(
        "rss_peak_blocking_mib",
        blocking.hwm,
        "",
        "VmHWM while they were held",
    );
    report.add(
        "rss_after_services_mib",
        services.rss,
        "",
        "after 10 000 services came and went",
    );
    report.add(
        "rss_after_churn_mib",
        churn.rss,
        "",
        "after 10 000 services came and went, at most 8 at a time",
    );

    let idle = find(Scenario::Idle, true);
    let blocking = find(Scenario::Blocking, true);
    let services = find(Scenario::Services, true);
    let churn = find(Scenario::Churn, true);
    if let (Some(i), Some(b), Some(s), Some(c)) =
        (idle.heap, blocking.heap, services.heap, churn.heap)
    {
        report.add(
            "heap_in_use_idle_mib",
            i.in_use,
            "",
            "in-process agent, allocated and not freed",
        );
        report.add(
            "heap_in_use_growth_after_blocking_mib",
            b.in_use - i.in_use,
            "< 0.5",
            "no growth: what the agent holds",
        );
        report.add(
            "heap_in_use_growth_after_services_mib",
            s.in_use - i.in_use,
            "< 0.5",
            "no growth: what the agent holds",
        );
        report.add(
            "heap_in_use_growth_after_churn_mib",
            c.in_use - i.in_use,
            "< 0.5",
            "no growth: what the agent holds",
        );
        report.add(
            "heap_system_after_blocking_mib",
            b.system,
            "",
            "taken from the system by the allocator",
        );
        report.add(
            "heap_system_after_services_mib",
            s.system,
            "",
            "taken from the system by the allocator",
        );
    }
    for (name, m) in [
        ("blocking", &blocking),
        ("services", &services),
        ("churn", &churn),
    ] {
        report.add(&format!("child_rss_after_{name}_mib"), m.rss, "", "");
        if let Some(trimmed) = m.trimmed_rss {
            report.add(
                &format!("child_rss_after_{name}_trimmed_mib"),
                trimmed,
                "",
                "after malloc_trim(0)",
            );
            report.add(
                &format!("freed_but_kept_after_{name}_mib"),
                m.rss - trimmed,
                "",
                "freed by the agent, kept by glibc's malloc",
            );
        }
    }
    report.note(format!(
        "blocking: {BLOCKING_QUERIES} queries at once, wait {BLOCKING_WAIT:?}; services and \
         churn: {SERVICES} registered then deregistered over {SERVICE_CONNECTIONS} connections"
    ));
    report.finish();
}

/// A fresh agent process.
struct Agent {
    proc: Proc,
    addr: SocketAddr,
    /// Whether it answers the allocator signals (the child mode on glibc).
    allocator_signals: bool,
}

impl Agent {
    fn binary(path: &std::path::Path) -> Agent {
        let mut cmd = Command::new(path);
        // Thousands of connections from one IP: Consul's per-client limit is off.
        cmd.args(["--addr", "127.0.0.1:0", "--http-max-conns-per-client", "0"])
            .env("RUST_LOG", "info");
        let proc = Proc::spawn_with_stderr("devagent", cmd, Stdio::null());
        let (_, url) = proc.wait_line("devagent listening on ", Duration::from_secs(20));
        Agent {
            addr: common::parse_url_addr(&url),
            proc,
            allocator_signals: false,
        }
    }

    fn child() -> Agent {
        let mut cmd = Command::new(common::current_exe());
        cmd.arg("--child-agent").env("RUST_LOG", "info");
        let proc = Proc::spawn_with_stderr("in-process agent", cmd, Stdio::null());
        let (_, url) = proc.wait_line("listening on ", Duration::from_secs(20));
        Agent {
            addr: common::parse_url_addr(&url),
            proc,
            allocator_signals: cfg!(all(target_os = "linux", target_env = "gnu")),
        }
    }

    fn pid(&self) -> i32 {
        self.proc.pid()
    }

    fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .expect("read /proc/pid/fd")
            .count()
    }

    /// Waits until the agent has no more descriptors open than `count`.
    async fn wait_fds_at_most(&self, count: usize) {
        let deadline = Instant::now() + CLOSE_BOUND;
        while self.open_fds() > count {
            assert!(
                Instant::now() < deadline,
                "the agent still has {} descriptors open ({count} at idle) {CLOSE_BOUND:?} \
                 after the clients closed theirs",
                self.open_fds()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The allocator's figures, from the child mode.
    fn heap(&self) -> Option<Heap> {
        if !self.allocator_signals {
            return None;
        }
        self.proc.signal(libc::SIGUSR1);
        let (_, line) = self.proc.wait_line("heap ", Duration::from_secs(10));
        let mut numbers = line.split_whitespace().map(|n| n.parse::<f64>().unwrap());
        let mib = |b: f64| b / 1024.0 / 1024.0;
        Some(Heap {
            in_use: mib(numbers.next().expect("bytes in use")),
            system: mib(numbers.next().expect("bytes from the system")),
        })
    }

    /// Resident memory after the child returned freed memory to the system.
    fn trimmed_rss(&self) -> Option<f64> {
        if !self.allocator_signals {
            return None;
        }
        self.proc.signal(libc::SIGUSR2);
        self.proc.wait_line("trimmed", Duration::from_secs(10));
        Some(common::process_rss_mib(self.pid()))
    }
}

#[derive(Debug, Clone, Copy)]
struct Heap {
    in_use: f64,
    system: f64,
}

/// What one scenario measured.
#[derive(Debug, Clone)]
struct Measured {
    rss: f64,
    hwm: f64,
    heap: Option<Heap>,
    trimmed_rss: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    Idle,
    Blocking,
    Services,
    Churn,
}

impl Scenario {
    async fn run(self, agent: &Agent) -> Measured {
        let mut control = Conn::connect(agent.addr).await.expect("connect");
        let (status, _, _) = request(&mut control, Method::GET, "/v1/status/leader", "").await;
        assert_eq!(status, StatusCode::OK);
        let idle_fds = agent.open_fds();
        let started = Instant::now();
        match self {
            Scenario::Idle => {}
            Scenario::Blocking => blocking(agent.addr, &mut control).await,
            Scenario::Services => services(agent.addr, &mut control, false).await,
            Scenario::Churn => services(agent.addr, &mut control, true).await,
        }
        assert!(
            started.elapsed() < SCENARIO_BOUND,
            "{self:?} took {:?}",
            started.elapsed()
        );
        agent.wait_fds_at_most(idle_fds).await;
        let measured = Measured {
            rss: common::process_rss_mib(agent.pid()),
            hwm: common::process_status_mib(agent.pid(), "VmHWM"),
            heap: agent.heap(),
            trimmed_rss: agent.trimmed_rss(),
        };
        println!("{self:?} (pid {}): {measured:?}", agent.pid());
        drop(control);
        measured
    }
}

async fn request(
    conn: &mut Conn,
    method: Method,
    path: &str,
    body: &str,
) -> (StatusCode, axum::http::HeaderMap, axum::body::Bytes) {
    let bound = SCENARIO_BOUND;
    tokio::time::timeout(bound, conn.request(method, path, body.as_bytes().to_vec()))
        .await
        .unwrap_or_else(|_| panic!("{path}: no answer within {bound:?}"))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn consul_index(headers: &axum::http::HeaderMap) -> u64 {
    headers
        .get("x-consul-index")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("X-Consul-Index")
}

/// Holds `BLOCKING_QUERIES` blocking queries at once, each on its own connection, and checks
/// that each waited its whole wait and answered with the index it waited on.
async fn blocking(addr: SocketAddr, control: &mut Conn) {
    let body = r#"{"ID": "x-1", "Name": "x", "Port": 8080}"#;
    let (status, _, _) = request(control, Method::PUT, "/v1/agent/service/register", body).await;
    assert_eq!(status, StatusCode::OK);
    let (_, headers, _) = request(control, Method::GET, "/v1/health/service/x", "").await;
    let index = consul_index(&headers);

    let mut conns = Vec::with_capacity(BLOCKING_QUERIES);
    for _ in 0..BLOCKING_QUERIES {
        conns.push(Conn::connect(addr).await.expect("connect"));
    }
    let wait_ms = BLOCKING_WAIT.as_millis();
    let path = format!("/v1/health/service/x?index={index}&wait={wait_ms}ms");
    let started = Instant::now();
    let queries: Vec<_> = conns
        .into_iter()
        .map(|mut conn| {
            let path = path.clone();
            tokio::spawn(async move {
                let (status, headers, body) = request(&mut conn, Method::GET, &path, "").await;
                (status, consul_index(&headers), body.len(), Instant::now())
            })
        })
        .collect();
    for query in queries {
        let (status, answered_index, len, at) = query.await.expect("query task");
        assert_eq!(status, StatusCode::OK);
        assert_eq!(answered_index, index, "nothing changed while it waited");
        assert!(len > 2, "the instance is in the answer");
        assert!(
            at - started >= BLOCKING_WAIT,
            "answered after {:?}, before its wait was over",
            at - started
        );
    }
    // Each task dropped its connection when it ended: every client side is closed now.
}

/// Registers `SERVICES` services with a TTL check each, then deregisters them all; with
/// `churn`, each right after its registration.
async fn services(addr: SocketAddr, control: &mut Conn, churn: bool) {
    let per_conn = SERVICES / SERVICE_CONNECTIONS;
    let mut tasks = Vec::new();
    for c in 0..SERVICE_CONNECTIONS {
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::connect(addr).await.expect("connect");
            let id = |i: usize| format!("svc-{c}-{i}");
            for i in 0..per_conn {
                let body = serde_json::json!({
                    "ID": id(i),
                    "Name": id(i),
                    "Address": "127.0.0.1",
                    "Port": 20_000 + i,
                    "Tags": ["v1", "urlprefix-/svc"],
                    "Meta": {"version": "1"},
                    "Check": {"TTL": "30s", "DeregisterCriticalServiceAfter": "1m"},
                })
                .to_string();
                let (status, _, text) =
                    request(&mut conn, Method::PUT, "/v1/agent/service/register", &body).await;
                assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&text));
                if churn {
                    deregister(&mut conn, &id(i)).await;
                }
            }
            if !churn {
                for i in 0..per_conn {
                    deregister(&mut conn, &id(i)).await;
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("registration task");
    }
    let (_, _, body) = request(control, Method::GET, "/v1/agent/services", "").await;
    assert_eq!(&body[..], b"{}", "every service deregistered");
    let (_, _, body) = request(control, Method::GET, "/v1/catalog/services", "").await;
    let names: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&body).expect("catalog JSON");
    assert_eq!(names.keys().collect::<Vec<_>>(), ["consul"]);
}

async fn deregister(conn: &mut Conn, id: &str) {
    let path = format!("/v1/agent/service/deregister/{id}");
    let (status, _, _) = request(conn, Method::PUT, &path, "").await;
    assert_eq!(status, StatusCode::OK);
}

/// Lets this process (and the agents it starts) open `wanted` descriptors, up to the hard limit.
fn raise_fd_limit(wanted: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct it is given.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    assert_eq!(rc, 0, "getrlimit");
    if limit.rlim_cur >= wanted {
        return;
    }
    assert!(
        limit.rlim_max >= wanted,
        "{wanted} open files needed, the hard limit is {}",
        limit.rlim_max
    );
    limit.rlim_cur = wanted;
    // SAFETY: setrlimit reads the struct it is given.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
    assert_eq!(rc, 0, "setrlimit");
}

/// The child mode: the agent in process, on a runtime like the `devagent` binary's, with the
/// same log output; `SIGUSR1` prints `heap <bytes in use> <bytes from the system>`, `SIGUSR2`
/// returns freed memory to the system and prints `trimmed`.
#[tokio::main]
async fn child_agent() {
    use std::io::Write;
    use tokio::signal::unix::{SignalKind, signal};

    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    // Thousands of connections from one IP: Consul's per-client limit is off.
    let config = discoverable_devagent::Config {
        http_max_conns_per_client: 0,
        ..discoverable_devagent::Config::default()
    };
    let agent = discoverable_devagent::DevAgent::start(config)
        .await
        .expect("dev agent");
    println!("listening on {}", agent.url());
    let _ = std::io::stdout().flush();
    let mut usr1 = signal(SignalKind::user_defined1()).expect("SIGUSR1");
    let mut usr2 = signal(SignalKind::user_defined2()).expect("SIGUSR2");
    loop {
        tokio::select! {
            _ = usr1.recv() => {
                let (in_use, system) = allocator::figures();
                println!("heap {in_use} {system}");
            }
            _ = usr2.recv() => {
                allocator::trim();
                println!("trimmed");
            }
        }
        let _ = std::io::stdout().flush();
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod allocator {
    /// Bytes allocated and not freed, and bytes the allocator holds from the system.
    pub fn figures() -> (usize, usize) {
        // SAFETY: mallinfo2 only reads the allocator's counters.
        let info = unsafe { libc::mallinfo2() };
        (info.uordblks + info.hblkhd, info.arena + info.hblkhd)
    }

    /// Returns every free page the allocator holds to the system.
    pub fn trim() {
        // SAFETY: malloc_trim only releases memory that is free.
        unsafe { libc::malloc_trim(0) };
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
mod allocator {
    pub fn figures() -> (usize, usize) {
        (0, 0)
    }

    pub fn trim() {}
}
