//! Data augmentation: seeded, composable transforms of single images.
//!
//! Each image of a batch gets its own generator, seeded from the batch seed and the image's
//! index, so an augmented batch is the same whatever the number of threads, and the same again
//! from the same seed.
//!
//! ```
//! use cnn::augment::{augment_batch, Compose, GaussianNoise, RotateScale, Shift};
//! use cnn::Shape;
//!
//! let shape = Shape::volume(28, 28, 1);
//! let transform = Compose::new()
//!     .then(Shift { max: 2 })
//!     .then(RotateScale { max_degrees: 10.0, max_scale: 0.1 })
//!     .then(GaussianNoise { std: 0.05 });
//!
//! let batch = vec![0.5; 64 * shape.len()]; // 64 images, NCHW
//! let (mut augmented, mut scratch) = (vec![0.0; batch.len()], Vec::new());
//! let seed = 42; // derive it from the epoch and the batch to vary the augmentation
//! augment_batch(&transform, shape, &batch, &mut augmented, seed, &mut scratch)?;
//!
//! let mut again = vec![0.0; batch.len()];
//! augment_batch(&transform, shape, &batch, &mut again, seed, &mut scratch)?;
//! assert_eq!(augmented, again);
//! # Ok::<(), cnn::Error>(())
//! ```

use rand::{RngExt as _, SeedableRng};
use rayon::prelude::*;

use crate::init::Rng;
use crate::{Error, Result, Shape};

/// A random transformation of one image, in place.
pub trait Transform: Send + Sync {
    /// Transforms `image` (of `shape`, NCHW) using `rng`; `scratch` holds as many values as the
    /// image, for transforms that need a copy of it. Fails, changing nothing, when `image` is
    /// not one image of `shape`, `scratch` is shorter than it, or a parameter of the transform
    /// is out of range.
    fn apply(&self, image: &mut [f32], shape: Shape, rng: &mut Rng, scratch: &mut [f32]) -> Result<()>;
}

/// Fails unless `image` holds one image of `shape` and `scratch`, when the transform needs it,
/// at least as many values.
fn check_image(image: &[f32], shape: Shape, scratch: Option<&[f32]>) -> Result<()> {
    let scratch = scratch.map_or(image.len(), <[f32]>::len);
    if image.len() != shape.len() || scratch < image.len() {
        return Err(Error::InvalidArgument {
            name: "image",
            reason: format!(
                "{} values and {} of scratch for an image of {shape} ({} values)",
                image.len(),
                scratch,
                shape.len()
            ),
        });
    }
    Ok(())
}

/// Fails unless `value` is finite and `within` holds for it, which `rule` says in words.
fn check_param(name: &'static str, value: f32, within: bool, rule: &str) -> Result<()> {
    if value.is_finite() && within {
        Ok(())
    } else {
        Err(Error::InvalidArgument { name, reason: format!("must be {rule}, got {value}") })
    }
}

/// Jitter: shifts the image by a random whole number of pixels, up to `max` in each direction
/// on each axis, filling the uncovered border with zeros.
#[derive(Clone, Copy, Debug)]
pub struct Shift {
    /// Largest shift, in pixels.
    pub max: usize,
}

impl Transform for Shift {
    fn apply(&self, image: &mut [f32], shape: Shape, rng: &mut Rng, scratch: &mut [f32]) -> Result<()> {
        check_image(image, shape, Some(scratch))?;
        // A shift past the image's size leaves zeros, as any shift that large does.
        let m = i64::try_from(self.max).unwrap_or(i64::MAX);
        let (dx, dy) = (rng.random_range(-m..=m), rng.random_range(-m..=m));
        if (dx, dy) == (0, 0) {
            return Ok(());
        }
        let clamp = |d: i64| d.clamp(-(1 << 40), 1 << 40) as isize;
        let (dx, dy) = (clamp(dx), clamp(dy));
        scratch.copy_from_slice(image);
        let (w, h) = (shape.w as isize, shape.h as isize);
        for c in 0..shape.d {
            let plane = c * shape.w * shape.h;
            for y in 0..h {
                for x in 0..w {
                    let (sx, sy) = (x - dx, y - dy);
                    let v = if (0..w).contains(&sx) && (0..h).contains(&sy) {
                        scratch[plane + (sy * w + sx) as usize]
                    } else {
                        0.0
                    };
                    image[plane + (y * w + x) as usize] = v;
                }
            }
        }
        Ok(())
    }
}

