//! Inverted dropout with a counter-based mask.

use super::{chunk, chunk_count, chunk_len, for_each_chunk, ChunksMut, Layer, Mode};
use crate::init::{mix, splitmix, GOLDEN_GAMMA};

/// Inverted dropout on `LEN` values per sample, like `torch.nn.Dropout(p)`.
///
/// In a training pass each value is kept with probability `1 − p` and scaled by `1 / (1 − p)`,
/// or set to 0; in an evaluation pass `y = x`. `p` must lie in `[0, 1]`; `p = 0` is exactly the
/// identity. Whether value `i` of sample `s` is kept depends on the pass's seed and on the index
/// `s·LEN + i` alone, so the mask is the same for any number of threads. The mask is the
/// layer's state; the backward pass applies the one of the last training pass.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dropout<const LEN: usize> {
    /// Probability of dropping a value.
    pub p: f32,
}

/// Draw number `index` under `key`, uniform in `[0, 1)` with 24 random bits.
#[inline(always)]
fn uniform(key: u64, index: u64) -> f32 {
    let bits = mix(key.wrapping_add(GOLDEN_GAMMA.wrapping_mul(index.wrapping_add(1)))) >> 40;
    bits as f32 * (1.0 / (1u32 << 24) as f32)
}

impl<const LEN: usize> Dropout<LEN> {
    /// The factor applied to kept values: `1 / (1 − p)`.
    pub fn scale(&self) -> f32 {
        1.0 / (1.0 - self.p)
    }
}

impl<const LEN: usize> Layer for Dropout<LEN> {
    const IN: usize = LEN;
    const OUT: usize = LEN;
    const PARAMS: usize = 0;
    const SCRATCH: usize = 0;
    const STATE: usize = LEN;
    const FLOPS: u64 = 0;

    fn forward(
        &self,
        n: usize,
        x: &[f32],
        y: &mut [f32],
        _: &[f32],
        _: &mut [f32],
        _: &mut [f32],
        state: &mut [u32],
        mode: Mode,
    ) {
        debug_assert!((0.0..=1.0).contains(&self.p), "dropout probability {} is outside [0, 1]", self.p);
        let (len, count) = (chunk_len(n) * LEN, chunk_count(n));
        let x = &x[..n * LEN];
        let (ys, masks) = (ChunksMut::new(&mut y[..n * LEN], len), ChunksMut::new(&mut state[..n * LEN], len));
        let Mode::Train { seed } = mode else {
            for_each_chunk(count, &|c| ys.take(c).copy_from_slice(chunk(x, len, c)));
            return;
        };
        let (p, scale, key) = (self.p, self.scale(), splitmix(seed));
        for_each_chunk(count, &|c| {
            let (y, x, mask) = (ys.take(c), chunk(x, len, c), masks.take(c));
            if p == 0.0 {
                y.copy_from_slice(x);
                mask.fill(1);
                return;
            }
            let first = (c * len) as u64;
            for (i, ((y, &x), m)) in y.iter_mut().zip(x).zip(mask).enumerate() {
                let keep = uniform(key, first + i as u64) >= p;
                *m = u32::from(keep);
                *y = if keep { x * scale } else { 0.0 };
            }
        });
    }

