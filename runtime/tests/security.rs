//! Security properties of a served instance, end to end on loopback:
//!
//! - ACL: the token comes from `CONSUL_HTTP_TOKEN` or `CONSUL_HTTP_TOKEN_FILE` (read once,
//!   trimmed; an unreadable file is a start-up error naming the variable); with ACLs on
//!   (default deny) on the dev agent (`dev_agent::`) and on a real Consul (`real_consul::`),
//!   an instance registers with it, and without it gets a clear 403 in its log that says
//!   what to set; the token never shows in a log line (every line of this test
//!   binary at TRACE, every target, `log` records of reqwest and rustls included), an error,
//!   or a `Debug` output; the same for the `cool_app` example as a process at `RUST_LOG=trace`.
//! - The health route: names and states of indicators only, GET and HEAD only (405 with
//!   `Allow: GET, HEAD` otherwise), and the same answer whatever body or headers come with the
//!   request.

mod capture;

use discoverable_testkit::until;

use std::collections::BTreeSet;
use std::io::Read as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use axum::{Router, routing::get};
use discoverable_devagent::{Config as AgentConfig, DevAgent};
use discoverable_runtime::consul::{self, Client};
use discoverable_runtime::{Error, Health, Instance, Service, ServiceBuilder};
use discoverable_testkit::{Agent, AgentKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

const T: Duration = Duration::from_secs(10);
/// The management token of the agents in this file. Distinctive, so a leak cannot hide.
const TOKEN: &str = "acl-3f9d2c71-5b8e-4a06-9e4d-c0ffee5ec2e7";
/// A token the agent does not know; it must not leak either.
const WRONG: &str = "wrong-8a7b6c5d-4e3f-2a1b-secret";

/// An agent of `kind` with ACLs on (default deny) and [`TOKEN`] as its management token;
/// `None`: the test skips, saying why.
async fn acl_agent(kind: AgentKind, test: &str) -> Option<Agent> {
    capture::install();
    Agent::start(kind, test, Some(TOKEN)).await
}

/// A Consul configuration read from these "environment variables" only.
fn from_env(pairs: &[(&str, String)]) -> Result<consul::Config, Error> {
    let vars: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    consul::Config::builder()
        .request_timeout(Duration::from_secs(2))
        .apply_lookup(|k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))?
        .build()
}

/// The operator's view: a client holding the management token.
fn admin(agent: &Agent) -> Client {
    Client::new(
        consul::Config::builder()
            .address(agent.url())
            .token(TOKEN)
            .build()
            .unwrap(),
    )
    .unwrap()
}

fn builder(name: &str, config: consul::Config) -> ServiceBuilder {
    Service::builder(name)
        .prefix(format!("/{name}"))
        .consul(config)
        .grace_period(Duration::from_millis(50))
        .retry_backoff(Duration::from_millis(20), Duration::from_millis(200))
}

fn app() -> Router {
    Router::new().route("/", get(|| async { "home page" }))
}

struct Served {
    addr: SocketAddr,
    task: JoinHandle<std::io::Result<()>>,
}

async fn serve(service: impl Into<discoverable_runtime::Instance>) -> Served {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(discoverable_runtime::serve(service, listener, app()).into_future());
    Served { addr, task }
}

async fn registered(admin: &Client, id: &str) -> bool {
    matches!(admin.agent_service(id, None, None).await, Ok(h) if h.value.is_some())
}

/// Shuts the instance down and waits for `serve` to return.
async fn stop(service_instance: discoverable_runtime::Instance, served: Served) {
    service_instance.shutdown();
    tokio::time::timeout(T, served.task)
        .await
        .expect("serve returns")
        .unwrap()
        .unwrap();
}

fn assert_no_secret(what: &str, shown: &str) {
    for secret in [TOKEN, WRONG] {
        assert!(!shown.contains(secret), "{what} shows a token: {shown}");
    }
    // Nor a recognisable piece of one.
    assert!(!shown.contains("c0ffee5ec2e7"), "{what}: {shown}");
    assert!(!shown.contains("8a7b6c5d"), "{what}: {shown}");
}

