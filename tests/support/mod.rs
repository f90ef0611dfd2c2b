//! Shared by the integration tests: real processes (the dev agent, example binaries) on
//! loopback ports picked at run time, killed when dropped, and deadline waits.

#![allow(dead_code)]

pub mod netns;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A child process killed on drop, with the lines it printed to stdout.
pub struct Proc {
    pub child: Child,
    pub lines: mpsc::Receiver<String>,
    pub name: String,
}

impl Proc {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Waits for a stdout line starting with `prefix`; returns the rest of it.
    pub fn wait_line(&self, prefix: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix(prefix) {
                        return rest.trim().to_owned();
                    }
                }
                Err(_) => panic!(
                    "{}: no line starting with {prefix:?} within {within:?}",
                    self.name
                ),
            }
        }
    }

    /// The lines not read yet, up to the end of the output (the process has exited, or
    /// closes its stdout within `within`).
    pub fn rest_of_output(&self, within: Duration) -> Vec<String> {
        let deadline = Instant::now() + within;
        let mut lines = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => lines.push(line),
                Err(mpsc::RecvTimeoutError::Disconnected) => return lines,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!("{}: its output did not end within {within:?}", self.name)
                }
            }
        }
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(ok.success(), "kill -{sig} failed");
    }

    /// Waits for the process to exit; returns its exit code.
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit within {within:?}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn target_dir() -> PathBuf {
    // .../target/debug/deps/<test binary>
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

/// Path of a binary of this workspace, brought up to date by cargo once per test process
/// (`cargo test --test <one>` builds no examples, so a binary left from an earlier build could
/// be stale).
pub fn binary(kind: &str, name: &str) -> PathBuf {
    use std::collections::BTreeSet;
    use std::sync::Mutex;
    static BUILT: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    let path = match kind {
        "example" => target_dir().join("examples").join(name),
        _ => target_dir().join(name),
    };
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if built.insert(format!("{kind}/{name}")) {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--quiet"]);
        match kind {
            "example" => cmd.args(["--example", name]),
            _ => cmd.args(["-p", "discoverable-devagent", "--bin", name]),
        };
        assert!(cmd.status().unwrap().success(), "building {name} failed");
    }
    path
}

pub fn spawn(name: &str, mut cmd: Command) -> Proc {
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .stdin(Stdio::null());
    // Keep the test's environment from leaking a real Consul into the child.
    cmd.env_remove("CONSUL_HTTP_TOKEN")
        .env_remove("CONSUL_HTTP_TOKEN_FILE");
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {name}: {e}"));
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    Proc {
        child,
        lines: rx,
        name: name.to_owned(),
    }
}

/// The agent a process test runs against: the dev agent's process or a real Consul.
pub enum AgentProc {
    Dev(Proc),
    Real(Box<discoverable_testkit::Consul>),
}

/// An agent of `kind` as a process on 127.0.0.1:<free port> (`dev_args` go to the dev agent
/// only); returns it and its URL, or `None` when the test skips (saying why).
pub fn agent_process(
    kind: discoverable_testkit::AgentKind,
    test: &str,
    dev_args: &[&str],
) -> Option<(AgentProc, String)> {
    match kind {
        discoverable_testkit::AgentKind::Dev => {
            let (p, url) = devagent(dev_args);
            Some((AgentProc::Dev(p), url))
        }
        discoverable_testkit::AgentKind::RealConsul => {
            let peers = discoverable_testkit::peers::require(test)?;
            let consul =
                blocking(|| discoverable_testkit::Consul::start(&peers, Default::default()));
            let url = consul.url();
            Some((AgentProc::Real(Box::new(consul)), url))
        }
    }
}

/// Runs blocking process work without stalling a multi-threaded test runtime.
pub fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(_) => tokio::task::block_in_place(f),
        Err(_) => f(),
    }
}

/// The dev agent as a process on 127.0.0.1:<free port>; returns it and its URL.
pub fn devagent(extra: &[&str]) -> (Proc, String) {
    let mut cmd = Command::new(binary("bin", "devagent"));
    cmd.args(["--addr", "127.0.0.1:0"]).args(extra);
    let p = spawn("devagent", cmd);
    let url = p.wait_line("devagent listening on ", Duration::from_secs(20));
    (p, url)
}

/// An example binary bound to 127.0.0.1:0 and pointed at `consul`; returns it and its URL.
pub fn example(name: &str, consul: &str, env: &[(&str, &str)]) -> (Proc, String) {
    let mut cmd = Command::new(binary("example", name));
    cmd.env("BIND_ADDR", "127.0.0.1:0")
        .env("CONSUL_HTTP_ADDR", consul)
        .env("RUST_LOG", "info");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let p = spawn(name, cmd);
    let url = p.wait_line("listening on ", Duration::from_secs(20));
    (p, url)
}

pub async fn get_json(url: &str) -> Option<serde_json::Value> {
    let r = reqwest::get(url).await.ok()?;
    r.json().await.ok()
}

/// The agent's view of `name`'s instances: `/v1/agent/services` filtered by service name.
pub async fn agent_instances(consul: &str, name: &str) -> Option<Vec<serde_json::Value>> {
    let all = get_json(&format!("{consul}/v1/agent/services")).await?;
    Some(
        all.as_object()?
            .values()
            .filter(|s| s["Service"] == name)
            .cloned()
            .collect(),
    )
}
