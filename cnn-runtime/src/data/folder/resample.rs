//! Bilinear resampling of a window of a decoded image straight into an NCHW `f32` image.
//!
//! The filter is the triangle (tent) filter of PIL's `BILINEAR` and the `image` crate's
//! `FilterType::Triangle`: when shrinking, its support widens with the scale, so that every
//! source pixel counts (antialiasing). The window may start and end between pixels, which is how
//! a resize of the shorter side followed by a centre crop is done in one pass, without the
//! intermediate image (which, for a long thin image, would be far larger than the source).
//!
//! Rows of the source are visited once, in order: each is filtered horizontally into one output
//! row's width and added, weighted, into the output rows whose vertical taps include it. Beyond
//! the output, one filtered row and a few numbers per output row and column are allocated,
//! whatever the size of the source.

use core::ops::Range;

use crate::Shape;

/// Rec. 709 luma weights (red, green, blue), the ones the `image` crate converts colour to grey
/// with.
pub(super) const LUMA: [f32; 3] = [0.2126, 0.7152, 0.0722];

/// A channel value of a decoded image.
pub(super) trait Unit: Copy {
    /// The value scaled to [0, 1].
    fn unit(self) -> f32;
}

/// `v / 255` for every byte `v`: a division per channel value would cost more than the filter.
const BYTE_UNITS: [f32; 256] = {
    let mut units = [0.0; 256];
    let mut v = 0;
    while v < 256 {
        units[v] = v as f32 / 255.0;
        v += 1;
    }
    units
};

impl Unit for u8 {
    #[inline]
    fn unit(self) -> f32 {
        BYTE_UNITS[self as usize]
    }
}

impl Unit for u16 {
    fn unit(self) -> f32 {
        f32::from(self) / 65535.0
    }
}

impl Unit for f32 {
    fn unit(self) -> f32 {
        if self.is_nan() {
            0.0
        } else {
            self.clamp(0.0, 1.0)
        }
    }
}

/// The part of the source to resample, in source pixels: `x` across, `y` down; ends may fall
/// between pixels.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Window {
    pub(super) x: Range<f64>,
    pub(super) y: Range<f64>,
}

/// Weights a table of [`Taps`] may hold (4 MiB); longer axes compute theirs when used.
const MAX_TABLE: usize = 1 << 20;

/// The taps of one axis: for each output index, the range of source indices it reads and the
/// triangle centred on it. Shrinking a side reads each of its pixels about twice, so a table of
/// the weights holds about twice as many as the side is long: for the sides of ordinary
/// images they are looked up, for very long ones (which could otherwise take several times the
/// decoded image) computed when used.
#[derive(Debug)]
struct Taps {
    /// Per output index: the source indices read.
    spans: Vec<Range<usize>>,
    /// Per output index: the triangle's centre, in source pixels, and the inverse of the sum of
    /// its weights over the span (so that they sum to 1).
    centres: Vec<(f64, f64)>,
    /// Inverse of the triangle's half-width, in source pixels.
    inverse_support: f64,
    /// The weights, span after span, with where each output's start; empty when too many.
    table: Vec<f32>,
    offsets: Vec<usize>,
}