fn temp_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "discoverable-security-{}-{name}",
        std::process::id()
    ))
}

// ---- ACL ------------------------------------------------------------------------------------

async fn registers_with_the_token_of_consul_http_token(kind: AgentKind) {
    let Some(agent) = acl_agent(kind, "registers_with_the_token_of_consul_http_token").await else {
        return;
    };
    let admin = admin(&agent);
    let config = from_env(&[
        ("CONSUL_HTTP_ADDR", agent.url()),
        ("CONSUL_HTTP_TOKEN", TOKEN.to_owned()),
    ])
    .unwrap();
    assert_eq!(config.token().map(|t| t.secret()), Some(TOKEN));
    let service = builder("sec-env-token", config).build().unwrap();
    let instance = service.new_instance();
    let served = serve(instance.clone()).await;
    until(T, "registered with the token", || {
        registered(&admin, instance.id())
    })
    .await;
    let health = admin
        .health_service("sec-env-token", &consul::HealthQuery::default())
        .await
        .unwrap();
    assert_eq!(health.value.len(), 1, "registered passing");
    assert_eq!(
        health.value[0].service.tags,
        ["urlprefix-/sec-env-token"],
        "as described"
    );

    stop(instance.clone(), served).await;
    assert!(!registered(&admin, instance.id()).await, "deregistered");
    capture::assert_absent(TOKEN);
}

async fn the_token_file_is_read_once_trimmed_and_wins_over_the_variable(kind: AgentKind) {
    let Some(agent) = acl_agent(
        kind,
        "the_token_file_is_read_once_trimmed_and_wins_over_the_variable",
    )
    .await
    else {
        return;
    };
    let admin = admin(&agent);
    let file = temp_path("token");
    std::fs::write(&file, format!("\n  {TOKEN} \t\n")).unwrap();
    let config = from_env(&[
        ("CONSUL_HTTP_ADDR", agent.url()),
        // Consul's rule: the file wins when it holds a token.
        ("CONSUL_HTTP_TOKEN", WRONG.to_owned()),
        ("CONSUL_HTTP_TOKEN_FILE", file.display().to_string()),
    ])
    .unwrap();
    assert_eq!(config.token().map(|t| t.secret()), Some(TOKEN), "trimmed");
    // Read once, at start: the file may go away afterwards.
    std::fs::remove_file(&file).unwrap();

    let service = builder("sec-token-file", config).build().unwrap();
    let instance = service.new_instance();
    let served = serve(instance.clone()).await;
    until(T, "registered with the file's token", || {
        registered(&admin, instance.id())
    })
    .await;
    stop(instance, served).await;
    capture::assert_absent(TOKEN);
    capture::assert_absent(WRONG);
}