    fn backward(
        &self,
        n: usize,
        _: &[f32],
        _: &[f32],
        dy: &mut [f32],
        dx: Option<&mut [f32]>,
        _: &[f32],
        _: &mut [f32],
        _: &mut [f32],
        _: &mut [f32],
        state: &[u32],
    ) {
        let Some(dx) = dx else { return };
        let len = chunk_len(n) * LEN;
        let scale = self.scale();
        let dxs = ChunksMut::new(&mut dx[..n * LEN], len);
        let (dy, mask) = (&dy[..n * LEN], &state[..n * LEN]);
        for_each_chunk(chunk_count(n), &|c| {
            let (dx, dy, mask) = (dxs.take(c), chunk(dy, len, c), chunk(mask, len, c));
            for ((dx, &dy), &m) in dx.iter_mut().zip(dy).zip(mask) {
                *dx = if m != 0 { dy * scale } else { 0.0 };
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testutil::{forward_in, layer_gradient_errors, random_vec};

    fn train<const LEN: usize>(layer: &Dropout<LEN>, n: usize, x: &[f32], seed: u64) -> (Vec<f32>, Vec<u32>) {
        forward_in(layer, n, x, &[], &mut [], Mode::Train { seed })
    }

    #[test]
    fn evaluation_is_the_identity() {
        let x = random_vec(3 * 50, 1);
        let (y, _) = forward_in(&Dropout::<50> { p: 0.5 }, 3, &x, &[], &mut [], Mode::Eval);
        assert_eq!(y, x);
    }

    #[test]
    fn zero_probability_is_the_identity_in_training() {
        let x = random_vec(4 * 30, 2);
        let layer = Dropout::<30> { p: 0.0 };
        let (y, mask) = train(&layer, 4, &x, 11);
        assert_eq!(y, x);
        assert!(mask.iter().all(|&m| m == 1));
        let mut dy = random_vec(4 * 30, 3);
        let want = dy.clone();
        let mut dx = vec![0.0; 4 * 30];
        layer.backward(4, &x, &y, &mut dy, Some(&mut dx), &[], &mut [], &mut [], &mut [], &mask);
        assert_eq!(dx, want);
    }

    #[test]
    fn keeps_a_fraction_one_minus_p_and_scales_them() {
        // 10⁵ values: the kept count is binomial, within 5 standard deviations of its mean.
        let (n, len) = (100, 1000);
        let x: Vec<f32> = (0..n * len).map(|i| 1.0 + i as f32 * 1e-3).collect();
        for p in [0.1f32, 0.5, 0.8, 1.0] {
            let layer = Dropout::<1000> { p };
            let (y, mask) = train(&layer, n, &x, 42);
            let kept = mask.iter().filter(|&&m| m == 1).count() as f64;
            let (total, q) = ((n * len) as f64, 1.0 - p as f64);
            let sd = (total * q * (1.0 - q)).sqrt();
            assert!((kept - total * q).abs() <= 5.0 * sd + 1e-9, "p = {p}: kept {kept} of {total}");
            for ((&y, &x), &m) in y.iter().zip(&x).zip(&mask) {
                assert!(m <= 1);
                assert_eq!(y, if m == 1 { x * layer.scale() } else { 0.0 });
            }
        }
    }

    #[test]
    fn the_mask_depends_on_the_seed_alone() {
        let layer = Dropout::<64> { p: 0.5 };
        let x = random_vec(20 * 64, 4);
        let (a, mask_a) = train(&layer, 20, &x, 1);
        let (b, mask_b) = train(&layer, 20, &x, 1);
        assert_eq!((a, &mask_a), (b, &mask_b));
        let (_, mask_c) = train(&layer, 20, &x, 2);
        let differ = mask_a.iter().zip(&mask_c).filter(|(a, c)| a != c).count();
        // Independent masks differ in half of the values, on average 640 here.
        assert!((500..780).contains(&differ), "{differ} values differ");
    }

    #[test]
    fn the_mask_is_independent_of_threads_and_batch_size() {
        let layer = Dropout::<37> { p: 0.3 };
        let n = 53; // several chunks of 4 samples, the last one shorter
        let x = random_vec(n * 37, 5);
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| train(&layer, n, &x, 9))
        };
        let one = run(1);
        assert_eq!(one, run(3));
        // A smaller batch is chunked differently, and must see the mask of the same samples.
        let (y, mask) = train(&layer, 5, &x[..5 * 37], 9);
        assert_eq!((&y[..], &mask[..]), (&one.0[..5 * 37], &one.1[..5 * 37]));
        // The sample index matters: two samples do not share one mask.
        assert_ne!(one.1[..37], one.1[37..74]);
    }

    #[test]
    fn backward_scales_the_kept_gradients() {
        let layer = Dropout::<25> { p: 0.25 };
        let x = random_vec(3 * 25, 6);
        let (y, mask) = train(&layer, 3, &x, 3);
        let mut dy = vec![2.0; 3 * 25];
        let mut dx = vec![f32::NAN; 3 * 25];
        layer.backward(3, &x, &y, &mut dy, Some(&mut dx), &[], &mut [], &mut [], &mut [], &mask);
        for (&dx, &m) in dx.iter().zip(&mask) {
            assert_eq!(dx, if m == 1 { 2.0 * layer.scale() } else { 0.0 });
        }
    }

    #[test]
    fn gradient_matches_finite_differences() {
        for p in [0.2, 0.5] {
            let (ex, _) = layer_gradient_errors(&Dropout::<40> { p }, 5, 13);
            println!("dropout p = {p}: max relative error {ex:e}");
            assert!(ex < 1e-2, "p = {p}: max relative error {ex}");
        }
    }
}
