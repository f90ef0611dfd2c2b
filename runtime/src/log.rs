//! Where the runtime's log events go when the application installed no `tracing` subscriber.
//!
//! Every lifecycle step is a `tracing` event under the `discoverable_runtime` target. An
//! application that installed no subscriber would see none of them, not even "cannot reach
//! Consul". So when serving or a watch starts and no subscriber is installed (neither global
//! nor scoped), the runtime's own tasks run under a small fallback one that prints the
//! runtime's warnings and errors to stderr, one line each, after a first line saying how to
//! install a real subscriber. Everything else (info, debug, other crates' events) is dropped,
//! as without the fallback. Once a subscriber is installed, later serve calls and watches use
//! it instead.

use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::NoSubscriber;
use tracing::{Dispatch, Event, Level, Metadata, Subscriber};

/// The dispatcher the runtime's tasks run under: the current one, or the fallback when none
/// is installed.
pub(crate) fn dispatch() -> Dispatch {
    let current = tracing::dispatcher::get_default(Dispatch::clone);
    if current.is::<NoSubscriber>() {
        Dispatch::new(Fallback::<fn(&str)> { print: to_stderr })
    } else {
        current
    }
}

/// Set once the first fallback line has been printed, so the hint comes once per process.
static HINTED: AtomicBool = AtomicBool::new(false);

const HINT: &str = "discoverable: no `tracing` subscriber is installed, so only the runtime's \
                    warnings and errors are printed here; install one to see every lifecycle \
                    step, e.g. `tracing_subscriber::fmt::init();` at the top of `main`";

/// Writes the runtime's warnings and errors, one line each, through `print`.
struct Fallback<P = fn(&str)> {
    print: P,
}

/// The fallback's output: the hint once per process, then the line.
fn to_stderr(line: &str) {
    let mut stderr = std::io::stderr().lock();
    if !HINTED.swap(true, Ordering::Relaxed) {
        let _ = writeln!(stderr, "{HINT}");
    }
    let _ = writeln!(stderr, "{line}");
}

impl<P: Fn(&str) + Send + Sync + 'static> Subscriber for Fallback<P> {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        *metadata.level() <= Level::WARN && metadata.target().starts_with("discoverable")
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut line = Line::default();
        event.record(&mut line);
        (self.print)(&line.finish(*event.metadata().level()));
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

/// One event as `WARN discoverable: <message> (key: value, ...)`.
#[derive(Default)]
struct Line {
    message: String,
    fields: String,
}

impl Line {
    fn finish(self, level: Level) -> String {
        if self.fields.is_empty() {
            format!("{level} discoverable: {}", self.message)
        } else {
            format!("{level} discoverable: {} ({})", self.message, self.fields)
        }
    }
}

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
            return;
        }
        if !self.fields.is_empty() {
            self.fields.push_str(", ");
        }
        let _ = write!(self.fields, "{}: {value:?}", field.name());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.record_debug(field, &format_args!("{value}"));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[test]
    fn a_line_holds_the_message_then_the_fields() {
        let collected = Arc::new(Mutex::new(Vec::new()));
        let lines = collected.clone();
        let collect = Fallback {
            print: move |line: &str| lines.lock().unwrap().push(line.to_owned()),
        };
        tracing::subscriber::with_default(collect, || {
            let error = "cannot reach Consul at http://127.0.0.1:1/";
            tracing::warn!(error = %error, id = "a-1", "registration failed; retrying");
            tracing::error!("stopping");
            tracing::info!("not printed");
        });
        assert_eq!(
            *collected.lock().unwrap(),
            [
                "WARN discoverable: registration failed; retrying (error: cannot reach Consul \
                 at http://127.0.0.1:1/, id: a-1)",
                "ERROR discoverable: stopping",
            ]
        );
    }

    #[test]
    fn the_fallback_stands_in_only_for_no_subscriber() {
        assert!(dispatch().is::<Fallback>());
        tracing::subscriber::with_default(NoSubscriber::default(), || {
            assert!(dispatch().is::<Fallback>());
        });
        tracing::subscriber::with_default(tracing_subscriber::registry(), || {
            assert!(dispatch().is::<tracing_subscriber::Registry>())
        });
    }
}