#[tokio::test]
async fn an_unreadable_token_file_is_a_start_up_error_naming_the_variable() {
    capture::install();
    let dir = temp_path("token-dir");
    std::fs::create_dir_all(&dir).unwrap();
    for path in [temp_path("no-such-token-file"), dir.clone()] {
        let e = from_env(&[
            ("CONSUL_HTTP_ADDR", "127.0.0.1:1".to_owned()),
            ("CONSUL_HTTP_TOKEN", TOKEN.to_owned()),
            ("CONSUL_HTTP_TOKEN_FILE", path.display().to_string()),
        ])
        .unwrap_err();
        let shown = format!("{e} {e:?}");
        assert!(
            matches!(e, Error::Config { setting, .. } if setting == "CONSUL_HTTP_TOKEN_FILE"),
            "{shown}"
        );
        assert!(shown.contains("CONSUL_HTTP_TOKEN_FILE"), "{shown}");
        assert!(shown.contains(&path.display().to_string()), "{shown}");
        assert_no_secret("the token-file error", &shown);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

async fn without_a_token_registration_fails_with_a_clear_403_and_serving_goes_on(kind: AgentKind) {
    let Some(agent) = acl_agent(
        kind,
        "without_a_token_registration_fails_with_a_clear_403_and_serving_goes_on",
    )
    .await
    else {
        return;
    };
    let admin = admin(&agent);
    let config = from_env(&[("CONSUL_HTTP_ADDR", agent.url())]).unwrap();
    let service = builder("sec-no-token", config).build().unwrap();
    let instance = service.new_instance();
    let served = serve(instance.clone()).await;

    // The instance's log says what happened (403, permission) and what to fix.
    let line = capture::wait_for(&["sec-no-token", "403"], T).await;
    for expected in [
        "ERROR",
        "Permission denied",
        "service:write",
        "CONSUL_HTTP_TOKEN",
        "CONSUL_HTTP_TOKEN_FILE",
    ] {
        assert!(line.contains(expected), "{expected:?} missing in: {line}");
    }
    // Still serving; not registered.
    let health = reqwest::get(format!("http://{}/health", served.addr))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    assert!(!registered(&admin, instance.id()).await);
    assert!(!instance.is_registered());
    stop(instance, served).await;
}

async fn fail_fast_without_permission_returns_the_403_naming_what_to_set(kind: AgentKind) {
    let Some(agent) = acl_agent(
        kind,
        "fail_fast_without_permission_returns_the_403_naming_what_to_set",
    )
    .await
    else {
        return;
    };
    for (name, token) in [("sec-ff-none", None), ("sec-ff-wrong", Some(WRONG))] {
        let mut vars = vec![("CONSUL_HTTP_ADDR", agent.url())];
        if let Some(t) = token {
            vars.push(("CONSUL_HTTP_TOKEN", t.to_owned()));
        }
        let service = builder(name, from_env(&vars).unwrap())
            .fail_fast(true)
            .build()
            .unwrap();
        let served = serve(service).await;
        let e = tokio::time::timeout(T, served.task)
            .await
            .expect("serve returns at once")
            .unwrap()
            .expect_err("fail_fast fails");
        let shown = format!("{e} {e:?}");
        assert!(shown.contains("403"), "{name}: {shown}");
        assert!(shown.contains("CONSUL_HTTP_TOKEN"), "{name}: {shown}");
        let consul_says = if token.is_some() {
            "ACL not found"
        } else {
            "Permission denied"
        };
        assert!(shown.contains(consul_says), "{name}: {shown}");
        assert_no_secret(name, &shown);
        // And the client's own error, from a direct call.
        let client = Client::new(from_env(&vars).unwrap()).unwrap();
        let e = client
            .register(&consul::Registration::new(format!("{name}-1"), name))
            .await
            .unwrap_err();
        assert!(matches!(e, Error::PermissionDenied { .. }), "{e:?}");
        assert_no_secret(name, &format!("{e} {e:?}"));
    }
    capture::assert_absent(WRONG);
}

#[tokio::test]
async fn debug_outputs_never_show_the_token() {
    capture::install();
    let config = from_env(&[
        ("CONSUL_HTTP_ADDR", "127.0.0.1:1".to_owned()),
        ("CONSUL_HTTP_TOKEN", TOKEN.to_owned()),
        ("CONSUL_HTTP_AUTH", format!("operator:{WRONG}")),
    ])
    .unwrap();
    assert_no_secret("Config", &format!("{config:?}"));
    assert_no_secret(
        "Token",
        &format!("{:?} {}", config.token().unwrap(), config.token().unwrap()),
    );
    let client = Client::new(config.clone()).unwrap();
    assert_no_secret("Client", &format!("{client:?}"));
    let builder = Service::builder("sec-debug").consul(config.clone());
    assert_no_secret("ServiceBuilder", &format!("{builder:?}"));
    let service = builder.build().unwrap();
    assert_no_secret(
        "Service",
        &format!("{service:?} {:?}", service.new_instance()),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let serve = discoverable_runtime::serve(service, listener, app());
    assert_no_secret("Serve", &format!("{serve:?}"));
    let agent_config = AgentConfig {
        acl_token: Some(TOKEN.into()),
        ..AgentConfig::default()
    };
    assert_no_secret("devagent Config", &format!("{agent_config:?}"));
    // An error of a call that cannot reach Consul.
    let e = client.agent_self().await.unwrap_err();
    assert_no_secret("Unreachable", &format!("{e} {e:?}"));
}

async fn no_log_line_shows_the_token_at_trace_level(kind: AgentKind) {
    let Some(agent) = acl_agent(kind, "no_log_line_shows_the_token_at_trace_level").await else {
        return;
    };
    let admin = admin(&agent);
    // A whole lifecycle with the token, plus a denied one with a wrong token.
    let good = builder(
        "sec-trace",
        from_env(&[
            ("CONSUL_HTTP_ADDR", agent.url()),
            ("CONSUL_HTTP_TOKEN", TOKEN.to_owned()),
        ])
        .unwrap(),
    )
    .build()
    .unwrap();
    let bad = builder(
        "sec-trace-wrong",
        from_env(&[
            ("CONSUL_HTTP_ADDR", agent.url()),
            ("CONSUL_HTTP_TOKEN", WRONG.to_owned()),
        ])
        .unwrap(),
    )
    .build()
    .unwrap();
    let (good_instance, bad_instance) = (good.new_instance(), bad.new_instance());
    let (good, bad) = (
        serve(good_instance.clone()).await,
        serve(bad_instance.clone()).await,
    );
    until(T, "registered", || registered(&admin, good_instance.id())).await;
    // Only this test's registrar meets an unknown token (the fail-fast test stops instead).
    capture::wait_for(&["rejected by Consul", "ACL not found"], T).await;
    stop(good_instance, good).await;
    stop(bad_instance, bad).await;
    drop(agent);

    // The capture did see the traffic, down to reqwest's own lines.
    let lines = capture::lines();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("TRACE") || l.contains("DEBUG"))
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("log ") && l.contains("reqwest")),
        "reqwest's log records are captured"
    );
    assert!(lines.iter().any(|l| l.contains("registered with Consul")));
    capture::assert_absent(TOKEN);
    capture::assert_absent(WRONG);
    capture::assert_absent("c0ffee5ec2e7");
}

