//! What a chart shows: a run of one or more sections, each with a lane per instance and the
//! requests sent while they ran. Times are milliseconds since the run's origin.

use std::sync::Mutex;
use std::time::Instant;

/// One run: what ran (title and facts), then its sections on one shared time axis.
#[derive(Debug, Clone, Default)]
pub struct Run {
    /// What ran, e.g. `Rolling restart of v2 under load`.
    pub title: String,
    /// Facts about the run, one short phrase each: agent kind and version, router, instance
    /// counts. Printed under the title.
    pub facts: Vec<String>,
    /// The sections, drawn one under the other over the same time axis.
    pub sections: Vec<Section>,
    /// The time axis' label, with its unit; `time since the run started (ms)` by default.
    pub axis_label: Option<String>,
}

/// The instances of one setup and the requests sent to them, e.g. ours, or a baseline that
/// ran beside ours.
#[derive(Debug, Clone, Default)]
pub struct Section {
    /// The heading drawn above the section's lanes.
    pub name: String,
    /// A baseline (the recipe ours is compared with) rather than ours: drawn on a tinted
    /// background, its heading marked as such.
    pub baseline: bool,
    /// One lane per instance, in the order they started.
    pub lanes: Vec<Lane>,
    /// The requests sent while the section ran.
    pub requests: Requests,
}

/// One instance's life: its events and the spans of time between them.
#[derive(Debug, Clone, Default)]
pub struct Lane {
    /// The instance's name, drawn left of its lane.
    pub name: String,
    /// What happened to the instance and when, in any order.
    pub events: Vec<Event>,
    /// Spans of time, e.g. "routable"; [`Lane::derive_bands`] makes the usual ones.
    pub bands: Vec<Band>,
    /// Routable from this time on without an event saying so: it became routable before the
    /// chart's window began (e.g. 0 for a chart that starts at a SIGTERM).
    pub routable_from_ms: Option<f64>,
}

/// A moment of an instance's life.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Milliseconds since the run's origin.
    pub at_ms: f64,
    /// What happened.
    pub kind: EventKind,
}

/// What happened to an instance.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// Its listener was bound.
    Bound,
    /// It was registered with Consul.
    Registered,
    /// Consul reported its check passing (it is routable from here on).
    Passing,
    /// The router routes to it.
    InRouter,
    /// It received SIGTERM (or the shutdown call that takes the same path).
    Sigterm,
    /// Its health route answers 503 from here on.
    Health503,
    /// It was deregistered from Consul.
    Deregistered,
    /// Consul reported its check critical.
    Critical,
    /// It stopped accepting connections.
    ListenerClosed,
    /// Its in-flight requests had all finished.
    Drained,
    /// Its process or task ended.
    Exited,
    /// Anything else, with its label.
    Other(String),
}

impl EventKind {
    /// The label drawn next to the event's marker.
    pub fn label(&self) -> &str {
        match self {
            EventKind::Bound => "bound",
            EventKind::Registered => "registered",
            EventKind::Passing => "passing",
            EventKind::InRouter => "in router",
            EventKind::Sigterm => "SIGTERM",
            EventKind::Health503 => "health 503",
            EventKind::Deregistered => "deregistered",
            EventKind::Critical => "critical",
            EventKind::ListenerClosed => "listener closed",
            EventKind::Drained => "drained",
            EventKind::Exited => "exited",
            EventKind::Other(label) => label,
        }
    }

    /// A short machine name, used as the SVG `data-kind` of the event.
    pub fn key(&self) -> &str {
        match self {
            EventKind::Bound => "bound",
            EventKind::Registered => "registered",
            EventKind::Passing => "passing",
            EventKind::InRouter => "in-router",
            EventKind::Sigterm => "sigterm",
            EventKind::Health503 => "health-503",
            EventKind::Deregistered => "deregistered",
            EventKind::Critical => "critical",
            EventKind::ListenerClosed => "listener-closed",
            EventKind::Drained => "drained",
            EventKind::Exited => "exited",
            EventKind::Other(_) => "other",
        }
    }
}

/// A span of an instance's life.
#[derive(Debug, Clone, PartialEq)]
pub struct Band {
    /// Start, milliseconds since the run's origin.
    pub from_ms: f64,
    /// End, milliseconds since the run's origin.
    pub to_ms: f64,
    /// What the span is.
    pub kind: BandKind,
}

