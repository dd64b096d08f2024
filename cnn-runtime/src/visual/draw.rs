//! PNG pictures of feature maps and of the patches that excite filters, drawn with plotters.
//! Text uses a subset of the DejaVu Sans font (Latin letters, digits, punctuation) kept in the
//! crate, so that no system font is needed.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

use super::{FeatureMaps, Patch};
use crate::{Error, Result, Shape};

/// The family name the font is registered under.
const FONT: &str = "cnn-visual-sans";
/// Width of the feature-map picture, in pixels.
const WIDTH: i32 = 960;
/// Left margin.
const MARGIN: i32 = 12;
/// Room on the right for a colour scale and its labels.
const SCALE_ROOM: i32 = 110;
/// Feature maps shown per layer at most.
const MAX_MAPS: usize = 64;
/// Filters shown at most in a picture of patches.
const MAX_FILTERS: usize = 32;
/// Patches shown at most per filter.
const MAX_PATCHES: usize = 32;
/// The longest side of a patch's window drawn.
const MAX_WINDOW: usize = 4096;

/// The viridis colour map (matplotlib's), sampled at nine evenly spaced points from low to high.
const VIRIDIS: [(u8, u8, u8); 9] = [
    (68, 1, 84),
    (71, 44, 122),
    (59, 81, 139),
    (44, 113, 142),
    (33, 144, 141),
    (39, 173, 129),
    (92, 200, 99),
    (170, 220, 50),
    (253, 231, 37),
];

fn register() {
    // Registering again is harmless; the result only says whether the bytes parse.
    let _ = register_font(FONT, FontStyle::Normal, include_bytes!("../../assets/DejaVuSans-subset.ttf"));
}

/// The colour of `v` on the viridis scale from `lo` to `hi`.
fn viridis(v: f32, lo: f32, hi: f32) -> RGBColor {
    let t = if hi > lo { ((v - lo) / (hi - lo)).clamp(0.0, 1.0) } else { 0.5 };
    let x = t * (VIRIDIS.len() - 1) as f32;
    let i = (x.floor() as usize).min(VIRIDIS.len() - 2);
    let f = x - i as f32;
    let mix = |a: u8, b: u8| (a as f32 + f * (b as f32 - a as f32)).round() as u8;
    let (a, b) = (VIRIDIS[i], VIRIDIS[i + 1]);
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// The grey level of `v` from `lo` (black) to `hi` (white).
fn grey(v: f32, lo: f32, hi: f32) -> RGBColor {
    let g = if hi > lo { (255.0 * (v - lo) / (hi - lo)).clamp(0.0, 255.0) as u8 } else { 128 };
    RGBColor(g, g, g)
}

/// A plotters error as this crate's, naming the file.
fn failed(path: &Path) -> impl Fn(String) -> Error + '_ {
    move |reason| Error::File { path: path.to_path_buf(), reason: format!("drawing the picture: {reason}") }
}

/// A drawing error as text, for [`failed`].
fn as_text(e: impl std::fmt::Display) -> String {
    e.to_string()
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

/// The smallest and largest of `values`, finite ones only (`(0, 0)` if none).
fn range(values: impl IntoIterator<Item = f32>) -> (f32, f32) {
    let (lo, hi) =
        values.into_iter().filter(|v| v.is_finite()).fold((f32::MAX, f32::MIN), |(a, b), v| (a.min(v), b.max(v)));
    if lo > hi {
        (0.0, 0.0)
    } else {
        (lo, hi)
    }
}

/// A number for a scale's label: short, and exact for 0.
fn label(v: f32) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.abs() >= 100.0 || v.abs() < 0.01 {
        format!("{v:.2e}")
    } else {
        format!("{v:.2}")
    }
}

