//! A service in a process that installed no `tracing` subscriber is not silent: when Consul
//! cannot be reached, the runtime's warning reaches stderr, after one line saying how to
//! install a subscriber. The test runs itself again as a child process (nothing in this
//! binary installs a subscriber), since the fallback writes to the process's stderr.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use discoverable_runtime::{Service, consul, serve};

const CHILD: &str = "DISCOVERABLE_TEST_NO_SUBSCRIBER_CHILD";
const TEST: &str = "warnings_reach_stderr_without_a_subscriber";
const WITHIN: Duration = Duration::from_secs(30);

#[test]
fn warnings_reach_stderr_without_a_subscriber() {
    if let Ok(consul) = std::env::var(CHILD) {
        return child(&consul);
    }
    // A loopback port nothing listens on: every call to "Consul" is refused.
    let refused = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    for (key, _) in std::env::vars() {
        if key.starts_with("CONSUL_") || key.starts_with("DISCOVERABLE_") || key == "RUST_LOG" {
            cmd.env_remove(key);
        }
    }
    let mut child = cmd
        .args(["--exact", TEST, "--nocapture", "--test-threads=1"])
        .env(CHILD, refused.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + WITHIN;
    let mut seen = Vec::new();
    let warning = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if line.contains("cannot reach Consul") => break line,
            Ok(line) => seen.push(line),
            Err(_) => {
                let _ = child.kill();
                panic!("no warning about Consul on stderr within {WITHIN:?}; stderr: {seen:#?}");
            }
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        warning.starts_with("WARN discoverable: ") && warning.contains(&refused.to_string()),
        "the warning names the level and the address tried: {warning}"
    );
    assert!(
        seen.iter()
            .any(|line| line.contains("no `tracing` subscriber is installed")
                && line.contains("tracing_subscriber::fmt::init()")),
        "a line before the warning says how to install a subscriber: {seen:#?}"
    );
}

/// Serves an app whose Consul refuses every connection, until killed (bounded).
fn child(consul: &str) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let service = Service::builder("quiet")
            .consul(consul::Config::builder().address(consul).build().unwrap())
            .retry_backoff(Duration::from_millis(50), Duration::from_millis(200))
            .build()
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let app = axum::Router::new();
        serve(service, listener, app)
            .with_graceful_shutdown(tokio::time::sleep(WITHIN))
            .await
            .unwrap();
    });
}
