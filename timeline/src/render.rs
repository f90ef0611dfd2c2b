//! The layout drawn as an SVG document with the `svg` crate's elements.

use svg::Document;
use svg::node::element::{
    Circle, Definitions, Element, Group, Line, Path, Pattern, Polygon, Rectangle, Style, Title,
};

use crate::layout::{
    BandLayout, EventLayout, LaneLayout, Layout, Rect, RequestsLayout, SectionLayout, TextBox,
};
use crate::model::{BandKind, EventKind, Run};

/// Answered requests: a dark blue, dark in greyscale.
pub const ANSWERED: &str = "#1f5fa8";
/// Failed requests: an orange, light in greyscale, hatched with [`FAILED_STRIPE`]; blue and
/// orange stay apart for the usual colour blindnesses.
pub const FAILED: &str = "#f28e2b";
/// The hatch of failed requests.
pub const FAILED_STRIPE: &str = "#7a3a00";
const INK: &str = "#222222";
const MUTED: &str = "#555555";
const GRID: &str = "#e6e6e6";

const FONT: &str = "DejaVu Sans, Verdana, Arial, sans-serif";

/// `run` as an SVG document.
pub fn render(run: &Run) -> String {
    let layout = crate::layout::layout(run);
    let doc = document(run, &layout);
    // The root element written as a plain element: the document's own writer puts line
    // breaks around every text, which would end up in the text content.
    let root: &svg::node::element::Element = &doc;
    root.to_string()
}

/// `value` fit for an attribute: the writer escapes `&`, `<` and `>` but not quotes.
fn attr(value: &str) -> String {
    value.replace('"', "'")
}

fn band_fill(kind: BandKind) -> &'static str {
    match kind {
        BandKind::Routable => "#a8d5ba",
        BandKind::Grace => "#d4d4d4",
        BandKind::Draining => "#c9b3dd",
        BandKind::ExitedStillRouted => "url(#exited-hatch)",
    }
}

/// The builder call of the `svg` crate's elements, for a plain [`Element`].
trait With: svg::Node + Sized {
    fn with(mut self, name: &str, value: impl Into<svg::node::Value>) -> Self {
        svg::Node::assign(&mut self, name, value);
        self
    }
}

impl With for Element {}

/// A `text` element. Built as a plain element: the crate's `Text` element is written with
/// line breaks around its content, which would be part of the text.
fn text(b: &TextBox) -> Element {
    let mut t = Element::new("text");
    svg::Node::append(&mut t, svg::node::Text::new(b.text.clone()));
    t.with("x", round(b.rect.x))
        .with("y", round(b.baseline()))
        .with("font-size", b.size)
}

