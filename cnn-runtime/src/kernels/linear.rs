//! Fully connected layer: one GEMM per chunk of samples forward, bias and activation fused; the
//! weight gradient over the whole batch, by blocks of output rows.

use super::{chunk, chunk_count, chunk_len, for_each_chunk, gemm, Act, ChunksMut, Layer, Mat, MatMut, Mode};

/// `y = act(W x + b)` with `W` of shape `[OUT, IN]` and, when `BIAS`, `b` of `[OUT]`, as in
/// `torch.nn.Linear(IN, OUT, bias=BIAS)`.
///
/// A volume input is read flat in NCHW order, which is what `torch.flatten` gives.
#[derive(Clone, Copy, Debug)]
pub struct Linear<const IN: usize, const OUT: usize, const BIAS: bool = true> {
    /// Activation fused into the output pass.
    pub act: Act,
}

impl<const IN: usize, const OUT: usize, const BIAS: bool> Linear<IN, OUT, BIAS> {
    const WEIGHTS: usize = OUT * IN;
}

impl<const IN: usize, const OUT: usize, const BIAS: bool> Layer for Linear<IN, OUT, BIAS> {
    const IN: usize = IN;
    const OUT: usize = OUT;
    const PARAMS: usize = Self::WEIGHTS + if BIAS { OUT } else { 0 };
    const SCRATCH: usize = 0;
    const STATE: usize = 0;
    const FLOPS: u64 = 2 * (IN * OUT) as u64;
    // The weight gradient is summed over the whole batch at once, by rows.
    const PARTIAL: usize = 0;

    fn init(&self, p: &mut [f32], _: &mut [f32], rng: &mut crate::init::Rng) {
        crate::init::pytorch_default(p, IN, rng);
    }

    fn forward(
        &self,
        n: usize,
        x: &[f32],
        y: &mut [f32],
        p: &[f32],
        _: &mut [f32],
        _: &mut [f32],
        _: &mut [u32],
        _: Mode,
    ) {
        let (w, b) = p[..Self::PARAMS].split_at(Self::WEIGHTS);
        let len = Self::group_len(n);
        let ys = ChunksMut::new(&mut y[..n * OUT], len * OUT);
        let x = &x[..n * IN];
        for_each_chunk(n.div_ceil(len), &|c| {
            let (y, x) = (ys.take(c), chunk(x, len * IN, c));
            let m = x.len() / IN;
            // shape: [m, IN] x [IN, OUT] -> [m, OUT]
            gemm(1.0, Mat::new(x, m, IN), Mat::new(w, OUT, IN).t(), 0.0, MatMut::new(y, m, OUT));
            for row in y.chunks_exact_mut(OUT) {
                if BIAS {
                    self.act.map_zip(row, b, |v, bias| v + bias);
                } else {
                    self.act.apply_in_place(row);
                }
            }
        });
    }

    fn backward(
        &self,
        n: usize,
        x: &[f32],
        y: &[f32],
        dy: &mut [f32],
        dx: Option<&mut [f32]>,
        p: &[f32],
        dp: &mut [f32],
        _: &mut [f32],
        _: &mut [f32],
        _: &[u32],
    ) {
        let w = &p[..Self::WEIGHTS];
        let len = chunk_len(n);
        let group = Self::group_len(n);
        let dzs = ChunksMut::new(&mut dy[..n * OUT], len * OUT);
        let dxs = dx.map(|dx| ChunksMut::new(&mut dx[..n * IN], group * IN));
        let y = &y[..n * OUT];
        // The input gradient of group `c`: dx [m, IN] = dz [m, OUT] x W [OUT, IN].
        let input_gradient = |dz: &[f32], c: usize| {
            if let Some(dx) = dxs.as_ref().map(|d| d.take(c)) {
                let m = dz.len() / OUT;
                gemm(1.0, Mat::new(dz, m, OUT), Mat::new(w, OUT, IN), 0.0, MatMut::new(dx, m, IN));
            }
        };
        // Per chunk of samples: dz = dy * act'(y), folded in place, and the input gradient
        // where its groups are the chunks; after all chunks, per group, where they are not.
        for_each_chunk(chunk_count(n), &|c| {
            let (dz, y) = (dzs.take(c), chunk(y, len * OUT, c));
            self.act.backward_in_place(y, dz);
            if group == len {
                input_gradient(dz, c);
            }
        });
        if group != len {
            let dz = &dy[..n * OUT];
            for_each_chunk(n.div_ceil(group), &|c| input_gradient(chunk(dz, group * OUT, c), c));
        }
        // Per block of output rows, over the whole batch at once: dW [OUT, IN] = dzᵀ [OUT, n] x
        // x [n, IN] and db = the column sums of dz. Each value is summed over the samples in
        // order by one thread, so no per-chunk partial sums are needed for the same bits on
        // any number of threads.
        let dz = &dy[..n * OUT];
        let x = &x[..n * IN];
        let (dw, db) = dp[..Self::PARAMS].split_at_mut(Self::WEIGHTS);
        let rows = ROWS.max(OUT.div_ceil(64));
        let blocks = ChunksMut::new(dw, rows * IN);
        let bias_blocks = ChunksMut::new(db, rows);
        for_each_chunk(OUT.div_ceil(rows), &|block| {
            let dw = blocks.take(block);
            let (r0, rows) = (block * rows, dw.len() / IN);
            gemm(
                1.0,
                Mat::new(dz, n, OUT).t().rows_in(r0..r0 + rows),
                Mat::new(x, n, IN),
                0.0,
                MatMut::new(dw, rows, IN),
            );
            if BIAS {
                let db = bias_blocks.take(block);
                db.fill(0.0);
                for sample in dz.chunks_exact(OUT) {
                    db.iter_mut().zip(&sample[r0..r0 + rows]).for_each(|(g, &v)| *g += v);
                }
            }
        });
    }
}

