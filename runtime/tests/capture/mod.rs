//! Captures every log line of the test process, at every level, into one shared buffer: all
//! `tracing` events and span fields (the runtime's, the in-process dev agent's, and any
//! dependency's) and all `log` records (reqwest, rustls, hyper-util log through `log`).
//!
//! The subscriber and the logger are process-wide, installed once, and take everything (TRACE,
//! every target): a test that asserts a secret is *absent* thereby checks the lines of every
//! test in the binary, whichever thread they were logged on. A test that asserts a line is
//! *present* looks for something unique to itself (a service name).

#![allow(dead_code)]

use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn push(line: String) {
    LINES.lock().unwrap_or_else(|e| e.into_inner()).push(line);
}

/// Installs the capture (once per process). Call at the start of every test that logs.
pub fn install() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        tracing::subscriber::set_global_default(Capture::default())
            .expect("no other global subscriber in this test binary");
        log::set_logger(&LOGGER).expect("no other logger in this test binary");
        log::set_max_level(log::LevelFilter::Trace);
    });
}

/// Every line captured so far, from every test of this binary.
pub fn lines() -> Vec<String> {
    LINES.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// The captured lines that contain every one of `needles`.
pub fn matching(needles: &[&str]) -> Vec<String> {
    lines()
        .into_iter()
        .filter(|l| needles.iter().all(|n| l.contains(n)))
        .collect()
}

/// Panics, showing the line, if any captured line contains `secret`.
pub fn assert_absent(secret: &str) {
    let lines = lines();
    assert!(!lines.is_empty(), "nothing was captured");
    if let Some(line) = lines.iter().find(|l| l.contains(secret)) {
        panic!("a log line shows the secret: {line}");
    }
}

/// Waits (bounded) until a line containing every one of `needles` has been captured.
pub async fn wait_for(needles: &[&str], within: std::time::Duration) -> String {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(line) = matching(needles).into_iter().next() {
            return line;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no log line with {needles:?} within {within:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

#[derive(Default)]
struct Capture {
    next_id: AtomicU64,
}

/// Writes every field as ` name=value`, the message first.
struct Fields(String);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, " {value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            let _ = write!(self.0, " {value}");
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }
}

fn head(meta: &Metadata<'_>, kind: &str) -> Fields {
    Fields(format!("{kind} {} {}:", meta.level(), meta.target()))
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let mut f = head(span.metadata(), "span");
        let _ = write!(f.0, " {}", span.metadata().name());
        span.record(&mut f);
        push(f.0);
        Id::from_u64(self.next_id.fetch_add(1, Ordering::Relaxed) + 1)
    }

    fn record(&self, _: &Id, values: &Record<'_>) {
        let mut f = Fields("span-record".to_owned());
        values.record(&mut f);
        push(f.0);
    }

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut f = head(event.metadata(), "event");
        event.record(&mut f);
        push(f.0);
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

struct Logger;

static LOGGER: Logger = Logger;

impl log::Log for Logger {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        push(format!(
            "log {} {}: {}",
            record.level(),
            record.target(),
            record.args()
        ));
    }

    fn flush(&self) {}
}
