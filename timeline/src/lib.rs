//! Timeline charts of what the demo and the benches measured, as SVG.
//!
//! A [`Run`] holds what ran (title and facts) and one or more [`Section`]s on a shared time
//! axis: ours, and a baseline where one ran beside it. Each section has a [`Lane`] per
//! instance with its [`Event`]s (bound, registered, passing, health 503, deregistered,
//! listener closed, drained, exited) and [`Band`]s (routable, grace, draining), and the
//! [`Requests`] answered and failed per millisecond, drawn in buckets. A [`Recorder`] collects
//! a section from any thread while it runs.
//!
//! [`layout()`] places everything (the tests check it: one lane per instance, labels that do
//! not overlap, buckets that add up to the totals); [`render`] draws the layout with the
//! `svg` crate; [`write()`] saves it. [`Census`] counts the colours of a screenshot of a chart,
//! for tests that look at one in a browser.
//!
//! For this repository's examples, benches and tests only: not published.

#![warn(missing_docs)]

mod census;
mod layout;
mod model;
mod render;

pub use census::Census;
pub use layout::{
    BandLayout, BucketLayout, EventLayout, LaneLayout, Layout, MAX_BUCKETS, Rect, RequestsLayout,
    SectionLayout, TextBox, WIDTH, bucket_ms, group_digits, layout, text_width, totals_text,
};
pub use model::{Band, BandKind, Event, EventKind, Lane, Recorder, Requests, Run, Section};
pub use render::{ANSWERED, FAILED, FAILED_STRIPE, render};

use std::path::Path;

/// Renders `run` and writes it to `path`, creating its directory.
pub fn write(run: &Run, path: &Path) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, render(run))
}

#[cfg(test)]
mod tests;
