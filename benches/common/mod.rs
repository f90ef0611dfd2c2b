//! Shared by the benchmarks: figures (percentiles, the printed table, the JSON file), child
//! processes killed on drop with timestamped stdout lines, release builds of the examples,
//! `/proc` readings, and a lean keep-alive HTTP/1.1 client for load.
//!
//! Every bench is a `harness = false` target: `cargo bench --bench <name>` prints a table and
//! writes `target/bench-results/<name>.json`, a flat object of figure name → number (plus a
//! few text labels saying what was measured against), each name ending in its unit (`_ms`, `_us`, `_ns`, `_rps`, `_ratio`, `_count`, `_percent`, `_mib`, `_s`).
//! All traffic stays on 127.0.0.1; every process a bench starts is stopped when it ends.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

// ---------------------------------------------------------------------------------------------
// Statistics

/// The `p`-th percentile (0–100) of `values`, interpolated between the closest ranks.
/// NaN when `values` is empty.
pub fn percentile(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = (p / 100.0).clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo as f64)
}

/// The median of `values`.
pub fn median(values: &[f64]) -> f64 {
    percentile(values, 50.0)
}

/// A duration in milliseconds.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

// ---------------------------------------------------------------------------------------------
// Figures

struct Figure {
    name: String,
    value: f64,
    target: String,
    anchor: String,
}

/// The figures of one bench: printed as a table and written as JSON by [`Report::finish`].
pub struct Report {
    bench: &'static str,
    figures: Vec<Figure>,
    notes: Vec<String>,
    labels: Vec<(String, String)>,
}

impl Report {
    pub fn new(bench: &'static str) -> Report {
        Report {
            bench,
            figures: Vec::new(),
            notes: Vec::new(),
            labels: Vec::new(),
        }
    }

    /// A text field of the JSON file (what the figures were measured against, say).
    pub fn label(&mut self, name: &str, value: impl Into<String>) {
        self.labels.push((name.to_owned(), value.into()));
    }

    /// Says in the JSON that the `fabio_*` and `seed_*` figures come from the real peers.
    pub fn label_real_peers(&mut self) {
        use discoverable_testkit::peers::{CONSUL_VERSION, FABIO_VERSION};
        self.label(
            "fabio_measured_on",
            format!(
                "Fabio {FABIO_VERSION} on Consul {CONSUL_VERSION} (real processes on loopback)"
            ),
        );
    }

    /// Adds a figure; `target` and `anchor` may be empty.
    pub fn add(&mut self, name: &str, value: f64, target: &str, anchor: &str) {
        self.figures.push(Figure {
            name: name.to_owned(),
            value,
            target: target.to_owned(),
            anchor: anchor.to_owned(),
        });
    }

    /// A line printed under the table.
    pub fn note(&mut self, text: impl Into<String>) {
        self.notes.push(text.into());
    }