/// What a span of an instance's life is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BandKind {
    /// Passing in Consul, so routers send it requests.
    Routable,
    /// Deregistered, still accepting while routers drop it (the grace period).
    Grace,
    /// Listener closed, finishing in-flight requests.
    Draining,
    /// Exited while Consul still had it passing: routers send requests that fail.
    ExitedStillRouted,
}

impl BandKind {
    /// The label drawn inside the band, where it fits.
    pub fn label(self) -> &'static str {
        match self {
            BandKind::Routable => "routable",
            BandKind::Grace => "grace",
            BandKind::Draining => "draining",
            BandKind::ExitedStillRouted => "exited, still routed",
        }
    }

    /// A short machine name, used as the SVG `data-kind` of the band.
    pub fn key(self) -> &'static str {
        match self {
            BandKind::Routable => "routable",
            BandKind::Grace => "grace",
            BandKind::Draining => "draining",
            BandKind::ExitedStillRouted => "exited-still-routed",
        }
    }
}

impl Lane {
    /// A lane named `name`, without events.
    pub fn new(name: impl Into<String>) -> Lane {
        Lane {
            name: name.into(),
            ..Lane::default()
        }
    }

    /// Adds an event at `at_ms`.
    pub fn event(mut self, at_ms: f64, kind: EventKind) -> Lane {
        self.events.push(Event { at_ms, kind });
        self
    }

    /// The first time `kind` happened.
    pub fn first(&self, kind: &EventKind) -> Option<f64> {
        self.events
            .iter()
            .filter(|e| &e.kind == kind)
            .map(|e| e.at_ms)
            .min_by(f64::total_cmp)
    }

    /// Replaces the bands with the ones the events imply, up to `end_ms` for spans still
    /// open when the run ended:
    /// - routable: passing (or, without a passing event, registered: an instance registered
    ///   with its check passing; or else [`Lane::routable_from_ms`]) to deregistered or
    ///   critical, whichever came first;
    /// - grace: deregistered to listener closed;
    /// - draining: listener closed to drained (or exited);
    /// - exited, still routed: exited while still routable.
    pub fn derive_bands(&mut self, end_ms: f64) {
        use EventKind as E;
        let mut bands = Vec::new();
        let passing = self
            .first(&E::Passing)
            .or(self.first(&E::Registered))
            .or(self.routable_from_ms);
        let deregistered = self.first(&E::Deregistered);
        let critical = self.first(&E::Critical);
        let closed = self.first(&E::ListenerClosed);
        let exited = self.first(&E::Exited);
        let unroutable = [deregistered, critical]
            .into_iter()
            .flatten()
            .filter(|&t| passing.is_none_or(|p| t >= p))
            .min_by(f64::total_cmp);
        if let Some(from) = passing {
            let to = unroutable.unwrap_or(end_ms).max(from);
            bands.push(Band {
                from_ms: from,
                to_ms: to,
                kind: BandKind::Routable,
            });
            if let Some(gone) = exited.filter(|&x| x < to && x >= from) {
                bands.push(Band {
                    from_ms: gone,
                    to_ms: to,
                    kind: BandKind::ExitedStillRouted,
                });
            }
        }
        if let (Some(from), Some(to)) = (deregistered, closed.or(exited)) {
            if to >= from {
                bands.push(Band {
                    from_ms: from,
                    to_ms: to,
                    kind: BandKind::Grace,
                });
            }
        }
        if let Some(from) = closed {
            let to = self.first(&E::Drained).or(exited).unwrap_or(end_ms);
            if to >= from {
                bands.push(Band {
                    from_ms: from,
                    to_ms: to,
                    kind: BandKind::Draining,
                });
            }
        }
        self.bands = bands;
    }

    /// The latest time of any of its events or bands.
    pub fn end_ms(&self) -> f64 {
        let events = self.events.iter().map(|e| e.at_ms);
        let bands = self.bands.iter().map(|b| b.to_ms);
        events.chain(bands).fold(0.0, f64::max)
    }
}

/// Requests answered and failed, counted per millisecond of the run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Requests {
    answered: Vec<u64>,
    failed: Vec<u64>,
}

impl Requests {
    /// No requests.
    pub fn new() -> Requests {
        Requests::default()
    }

