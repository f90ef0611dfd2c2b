//! What a screenshot of a chart shows, counted: for the tests that render a chart in a
//! browser and check it is not blank and shows the colours it should.

use std::path::Path;

use crate::render::{ANSWERED, FAILED};

/// Pixel counts of a screenshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Census {
    /// Every pixel.
    pub pixels: u64,
    /// Pixels that are not the white background (nor the near-white of the lanes and panels).
    pub not_background: u64,
    /// Pixels of the answered colour (within a small distance, for antialiasing).
    pub answered: u64,
    /// Pixels of the failed colour (within a small distance).
    pub failed: u64,
}

fn rgb(hex: &str) -> [i32; 3] {
    let v = u32::from_str_radix(hex.trim_start_matches('#'), 16).unwrap_or(0);
    [
        (v >> 16) as i32 & 0xff,
        (v >> 8) as i32 & 0xff,
        v as i32 & 0xff,
    ]
}

fn near(a: [i32; 3], b: [i32; 3], within: i32) -> bool {
    let d: i32 = a.iter().zip(&b).map(|(x, y)| (x - y) * (x - y)).sum();
    d <= within * within
}

impl Census {
    /// Counts the pixels of the PNG at `path` (8-bit RGB or RGBA, as browsers write them).
    pub fn of_png(path: &Path) -> Result<Census, String> {
        let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut decoder = png::Decoder::new(file);
        decoder.set_transformations(png::Transformations::normalize_to_color8());
        let mut reader = decoder.read_info().map_err(|e| e.to_string())?;
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).map_err(|e| e.to_string())?;
        let channels = match info.color_type {
            png::ColorType::Rgb => 3,
            png::ColorType::Rgba => 4,
            other => return Err(format!("unexpected PNG colour type {other:?}")),
        };
        let (answered, failed) = (rgb(ANSWERED), rgb(FAILED));
        let mut census = Census {
            pixels: 0,
            not_background: 0,
            answered: 0,
            failed: 0,
        };
        for px in buf[..info.buffer_size()].chunks_exact(channels) {
            let c = [px[0] as i32, px[1] as i32, px[2] as i32];
            census.pixels += 1;
            if !near(c, [255, 255, 255], 20) {
                census.not_background += 1;
            }
            if near(c, answered, 24) {
                census.answered += 1;
            }
            if near(c, failed, 24) {
                census.failed += 1;
            }
        }
        Ok(census)
    }

    /// The share of pixels that are not background, 0 to 1.
    pub fn drawn_share(&self) -> f64 {
        self.not_background as f64 / self.pixels.max(1) as f64
    }
}