impl Taps {
    /// The taps mapping `window` of a source axis of `size` pixels (at least 1) onto `out`
    /// pixels (at least 1).
    fn new(size: usize, window: &Range<f64>, out: usize) -> Taps {
        let scale = (window.end - window.start) / out as f64;
        // The triangle spans one output pixel either side: `support` source pixels when
        // shrinking, one when enlarging.
        let support = scale.max(1.0);
        let mut taps = Taps {
            spans: Vec::with_capacity(out),
            centres: Vec::with_capacity(out),
            inverse_support: 1.0 / support,
            table: Vec::new(),
            offsets: Vec::new(),
        };
        for o in 0..out {
            let centre = window.start + (o as f64 + 0.5) * scale;
            let lo = ((centre - support).floor().max(0.0) as usize).min(size - 1);
            let hi = ((centre + support).ceil().max(0.0) as usize).clamp(lo + 1, size);
            let sum: f64 = (lo..hi).map(|i| taps.triangle(centre, i)).sum();
            if sum > 0.0 {
                taps.spans.push(lo..hi);
                taps.centres.push((centre, 1.0 / sum));
            } else {
                // A centre outside the source (only from rounding at its edge): the nearest
                // pixel, whose triangle is 1 at its own centre.
                let nearest = (centre.floor().max(0.0) as usize).clamp(lo, hi - 1);
                taps.spans.push(nearest..nearest + 1);
                taps.centres.push((nearest as f64 + 0.5, 1.0));
            }
        }
        if taps.spans.iter().map(|s| s.len()).sum::<usize>() <= MAX_TABLE {
            for o in 0..out {
                taps.offsets.push(taps.table.len());
                let weights: Vec<f32> = taps.span(o).map(|i| taps.compute(o, i)).collect();
                taps.table.extend(weights);
            }
        }
        taps
    }

    /// The unnormalised weight of source index `i` for a triangle centred at `centre`.
    fn triangle(&self, centre: f64, i: usize) -> f64 {
        (1.0 - ((i as f64 + 0.5 - centre) * self.inverse_support).abs()).max(0.0)
    }

    /// The weight of source index `i` (in the span) in output `o`.
    fn weight(&self, o: usize, i: usize) -> f32 {
        match self.offsets.get(o) {
            Some(&offset) => self.table[offset + i - self.spans[o].start],
            None => self.compute(o, i),
        }
    }

    fn compute(&self, o: usize, i: usize) -> f32 {
        let (centre, norm) = self.centres[o];
        (self.triangle(centre, i) * norm) as f32
    }

    /// The weights of output `o`, when they are in the table.
    fn table(&self, o: usize) -> Option<&[f32]> {
        let offset = *self.offsets.get(o)?;
        Some(&self.table[offset..offset + self.spans[o].len()])
    }

    /// The source indices output `o` reads.
    fn span(&self, o: usize) -> Range<usize> {
        self.spans[o].clone()
    }
}

/// A decoded image: `channels` values per pixel (1 grey, 2 grey and alpha, 3 RGB, 4 RGBA),
/// row after row.
pub(super) struct Source<'a, S> {
    pub(super) raw: &'a [S],
    pub(super) width: usize,
    pub(super) height: usize,
    pub(super) channels: usize,
}