/// Adds Gaussian noise of standard deviation `std` to every value.
#[derive(Clone, Copy, Debug)]
pub struct GaussianNoise {
    /// Standard deviation.
    pub std: f32,
}

impl Transform for GaussianNoise {
    fn apply(&self, image: &mut [f32], shape: Shape, rng: &mut Rng, _: &mut [f32]) -> Result<()> {
        check_image(image, shape, None)?;
        check_param("noise standard deviation", self.std, self.std >= 0.0, "finite and not negative")?;
        for pair in image.chunks_mut(2) {
            // Box-Muller: two independent normal values from two uniform ones.
            let u1: f32 = 1.0 - rng.random::<f32>();
            let u2: f32 = rng.random();
            let r = (-2.0 * u1.ln()).sqrt() * self.std;
            let t = core::f32::consts::TAU * u2;
            pair[0] += r * t.cos();
            if let Some(v) = pair.get_mut(1) {
                *v += r * t.sin();
            }
        }
        Ok(())
    }
}

/// Rotates by a random angle in `±max_degrees` and scales by a random factor in
/// `1 ± max_scale` about the image centre, with bilinear interpolation and zeros outside.
#[derive(Clone, Copy, Debug)]
pub struct RotateScale {
    /// Largest rotation, in degrees, either way.
    pub max_degrees: f32,
    /// Largest relative change of size (0.1 is ±10 %).
    pub max_scale: f32,
}

impl Transform for RotateScale {
    fn apply(&self, image: &mut [f32], shape: Shape, rng: &mut Rng, scratch: &mut [f32]) -> Result<()> {
        check_image(image, shape, Some(scratch))?;
        let (degrees, scale) = (self.max_degrees, self.max_scale);
        check_param("largest rotation", degrees, (0.0..=360.0).contains(&degrees), "in [0, 360] degrees")?;
        check_param("largest change of size", scale, (0.0..1.0).contains(&scale), "in [0, 1)")?;
        let angle = rng.random_range(-self.max_degrees..=self.max_degrees).to_radians();
        let scale = 1.0 + rng.random_range(-self.max_scale..=self.max_scale);
        rotate_scale(image, shape, angle, scale, scratch);
        Ok(())
    }
}

/// Rotates `image` by `angle` radians (clockwise on screen, where rows grow downwards) and
/// scales it by `scale`
/// about its centre.
fn rotate_scale(image: &mut [f32], shape: Shape, angle: f32, scale: f32, scratch: &mut [f32]) {
    {
        scratch.copy_from_slice(image);
        let (w, h) = (shape.w, shape.h);
        let (cx, cy) = ((w as f32 - 1.0) / 2.0, (h as f32 - 1.0) / 2.0);
        // Each output pixel samples the input at the inverse transform of its position.
        let (cos, sin) = (angle.cos() / scale, angle.sin() / scale);
        for c in 0..shape.d {
            let plane = &scratch[c * w * h..(c + 1) * w * h];
            let out = &mut image[c * w * h..(c + 1) * w * h];
            for y in 0..h {
                for x in 0..w {
                    let (px, py) = (x as f32 - cx, y as f32 - cy);
                    let sx = cos * px + sin * py + cx;
                    let sy = -sin * px + cos * py + cy;
                    out[y * w + x] = bilinear(plane, w, h, sx, sy);
                }
            }
        }
    }
}

/// The value of `plane` at a fractional position, zero outside.
fn bilinear(plane: &[f32], w: usize, h: usize, x: f32, y: f32) -> f32 {
    let (x0, y0) = (x.floor(), y.floor());
    let (fx, fy) = (x - x0, y - y0);
    let at = |xi: f32, yi: f32| -> f32 {
        if xi < 0.0 || yi < 0.0 || xi >= w as f32 || yi >= h as f32 {
            0.0
        } else {
            plane[yi as usize * w + xi as usize]
        }
    };
    let top = at(x0, y0) * (1.0 - fx) + at(x0 + 1.0, y0) * fx;
    let bottom = at(x0, y0 + 1.0) * (1.0 - fx) + at(x0 + 1.0, y0 + 1.0) * fx;
    top * (1.0 - fy) + bottom * fy
}

