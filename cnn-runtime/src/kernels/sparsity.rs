//! An L1 activity penalty: the mean absolute activation of a layer, added to the training loss.

use super::{chunk, chunk_count, chunk_len, for_each_chunk, lane_sum_of, ChunksMut, Layer, Mode};

/// An L1 penalty on the activity of `LEN` values per sample, for sparse activations: `y = x`,
/// and the model adds `λ·Σ|y| / (n·LEN)` (`λ` times the mean absolute value over the batch of
/// `n` samples) to its training loss.
///
/// A training pass keeps each sample's `Σ|y|` in its state, as the bits of an `f32`, from which
/// [`sparsity_penalty`] gives the penalty; an evaluation pass copies `x` and keeps nothing. The
/// backward pass adds the penalty's gradient to the one coming in: `dx = dy + λ·sign(y)/(n·LEN)`,
/// with `sign(0) = 0`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sparsity<const LEN: usize> {
    /// The penalty's weight `λ`.
    pub lambda: f32,
}

/// The penalty `λ·Σ|y| / (n·len)` of a [`Sparsity`] layer of `len` values per sample, from the
/// `state` its last training pass kept for `n` samples (0 for no samples).
///
/// The samples' sums are added in `f64`, in sample order, so the penalty has the same bits
/// whatever the number of threads.
pub fn sparsity_penalty(n: usize, len: usize, lambda: f32, state: &[u32]) -> f32 {
    if n == 0 || len == 0 {
        return 0.0;
    }
    let total: f64 = state[..n].iter().map(|&bits| f64::from(f32::from_bits(bits))).sum();
    (f64::from(lambda) * total / (n * len) as f64) as f32
}