// ---- The cool_app example as a process -------------------------------------------------------

fn target_dir() -> PathBuf {
    // .../target/debug/deps/<test binary>
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

/// A binary of this workspace, built first if this test run did not build it.
fn binary(package: &str, kind: &str, name: &str) -> PathBuf {
    let path = match kind {
        "--example" => target_dir().join("examples").join(name),
        _ => target_dir().join(name),
    };
    if !path.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let ok = Command::new(cargo)
            .args(["build", "-p", package, kind, name])
            .status()
            .unwrap();
        assert!(ok.success(), "building {name} failed");
    }
    path
}

/// A child process, killed on drop, its stdout and stderr collected by threads.
struct Proc {
    child: std::process::Child,
    out: Option<std::thread::JoinHandle<String>>,
    err: Option<std::thread::JoinHandle<String>>,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Proc {
    fn spawn(mut cmd: Command) -> Proc {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        let mut stdout = child.stdout.take().unwrap();
        let out = std::thread::spawn(move || {
            let mut all = String::new();
            let mut buf = [0u8; 4096];
            let mut pending = String::new();
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let text = String::from_utf8_lossy(&buf[..n]);
                all.push_str(&text);
                pending.push_str(&text);
                while let Some(i) = pending.find('\n') {
                    let _ = tx.send(pending[..i].to_owned());
                    pending.drain(..=i);
                }
            }
            all
        });
        let mut stderr = child.stderr.take().unwrap();
        let err = std::thread::spawn(move || {
            let mut all = Vec::new();
            let _ = stderr.read_to_end(&mut all);
            String::from_utf8_lossy(&all).into_owned()
        });
        Proc {
            child,
            out: Some(out),
            err: Some(err),
            lines,
        }
    }