/// Draws the input sample of `shape` at (`x`, `y`), `scale` pixels per value: grey for one
/// channel, colour for three (each scaled to the sample's range), the first channel otherwise.
fn draw_input(
    area: &Area<'_>,
    x: &[f32],
    shape: Shape,
    (x0, y0): (i32, i32),
    scale: i32,
) -> std::result::Result<(), String> {
    let plane = shape.w * shape.h;
    let (lo, hi) = range(x.iter().copied());
    for p in 0..plane {
        let colour = if shape.d == 3 {
            let c = |k: usize| grey(x[k * plane + p], lo, hi).0;
            RGBColor(c(0), c(1), c(2))
        } else {
            grey(x[p], lo, hi)
        };
        let (px, py) = (x0 + (p % shape.w) as i32 * scale, y0 + (p / shape.w) as i32 * scale);
        area.draw(&Rectangle::new([(px, py), (px + scale, py + scale)], colour.filled())).map_err(as_text)?;
    }
    Ok(())
}

/// A vertical colour scale from `lo` (bottom) to `hi` (top) at (`x`, `y`), `height` pixels
/// tall, with its ends (and 0, when inside) labelled.
fn draw_scale(
    area: &Area<'_>,
    (x, y): (i32, i32),
    height: i32,
    (lo, hi): (f32, f32),
    colour: fn(f32, f32, f32) -> RGBColor,
) -> std::result::Result<(), String> {
    let height = height.max(20);
    for i in 0..height {
        let v = hi - (hi - lo) * i as f32 / (height - 1) as f32;
        area.draw(&Rectangle::new([(x, y + i), (x + 14, y + i + 1)], colour(v, lo, hi).filled())).map_err(as_text)?;
    }
    area.draw(&Rectangle::new([(x, y), (x + 14, y + height)], BLACK.stroke_width(1))).map_err(as_text)?;
    let mut marks = vec![(hi, y), (lo, y + height - 1)];
    if lo < 0.0 && hi > 0.0 {
        marks.push((0.0, y + ((hi / (hi - lo)) * (height - 1) as f32) as i32));
    }
    for (v, at) in marks {
        area.draw(&PathElement::new([(x + 14, at), (x + 18, at)], BLACK)).map_err(as_text)?;
        area.draw(&Text::new(label(v), (x + 21, at - 6), (FONT, 12))).map_err(as_text)?;
    }
    Ok(())
}

/// Pixels per value for a `w x h` picture drawn at most `target` pixels wide and high.
fn scale_for(w: usize, h: usize, target: i32) -> i32 {
    (target / w.max(h).max(1) as i32).clamp(1, 12)
}

