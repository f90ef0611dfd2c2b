//! Where everything of a chart goes, in SVG user units (CSS pixels), computed before anything
//! is drawn so the tests can check it: one lane per instance, labels that never overlap,
//! buckets that add up to the totals.

use crate::model::{BandKind, EventKind, Run};

/// The chart's width.
pub const WIDTH: f64 = 1200.0;
/// The most request buckets the chart draws; the bucket size is the smallest of 1, 2, 5, 10,
/// 20, 50, ... ms that keeps the count at or under this.
pub const MAX_BUCKETS: u64 = 150;

const MARGIN: f64 = 16.0;
const RIGHT: f64 = 28.0;
const TITLE_SIZE: f64 = 18.0;
const FACT_SIZE: f64 = 12.5;
const HEADING_SIZE: f64 = 13.5;
const LANE_NAME_SIZE: f64 = 12.0;
const EVENT_SIZE: f64 = 11.0;
const BAND_SIZE: f64 = 10.0;
const TICK_SIZE: f64 = 11.0;
const ROW: f64 = 15.0;
const LABEL_GAP: f64 = 6.0;
const BAR: f64 = 14.0;
/// Room left for an event's marker at either end of a band label.
const MARKER_CLEARANCE: f64 = 7.0;
const ANSWERED_HEIGHT: f64 = 64.0;
const FAILED_HEIGHT: f64 = 30.0;
const MIN_FAILED_BAR: f64 = 3.0;

/// An axis-aligned rectangle: `x`, `y` its top-left corner.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rect {
    /// Left edge.
    pub x: f64,
    /// Top edge.
    pub y: f64,
    /// Width.
    pub w: f64,
    /// Height.
    pub h: f64,
}

impl Rect {
    /// Right edge.
    pub fn right(&self) -> f64 {
        self.x + self.w
    }

    /// Bottom edge.
    pub fn bottom(&self) -> f64 {
        self.y + self.h
    }

    /// Whether the two rectangles share any area (touching edges do not count).
    pub fn intersects(&self, other: &Rect) -> bool {
        self.x < other.right()
            && other.x < self.right()
            && self.y < other.bottom()
            && other.y < self.bottom()
    }
}

/// A line of text and the box it takes, estimated from its font size.
#[derive(Debug, Clone, PartialEq)]
pub struct TextBox {
    /// The text.
    pub text: String,
    /// Font size in CSS pixels.
    pub size: f64,
    /// The box: the text starts at `rect.x`, its baseline is at [`TextBox::baseline`].
    pub rect: Rect,
}

impl TextBox {
    fn new(text: impl Into<String>, size: f64, x: f64, y: f64) -> TextBox {
        let text = text.into();
        let w = text_width(&text, size);
        TextBox {
            rect: Rect {
                x,
                y,
                w,
                h: size * 1.25,
            },
            text,
            size,
        }
    }

    /// The y of the text's baseline.
    pub fn baseline(&self) -> f64 {
        self.rect.y + self.size
    }
}

/// The width `text` takes at `size` in a sans-serif font, erring on the wide side: a
/// per-character estimate, wide enough for DejaVu Sans and Verdana (the widest of the usual
/// sans-serif fonts), so boxes that do not intersect here do not on screen either.
pub fn text_width(text: &str, size: f64) -> f64 {
    let em: f64 = text
        .chars()
        .map(|c| match c {
            'i' | 'l' | 'j' | '\'' | '.' | ',' | ':' | ';' | '!' | '|' => 0.34,
            ' ' => 0.36,
            'f' | 't' | 'r' | 'I' | '(' | ')' | '[' | ']' => 0.46,
            'm' | 'w' => 0.98,
            'M' | 'W' => 1.02,
            c if c.is_ascii_uppercase() => 0.78,
            c if c.is_ascii_digit() => 0.66,
            c if c.is_ascii() => 0.64,
            // Arrows, dashes, symbols: as wide as the widest letters.
            _ => 1.0,
        })
        .sum();
    em * size * 1.05
}

