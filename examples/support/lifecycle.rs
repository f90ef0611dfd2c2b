//! The runtime's lifecycle, as the timeline chart's events: a `tracing` layer that records
//! the runtime's own log events into a [`Recorder`] at the moment each is logged, for the
//! instance whose [`span`] it happened in.
//!
//! | runtime event | chart event |
//! | --- | --- |
//! | `registered with Consul` | registered |
//! | `shutdown requested`, `shutdown future completed` | health 503 (answered from then on) |
//! | `deregistered from Consul` | deregistered |
//! | `draining` (logged as the listener closes) | listener closed |
//! | `stopped` (the last connection finished) | drained |
//!
//! Bound, passing and exited are taken by the caller, which binds the listener, watches
//! Consul and awaits the serve task.

use std::fmt;
use std::sync::{Arc, Mutex};

use discoverable_timeline::{EventKind, Recorder};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// The name of the span that says which lane the events inside it belong to.
const SPAN: &str = "instance";

/// A span to run an instance's serve future in: its lifecycle events go to lane `lane`.
pub fn span(lane: &str) -> tracing::Span {
    tracing::info_span!("instance", lane)
}

/// Records the runtime's lifecycle events into the recorder it is pointed at.
pub struct LifecycleLayer {
    recorder: RecordInto,
}

/// Which recorder a [`LifecycleLayer`] records into, changeable while it runs (a bench that
/// charts several runs points it at each run's recorder in turn).
#[derive(Clone, Default)]
pub struct RecordInto(Arc<Mutex<Option<Arc<Recorder>>>>);

impl RecordInto {
    /// Records into `recorder` from now on.
    pub fn set(&self, recorder: Arc<Recorder>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(recorder);
    }

    fn get(&self) -> Option<Arc<Recorder>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl LifecycleLayer {
    /// A layer recording into `recorder`.
    #[allow(dead_code)]
    pub fn new(recorder: Arc<Recorder>) -> LifecycleLayer {
        let into = RecordInto::default();
        into.set(recorder);
        LifecycleLayer { recorder: into }
    }

    /// A layer recording into whatever `into` is set to (nothing until it is set).
    #[allow(dead_code)]
    pub fn recording_into(into: RecordInto) -> LifecycleLayer {
        LifecycleLayer { recorder: into }
    }

    /// Whether the layer needs `metadata`: the runtime's events and the instance spans, at
    /// every level, whatever `RUST_LOG` says for the printed log.
    pub fn wants(metadata: &Metadata<'_>) -> bool {
        metadata.target().starts_with("discoverable_runtime")
            || (metadata.is_span() && metadata.name() == SPAN)
    }
}

/// The lane of an instance span, kept in the span's extensions.
struct LaneName(String);

#[derive(Default)]
struct Fields {
    message: String,
    lane: Option<String>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "lane" => self.lane = Some(value.to_owned()),
            "message" => self.message = value.to_owned(),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        match field.name() {
            "lane" => self.lane = Some(format!("{value:?}")),
            "message" => self.message = format!("{value:?}"),
            _ => {}
        }
    }
}

impl<S> Layer<S> for LifecycleLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.metadata().name() != SPAN {
            return;
        }
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if let (Some(lane), Some(span)) = (fields.lane, ctx.span(id)) {
            span.extensions_mut().insert(LaneName(lane));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let kind = match fields.message.as_str() {
            "registered with Consul" => EventKind::Registered,
            "shutdown requested" | "shutdown future completed" => EventKind::Health503,
            "deregistered from Consul" => EventKind::Deregistered,
            "draining" => EventKind::ListenerClosed,
            "stopped" => EventKind::Drained,
            _ => return,
        };
        let Some(scope) = ctx.event_scope(event) else {
            return;
        };
        for span in scope {
            if let Some(LaneName(lane)) = span.extensions().get::<LaneName>() {
                if let Some(recorder) = self.recorder.get() {
                    recorder.event(lane, kind);
                }
                return;
            }
        }
    }
}