impl<S: Unit> Source<'_, S> {
    /// A pixel (its `channels` values) as grey (`depth` 1) or RGB: alpha is dropped, grey is
    /// repeated into RGB, colour made grey with [`LUMA`].
    #[inline]
    fn pixel(&self, px: &[S], depth: usize) -> [f32; 3] {
        let colour = self.channels >= 3;
        match (depth, colour) {
            (1, true) => [LUMA[0] * px[0].unit() + LUMA[1] * px[1].unit() + LUMA[2] * px[2].unit(), 0.0, 0.0],
            (_, true) => [px[0].unit(), px[1].unit(), px[2].unit()],
            (_, false) => [px[0].unit(); 3],
        }
    }

    /// Resamples `window` of the image into `out`, one image of `shape` (depth 1 or 3) in NCHW
    /// order, with values in [0, 1].
    pub(super) fn resample(&self, window: &Window, shape: Shape, out: &mut [f32]) {
        let (w, h, depth) = (shape.w, shape.h, shape.d);
        debug_assert!(self.width > 0 && self.height > 0 && self.raw.len() >= self.width * self.height * self.channels);
        debug_assert!(out.len() == w * h * depth && (depth == 1 || depth == 3));
        let across = Taps::new(self.width, &window.x, w);
        let down = Taps::new(self.height, &window.y, h);
        let plane = w * h;
        out.fill(0.0);
        // One source row filtered across: `depth` planes of `w` values.
        let mut row = vec![0.0f32; w * depth];
        let mut first = 0;
        for y in down.span(0).start..down.span(h - 1).end {
            self.filter_row(y, &across, depth, &mut row);
            // The output rows that read source row `y`: their spans move down monotonically.
            while down.span(first).end <= y {
                first += 1;
            }
            for o in (first..h).take_while(|&o| down.span(o).start <= y) {
                let weight = down.weight(o, y);
                if weight == 0.0 {
                    continue;
                }
                for (channel, filtered) in out.chunks_exact_mut(plane).zip(row.chunks_exact(w)) {
                    let out_row = &mut channel[o * w..(o + 1) * w];
                    out_row.iter_mut().zip(filtered).for_each(|(v, &r)| *v += weight * r);
                }
            }
        }
        out.iter_mut().for_each(|v| *v = v.clamp(0.0, 1.0));
    }

    /// Filters source row `y` across into `row` (`depth` planes of the output's width).
    fn filter_row(&self, y: usize, across: &Taps, depth: usize, row: &mut [f32]) {
        let w = across.spans.len();
        let line = &self.raw[y * self.width * self.channels..(y + 1) * self.width * self.channels];
        for x in 0..w {
            let span = across.span(x);
            let pixels = line[span.start * self.channels..span.end * self.channels].chunks_exact(self.channels);
            let mut sum = [0.0f32; 3];
            let mut add = |weight: f32, px: [f32; 3]| sum.iter_mut().zip(px).for_each(|(s, p)| *s += weight * p);
            match across.table(x) {
                Some(weights) => pixels.zip(weights).for_each(|(px, &weight)| add(weight, self.pixel(px, depth))),
                None => pixels.zip(span).for_each(|(px, i)| add(across.weight(x, i), self.pixel(px, depth))),
            }
            for (c, &s) in sum.iter().enumerate().take(depth) {
                row[c * w + x] = s;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use image::imageops::{resize, FilterType};
    use image::{ImageBuffer, Rgb};

    use super::*;

    fn whole(width: usize, height: usize) -> Window {
        Window { x: 0.0..width as f64, y: 0.0..height as f64 }
    }

    /// A source of `width` x `height` RGB values in [0, 1] that vary in both directions.
    fn pattern(width: usize, height: usize) -> Vec<f32> {
        (0..width * height * 3).map(|i| ((i * 7919) % 1000) as f32 / 999.0).collect()
    }

    /// Against the `image` crate's own triangle filter, on `f32` images so that neither side
    /// rounds to 8 bits: enlarging, shrinking and both at once, at awkward sizes.
    #[test]
    fn a_stretch_is_the_image_crates_triangle_filter() {
        for (sw, sh, w, h) in [(7, 13, 5, 5), (1, 1, 3, 2), (300, 17, 16, 16), (16, 16, 16, 16), (5, 9, 31, 4)] {
            let raw = pattern(sw, sh);
            let buffer = ImageBuffer::<Rgb<f32>, _>::from_raw(sw as u32, sh as u32, raw.clone()).unwrap();
            let expected = resize(&buffer, w as u32, h as u32, FilterType::Triangle);
            let mut out = vec![0.0; w * h * 3];
            Source { raw: &raw, width: sw, height: sh, channels: 3 }.resample(
                &whole(sw, sh),
                Shape::volume(w, h, 3),
                &mut out,
            );
            for (i, px) in expected.pixels().enumerate() {
                for c in 0..3 {
                    let got = out[c * w * h + i];
                    assert!((got - px.0[c]).abs() < 1e-5, "{sw}x{sh} -> {w}x{h}, pixel {i} channel {c}: {got} {px:?}");
                }
            }
        }
    }

    #[test]
    fn a_window_is_the_same_as_resizing_then_cropping() {
        // A 12x6 source enlarged to 24x12 and cropped at (5, 3) to 8x4: the window [2.5, 6.5) x
        // [1.5, 3.5) of the source.
        let (sw, sh) = (12, 6);
        let raw = pattern(sw, sh);
        let buffer = ImageBuffer::<Rgb<f32>, _>::from_raw(sw as u32, sh as u32, raw.clone()).unwrap();
        let big = resize(&buffer, 24, 12, FilterType::Triangle);
        let mut out = vec![0.0; 8 * 4 * 3];
        let window = Window { x: 2.5..6.5, y: 1.5..3.5 };
        Source { raw: &raw, width: sw, height: sh, channels: 3 }.resample(&window, Shape::volume(8, 4, 3), &mut out);
        for y in 0..4 {
            for x in 0..8 {
                let px = big.get_pixel(x as u32 + 5, y as u32 + 3);
                for c in 0..3 {
                    assert!((out[c * 32 + y * 8 + x] - px.0[c]).abs() < 1e-5, "({x}, {y}) channel {c}");
                }
            }
        }
    }

    #[test]
    fn channels_are_dropped_repeated_or_mixed_into_grey() {
        let rgba: [u8; 4] = [255, 0, 51, 7];
        let shape = |d| Shape::volume(2, 1, d);
        let source = Source { raw: &rgba, width: 1, height: 1, channels: 4 };
        let mut rgb = [0.0; 6];
        source.resample(&whole(1, 1), shape(3), &mut rgb);
        assert_eq!(rgb, [1.0, 1.0, 0.0, 0.0, 0.2, 0.2]);
        let mut grey = [0.0; 2];
        source.resample(&whole(1, 1), shape(1), &mut grey);
        let luma = LUMA[0] + LUMA[2] * 0.2;
        assert!(grey.iter().all(|&g| (g - luma).abs() < 1e-6), "{grey:?}");
        let grey_alpha: [u16; 2] = [32768, 0];
        let source = Source { raw: &grey_alpha, width: 1, height: 1, channels: 2 };
        source.resample(&whole(1, 1), shape(3), &mut rgb);
        assert!(rgb.iter().all(|&v| v == 32768.0 / 65535.0), "{rgb:?}");
        // Values of float images outside [0, 1], and NaN, are clamped.
        let wild = [f32::NAN, 2.0, -1.0];
        let source = Source { raw: &wild, width: 1, height: 1, channels: 3 };
        source.resample(&whole(1, 1), shape(3), &mut rgb);
        assert_eq!(rgb, [0.0, 0.0, 1.0, 1.0, 0.0, 0.0]);
    }

    /// A source a million pixels long becomes 4x4 (each output row averaging a quarter million
    /// rows), with no table of a million weights.
    #[test]
    fn a_long_thin_source_shrinks_to_its_mean() {
        let raw: Vec<u8> = (0..1 << 20).map(|i| if i % 2 == 0 { 0 } else { 255 }).collect();
        let mut out = [0.0; 16];
        let source = Source { raw: &raw, width: 1, height: raw.len(), channels: 1 };
        source.resample(&whole(1, raw.len()), Shape::volume(4, 4, 1), &mut out);
        assert!(out.iter().all(|v| (v - 0.5).abs() < 1e-3), "{out:?}");
    }

    #[test]
    fn taps_sum_to_one_and_stay_inside_the_source() {
        for (size, window, out) in [(1, 0.0..1.0, 7), (300, 0.0..300.0, 3), (10, 9.9..10.0, 2), (5, 0.0..0.001, 1)] {
            let taps = Taps::new(size, &window, out);
            for o in 0..out {
                let span = taps.span(o);
                assert!(span.end <= size && !span.is_empty());
                let weights: Vec<f32> = span.map(|i| taps.weight(o, i)).collect();
                assert!((weights.iter().sum::<f32>() - 1.0).abs() < 1e-5, "{size} {window:?} {out}: {weights:?}");
            }
        }
    }
}