    /// Prints the table and writes `target/bench-results/<bench>.json`.
    pub fn finish(self) {
        let rows: Vec<[String; 4]> = self
            .figures
            .iter()
            .map(|f| {
                [
                    f.name.clone(),
                    format_value(f.value),
                    f.target.clone(),
                    f.anchor.clone(),
                ]
            })
            .collect();
        let header = [
            "figure".to_owned(),
            "value".to_owned(),
            "target".to_owned(),
            "anchor".to_owned(),
        ];
        let mut widths = [0usize; 4];
        for row in std::iter::once(&header).chain(&rows) {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        println!();
        println!("== {} ==", self.bench);
        for (i, row) in std::iter::once(&header).chain(&rows).enumerate() {
            let line = format!(
                "{:<w0$}  {:>w1$}  {:<w2$}  {}",
                row[0],
                row[1],
                row[2],
                row[3],
                w0 = widths[0],
                w1 = widths[1],
                w2 = widths[2],
            );
            println!("{}", line.trim_end());
            if i == 0 {
                println!("{}", "-".repeat(widths.iter().sum::<usize>() + 6));
            }
        }
        for note in &self.notes {
            println!("  {note}");
        }
        let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        println!(
            "  load average {} after the run",
            load.split_whitespace().next().unwrap_or("?")
        );

        let mut json = serde_json::Map::new();
        for (name, value) in &self.labels {
            println!("  {name}: {value}");
            json.insert(name.clone(), serde_json::Value::String(value.clone()));
        }
        for f in &self.figures {
            json.insert(f.name.clone(), json_number(f.value));
        }
        let dir = target_dir().join("bench-results");
        std::fs::create_dir_all(&dir).expect("create target/bench-results");
        let path = dir.join(format!("{}.json", self.bench));
        let text = serde_json::to_string_pretty(&serde_json::Value::Object(json)).unwrap();
        std::fs::write(&path, text + "\n").expect("write the results file");
        println!("  written to {}", path.display());
    }
}

fn format_value(v: f64) -> String {
    if v.is_nan() {
        "n/a".into()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else if v.abs() >= 100.0 {
        format!("{v:.1}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    }
}

fn json_number(v: f64) -> serde_json::Value {
    if v.fract() == 0.0 && v.abs() < 9e15 {
        serde_json::Value::from(v as i64)
    } else {
        // Four significant decimals are more than any of these figures can resolve.
        let rounded = (v * 1e4).round() / 1e4;
        serde_json::Number::from_f64(rounded).map_or(serde_json::Value::Null, Into::into)
    }
}

/// Prints the machine the figures come from: cores, CPU model, memory.
pub fn print_machine() {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown", |(_, m)| m.trim())
        .to_owned();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse::<f64>().ok())
        .unwrap_or(0.0);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load = load.split_whitespace().next().unwrap_or("?");
    println!(
        "machine: {cores} cores, {model}, {:.1} GiB memory; load average {load} before the run",
        mem_kib / 1024.0 / 1024.0
    );
}

// ---------------------------------------------------------------------------------------------
// Child modes, builds

/// The arguments after the program name, without the `--bench` cargo passes to harnessless
/// benches.
pub fn args() -> Vec<String> {
    std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect()
}

/// The target directory (`.../target`): the bench runs as `target/release/deps/<name>-<hash>`.
pub fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        let dir = PathBuf::from(dir);
        return if dir.is_absolute() {
            dir
        } else {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(dir)
        };
    }
    let exe = std::env::current_exe().expect("current_exe");
    exe.ancestors()
        .nth(3)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
}

/// Builds an example of the `discoverable` package with the release profile and returns its
/// path. Cargo answers at once when it is up to date.
pub fn release_example(name: &str) -> PathBuf {
    release_build(&["--example", name]);
    target_dir().join("release").join("examples").join(name)
}

/// Builds a binary of a workspace package with the release profile and returns its path.
/// Cargo answers at once when it is up to date.
pub fn release_bin(package: &str, bin: &str) -> PathBuf {
    release_build(&["-p", package, "--bin", bin]);
    target_dir().join("release").join(bin)
}

/// `cargo build --quiet --release <what>` in this workspace; panics when it fails.
fn release_build(what: &[&str]) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let status = Command::new(cargo)
        .args(["build", "--quiet", "--release"])
        .args(what)
        .arg("--manifest-path")
        .arg(&manifest)
        .status()
        .expect("run cargo");
    assert!(
        status.success(),
        "cargo build --release {} failed",
        what.join(" ")
    );
}

/// This bench's own executable, to start in a child mode.
pub fn current_exe() -> PathBuf {
    std::env::current_exe().expect("current_exe")
}

// ---------------------------------------------------------------------------------------------
// Processes

/// A child process, killed on drop, with the lines it printed to stdout and when each arrived.
pub struct Proc {
    child: Child,
    lines: mpsc::Receiver<(Instant, String)>,
    name: String,
}

impl Proc {
    /// Starts `cmd` with stdout read line by line, stderr inherited, stdin closed.
    pub fn spawn(name: &str, cmd: Command) -> Proc {
        Proc::spawn_with_stderr(name, cmd, Stdio::inherit())
    }

    /// [`Proc::spawn`] with stderr going to `stderr`.
    pub fn spawn_with_stderr(name: &str, mut cmd: Command, stderr: Stdio) -> Proc {
        cmd.stdout(Stdio::piped())
            .stderr(stderr)
            .stdin(Stdio::null());
        // Children talk only to the agent the bench points them at.
        cmd.env_remove("CONSUL_HTTP_TOKEN")
            .env_remove("CONSUL_HTTP_TOKEN_FILE");
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send((Instant::now(), line)).is_err() {
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

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Waits for a stdout line starting with `prefix`; returns when it was read and the rest
    /// of the line.
    pub fn wait_line(&self, prefix: &str, within: Duration) -> (Instant, String) {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((at, line)) => {
                    if let Some(rest) = line.strip_prefix(prefix) {
                        return (at, rest.trim().to_owned());
                    }
                }
                Err(_) => panic!(
                    "{}: no stdout line starting with {prefix:?} within {within:?}",
                    self.name
                ),
            }
        }
    }