    /// Counts one request that ended at `at_ms` (negative times count at 0).
    pub fn record(&mut self, at_ms: f64, answered: bool) {
        let ms = if at_ms.is_finite() && at_ms > 0.0 {
            at_ms as usize
        } else {
            0
        };
        let counts = if answered {
            &mut self.answered
        } else {
            &mut self.failed
        };
        if counts.len() <= ms {
            counts.resize(ms + 1, 0);
        }
        counts[ms] += 1;
    }

    /// How many were answered in all.
    pub fn answered(&self) -> u64 {
        self.answered.iter().sum()
    }

    /// How many failed in all.
    pub fn failed(&self) -> u64 {
        self.failed.iter().sum()
    }

    /// Answered and failed in `[from_ms, to_ms)`, whole milliseconds.
    pub fn between(&self, from_ms: usize, to_ms: usize) -> (u64, u64) {
        let sum = |v: &[u64]| -> u64 {
            let to = to_ms.min(v.len());
            if from_ms >= to {
                0
            } else {
                v[from_ms..to].iter().sum()
            }
        };
        (sum(&self.answered), sum(&self.failed))
    }

    /// The end of the last millisecond with a request, 0 without any.
    pub fn end_ms(&self) -> f64 {
        let last = |v: &[u64]| v.iter().rposition(|&n| n > 0).map_or(0, |i| i + 1);
        last(&self.answered).max(last(&self.failed)) as f64
    }
}

impl Section {
    /// A section named `name` with no lanes yet.
    pub fn new(name: impl Into<String>) -> Section {
        Section {
            name: name.into(),
            ..Section::default()
        }
    }

    /// The latest time in the section: of its lanes and its requests.
    pub fn end_ms(&self) -> f64 {
        self.lanes
            .iter()
            .map(Lane::end_ms)
            .fold(self.requests.end_ms(), f64::max)
    }
}

/// Collects a section while it runs, from any thread: the events of each instance and the
/// outcome of each request, timed from the recorder's origin.
#[derive(Debug)]
pub struct Recorder {
    origin: Instant,
    state: Mutex<(Vec<Lane>, Requests)>,
}

impl Default for Recorder {
    fn default() -> Recorder {
        Recorder::new()
    }
}

impl Recorder {
    /// A recorder whose origin is now.
    pub fn new() -> Recorder {
        Recorder::starting_at(Instant::now())
    }

    /// A recorder whose origin is `origin`.
    pub fn starting_at(origin: Instant) -> Recorder {
        Recorder {
            origin,
            state: Mutex::new((Vec::new(), Requests::new())),
        }
    }

    /// The moment times are counted from.
    pub fn origin(&self) -> Instant {
        self.origin
    }

    /// Milliseconds from the origin to `at` (0 before the origin).
    pub fn ms(&self, at: Instant) -> f64 {
        at.saturating_duration_since(self.origin).as_secs_f64() * 1000.0
    }

    fn state(&self) -> std::sync::MutexGuard<'_, (Vec<Lane>, Requests)> {
        // A panic elsewhere leaves counts that are still counts.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records `kind` for the instance `lane` now; the lane is added on its first event.
    pub fn event(&self, lane: &str, kind: EventKind) {
        self.event_at(lane, kind, Instant::now());
    }

    /// Records `kind` for the instance `lane` at `at`.
    pub fn event_at(&self, lane: &str, kind: EventKind, at: Instant) {
        let at_ms = self.ms(at);
        let mut state = self.state();
        let lanes = &mut state.0;
        let index = match lanes.iter().position(|l| l.name == lane) {
            Some(i) => i,
            None => {
                lanes.push(Lane::new(lane));
                lanes.len() - 1
            }
        };
        lanes[index].events.push(Event { at_ms, kind });
    }

    /// Records one request that ended now, answered or failed.
    pub fn request(&self, answered: bool) {
        self.request_at(Instant::now(), answered);
    }

    /// Records one request that ended at `at`, answered or failed.
    pub fn request_at(&self, at: Instant, answered: bool) {
        let at_ms = self.ms(at);
        self.state().1.record(at_ms, answered);
    }

    /// What was recorded so far as a section named `name`, with the bands the events imply.
    pub fn section(&self, name: impl Into<String>) -> Section {
        let (lanes, requests) = self.state().clone();
        let mut section = Section {
            name: name.into(),
            baseline: false,
            lanes,
            requests,
        };
        let end = section.end_ms();
        for lane in &mut section.lanes {
            lane.derive_bands(end);
        }
        section
    }
}
