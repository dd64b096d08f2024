//! The example's pictures, drawn with plotters on a bitmap. Text uses the DejaVu Sans font kept in
//! `cnn-runtime/assets/` so that no system font is needed.

use std::error::Error;
use std::path::Path;

use cnn::data::Dataset;
use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

const FONT: &str = "sans-serif";

fn register() {
    // Registering twice is harmless; the result only says whether the bytes parse.
    let _ = register_font(FONT, FontStyle::Normal, include_bytes!("../../cnn-runtime/assets/DejaVuSans-subset.ttf"));
}

/// Training loss and test accuracy per epoch, side by side.
pub fn curves(path: &Path, history: &[(u64, f32, f32)]) -> Result<(), Box<dyn Error>> {
    register();
    let root = BitMapBackend::new(path, (1000, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(500);
    let first = history.first().map_or(0, |h| h.0);
    let last = history.last().map_or(1, |h| h.0).max(first + 1);

    let max_loss = history.iter().map(|h| h.1).fold(0.0f32, f32::max).max(1e-3) * 1.1;
    let mut chart = ChartBuilder::on(&left)
        .caption("training loss", (FONT, 22))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(first..last, 0f32..max_loss)?;
    chart.configure_mesh().x_desc("epoch").y_desc("cross-entropy").label_style((FONT, 14)).draw()?;
    chart.draw_series(LineSeries::new(history.iter().map(|h| (h.0, h.1)), RED.stroke_width(2)))?;

    let low = history.iter().map(|h| h.2).fold(1.0f32, f32::min).min(0.97) * 100.0;
    let mut chart = ChartBuilder::on(&right)
        .caption("test accuracy", (FONT, 22))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(first..last, low..100f32)?;
    chart.configure_mesh().x_desc("epoch").y_desc("%").label_style((FONT, 14)).draw()?;
    chart.draw_series(LineSeries::new(history.iter().map(|h| (h.0, 100.0 * h.2)), BLUE.stroke_width(2)))?;
    root.present()?;
    Ok(())
}

/// Grey level of `v` within `[lo, hi]`.
fn grey(v: f32, lo: f32, hi: f32) -> RGBColor {
    let g = (255.0 * (v - lo) / (hi - lo).max(1e-6)).clamp(0.0, 255.0) as u8;
    RGBColor(g, g, g)
}

/// Draws a `side x side` image at `(x0, y0)`, each pixel a `scale x scale` square.
fn draw_image<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    pixels: &[f32],
    side: usize,
    (x0, y0): (i32, i32),
    scale: i32,
    (lo, hi): (f32, f32),
) -> Result<(), Box<dyn Error>>
where
    DB::ErrorType: 'static,
{
    for (i, &v) in pixels.iter().enumerate() {
        let (x, y) = (x0 + (i % side) as i32 * scale, y0 + (i / side) as i32 * scale);
        area.draw(&Rectangle::new([(x, y), (x + scale, y + scale)], grey(v, lo, hi).filled()))?;
    }
    Ok(())
}

/// Blue for negative, white for 0, red for positive, full colour at `±m`.
fn diverging(v: f32, m: f32) -> RGBColor {
    let t = (v / m.max(1e-6)).clamp(-1.0, 1.0);
    let fade = (255.0 * (1.0 - t.abs())) as u8;
    if t < 0.0 {
        RGBColor(fade, fade, 255)
    } else {
        RGBColor(255, fade, fade)
    }
}

/// The first convolution's learned filters as a row of small images on one colour scale
/// (blue: negative weights, white: 0, red: positive), with the scale beside them.
pub fn filters(path: &Path, weights: &[f32], count: usize, side: usize) -> Result<(), Box<dyn Error>> {
    register();
    let scale = 24;
    let cell = side as i32 * scale + 16;
    let width = count as i32 * cell + 16 + 90;
    let root = BitMapBackend::new(path, (width as u32, (cell + 48) as u32)).into_drawing_area();
    root.fill(&WHITE)?;
    root.draw(&Text::new(format!("first-layer filters ({side}x{side} weights)"), (16, 8), (FONT, 18)))?;
    let m = weights.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    for (f, w) in weights.chunks(side * side).take(count).enumerate() {
        let x0 = 16 + f as i32 * cell;
        for (i, &v) in w.iter().enumerate() {
            let (x, y) = (x0 + (i % side) as i32 * scale, 36 + (i / side) as i32 * scale);
            root.draw(&Rectangle::new([(x, y), (x + scale, y + scale)], diverging(v, m).filled()))?;
        }
        root.draw(&Text::new(format!("filter {f}"), (x0, 40 + side as i32 * scale), (FONT, 13)))?;
    }
    // The scale: +m at the top, -m at the bottom.
    let (x, top, height) = (count as i32 * cell + 20, 36, side as i32 * scale);
    for i in 0..height {
        let v = m - 2.0 * m * i as f32 / (height - 1) as f32;
        root.draw(&Rectangle::new([(x, top + i), (x + 14, top + i + 1)], diverging(v, m).filled()))?;
    }
    root.draw(&Rectangle::new([(x, top), (x + 14, top + height)], BLACK.stroke_width(1)))?;
    for (v, y) in [(m, top), (0.0, top + height / 2), (-m, top + height - 1)] {
        root.draw(&Text::new(format!("{v:+.2}"), (x + 20, y - 6), (FONT, 12)))?;
    }
    root.present()?;
    Ok(())
}

/// Up to 40 test digits the model got wrong, each with its predicted and true label.
pub fn misclassified(
    path: &Path,
    test: &Dataset,
    wrong: &[(usize, usize, usize)],
    mean: f32,
    std: f32,
) -> Result<(), Box<dyn Error>> {
    register();
    let (cols, scale, side) = (10, 3, test.shape.w);
    let shown = wrong.len().min(40);
    let rows = shown.div_ceil(cols).max(1);
    let (cw, ch) = (side as i32 * scale + 16, side as i32 * scale + 36);
    let root =
        BitMapBackend::new(path, ((cols as i32 * cw + 16) as u32, (rows as i32 * ch + 44) as u32)).into_drawing_area();
    root.fill(&WHITE)?;
    let title = format!("{} of {} test digits misclassified (p: predicted, t: true)", wrong.len(), test.len());
    root.draw(&Text::new(title, (16, 10), (FONT, 16)))?;
    for (k, &(i, predicted, truth)) in wrong.iter().take(shown).enumerate() {
        let (x, y) = (16 + (k % cols) as i32 * cw, 40 + (k / cols) as i32 * ch);
        let (lo, hi) = ((0.0 - mean) / std, (1.0 - mean) / std);
        let (image, _) = test.sample(i).ok_or_else(|| format!("no test digit {i}"))?;
        draw_image(&root, image, side, (x, y), scale, (lo, hi))?;
        root.draw(&Text::new(format!("p:{predicted} t:{truth}"), (x, y + side as i32 * scale + 2), (FONT, 14)))?;
    }
    root.present()?;
    Ok(())
}
