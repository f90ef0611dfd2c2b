//! Captures `tracing` output of the current thread into a buffer a test can read: the
//! runtime's lines (at `runtime_level` and above) and the dev agent's request log (debug).
//!
//! The subscriber is set for the current thread only (`tracing::subscriber::set_default`), so
//! tests that run in parallel do not see each other's lines; use it with the current-thread
//! runtime (the default of `#[tokio::test]`), where every task runs on the test's thread.

#![allow(dead_code)]

use std::io;
use std::sync::{Arc, Mutex};

use tracing::Level;
use tracing::subscriber::DefaultGuard;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;

/// The captured text; clones share it.
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

impl io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Logs {
    type Writer = Logs;

    fn make_writer(&'a self) -> Logs {
        self.clone()
    }
}

impl Logs {
    /// Captures the runtime's lines at `runtime_level` and above, and the dev agent's at debug,
    /// until the guard is dropped.
    pub fn capture(runtime_level: Level) -> (Logs, DefaultGuard) {
        let logs = Logs::default();
        let subscriber = tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .without_time()
                    .with_writer(logs.clone()),
            )
            .with(
                Targets::new()
                    .with_target("discoverable_runtime", runtime_level)
                    .with_target("discoverable_devagent", Level::DEBUG),
            );
        let guard = tracing::subscriber::set_default(subscriber);
        (logs, guard)
    }

    /// Every line so far.
    pub fn lines(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// The runtime's WARN and ERROR lines.
    pub fn problems(&self) -> Vec<String> {
        self.lines()
            .into_iter()
            .filter(|l| is_problem(l) && l.contains("discoverable_runtime"))
            .collect()
    }

    /// How many lines contain every one of `parts`.
    pub fn count(&self, parts: &[&str]) -> usize {
        self.lines()
            .iter()
            .filter(|l| parts.iter().all(|p| l.contains(p)))
            .count()
    }

    /// Requests the dev agent logged for `path` with `status`.
    pub fn agent_requests(&self, path: &str, status: u16) -> usize {
        self.count(&[
            "discoverable_devagent",
            &format!("path={path} "),
            &format!("status={status}"),
        ])
    }

    /// The whole text, for assertion messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

fn is_problem(line: &str) -> bool {
    let l = line.trim_start();
    l.starts_with("WARN ") || l.starts_with("ERROR ")
}