/// Writes a PNG of `maps` (as [`feature_maps`](super::feature_maps) returns them) for the
/// sample `input` of `shape`: the sample, then one block per convolution with its layers'
/// text, its output shape and up to 64 of its maps, coloured on one viridis scale per layer
/// (shown beside it, from the layer's lowest to its highest value). `caption` heads the
/// picture, such as the predicted class.
pub fn save_feature_maps(path: &Path, input: &[f32], shape: Shape, maps: &[FeatureMaps], caption: &str) -> Result<()> {
    if input.len() != shape.len() || shape.flat {
        return Err(Error::InvalidArgument {
            name: "input",
            reason: format!(
                "{} values are not one sample of a {}x{}x{} volume",
                input.len(),
                shape.w,
                shape.h,
                shape.d
            ),
        });
    }
    if let Some(m) = maps.iter().find(|m| m.shape.flat || m.values.len() != m.shape.len()) {
        return Err(Error::InvalidArgument {
            name: "maps",
            reason: format!("{} values are not maps of {}x{}x{}", m.values.len(), m.shape.w, m.shape.h, m.shape.d),
        });
    }
    register();
    let cols_room = WIDTH - 2 * MARGIN - SCALE_ROOM;
    // Each block: a title line, then rows of maps.
    let layout: Vec<(i32, usize, usize)> = maps
        .iter()
        .map(|m| {
            let s = scale_for(m.shape.w, m.shape.h, 56);
            let cell = m.shape.w as i32 * s + 4;
            let cols = ((cols_room / cell) as usize).clamp(1, 16);
            let shown = m.shape.d.min(MAX_MAPS);
            (s, cols, shown)
        })
        .collect();
    let input_scale = scale_for(shape.w, shape.h, 112);
    let mut height = 40 + shape.h as i32 * input_scale + 16;
    for (m, &(s, cols, shown)) in maps.iter().zip(&layout) {
        height += 24 + shown.div_ceil(cols) as i32 * (m.shape.h as i32 * s + 4) + 12;
    }
    let root = BitMapBackend::new(path, (WIDTH as u32, height as u32)).into_drawing_area();
    let draw = || -> std::result::Result<(), String> {
        root.fill(&WHITE).map_err(as_text)?;
        root.draw(&Text::new(caption.to_string(), (MARGIN, 10), (FONT, 16))).map_err(as_text)?;
        draw_input(&root, input, shape, (MARGIN, 36), input_scale)?;
        let text = format!("input {}x{}x{}", shape.w, shape.h, shape.d);
        root.draw(&Text::new(text, (MARGIN + shape.w as i32 * input_scale + 10, 36), (FONT, 13))).map_err(as_text)?;
        let mut y = 40 + shape.h as i32 * input_scale + 16;
        for (m, &(s, cols, shown)) in maps.iter().zip(&layout) {
            let title = format!(
                "{}: {}x{}x{}{}",
                m.layer_text(),
                m.shape.w,
                m.shape.h,
                m.shape.d,
                if shown < m.shape.d { format!(" (first {shown} maps)") } else { String::new() }
            );
            root.draw(&Text::new(title, (MARGIN, y), (FONT, 14))).map_err(as_text)?;
            y += 22;
            let (lo, hi) = range(m.values.iter().copied());
            let (cw, ch) = (m.shape.w as i32 * s + 4, m.shape.h as i32 * s + 4);
            for c in 0..shown {
                let (x0, y0) = (MARGIN + (c % cols) as i32 * cw, y + (c / cols) as i32 * ch);
                let map = m.map(c).unwrap_or(&[]);
                for (p, &v) in map.iter().enumerate() {
                    let (px, py) = (x0 + (p % m.shape.w) as i32 * s, y0 + (p / m.shape.w) as i32 * s);
                    root.draw(&Rectangle::new([(px, py), (px + s, py + s)], viridis(v, lo, hi).filled()))
                        .map_err(as_text)?;
                }
            }
            let rows = shown.div_ceil(cols) as i32;
            draw_scale(&root, (WIDTH - SCALE_ROOM + 10, y), rows * ch - 4, (lo, hi), viridis)?;
            y += rows * ch + 12;
        }
        root.present().map_err(as_text)
    };
    draw().map_err(failed(path))
}