/// Rows of the weight gradient per parallel task (more when there would be over 64 tasks).
const ROWS: usize = 16;

impl<const IN: usize, const OUT: usize, const BIAS: bool> Linear<IN, OUT, BIAS> {
    /// Samples per product of the forward pass and the input gradient: the chunk's, or at
    /// least 16 where the weights are more than the second-level cache holds (1 MiB or more),
    /// so that they are streamed from memory once per 16 samples rather than once per chunk.
    /// Each output is one sum whatever the group, so the bits do not depend on it.
    const fn group_len(n: usize) -> usize {
        let len = chunk_len(n);
        if Self::WEIGHTS >= 1 << 18 && len < 16 {
            16
        } else {
            len
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testutil::{assert_close, forward, layer_gradient_errors, random_vec};

    #[test]
    fn computes_w_x_plus_b() {
        // W = [[1, 2, 3], [-1, 0, 1]], b = [0.5, -4]
        let p = [1.0, 2.0, 3.0, -1.0, 0.0, 1.0, 0.5, -4.0];
        let x = [1.0, 1.0, 1.0, 2.0, 0.0, -1.0];
        let y = forward(&Linear::<3, 2> { act: Act::Identity }, 2, &x, &p).0;
        assert_close(&y, &[6.5, -4.0, -0.5, -7.0], 1e-6, "linear");
        let y = forward(&Linear::<3, 2> { act: Act::Relu }, 2, &x, &p).0;
        assert_close(&y, &[6.5, 0.0, 0.0, 0.0], 1e-6, "linear + relu");
    }

    #[test]
    fn without_bias() {
        let p = [1.0, 2.0, 3.0, -1.0, 0.5, -2.0];
        let x = [1.0, 1.0, 1.0, 2.0, 0.0, -1.0];
        let y = forward(&Linear::<3, 2, false> { act: Act::Tanh }, 2, &x, &p).0;
        let want: Vec<f32> = [6.0f32, -2.5, -1.0, 0.0].iter().map(|v| v.tanh()).collect();
        assert_close(&y, &want, 1e-6, "linear without bias");
        let (ex, ep) = layer_gradient_errors(&Linear::<5, 4, false> { act: Act::Sigmoid }, 3, 4);
        assert!(ex < 1e-2 && ep < 1e-2, "dx {ex}, dparams {ep}");
    }

    fn check(act: Act, n: usize, seed: u64) {
        let (ex, ep) = layer_gradient_errors(&Linear::<13, 7> { act }, n, seed);
        println!("linear ({act:?}, n={n}): max relative error dx {ex:e}, dparams {ep:e}");
        assert!(ex < 1e-2 && ep < 1e-2, "dx {ex}, dparams {ep}");
    }

    #[test]
    fn gradients_match_finite_differences() {
        check(Act::Identity, 3, 1);
        check(Act::Relu, 5, 2);
        check(Act::Relu, 40, 3);
        // More outputs than one block of weight-gradient rows.
        let (ex, ep) = layer_gradient_errors(&Linear::<9, 37> { act: Act::Tanh }, 6, 4);
        assert!(ex < 1e-2 && ep < 1e-2, "dx {ex}, dparams {ep}");
    }

    /// Output and input gradient of `n` samples of `layer`, as one batch.
    fn outputs_and_input_gradient<L: Layer>(
        layer: &L,
        n: usize,
        x: &[f32],
        p: &[f32],
        r: &[f32],
    ) -> (Vec<f32>, Vec<f32>) {
        let (y, state) = forward(layer, n, x, p);
        let (mut dy, mut dx, mut dp) = (r.to_vec(), vec![0.0; n * L::IN], vec![0.0; L::PARAMS]);
        let mut scratch = vec![0.0; chunk_count(n) * L::SCRATCH];
        let mut partial = vec![0.0; chunk_count(n) * L::PARTIAL];
        layer.backward(n, x, &y, &mut dy, Some(&mut dx), p, &mut dp, &mut scratch, &mut partial, &state);
        (y, dx)
    }

    /// A layer with weights past the second-level cache takes groups of 16 samples per product
    /// rather than chunks (of 3 samples for a batch of 37): each sample's output and input
    /// gradient keep the bits they have when the sample is alone in its batch.
    #[test]
    fn groups_of_samples_keep_each_samples_bits() {
        type Wide = Linear<512, 520>;
        let layer = Wide { act: Act::Relu };
        assert_eq!((Wide::group_len(37), chunk_len(37)), (16, 3));
        let n = 37;
        let x = random_vec(n * 512, 60);
        let p = random_vec(Wide::PARAMS, 61);
        let r = random_vec(n * 520, 62);
        let (y, dx) = outputs_and_input_gradient(&layer, n, &x, &p, &r);
        for i in [0, 1, 15, 16, 17, 31, 32, 36] {
            let (yi, dxi) =
                outputs_and_input_gradient(&layer, 1, &x[i * 512..(i + 1) * 512], &p, &r[i * 520..(i + 1) * 520]);
            assert_eq!(&y[i * 520..(i + 1) * 520], &yi[..], "output of sample {i}");
            assert_eq!(&dx[i * 512..(i + 1) * 512], &dxi[..], "input gradient of sample {i}");
        }
    }
}