    /// Sends `signal` (e.g. `libc::SIGTERM`).
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on the pid of a child this handle owns and has not yet reaped.
        let rc = unsafe { libc::kill(self.pid(), signal) };
        assert_eq!(rc, 0, "{}: kill({signal}) failed", self.name);
    }

    /// Whether the process has exited (without waiting): its status if so.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("try_wait")
    }

    /// Waits for the process to exit (polled every millisecond); returns when it was seen
    /// and its status. Panics after `within`.
    pub fn wait_exit(&mut self, within: Duration) -> (Instant, ExitStatus) {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return (Instant::now(), status);
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit within {within:?}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Parses `http://ADDR` from a `listening on http://ADDR` line.
pub fn parse_url_addr(url: &str) -> SocketAddr {
    url.trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap_or_else(|e| panic!("address in {url:?}: {e}"))
}

/// CPU time a process used so far (user + system), from `/proc/<pid>/stat`.
pub fn process_cpu(pid: i32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/pid/stat");
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat(5); `rest` starts at field 3.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    clock_tick() * ticks as u32
}

/// CPU time the live threads of a process have used so far, in nanoseconds: the sum of
/// `/proc/<pid>/task/<tid>/schedstat` (time on CPU, user and kernel), exact unlike the clock
/// ticks of `/proc/<pid>/stat`.
pub fn process_cpu_precise(pid: i32) -> Duration {
    let mut total = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).expect("read /proc/pid/task") {
        let path = task.expect("task entry").path().join("schedstat");
        if let Ok(text) = std::fs::read_to_string(path) {
            total += text
                .split_whitespace()
                .next()
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    Duration::from_nanos(total)
}

/// The unit of `/proc/<pid>/stat` CPU times (usually 10 ms).
pub fn clock_tick() -> Duration {
    // SAFETY: sysconf only reads a configuration value.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1);
    Duration::from_secs_f64(1.0 / per_second as f64)
}

/// Resident memory of a process in MiB (`VmRSS` of `/proc/<pid>/status`).
pub fn process_rss_mib(pid: i32) -> f64 {
    process_status_mib(pid, "VmRSS")
}

/// A memory line of `/proc/<pid>/status` (`VmRSS`, `RssAnon`, `RssFile`, ...) in MiB.
pub fn process_status_mib(pid: i32, key: &str) -> f64 {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/pid/status");
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{key} in /proc/{pid}/status"));
    kib / 1024.0
}

// ---------------------------------------------------------------------------------------------
// HTTP

/// One keep-alive HTTP/1.1 connection: a bare hyper client, so that load generation costs as
/// little CPU as possible next to the server it measures.
pub struct Conn {
    sender: SendRequest<Body>,
    host: String,
}

impl Conn {
    pub async fn connect(addr: SocketAddr) -> std::io::Result<Conn> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(std::io::Error::other)?;
        tokio::spawn(connection);
        Ok(Conn {
            sender,
            host: addr.to_string(),
        })
    }

    /// GET `path`; returns the status and the body's length once it has been read.
    pub async fn get(&mut self, path: &str) -> Result<(StatusCode, usize), String> {
        let (status, _, body) = self.request(Method::GET, path, Vec::new()).await?;
        Ok((status, body.len()))
    }

    /// `method` `path` with `body`; returns the status, the headers and the body once read.
    pub async fn request(
        &mut self,
        method: Method,
        path: &str,
        body: Vec<u8>,
    ) -> Result<(StatusCode, HeaderMap, Bytes), String> {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, &self.host)
            .body(Body::from(body))
            .expect("request");
        self.sender.ready().await.map_err(|e| e.to_string())?;
        let response = self
            .sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let (parts, body) = response.into_parts();
        let body = axum::body::to_bytes(Body::new(body), 1 << 20)
            .await
            .map_err(|e| e.to_string())?;
        Ok((parts.status, parts.headers, body))
    }
}