/// Transforms applied one after the other. When one fails, the image keeps what those before
/// it did.
#[derive(Default)]
pub struct Compose(pub Vec<Box<dyn Transform>>);

impl Compose {
    /// No transform yet.
    pub fn new() -> Self {
        Compose(Vec::new())
    }

    /// Appends `t`.
    pub fn then(mut self, t: impl Transform + 'static) -> Self {
        self.0.push(Box::new(t));
        self
    }
}

impl Transform for Compose {
    fn apply(&self, image: &mut [f32], shape: Shape, rng: &mut Rng, scratch: &mut [f32]) -> Result<()> {
        for t in &self.0 {
            t.apply(image, shape, rng, scratch)?;
        }
        Ok(())
    }
}

/// Copies the `n` images of `src` into `dst` and applies `transform` to each, image `i` with a
/// generator seeded from `(seed, i)`. `scratch` grows to the batch's size once and is reused.
///
/// Fails when `src` is not a whole number of images of `shape`, `dst` differs from it in
/// length, or the transform refuses its parameters (then `dst` holds no finished batch).
pub fn augment_batch(
    transform: &dyn Transform,
    shape: Shape,
    src: &[f32],
    dst: &mut [f32],
    seed: u64,
    scratch: &mut Vec<f32>,
) -> Result<()> {
    let len = shape.len();
    if len == 0 || !src.len().is_multiple_of(len) || dst.len() != src.len() {
        return Err(Error::InvalidArgument {
            name: "batch",
            reason: format!(
                "{} source and {} destination values for images of {shape} ({len} values each)",
                src.len(),
                dst.len()
            ),
        });
    }
    dst.copy_from_slice(src);
    if scratch.len() < dst.len() {
        scratch.resize(dst.len(), 0.0);
    }
    dst.par_chunks_mut(len).zip(scratch.par_chunks_mut(len)).enumerate().try_for_each(|(i, (image, scratch))| {
        let mut rng = Rng::seed_from_u64(seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        transform.apply(image, shape, &mut rng, scratch)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHAPE: Shape = Shape::volume(9, 7, 2);

    fn dot(at: (usize, usize)) -> Vec<f32> {
        let mut img = vec![0.0; SHAPE.len()];
        img[at.1 * 9 + at.0] = 1.0;
        img[63 + at.1 * 9 + at.0] = 2.0;
        img
    }

    #[test]
    fn shift_moves_every_channel_by_the_same_whole_pixels() {
        for seed in 0..20 {
            let mut img = dot((4, 3));
            Shift { max: 2 }
                .apply(&mut img, SHAPE, &mut Rng::seed_from_u64(seed), &mut vec![0.0; SHAPE.len()])
                .unwrap();
            let p = img.iter().position(|&v| v == 1.0).expect("the dot stays inside");
            let (x, y) = (p % 9, p / 9);
            assert!(x.abs_diff(4) <= 2 && y.abs_diff(3) <= 2);
            assert_eq!(img[63 + p], 2.0);
            assert_eq!(img.iter().sum::<f32>(), 3.0);
        }
    }

    #[test]
    fn noise_has_the_asked_spread() {
        let mut img = vec![0.5; 20_000];
        GaussianNoise { std: 0.1 }.apply(&mut img, Shape::vector(20_000), &mut Rng::seed_from_u64(1), &mut []).unwrap();
        let mean = img.iter().sum::<f32>() / 20_000.0;
        let var = img.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / 20_000.0;
        assert!((mean - 0.5).abs() < 0.005 && (var.sqrt() - 0.1).abs() < 0.005, "mean {mean}, std {}", var.sqrt());
    }

    #[test]
    fn rotation_by_a_quarter_turn_and_identity() {
        let shape = Shape::volume(5, 5, 1);
        let mut img = vec![0.0; 25];
        img[2] = 1.0; // top centre
        let mut rng = Rng::seed_from_u64(0);
        let same = RotateScale { max_degrees: 0.0, max_scale: 0.0 };
        let mut copy = img.clone();
        same.apply(&mut copy, shape, &mut rng, &mut [0.0; 25]).unwrap();
        assert_eq!(copy, img);
        // A clockwise quarter turn takes the top centre to the middle of the right edge.
        let mut r = img.clone();
        rotate_scale(&mut r, shape, core::f32::consts::FRAC_PI_2, 1.0, &mut [0.0; 25]);
        let p = r.iter().position(|&v| v > 0.99).expect("the dot survives");
        assert_eq!((p % 5, p / 5), (4, 2), "{r:?}");
        assert!((r.iter().sum::<f32>() - 1.0).abs() < 1e-4);
        // Doubling the size about the centre moves (3, 2) to (4, 2).
        let mut dot = vec![0.0; 25];
        dot[2 * 5 + 3] = 1.0;
        rotate_scale(&mut dot, shape, 0.0, 2.0, &mut [0.0; 25]);
        assert_eq!(dot[2 * 5 + 4], 1.0);
    }

    #[test]
    fn batches_are_reproducible_from_the_seed() {
        let t = Compose::new()
            .then(Shift { max: 2 })
            .then(RotateScale { max_degrees: 10.0, max_scale: 0.1 })
            .then(GaussianNoise { std: 0.05 });
        let src: Vec<f32> = (0..4 * SHAPE.len()).map(|i| (i % 13) as f32 / 13.0).collect();
        let run = |seed| {
            let mut dst = vec![0.0; src.len()];
            augment_batch(&t, SHAPE, &src, &mut dst, seed, &mut Vec::new()).unwrap();
            dst
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
        assert_ne!(run(7), src);
        // The same on any number of threads.
        let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap().install(|| run(7));
        assert_eq!(one, run(7));
    }

    #[test]
    fn bad_arguments_are_errors_that_change_nothing() {
        let mut rng = Rng::seed_from_u64(1);
        let mut img = dot((4, 3));
        let mut scratch = vec![0.0; SHAPE.len()];
        let cases: [(&dyn Transform, &str); 8] = [
            (&GaussianNoise { std: f32::NAN }, "noise"),
            (&GaussianNoise { std: -1.0 }, "noise"),
            (&RotateScale { max_degrees: f32::INFINITY, max_scale: 0.1 }, "rotation"),
            (&RotateScale { max_degrees: 10.0, max_scale: 1.0 }, "size"),
            (&RotateScale { max_degrees: -1.0, max_scale: 0.0 }, "rotation"),
            (&Compose(vec![Box::new(Shift { max: 1 }), Box::new(GaussianNoise { std: f32::NAN })]), "noise"),
            (&RotateScale { max_degrees: 10.0, max_scale: f32::NAN }, "size"),
            (&RotateScale { max_degrees: f32::MAX, max_scale: 0.0 }, "rotation"),
        ];
        for (k, (t, name)) in cases.into_iter().enumerate() {
            let before = img.clone();
            let err = t.apply(&mut img, SHAPE, &mut rng, &mut scratch).unwrap_err();
            assert!(err.to_string().contains(name), "{name}: {err}");
            // A chain keeps what the transforms before the refusing one did.
            if k != 5 {
                assert_eq!(img, before, "{name}");
            }
            img = before;
        }
        // Shapes and lengths that do not match, and a shift of any size.
        assert!(Shift { max: 1 }.apply(&mut img[..10], SHAPE, &mut rng, &mut scratch).is_err());
        assert!(Shift { max: 1 }.apply(&mut img, SHAPE, &mut rng, &mut scratch[..3]).is_err());
        for max in [usize::MAX, 1 << 62, 100] {
            let mut i = dot((4, 3));
            Shift { max }.apply(&mut i, SHAPE, &mut rng, &mut scratch).unwrap();
        }
        let src = vec![0.0; 2 * SHAPE.len()];
        let t = Shift { max: 1 };
        assert!(augment_batch(&t, SHAPE, &src[..5], &mut [0.0; 5], 1, &mut Vec::new()).is_err());
        assert!(augment_batch(&t, SHAPE, &src, &mut [0.0; 5], 1, &mut Vec::new()).is_err());
        assert!(augment_batch(&t, Shape::vector(0), &[], &mut [], 1, &mut Vec::new()).is_err());
        let mut dst = vec![0.0; src.len()];
        let err = augment_batch(&GaussianNoise { std: f32::INFINITY }, SHAPE, &src, &mut dst, 1, &mut Vec::new());
        assert!(err.is_err());
    }
}