/// Everything's place.
#[derive(Debug, Clone)]
pub struct Layout {
    /// Width of the chart.
    pub width: f64,
    /// Height of the chart.
    pub height: f64,
    /// The title.
    pub title: TextBox,
    /// The facts under the title, wrapped into lines.
    pub facts: Vec<TextBox>,
    /// Left end of the plot area (time 0).
    pub plot_x0: f64,
    /// Right end of the plot area (time [`Layout::axis_max_ms`]).
    pub plot_x1: f64,
    /// The time at the right end of the axis.
    pub axis_max_ms: f64,
    /// The axis ticks: time and x.
    pub ticks: Vec<(f64, f64)>,
    /// Milliseconds per request bucket.
    pub bucket_ms: u64,
    /// The sections, top to bottom.
    pub sections: Vec<SectionLayout>,
    /// The time axis' label, with its unit, under the last section.
    pub axis_label: TextBox,
}

/// One section's place.
#[derive(Debug, Clone)]
pub struct SectionLayout {
    /// Whether it is a baseline.
    pub baseline: bool,
    /// The whole section, heading to axis.
    pub rect: Rect,
    /// The heading.
    pub heading: TextBox,
    /// One per instance.
    pub lanes: Vec<LaneLayout>,
    /// Requests per bucket.
    pub requests: RequestsLayout,
    /// The y of this section's time axis, under its requests.
    pub axis_y: f64,
    /// The tick labels of that axis.
    pub tick_labels: Vec<TextBox>,
}

/// One instance's lane.
#[derive(Debug, Clone)]
pub struct LaneLayout {
    /// The instance's name, left of the plot area.
    pub name: TextBox,
    /// The whole lane.
    pub rect: Rect,
    /// The strip the bands are drawn in and the markers centred on.
    pub bar: Rect,
    /// The bands, in the bar.
    pub bands: Vec<BandLayout>,
    /// The events: marker position and label.
    pub events: Vec<EventLayout>,
}

impl LaneLayout {
    /// Every label of the lane: the name, the events' and the bands' labels.
    pub fn labels(&self) -> Vec<&TextBox> {
        let events = self.events.iter().map(|e| &e.label);
        let bands = self.bands.iter().filter_map(|b| b.label.as_ref());
        std::iter::once(&self.name)
            .chain(events)
            .chain(bands)
            .collect()
    }
}

/// A band's place.
#[derive(Debug, Clone)]
pub struct BandLayout {
    /// What it is.
    pub kind: BandKind,
    /// Start.
    pub from_ms: f64,
    /// End.
    pub to_ms: f64,
    /// Its rectangle (at least one pixel wide).
    pub rect: Rect,
    /// Its label inside it, where there is room.
    pub label: Option<TextBox>,
}

/// An event's place.
#[derive(Debug, Clone)]
pub struct EventLayout {
    /// What happened.
    pub kind: EventKind,
    /// When.
    pub at_ms: f64,
    /// The marker's centre.
    pub x: f64,
    /// The marker's centre.
    pub y: f64,
    /// The label, in a row above the bar, joined to the marker by a leader line.
    pub label: TextBox,
}

/// The requests panel of a section.
#[derive(Debug, Clone)]
pub struct RequestsLayout {
    /// The panel.
    pub rect: Rect,
    /// The line answered bars stand on and failed bars hang from.
    pub zero_y: f64,
    /// What the bars are, above the panel: `requests per 10 ms`.
    pub caption: TextBox,
    /// `answered 12 345, failed 0`, above the panel at the right.
    pub totals: TextBox,
    /// `answered`, left of the upper half.
    pub answered_label: TextBox,
    /// `failed`, left of the lower half.
    pub failed_label: TextBox,
    /// The scale's ends: the most answered in a bucket (top), the most failed (bottom).
    pub scale_labels: Vec<TextBox>,
    /// Total answered.
    pub answered: u64,
    /// Total failed.
    pub failed: u64,
    /// The most answered in one bucket.
    pub max_answered: u64,
    /// The most failed in one bucket.
    pub max_failed: u64,
    /// Every bucket, from time 0 to the end of the axis.
    pub buckets: Vec<BucketLayout>,
}

