//! The experiment's picture: the training loss of every network, one panel without and one
//! with batch normalisation, drawn with plotters in the DejaVu Sans font kept in `cnn-runtime/assets/`.

use std::error::Error;
use std::path::Path;

use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

use crate::Run;

const FONT: &str = "sans-serif";

/// Writes `curves.png`: training loss against epochs, plain nets in red, residual ones in blue,
/// the 56-layer ones drawn thicker and darker.
pub fn curves(path: &Path, runs: &[Run], epochs: u64) -> Result<(), Box<dyn Error>> {
    let _ = register_font(FONT, FontStyle::Normal, include_bytes!("../../cnn-runtime/assets/DejaVuSans-subset.ttf"));
    let root = BitMapBackend::new(path, (1000, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let top = runs.iter().flat_map(|r| r.curve.iter().map(|p| p.1)).fold(0.0f32, f32::max).min(3.0) * 1.05;
    for (area, bn) in root.split_evenly((1, 2)).iter().zip([false, true]) {
        let title = if bn { "with batch normalisation" } else { "without batch normalisation" };
        let mut chart = ChartBuilder::on(area)
            .caption(title, (FONT, 20))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(52)
            .build_cartesian_2d(0f32..epochs as f32, 0f32..top.max(0.1))?;
        chart.configure_mesh().x_desc("epoch").y_desc("training loss").label_style((FONT, 14)).draw()?;
        for run in runs.iter().filter(|r| r.bn == bn) {
            let colour = match (run.residual, run.depth > 20) {
                (false, false) => RGBColor(240, 150, 130),
                (false, true) => RGBColor(200, 30, 30),
                (true, false) => RGBColor(130, 170, 240),
                (true, true) => RGBColor(20, 60, 200),
            };
            let width = if run.depth > 20 { 3 } else { 2 };
            let points = run.curve.iter().map(|&(e, l)| (e, l.min(top)));
            chart
                .draw_series(LineSeries::new(points, colour.stroke_width(width)))?
                .label(run.name)
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], colour.stroke_width(width)));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font((FONT, 14))
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
    }
    root.present()?;
    Ok(())
}