fn round(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

fn rect(r: &Rect) -> Rectangle {
    Rectangle::new()
        .set("x", round(r.x))
        .set("y", round(r.y))
        .set("width", round(r.w))
        .set("height", round(r.h))
}

fn line(x1: f64, y1: f64, x2: f64, y2: f64) -> Line {
    Line::new()
        .set("x1", round(x1))
        .set("y1", round(y1))
        .set("x2", round(x2))
        .set("y2", round(y2))
}

fn document(run: &Run, layout: &Layout) -> Document {
    let hatch = Pattern::new()
        .set("id", "failed-hatch")
        .set("width", 6)
        .set("height", 6)
        .set("patternUnits", "userSpaceOnUse")
        .set("patternTransform", "rotate(45)")
        .add(
            Rectangle::new()
                .set("width", 6)
                .set("height", 6)
                .set("fill", FAILED),
        )
        .add(
            Rectangle::new()
                .set("width", 1.5)
                .set("height", 6)
                .set("fill", FAILED_STRIPE),
        );
    let exited = Pattern::new()
        .set("id", "exited-hatch")
        .set("width", 5)
        .set("height", 5)
        .set("patternUnits", "userSpaceOnUse")
        .set("patternTransform", "rotate(-45)")
        .add(
            Rectangle::new()
                .set("width", 5)
                .set("height", 5)
                .set("fill", "#f3d6d3"),
        )
        .add(
            Rectangle::new()
                .set("width", 1.5)
                .set("height", 5)
                .set("fill", "#b2182b"),
        );
    // Labels get a white outline so a leader line or a grid line behind them never cuts
    // through the letters.
    let style = Style::new(
        ".halo { paint-order: stroke; stroke: #ffffff; stroke-width: 3px; stroke-linejoin: round; }",
    );
    let mut doc = Document::new()
        .set("width", layout.width)
        .set("height", layout.height)
        .set("viewBox", (0, 0, layout.width, layout.height))
        .set("font-family", FONT)
        .set("data-chart", "timeline")
        .add(Title::new(run.title.clone()))
        .add(Definitions::new().add(hatch).add(exited))
        .add(style)
        .add(
            Rectangle::new()
                .set("width", layout.width)
                .set("height", layout.height)
                .set("fill", "#ffffff"),
        )
        .add(
            text(&layout.title)
                .with("font-weight", "bold")
                .with("class", "title"),
        );
    for fact in &layout.facts {
        doc = doc.add(text(fact).with("fill", MUTED).with("class", "facts"));
    }
    for (section, laid) in run.sections.iter().zip(&layout.sections) {
        doc = doc.add(draw_section(&section.name, laid, layout));
    }
    doc.add(
        text(&layout.axis_label)
            .with("class", "axis-label")
            .with("fill", MUTED),
    )
}

fn draw_section(name: &str, s: &SectionLayout, layout: &Layout) -> Group {
    let mut g = Group::new()
        .set("class", "section")
        .set("data-section", if s.baseline { "baseline" } else { "ours" })
        .set("data-name", attr(name));
    if s.baseline {
        g = g.add(rect(&s.rect).set("fill", "#f2f2f2").set("rx", 4));
    }
    // Grid lines through lanes and requests, one per tick.
    let mut grid = Group::new().set("stroke", GRID).set("stroke-width", 1);
    for &(_, x) in &layout.ticks {
        grid = grid.add(line(x, s.heading.rect.bottom(), x, s.axis_y));
    }
    g = g.add(grid).add(
        text(&s.heading)
            .with("font-weight", "bold")
            .with("class", "heading"),
    );
    for lane in &s.lanes {
        g = g.add(draw_lane(lane));
    }
    g = g.add(draw_requests(&s.requests));
    let mut axis = Group::new().set("class", "axis");
    axis = axis.add(
        line(layout.plot_x0, s.axis_y, layout.plot_x1, s.axis_y)
            .set("stroke", MUTED)
            .set("stroke-width", 1),
    );
    for &(_, x) in &layout.ticks {
        axis = axis.add(
            line(x, s.axis_y, x, s.axis_y + 4.0)
                .set("stroke", MUTED)
                .set("stroke-width", 1),
        );
    }
    for label in &s.tick_labels {
        axis = axis.add(text(label).with("fill", MUTED));
    }
    g.add(axis)
}

fn draw_lane(lane: &LaneLayout) -> Group {
    let mut g = Group::new()
        .set("class", "lane")
        .set("data-lane", attr(&lane.name.text));
    g = g
        .add(
            line(
                lane.bar.x,
                lane.rect.bottom(),
                lane.bar.right(),
                lane.rect.bottom(),
            )
            .set("stroke", GRID),
        )
        .add(text(&lane.name).with("class", "lane-name"))
        .add(rect(&lane.bar).set("fill", "#f7f7f7"));
    for band in &lane.bands {
        g = g.add(draw_band(band));
    }
    let mut leaders = Group::new()
        .set("stroke", "#9a9a9a")
        .set("stroke-width", 0.75);
    for e in &lane.events {
        let label = &e.label.rect;
        let to_x = e.x.clamp(label.x + 2.0, label.right() - 2.0);
        leaders = leaders.add(line(e.x, lane.bar.y, to_x, label.bottom() - 1.0));
    }
    g = g.add(leaders);
    for e in &lane.events {
        g = g.add(draw_event(e));
    }
    g
}

fn draw_band(b: &BandLayout) -> Group {
    let mut g = Group::new()
        .set("class", "band")
        .set("data-kind", b.kind.key())
        .add(Title::new(format!(
            "{}: {:.1} to {:.1} ms ({:.1} ms)",
            b.kind.label(),
            b.from_ms,
            b.to_ms,
            b.to_ms - b.from_ms
        )))
        .add(rect(&b.rect).set("fill", band_fill(b.kind)));
    if let Some(label) = &b.label {
        let label = text(label).with("fill", INK);
        // Over a hatch, a white outline keeps the letters readable.
        g = g.add(match b.kind {
            BandKind::ExitedStillRouted => label.with("class", "halo"),
            _ => label,
        });
    }
    g
}

fn marker(kind: &EventKind, x: f64, y: f64) -> Box<dyn svg::Node> {
    let r = 4.5;
    let poly = |points: &[(f64, f64)], fill: &str| -> Box<dyn svg::Node> {
        let points: Vec<String> = points
            .iter()
            .map(|(dx, dy)| format!("{},{}", round(x + dx), round(y + dy)))
            .collect();
        Box::new(
            Polygon::new()
                .set("points", points.join(" "))
                .set("fill", fill)
                .set("stroke", INK)
                .set("stroke-width", 1),
        )
    };
    let circle = |fill: &str, stroke: &str| -> Box<dyn svg::Node> {
        Box::new(
            Circle::new()
                .set("cx", round(x))
                .set("cy", round(y))
                .set("r", r)
                .set("fill", fill)
                .set("stroke", stroke)
                .set("stroke-width", 1.2),
        )
    };
    match kind {
        EventKind::Bound => circle("#ffffff", INK),
        EventKind::Registered => poly(&[(-r, -r), (r, -r), (r, r), (-r, r)], "#ffffff"),
        EventKind::Passing => circle("#009e73", INK),
        EventKind::InRouter => circle(MUTED, INK),
        EventKind::Sigterm => Box::new(
            Path::new()
                .set(
                    "d",
                    format!(
                        "M{} {} L{} {} M{} {} L{} {}",
                        round(x - r),
                        round(y - r),
                        round(x + r),
                        round(y + r),
                        round(x - r),
                        round(y + r),
                        round(x + r),
                        round(y - r)
                    ),
                )
                .set("stroke", INK)
                .set("stroke-width", 2),
        ),
        EventKind::Health503 => poly(&[(-r, -r), (r, -r), (0.0, r)], "#b2182b"),
        EventKind::Deregistered => poly(&[(0.0, -r), (r, 0.0), (0.0, r), (-r, 0.0)], INK),
        EventKind::Critical => poly(&[(-r, r), (r, r), (0.0, -r)], "#b2182b"),
        EventKind::ListenerClosed => {
            poly(&[(-1.5, -7.0), (1.5, -7.0), (1.5, 7.0), (-1.5, 7.0)], INK)
        }
        EventKind::Drained => poly(&[(0.0, -r), (r, 0.0), (0.0, r), (-r, 0.0)], "#ffffff"),
        EventKind::Exited => poly(&[(-r, -r), (r, -r), (r, r), (-r, r)], INK),
        EventKind::Other(_) => circle(MUTED, INK),
    }
}

fn draw_event(e: &EventLayout) -> Group {
    Group::new()
        .set("class", "event")
        .set("data-kind", e.kind.key())
        .set("data-ms", round(e.at_ms))
        .add(Title::new(format!(
            "{} at {:.1} ms",
            e.kind.label(),
            e.at_ms
        )))
        .add(marker(&e.kind, e.x, e.y))
        .add(text(&e.label).with("class", "halo"))
}

fn draw_requests(r: &RequestsLayout) -> Group {
    let mut answered = Group::new().set("class", "answered").set("fill", ANSWERED);
    let mut failed = Group::new()
        .set("class", "failed")
        .set("fill", "url(#failed-hatch)")
        .set("stroke", FAILED_STRIPE)
        .set("stroke-width", 0.5);
    for b in &r.buckets {
        if let Some(bar) = &b.answered_bar {
            answered = answered.add(rect(bar).add(Title::new(format!(
                "{}-{} ms: {} answered",
                b.from_ms, b.to_ms, b.answered
            ))));
        }
        if let Some(bar) = &b.failed_bar {
            failed = failed.add(rect(bar).add(Title::new(format!(
                "{}-{} ms: {} failed",
                b.from_ms, b.to_ms, b.failed
            ))));
        }
    }
    let mut g = Group::new()
        .set("class", "requests")
        .add(rect(&r.rect).set("fill", "#fbfbfb"))
        .add(answered)
        .add(failed)
        .add(
            line(r.rect.x, r.zero_y, r.rect.right(), r.zero_y)
                .set("stroke", MUTED)
                .set("stroke-width", 1),
        )
        .add(text(&r.caption).with("fill", MUTED))
        .add(
            text(&r.totals)
                .with("class", "totals")
                .with("font-weight", "bold")
                .with("data-answered", r.answered)
                .with("data-failed", r.failed),
        )
        .add(
            text(&r.answered_label)
                .with("fill", ANSWERED)
                .with("font-weight", "bold"),
        )
        .add(
            text(&r.failed_label)
                .with("fill", FAILED_STRIPE)
                .with("font-weight", "bold"),
        );
    for label in &r.scale_labels {
        g = g.add(text(label).with("fill", MUTED));
    }
    g
}