/// One bucket of requests.
#[derive(Debug, Clone)]
pub struct BucketLayout {
    /// Start.
    pub from_ms: u64,
    /// End (exclusive).
    pub to_ms: u64,
    /// Answered in the bucket.
    pub answered: u64,
    /// Failed in the bucket.
    pub failed: u64,
    /// The answered bar, above the zero line; `None` when none were answered.
    pub answered_bar: Option<Rect>,
    /// The failed bar, below the zero line; `None` when none failed.
    pub failed_bar: Option<Rect>,
}

/// `12345` as `12 345`.
pub fn group_digits(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

/// The totals line of a requests panel.
pub fn totals_text(answered: u64, failed: u64) -> String {
    format!(
        "answered {}, failed {}",
        group_digits(answered),
        group_digits(failed)
    )
}

/// 1, 2 or 5 times a power of ten, at least `x`.
fn nice_at_least(x: f64) -> f64 {
    let x = x.max(1e-9);
    let power = 10f64.powf(x.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|&v| v >= x * (1.0 - 1e-12))
        .unwrap_or(10.0 * power)
}

/// The bucket size: the smallest 1, 2, 5 × 10^k ms giving at most [`MAX_BUCKETS`] buckets.
pub fn bucket_ms(axis_max_ms: f64) -> u64 {
    let mut size = 1u64;
    loop {
        for m in [1, 2, 5] {
            let candidate = size * m;
            if (axis_max_ms / candidate as f64).ceil() as u64 <= MAX_BUCKETS {
                return candidate;
            }
        }
        size *= 10;
    }
}

/// Lays out `run`.
pub fn layout(run: &Run) -> Layout {
    let end = run.sections.iter().map(|s| s.end_ms()).fold(1.0, f64::max);
    let step = nice_at_least(end / 10.0);
    let axis_max_ms = (end / step).ceil().max(1.0) * step;
    let bucket = bucket_ms(axis_max_ms);

    let names = run.sections.iter().flat_map(|s| &s.lanes).map(|l| &l.name);
    let gutter = names
        .map(|n| text_width(n, LANE_NAME_SIZE))
        .fold(0.0, f64::max)
        // The requests panel's labels: `answered` and the scale's numbers right of it.
        .max(text_width("answered", LANE_NAME_SIZE) + text_width("99 999 999", BAND_SIZE));
    let plot_x0 = MARGIN + gutter + 14.0;
    let plot_x1 = WIDTH - RIGHT;
    let x_of = |ms: f64| plot_x0 + (ms / axis_max_ms).clamp(0.0, 1.0) * (plot_x1 - plot_x0);
    let ticks: Vec<(f64, f64)> = (0..)
        .map(|i| i as f64 * step)
        .take_while(|&t| t <= axis_max_ms + step * 1e-9)
        .map(|t| (t, x_of(t)))
        .collect();

    let mut y = MARGIN;
    let title = TextBox::new(run.title.clone(), TITLE_SIZE, MARGIN, y);
    y = title.rect.bottom() + 4.0;
    let mut facts = Vec::new();
    let mut line = String::new();
    for fact in &run.facts {
        let candidate = if line.is_empty() {
            fact.clone()
        } else {
            format!("{line}  ·  {fact}")
        };
        if !line.is_empty() && text_width(&candidate, FACT_SIZE) > WIDTH - 2.0 * MARGIN {
            let b = TextBox::new(std::mem::take(&mut line), FACT_SIZE, MARGIN, y);
            y = b.rect.bottom() + 2.0;
            facts.push(b);
            line = fact.clone();
        } else {
            line = candidate;
        }
    }
    if !line.is_empty() {
        let b = TextBox::new(line, FACT_SIZE, MARGIN, y);
        y = b.rect.bottom() + 2.0;
        facts.push(b);
    }
    y += 10.0;

    let mut sections = Vec::new();
    for section in &run.sections {
        let top = y;
        let heading_text = if section.baseline {
            format!("baseline: {}", section.name)
        } else {
            section.name.clone()
        };
        let heading = TextBox::new(heading_text, HEADING_SIZE, MARGIN, y + 6.0);
        y = heading.rect.bottom() + 4.0;

        let mut lanes = Vec::new();
        for lane in &section.lanes {
            let l = lay_lane(lane, y, plot_x0, plot_x1, &x_of);
            y = l.rect.bottom();
            lanes.push(l);
        }

        let requests = lay_requests(
            section,
            bucket,
            axis_max_ms,
            y + 4.0,
            plot_x0,
            plot_x1,
            &x_of,
        );
        let axis_y = requests.rect.bottom() + 4.0;
        let tick_labels = tick_labels(&ticks, axis_y + 5.0, plot_x1);
        y = tick_labels
            .iter()
            .map(|t| t.rect.bottom())
            .fold(axis_y + 5.0, f64::max)
            + 8.0;
        sections.push(SectionLayout {
            baseline: section.baseline,
            rect: Rect {
                x: MARGIN / 2.0,
                y: top,
                w: WIDTH - MARGIN,
                h: y - top,
            },
            heading,
            lanes,
            requests,
            axis_y,
            tick_labels,
        });
        y += 8.0;
    }
    let label = run
        .axis_label
        .clone()
        .unwrap_or_else(|| "time since the run started (ms)".to_owned());
    let w = text_width(&label, TICK_SIZE + 1.0);
    let axis_label = TextBox::new(label, TICK_SIZE + 1.0, (plot_x0 + plot_x1 - w) / 2.0, y);
    y = axis_label.rect.bottom() + MARGIN;

    Layout {
        width: WIDTH,
        height: y.ceil(),
        title,
        facts,
        plot_x0,
        plot_x1,
        axis_max_ms,
        ticks,
        bucket_ms: bucket,
        sections,
        axis_label,
    }
}

fn tick_labels(ticks: &[(f64, f64)], y: f64, plot_x1: f64) -> Vec<TextBox> {
    let mut labels: Vec<TextBox> = Vec::new();
    for &(t, x) in ticks {
        let text = group_digits(t.round() as u64);
        let w = text_width(&text, TICK_SIZE);
        let left = (x - w / 2.0).min(plot_x1 + RIGHT - 2.0 - w);
        let b = TextBox::new(text, TICK_SIZE, left, y);
        // Ticks are at least a tenth of the axis apart, so this only thins a crowded end.
        if labels
            .last()
            .is_none_or(|prev| prev.rect.right() + 4.0 <= b.rect.x)
        {
            labels.push(b);
        }
    }
    labels
}

fn lay_lane(
    lane: &crate::model::Lane,
    top: f64,
    plot_x0: f64,
    plot_x1: f64,
    x_of: &impl Fn(f64) -> f64,
) -> LaneLayout {
    // Event labels, left to right, each in the lowest row where it clears the row's last
    // label; a label that would run past the plot's right end is moved left.
    let mut events: Vec<(EventKind, f64, f64, f64, f64)> = Vec::new(); // kind, at, x, left, w
    let mut order: Vec<&crate::model::Event> = lane.events.iter().collect();
    order.sort_by(|a, b| a.at_ms.total_cmp(&b.at_ms));
    for e in order {
        let x = x_of(e.at_ms);
        let w = text_width(e.kind.label(), EVENT_SIZE);
        let left = (x - 3.0).min(plot_x1 + RIGHT - 2.0 - w).max(plot_x0);
        events.push((e.kind.clone(), e.at_ms, x, left, w));
    }
    let mut row_ends: Vec<f64> = Vec::new();
    let mut rows = Vec::new();
    for &(_, _, _, left, w) in &events {
        let row = match row_ends.iter().position(|&end| end + LABEL_GAP <= left) {
            Some(r) => r,
            None => {
                row_ends.push(f64::NEG_INFINITY);
                row_ends.len() - 1
            }
        };
        row_ends[row] = left + w;
        rows.push(row);
    }
    let n_rows = row_ends.len().max(1) as f64;
    let bar = Rect {
        x: plot_x0,
        y: top + 6.0 + n_rows * ROW + 4.0,
        w: plot_x1 - plot_x0,
        h: BAR,
    };
    let events = events
        .into_iter()
        .zip(rows)
        .map(|((kind, at_ms, x, left, _), row)| {
            let label_top = bar.y - 4.0 - (row as f64 + 1.0) * ROW;
            EventLayout {
                label: TextBox::new(kind.label(), EVENT_SIZE, left, label_top),
                kind,
                at_ms,
                x,
                y: bar.y + bar.h / 2.0,
            }
        })
        .collect();

    // Bands in time order, the "exited, still routed" overlays last so they are drawn over
    // the routable band they lie in.
    let mut order: Vec<&crate::model::Band> = lane.bands.iter().collect();
    order.sort_by(|a, b| {
        let overlay = |b: &crate::model::Band| b.kind == BandKind::ExitedStillRouted;
        overlay(a)
            .cmp(&overlay(b))
            .then(a.from_ms.total_cmp(&b.from_ms))
    });
    let mut bands: Vec<BandLayout> = order
        .into_iter()
        .map(|band| {
            let (x0, x1) = (x_of(band.from_ms), x_of(band.to_ms));
            BandLayout {
                kind: band.kind,
                from_ms: band.from_ms,
                to_ms: band.to_ms,
                rect: Rect {
                    x: x0,
                    y: bar.y,
                    w: (x1 - x0).max(1.0),
                    h: bar.h,
                },
                label: None,
            }
        })
        .collect();
    // Labels: the overlays' first, then the others where an overlay does not hide them; each
    // with its length where that fits, else the bare name, else none; centred in the band,
    // clear of the markers at its ends and of the lane's other band labels.
    let overlays: Vec<Rect> = bands
        .iter()
        .filter(|b| b.kind == BandKind::ExitedStillRouted)
        .map(|b| b.rect)
        .collect();
    let mut placed: Vec<Rect> = Vec::new();
    for overlay_pass in [true, false] {
        for band in bands
            .iter_mut()
            .filter(|b| (b.kind == BandKind::ExitedStillRouted) == overlay_pass)
        {
            // The part an overlay does not cover.
            let x0 = band.rect.x;
            let x1 = overlays
                .iter()
                .filter(|o| !overlay_pass && o.x > x0)
                .map(|o| o.x)
                .fold(band.rect.right(), f64::min);
            let long = format!(
                "{} {} ms",
                band.kind.label(),
                group_digits((band.to_ms - band.from_ms).round() as u64)
            );
            band.label = [long.as_str(), band.kind.label()]
                .into_iter()
                .find_map(|text| {
                    let w = text_width(text, BAND_SIZE);
                    let left = ((x0 + x1 - w) / 2.0).max(x0 + MARKER_CLEARANCE);
                    let top = bar.y + (BAR - BAND_SIZE * 1.25) / 2.0;
                    let label = TextBox::new(text, BAND_SIZE, left, top);
                    let hidden =
                        !overlay_pass && overlays.iter().any(|o| o.intersects(&label.rect));
                    let fits = label.rect.right() + MARKER_CLEARANCE <= x1
                        && !hidden
                        && !placed.iter().any(|p| p.intersects(&label.rect));
                    fits.then_some(label)
                });
            if let Some(label) = &band.label {
                placed.push(label.rect);
            }
        }
    }
    let name = TextBox::new(
        lane.name.clone(),
        LANE_NAME_SIZE,
        MARGIN,
        bar.y + (BAR - LANE_NAME_SIZE * 1.25) / 2.0,
    );
    LaneLayout {
        name,
        rect: Rect {
            x: MARGIN / 2.0,
            y: top,
            w: WIDTH - MARGIN,
            h: bar.bottom() + 8.0 - top,
        },
        bar,
        bands,
        events,
    }
}

fn lay_requests(
    section: &crate::model::Section,
    bucket: u64,
    axis_max_ms: f64,
    top: f64,
    plot_x0: f64,
    plot_x1: f64,
    x_of: &impl Fn(f64) -> f64,
) -> RequestsLayout {
    let requests = &section.requests;
    let (answered, failed) = (requests.answered(), requests.failed());
    let caption = TextBox::new(
        format!("requests per {bucket} ms"),
        LANE_NAME_SIZE,
        plot_x0,
        top,
    );
    let totals_str = totals_text(answered, failed);
    let tw = text_width(&totals_str, LANE_NAME_SIZE);
    let totals = TextBox::new(totals_str, LANE_NAME_SIZE, plot_x1 - tw, top);
    let rect = Rect {
        x: plot_x0,
        y: caption.rect.bottom() + 4.0,
        w: plot_x1 - plot_x0,
        h: ANSWERED_HEIGHT + FAILED_HEIGHT,
    };
    let zero_y = rect.y + ANSWERED_HEIGHT;
    let n = ((axis_max_ms / bucket as f64).ceil() as u64).max(1);
    let counts: Vec<(u64, u64, u64)> = (0..n)
        .map(|i| {
            let (from, to) = (i * bucket, (i + 1) * bucket);
            let (a, f) = requests.between(from as usize, to as usize);
            (from, a, f)
        })
        .collect();
    // Requests after the axis' end cannot happen (the axis ends after the last one), but a
    // last bucket takes them so the buckets always add up to the totals.
    let (late_a, late_f) = requests.between((n * bucket) as usize, usize::MAX);
    let max_answered = counts.iter().map(|c| c.1).max().unwrap_or(0) + late_a;
    let max_failed = counts.iter().map(|c| c.2).max().unwrap_or(0) + late_f;
    let buckets = counts
        .into_iter()
        .enumerate()
        .map(|(i, (from, a, f))| {
            let (a, f) = if i as u64 == n - 1 {
                (a + late_a, f + late_f)
            } else {
                (a, f)
            };
            let x0 = x_of(from as f64);
            let x1 = x_of((from + bucket) as f64);
            let w = (x1 - x0 - 1.0).max(1.0);
            let answered_bar = (a > 0).then(|| {
                let h = (a as f64 / max_answered as f64 * ANSWERED_HEIGHT).max(1.0);
                Rect {
                    x: x0 + 0.5,
                    y: zero_y - h,
                    w,
                    h,
                }
            });
            let failed_bar = (f > 0).then(|| {
                let h = (f as f64 / max_failed as f64 * FAILED_HEIGHT).max(MIN_FAILED_BAR);
                Rect {
                    x: x0 + 0.5,
                    y: zero_y,
                    w,
                    h,
                }
            });
            BucketLayout {
                from_ms: from,
                to_ms: from + bucket,
                answered: a,
                failed: f,
                answered_bar,
                failed_bar,
            }
        })
        .collect();
    let gutter_x = MARGIN;
    let answered_label = TextBox::new(
        "answered",
        LANE_NAME_SIZE,
        gutter_x,
        zero_y - ANSWERED_HEIGHT / 2.0 - LANE_NAME_SIZE * 0.6,
    );
    let failed_label = TextBox::new(
        "failed",
        LANE_NAME_SIZE,
        gutter_x,
        zero_y + FAILED_HEIGHT / 2.0 - LANE_NAME_SIZE * 0.6,
    );
    let scale = |n: u64, y: f64| {
        let text = group_digits(n);
        let w = text_width(&text, BAND_SIZE);
        TextBox::new(text, BAND_SIZE, plot_x0 - 4.0 - w, y)
    };
    let mut scale_labels = vec![
        scale(max_answered, rect.y - 2.0),
        scale(0, zero_y - BAND_SIZE * 0.65),
    ];
    if max_failed > 0 {
        scale_labels.push(scale(max_failed, rect.bottom() - BAND_SIZE * 1.1));
    }
    RequestsLayout {
        rect,
        zero_y,
        caption,
        totals,
        answered_label,
        failed_label,
        scale_labels,
        answered,
        failed,
        max_answered,
        max_failed,
        buckets,
    }
}
