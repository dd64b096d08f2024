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
        let len = chunk_len(n);
        let ys = ChunksMut::new(&mut y[..n * OUT], len * OUT);
        let x = &x[..n * IN];
        for_each_chunk(chunk_count(n), &|c| {
            let (y, x) = (ys.take(c), chunk(x, len * IN, c));
            let m = x.len() / IN;
            // shape: [m, IN] x [IN, OUT] -> [m, OUT]
            gemm(1.0, Mat::new(x, m, IN), Mat::new(w, OUT, IN).t(), 0.0, MatMut::new(y, m, OUT));
            for row in y.chunks_exact_mut(OUT) {
                if BIAS {
                    row.iter_mut().zip(b).for_each(|(v, &bias)| *v = self.act.apply(*v + bias));
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
        let count = chunk_count(n);
        // Per chunk of samples: dz = dy * act'(y), folded in place, and the input gradient.
        let dzs = ChunksMut::new(&mut dy[..n * OUT], len * OUT);
        let dxs = dx.map(|dx| ChunksMut::new(&mut dx[..n * IN], len * IN));
        let y = &y[..n * OUT];
        for_each_chunk(count, &|c| {
            let (dz, y, dx) = (dzs.take(c), chunk(y, len * OUT, c), dxs.as_ref().map(|d| d.take(c)));
            let m = dz.len() / OUT;
            self.act.backward_in_place(y, dz);
            if let Some(dx) = dx {
                // dx [m, IN] = dz [m, OUT] x W [OUT, IN]
                gemm(1.0, Mat::new(dz, m, OUT), Mat::new(w, OUT, IN), 0.0, MatMut::new(dx, m, IN));
            }
        });
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testutil::{assert_close, forward, layer_gradient_errors};

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
}