    fn wait_line(&self, prefix: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no line starting with {prefix:?}"));
            if let Some(rest) = line.strip_prefix(prefix) {
                return rest.trim().to_owned();
            }
        }
    }

    /// SIGTERM, wait for the exit (bounded), and everything it printed.
    fn terminate(mut self) -> (Option<i32>, String, String) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + T;
        let code = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status.code();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("did not exit on SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let out = self.out.take().unwrap().join().unwrap();
        let err = self.err.take().unwrap().join().unwrap();
        (code, out, err)
    }

    /// Waits (bounded) for the process to exit on its own.
    fn exit(mut self) -> (Option<i32>, String, String) {
        let deadline = Instant::now() + T;
        let code = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status.code();
            }
            assert!(Instant::now() < deadline, "did not exit");
            std::thread::sleep(Duration::from_millis(10));
        };
        let out = self.out.take().unwrap().join().unwrap();
        let err = self.err.take().unwrap().join().unwrap();
        (code, out, err)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn devagent_process() -> (Proc, String) {
    let mut cmd = Command::new(binary("discoverable-devagent", "--bin", "devagent"));
    cmd.args(["--addr", "127.0.0.1:0", "--acl-token", TOKEN])
        .env("RUST_LOG", "trace");
    let agent = Proc::spawn(cmd);
    let url = agent.wait_line("devagent listening on ");
    (agent, url)
}

fn cool_app(consul: &str, env: &[(&str, &str)]) -> Proc {
    let mut cmd = Command::new(binary("discoverable", "--example", "cool_app"));
    // Only what the test sets: nothing of a real Consul from the environment.
    for (var, _) in std::env::vars_os() {
        if var.to_string_lossy().starts_with("CONSUL_") {
            cmd.env_remove(var);
        }
    }
    cmd.env("BIND_ADDR", "127.0.0.1:0")
        .env("RUST_LOG", "trace")
        .env("CONSUL_HTTP_ADDR", consul)
        .env("DISCOVERABLE_GRACE_PERIOD", "50ms");
    for (k, v) in env {
        cmd.env(k, v);
    }
    Proc::spawn(cmd)
}

#[tokio::test(flavor = "multi_thread")]
async fn cool_app_registers_with_the_token_and_never_prints_it() {
    let (agent, consul) = devagent_process();
    let app = cool_app(&consul, &[("CONSUL_HTTP_TOKEN", TOKEN)]);
    let url = app.wait_line("listening on ");
    let http = reqwest::Client::new();
    let services = |token: &'static str| {
        let http = http.clone();
        let consul = consul.clone();
        async move {
            let r = http
                .get(format!("{consul}/v1/agent/services"))
                .header("X-Consul-Token", token)
                .send()
                .await
                .ok()?;
            r.json::<serde_json::Value>().await.ok()
        }
    };
    let deadline = Instant::now() + T;
    let entry = loop {
        let found = services(TOKEN).await.and_then(|all| {
            all.as_object()?
                .values()
                .find(|s| s["Service"] == "cool_app")
                .cloned()
        });
        if let Some(entry) = found {
            break entry;
        }
        assert!(Instant::now() < deadline, "cool_app never registered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        url,
        format!(
            "http://{}:{}",
            entry["Address"].as_str().unwrap(),
            entry["Port"]
        ),
        "registered where it listens"
    );
    // Anonymous readers see nothing: the registration really needed the token.
    assert_eq!(services("").await.unwrap(), serde_json::json!({}));

    let (code, out, err) = app.terminate();
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("registered with Consul"), "{err}");
    assert!(err.contains("deregistered from Consul"), "{err}");
    assert!(
        err.contains("TRACE") || err.contains("DEBUG"),
        "RUST_LOG=trace took effect"
    );
    assert_no_secret("cool_app stdout", &out);
    assert_no_secret("cool_app stderr", &err);
    let (_, agent_out, agent_err) = agent.terminate();
    assert_no_secret("devagent stdout", &agent_out);
    assert_no_secret("devagent stderr", &agent_err);
}