impl<const LEN: usize> Layer for Sparsity<LEN> {
    const IN: usize = LEN;
    const OUT: usize = LEN;
    const PARAMS: usize = 0;
    const SCRATCH: usize = 0;
    const STATE: usize = 1;
    // One absolute value and one addition per value in training.
    const FLOPS: u64 = LEN as u64;

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
        let (samples, count) = (chunk_len(n), chunk_count(n));
        let len = samples * LEN;
        let x = &x[..n * LEN];
        let ys = ChunksMut::new(&mut y[..n * LEN], len);
        if !mode.is_train() {
            for_each_chunk(count, &|c| ys.take(c).copy_from_slice(chunk(x, len, c)));
            return;
        }
        let sums = ChunksMut::new(&mut state[..n], samples);
        for_each_chunk(count, &|c| {
            let (y, sums) = (ys.take(c), sums.take(c));
            y.copy_from_slice(chunk(x, len, c));
            // Each sample's sum in an order fixed by LEN alone.
            for (sum, y) in sums.iter_mut().zip(y.chunks_exact(LEN)) {
                *sum = lane_sum_of(y, f32::abs).to_bits();
            }
        });
    }

    fn backward(
        &self,
        n: usize,
        _: &[f32],
        y: &[f32],
        dy: &mut [f32],
        dx: Option<&mut [f32]>,
        _: &[f32],
        _: &mut [f32],
        _: &mut [f32],
        _: &mut [f32],
        _: &[u32],
    ) {
        let Some(dx) = dx else { return };
        // d/dy of λ·Σ|y| / (n·LEN); the kink at 0 gets no gradient, as PyTorch's sign and abs.
        let step = self.lambda / (n * LEN) as f32;
        let len = chunk_len(n) * LEN;
        let dxs = ChunksMut::new(&mut dx[..n * LEN], len);
        let (dy, y) = (&dy[..n * LEN], &y[..n * LEN]);
        for_each_chunk(chunk_count(n), &|c| {
            let (dx, dy, y) = (dxs.take(c), chunk(dy, len, c), chunk(y, len, c));
            for ((dx, &dy), &y) in dx.iter_mut().zip(dy).zip(y) {
                *dx = dy
                    + if y > 0.0 {
                        step
                    } else if y < 0.0 {
                        -step
                    } else {
                        0.0
                    };
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::sizes_of;
    use crate::kernels::testutil::{forward_in, max_rel_error, random_vec};

    /// A training pass: outputs and state.
    fn train<const LEN: usize>(layer: &Sparsity<LEN>, n: usize, x: &[f32]) -> (Vec<f32>, Vec<u32>) {
        forward_in(layer, n, x, &[], &mut [], Mode::Train { seed: 3 })
    }

    /// The backward pass from the outputs `y` with output gradient `dy`.
    fn input_gradient<const LEN: usize>(layer: &Sparsity<LEN>, n: usize, y: &[f32], dy: &[f32]) -> Vec<f32> {
        let mut dx = vec![f32::NAN; n * LEN];
        layer.backward(n, y, y, &mut dy.to_vec(), Some(&mut dx), &[], &mut [], &mut [], &mut [], &[]);
        dx
    }

    #[test]
    fn sizes() {
        let sizes = sizes_of(&Sparsity::<12> { lambda: 0.1 });
        assert_eq!((sizes.inputs, sizes.outputs, sizes.params, sizes.scratch), (12, 12, 0, 0));
        assert_eq!((sizes.state, sizes.buffers, sizes.partial, sizes.flops), (1, 0, 0, 12));
    }

    #[test]
    fn the_penalty_of_a_known_batch() {
        let layer = Sparsity::<3> { lambda: 0.6 };
        let x = [1.0, -2.0, 0.5, -3.0, 0.0, 4.0];
        let (y, state) = train(&layer, 2, &x);
        assert_eq!(y, x);
        assert_eq!(state, [3.5f32.to_bits(), 7.0f32.to_bits()]);
        // 0.6 · (3.5 + 7) / (2 · 3)
        assert!((sparsity_penalty(2, 3, 0.6, &state) - 1.05).abs() < 1e-6);
        assert_eq!(sparsity_penalty(0, 3, 0.6, &[]), 0.0);
        // dx = dy + 0.6·sign(y)/6, nothing at y = 0.
        let dx = input_gradient(&layer, 2, &y, &[1.0; 6]);
        assert_eq!(dx, [1.1, 0.9, 1.1, 0.9, 1.0, 1.1]);
    }

    #[test]
    fn evaluation_copies_and_keeps_nothing() {
        let layer = Sparsity::<5> { lambda: 1.0 };
        let x = random_vec(3 * 5, 1);
        let mut state = [7u32; 3];
        let mut y = vec![f32::NAN; 15];
        layer.forward(3, &x, &mut y, &[], &mut [], &mut [], &mut state, Mode::Eval);
        assert_eq!((y, state), (x, [7; 3]));
    }

    #[test]
    fn sums_are_close_and_independent_of_threads() {
        // Lengths with and without a tail past the 16 lanes; more samples than chunks.
        fn check<const LEN: usize>() {
            let (n, layer) = (37, Sparsity::<LEN> { lambda: 0.5 });
            let x = random_vec(n * LEN, LEN as u64);
            let run = |threads: usize| {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                pool.install(|| train(&layer, n, &x).1)
            };
            let state = run(1);
            assert_eq!(state, run(3), "LEN {LEN}");
            for (s, x) in state.iter().zip(x.chunks_exact(LEN)) {
                let want: f64 = x.iter().map(|v| v.abs() as f64).sum();
                assert!((f32::from_bits(*s) as f64 - want).abs() < 1e-4 * want.max(1.0), "LEN {LEN}");
            }
        }
        check::<1>();
        check::<16>();
        check::<100>();
        check::<1001>();
    }

    #[test]
    fn gradient_matches_finite_differences_of_the_penalised_loss() {
        // The loss Σ y·r (a stand-in for the data loss) plus the penalty, and the penalty alone;
        // λ large enough that its gradient is as large as r's.
        const LEN: usize = 10;
        let (n, layer) = (3, Sparsity::<LEN> { lambda: 15.0 });
        for (what, r) in [("data loss and penalty", random_vec(n * LEN, 2)), ("penalty alone", vec![0.0; n * LEN])] {
            let loss = |x: &[f32]| -> f64 {
                let (y, state) = train(&layer, n, x);
                let data: f64 = y.iter().zip(&r).map(|(&y, &r)| y as f64 * r as f64).sum();
                data + sparsity_penalty(n, LEN, layer.lambda, &state) as f64
            };
            let mut x = random_vec(n * LEN, 1);
            let (y, _) = train(&layer, n, &x);
            let dx = input_gradient(&layer, n, &y, &r);
            let err = max_rel_error(&mut x, &dx, loss);
            assert!(err < 1e-2, "{what}: max relative error {err}");
        }
    }
}