/// Writes a PNG of the patches of `images` (samples of `shape`, as given to
/// [`strongest_patches`](super::strongest_patches)) that excite each filter most: one row per
/// filter (up to 32, with up to 32 patches each), strongest first, each patch the window of its receptive field, with the
/// response written under it. Pixels are grey (colour for three channels) on one scale over
/// all of `images`, shown on the right; the part of a window that reads no pixel (padding) is
/// hatched in light red. `caption` heads the picture, such as the layer's text.
pub fn save_patches(path: &Path, images: &[f32], shape: Shape, patches: &[Vec<Patch>], caption: &str) -> Result<()> {
    let plane = shape.w * shape.h;
    if shape.flat || plane == 0 || images.is_empty() || !images.len().is_multiple_of(shape.len()) {
        return Err(Error::InvalidArgument {
            name: "images",
            reason: format!("{} values are not samples of a {}x{}x{} volume", images.len(), shape.w, shape.h, shape.d),
        });
    }
    let count = images.len() / shape.len();
    let fits = |p: &Patch| {
        let (f, w) = (p.field, p.window);
        let within = |a: isize, len: usize, lo: isize, hi: isize| a >= lo && a + len as isize <= hi;
        p.sample < count
            && (f.height == 0
                || f.width == 0
                || (within(f.top, f.height, 0, shape.h as isize) && within(f.left, f.width, 0, shape.w as isize)))
            && w.height <= MAX_WINDOW
            && w.width <= MAX_WINDOW
    };
    if let Some(p) = patches.iter().flatten().find(|p| !fits(p)) {
        return Err(Error::InvalidArgument {
            name: "patches",
            reason: format!(
                "a patch of sample {} with field {:?} and window {:?} is not a patch of these {count} images of \
                 {}x{} (or its window is over {MAX_WINDOW} pixels on a side)",
                p.sample, p.field, p.window, shape.w, shape.h
            ),
        });
    }
    register();
    let filters = patches.len().min(MAX_FILTERS);
    let k = patches.iter().map(Vec::len).max().unwrap_or(0).clamp(1, MAX_PATCHES);
    let (fh, fw) = patches.iter().flatten().fold((1, 1), |(h, w), p| (h.max(p.window.height), w.max(p.window.width)));
    let s = scale_for(fw, fh, 48);
    let (cw, ch) = (fw as i32 * s + 10, fh as i32 * s + 22);
    let label_room = 76;
    // Wide enough for the caption too (16-pixel text averages under 9 pixels a character).
    let width =
        (2 * MARGIN + label_room + k as i32 * cw + SCALE_ROOM).max(2 * MARGIN + 9 * caption.chars().count() as i32);
    let height = 40 + filters as i32 * ch + 8;
    let (lo, hi) = range(images.iter().copied());
    let root = BitMapBackend::new(path, (width as u32, height as u32)).into_drawing_area();
    let draw = || -> std::result::Result<(), String> {
        root.fill(&WHITE).map_err(as_text)?;
        root.draw(&Text::new(caption.to_string(), (MARGIN, 10), (FONT, 16))).map_err(as_text)?;
        for (f, row) in patches.iter().take(filters).enumerate() {
            let y = 38 + f as i32 * ch;
            root.draw(&Text::new(format!("filter {f}"), (MARGIN, y + fh as i32 * s / 2 - 6), (FONT, 13)))
                .map_err(as_text)?;
            for (j, patch) in row.iter().take(k).enumerate() {
                let x0 = MARGIN + label_room + j as i32 * cw;
                let image = &images[patch.sample * shape.len()..(patch.sample + 1) * shape.len()];
                let (window, field) = (patch.window, patch.field);
                for dy in 0..window.height {
                    for dx in 0..window.width {
                        let (r, c) = (window.top + dy as isize, window.left + dx as isize);
                        let inside = r >= field.top
                            && r < field.top + field.height as isize
                            && c >= field.left
                            && c < field.left + field.width as isize;
                        let colour = if !inside {
                            if (dx + dy) % 2 == 0 {
                                RGBColor(250, 200, 200)
                            } else {
                                RGBColor(255, 235, 235)
                            }
                        } else {
                            let p = r as usize * shape.w + c as usize;
                            if shape.d == 3 {
                                let g = |k: usize| grey(image[k * plane + p], lo, hi).0;
                                RGBColor(g(0), g(1), g(2))
                            } else {
                                grey(image[p], lo, hi)
                            }
                        };
                        let (px, py) = (x0 + dx as i32 * s, y + dy as i32 * s);
                        root.draw(&Rectangle::new([(px, py), (px + s, py + s)], colour.filled())).map_err(as_text)?;
                    }
                }
                let text = label(patch.value);
                root.draw(&Text::new(text, (x0, y + fh as i32 * s + 3), (FONT, 11))).map_err(as_text)?;
            }
        }
        draw_scale(&root, (width - SCALE_ROOM + 10, 38), (filters as i32 * ch - 22).min(240), (lo, hi), grey)?;
        root.present().map_err(as_text)
    };
    draw().map_err(failed(path))
}