#[tokio::test(flavor = "multi_thread")]
async fn cool_app_stops_at_start_up_on_an_unreadable_token_file() {
    let missing = temp_path("cool-app-missing-token");
    let app = cool_app(
        "127.0.0.1:1",
        &[
            ("CONSUL_HTTP_TOKEN", TOKEN),
            ("CONSUL_HTTP_TOKEN_FILE", missing.to_str().unwrap()),
        ],
    );
    let (code, out, err) = app.exit();
    assert_ne!(code, Some(0));
    assert!(err.contains("CONSUL_HTTP_TOKEN_FILE"), "{err}");
    assert!(err.contains(missing.to_str().unwrap()), "{err}");
    // It bound its listener (user code), but never served or registered.
    assert!(!err.contains("registered with Consul"), "{err}");
    assert_no_secret("cool_app stdout", &out);
    assert_no_secret("cool_app stderr", &err);
}

// ---- The health route ------------------------------------------------------------------------

/// An instance with a healthy and a panicking indicator, served against a dev agent.
async fn health_instance(name: &str, agent: &DevAgent) -> (Instance, Served) {
    let service = builder(
        name,
        from_env(&[("CONSUL_HTTP_ADDR", agent.url())]).unwrap(),
    )
    .meta("version", "9.9.9-secret-build")
    .check("db", || async { Health::Up })
    .check("flaky", || async {
        if std::hint::black_box(true) {
            panic!("secret panic text 0xDEADBEEF");
        }
        Health::Up
    })
    .build()
    .unwrap();
    let instance = service.new_instance();
    let served = serve(instance.clone()).await;
    (instance, served)
}

/// A response read off the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Raw {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Raw {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// What must not differ between two answers of the health route.
    fn essence(&self) -> (u16, Option<&str>, Option<&str>, Option<&str>, &[u8]) {
        (
            self.status,
            self.header("content-type"),
            self.header("cache-control"),
            self.header("allow"),
            &self.body,
        )
    }
}

/// Sends `request` as is and reads one response (after any 1xx), writing and reading at once
/// so an answer that comes before the request body is read is still seen.
async fn raw(addr: SocketAddr, request: Vec<u8>, head: bool) -> Raw {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut rd, mut wr) = stream.into_split();
    let writer = tokio::spawn(async move {
        let _ = wr.write_all(&request).await;
        let _ = wr.flush().await;
        // Keep the write half open until the reader is done.
        std::future::pending::<()>().await;
        drop(wr);
    });
    let mut buf = Vec::new();
    let parsed = tokio::time::timeout(T, async {
        let mut chunk = [0u8; 8192];
        loop {
            if let Some(r) = parse(&buf, head) {
                return Some(r);
            }
            match rd.read(&mut chunk).await {
                Ok(0) | Err(_) => return parse(&buf, head),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await
    .expect("an answer within the bound");
    writer.abort();
    parsed.unwrap_or_else(|| {
        panic!(
            "no complete response in {:?}",
            String::from_utf8_lossy(&buf)
        )
    })
}

/// One complete response at the start of `buf` (1xx answers skipped), if there is one.
fn parse(mut buf: &[u8], head: bool) -> Option<Raw> {
    loop {
        let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
        let text = String::from_utf8_lossy(&buf[..end]).into_owned();
        let mut lines = text.split("\r\n");
        let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let rest = &buf[end + 4..];
        if (100..200).contains(&status) {
            buf = rest;
            continue;
        }
        let len: usize = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let len = if head { 0 } else { len };
        if rest.len() < len {
            return None;
        }
        return Some(Raw {
            status,
            headers,
            body: rest[..len].to_vec(),
        });
    }
}

fn request(method: &str, path: &str, headers: &[(&str, &[u8])], body: &[u8]) -> Vec<u8> {
    let mut r = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n")
        .into_bytes();
    for (k, v) in headers {
        r.extend_from_slice(k.as_bytes());
        r.extend_from_slice(b": ");
        r.extend_from_slice(v);
        r.extend_from_slice(b"\r\n");
    }
    r.extend_from_slice(b"\r\n");
    r.extend_from_slice(body);
    r
}

#[tokio::test]
async fn the_health_route_shows_indicator_names_and_states_only() {
    capture::install();
    let agent = DevAgent::start(AgentConfig::default()).await.unwrap();
    let (instance, served) = health_instance("sec-health-json", &agent).await;
    let answer = raw(served.addr, request("GET", "/health", &[], b""), false).await;
    assert_eq!(answer.status, 503, "a panicking indicator counts as down");
    assert_eq!(answer.header("content-type"), Some("application/json"));
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    let json: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
    let keys = |v: &serde_json::Value| -> BTreeSet<String> {
        v.as_object().unwrap().keys().cloned().collect()
    };
    assert_eq!(
        keys(&json),
        BTreeSet::from(["checks".into(), "status".into()])
    );
    assert_eq!(
        keys(&json["checks"]),
        BTreeSet::from(["db".into(), "flaky".into()])
    );
    assert_eq!(
        json,
        serde_json::json!({"status": "down", "checks": {"db": "up", "flaky": "down"}})
    );

    // Nothing else in the body or the headers: no ID, address, port, version, panic text.
    let everything = format!(
        "{} {:?}",
        String::from_utf8_lossy(&answer.body),
        answer.headers
    );
    let port = served.addr.port().to_string();
    let uuid = instance.id().trim_start_matches("sec-health-json-");
    for secret in [
        instance.id(),
        uuid,
        "sec-health-json",
        "127.0.0.1",
        port.as_str(),
        "9.9.9",
        env!("CARGO_PKG_VERSION"),
        "discoverable",
        "panic",
        "DEADBEEF",
        "secret",
        "consul",
        "Consul",
    ] {
        assert!(
            !everything.contains(secret),
            "{secret:?} shows in {everything}"
        );
    }
    let allowed_headers: BTreeSet<&str> = [
        "content-type",
        "cache-control",
        "content-length",
        "date",
        "connection",
    ]
    .into();
    for (name, _) in &answer.headers {
        assert!(
            allowed_headers.contains(name.as_str()),
            "unexpected header {name}"
        );
    }
    stop(instance, served).await;
    agent.shutdown().await;
}

#[tokio::test]
async fn the_health_route_answers_get_and_head_only() {
    capture::install();
    let agent = DevAgent::start(AgentConfig::default()).await.unwrap();
    let (instance, served) = health_instance("sec-health-methods", &agent).await;
    let get = raw(served.addr, request("GET", "/health", &[], b""), false).await;
    let head = raw(served.addr, request("HEAD", "/health", &[], b""), true).await;
    assert_eq!(head.status, get.status);
    assert_eq!(head.header("content-type"), Some("application/json"));
    assert!(head.body.is_empty());

    for method in [
        "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "PROPFIND",
    ] {
        let body: &[u8] = if method == "TRACE" {
            b""
        } else {
            b"{\"status\":\"up\"}"
        };
        let len = body.len().to_string();
        let answer = raw(
            served.addr,
            request(
                method,
                "/health",
                &[
                    ("Content-Type", b"application/json"),
                    ("Content-Length", len.as_bytes()),
                ],
                body,
            ),
            false,
        )
        .await;
        assert_eq!(answer.status, 405, "{method}");
        assert_eq!(answer.header("allow"), Some("GET, HEAD"), "{method}");
        let text = String::from_utf8_lossy(&answer.body);
        assert!(!text.contains(instance.id()), "{method}: {text}");
        assert!(!text.contains("db"), "{method}: {text}");
    }
    // The answer to GET is unchanged by all that.
    let again = raw(served.addr, request("GET", "/health", &[], b""), false).await;
    assert_eq!(again.essence(), get.essence());
    stop(instance, served).await;
    agent.shutdown().await;
}

#[tokio::test]
async fn bodies_and_headers_sent_to_the_health_route_change_nothing() {
    capture::install();
    let agent = DevAgent::start(AgentConfig::default()).await.unwrap();
    let (instance, served) = health_instance("sec-health-input", &agent).await;
    let plain = raw(served.addr, request("GET", "/health", &[], b""), false).await;
    assert_eq!(plain.status, 503);

    let large = vec![b'x'; 4 << 20];
    let large_len = large.len().to_string();
    let json_body = br#"{"status":"up","checks":{"db":"down"}}"#;
    let json_len = json_body.len().to_string();
    let chunked_body = b"5\r\nhello\r\n1a\r\n{\"status\":\"up\",\"x\":[1,2]}\r\n0\r\n\r\n";
    let mut many: Vec<(String, Vec<u8>)> = (0..60)
        .map(|i| {
            (
                format!("X-Junk-{i}"),
                format!("{i}-\"'<>{{}};;%00%ff").into_bytes(),
            )
        })
        .collect();
    many.push(("X-Obs-Text".into(), vec![0x80, 0xfe, b'a', 0xff]));
    let many: Vec<(&str, &[u8])> = many
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_slice()))
        .collect();

    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "a 4 MiB body",
            request(
                "GET",
                "/health",
                &[("Content-Length", large_len.as_bytes())],
                &large,
            ),
        ),
        (
            "a JSON body that claims health",
            request(
                "GET",
                "/health",
                &[
                    ("Content-Type", b"application/json"),
                    ("Content-Length", json_len.as_bytes()),
                ],
                json_body,
            ),
        ),
        (
            "Transfer-Encoding: chunked with a body",
            request(
                "GET",
                "/health",
                &[
                    ("Transfer-Encoding", b"chunked"),
                    ("Content-Type", b"text/plain"),
                ],
                chunked_body,
            ),
        ),
        (
            "sixty junk headers and obs-text",
            request("GET", "/health", &many, b""),
        ),
        (
            "content negotiation and caching tricks",
            request(
                "GET",
                "/health",
                &[
                    (
                        "Accept",
                        b"text/html;q=1, application/xml;q=0.9, */*;q=garbage",
                    ),
                    ("Accept-Encoding", b"gzip, deflate, br, zstd"),
                    ("Content-Type", b"multipart/form-data; boundary=----x"),
                    ("If-None-Match", b"*"),
                    ("If-Modified-Since", b"Thu, 01 Jan 2099 00:00:00 GMT"),
                    ("Range", b"bytes=0-3"),
                    ("Cache-Control", b"max-age=0, only-if-cached"),
                ],
                b"",
            ),
        ),
        (
            "identity and routing claims",
            request(
                "GET",
                "/health",
                &[
                    ("Authorization", b"Bearer not-a-token"),
                    ("Cookie", b"session=1; admin=true"),
                    ("X-Forwarded-For", b"10.0.0.1, 203.0.113.9"),
                    ("X-Forwarded-Host", b"evil.example"),
                    ("Forwarded", b"for=192.0.2.60;proto=https;by=203.0.113.43"),
                    ("X-HTTP-Method-Override", b"DELETE"),
                    ("User-Agent", b"Consul Health Check"),
                    ("Origin", b"https://evil.example"),
                ],
                b"",
            ),
        ),
        (
            "Expect: 100-continue with a body",
            request(
                "GET",
                "/health",
                &[("Expect", b"100-continue"), ("Content-Length", b"4")],
                b"ping",
            ),
        ),
        (
            "upgrade request",
            request(
                "GET",
                "/health",
                &[("Connection", b"Upgrade"), ("Upgrade", b"websocket, h2c")],
                b"",
            ),
        ),
        (
            "a query string",
            request("GET", "/health?verbose=true&format=text&pretty", &[], b""),
        ),
    ];
    for (what, req) in cases {
        let answer = raw(served.addr, req, false).await;
        assert_eq!(answer.essence(), plain.essence(), "{what}");
    }
    // And through an ordinary client, with a body on GET.
    let r = reqwest::Client::new()
        .get(format!("http://{}/health", served.addr))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("status=up&checks=none")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), plain.status);
    assert_eq!(r.bytes().await.unwrap(), plain.body);
    stop(instance, served).await;
    agent.shutdown().await;
}

discoverable_testkit::against_both_agents!(
    current_thread: registers_with_the_token_of_consul_http_token,
    the_token_file_is_read_once_trimmed_and_wins_over_the_variable,
    without_a_token_registration_fails_with_a_clear_403_and_serving_goes_on,
    fail_fast_without_permission_returns_the_403_naming_what_to_set,
    no_log_line_shows_the_token_at_trace_level,
);
