//! 2-D convolution by im2col and GEMM, with bias and activation fused into one pass.

use super::{chunk_count, chunk_len, dx_chunks, gemm, reduce_partials, Act, Layer, Mat, MatMut, Mode};
use rayon::prelude::*;

/// Convolution of a `D x H x W` input (channels, rows, columns) with `K` filters of `FH x FW`,
/// strides `SH`/`SW` and zero padding `PH`/`PW`, followed by an activation.
///
/// Parameters: weights `[K, D, FH, FW]` then, when `BIAS`, biases `[K]`, as in
/// `torch.nn.Conv2d(..., bias=BIAS)`.
#[derive(Clone, Copy, Debug)]
pub struct Conv2d<
    const D: usize,
    const H: usize,
    const W: usize,
    const K: usize,
    const FH: usize,
    const FW: usize,
    const SH: usize,
    const SW: usize,
    const PH: usize,
    const PW: usize,
    const BIAS: bool = true,
> {
    /// Activation fused into the output pass.
    pub act: Act,
}

impl<
        const D: usize,
        const H: usize,
        const W: usize,
        const K: usize,
        const FH: usize,
        const FW: usize,
        const SH: usize,
        const SW: usize,
        const PH: usize,
        const PW: usize,
        const BIAS: bool,
    > Conv2d<D, H, W, K, FH, FW, SH, SW, PH, PW, BIAS>
{
    /// Output height: `(H - FH + 2 PH) / SH + 1`.
    pub const OH: usize = (H + 2 * PH - FH) / SH + 1;
    /// Output width: `(W - FW + 2 PW) / SW + 1`.
    pub const OW: usize = (W + 2 * PW - FW) / SW + 1;
    /// Rows of the im2col matrix: one per filter tap.
    const R: usize = D * FH * FW;
    /// Columns of the im2col matrix: one per output position.
    const N: usize = Self::OH * Self::OW;
    const WEIGHTS: usize = K * Self::R;

    /// Unfolds one sample `x` (`[D, H, W]`) into `cols` (`[D*FH*FW, OH*OW]`): column `n` holds the
    /// receptive field of output position `n`, zeros where it overlaps the padding.
    pub fn im2col(x: &[f32], cols: &mut [f32]) {
        im2col(x, cols, [D, H, W], [FH, FW], [SH, SW], [PH, PW]);
    }
}

/// Unfolds one `[d, h, w]` sample into a `[d*fh*fw, oh*ow]` matrix (see [`Conv2d::im2col`]).
#[inline(always)]
pub fn im2col(
    x: &[f32],
    cols: &mut [f32],
    [d, h, w]: [usize; 3],
    [fh, fw]: [usize; 2],
    [sh, sw]: [usize; 2],
    [ph, pw]: [usize; 2],
) {
    let oh = (h + 2 * ph - fh) / sh + 1;
    let ow = (w + 2 * pw - fw) / sw + 1;
    debug_assert!(x.len() >= d * h * w && cols.len() >= d * fh * fw * oh * ow);
    let mut rows = cols.chunks_exact_mut(oh * ow);
    for c in 0..d {
        let plane = &x[c * h * w..(c + 1) * h * w];
        for i in 0..fh {
            for j in 0..fw {
                let row = rows.next().expect("cols holds d*fh*fw rows");
                for oy in 0..oh {
                    let out = &mut row[oy * ow..(oy + 1) * ow];
                    let iy = (oy * sh + i).wrapping_sub(ph);
                    if iy >= h {
                        out.fill(0.0);
                        continue;
                    }
                    let src = &plane[iy * w..(iy + 1) * w];
                    for (ox, o) in out.iter_mut().enumerate() {
                        let ix = (ox * sw + j).wrapping_sub(pw);
                        *o = if ix < w { src[ix] } else { 0.0 };
                    }
                }
            }
        }
    }
}

/// [`im2col`] transposed: one `[d*fh*fw]` row per output position, so that the weight
/// gradient `dz · rows` reads both operands along contiguous rows.
#[inline(always)]
pub fn im2row(
    x: &[f32],
    rows: &mut [f32],
    [d, h, w]: [usize; 3],
    [fh, fw]: [usize; 2],
    [sh, sw]: [usize; 2],
    [ph, pw]: [usize; 2],
) {
    let oh = (h + 2 * ph - fh) / sh + 1;
    let ow = (w + 2 * pw - fw) / sw + 1;
    let r_len = d * fh * fw;
    debug_assert!(x.len() >= d * h * w && rows.len() >= r_len * oh * ow);
    for oy in 0..oh {
        for ox in 0..ow {
            let row = &mut rows[(oy * ow + ox) * r_len..(oy * ow + ox + 1) * r_len];
            let mut r = 0;
            for c in 0..d {
                let plane = &x[c * h * w..(c + 1) * h * w];
                for i in 0..fh {
                    let iy = (oy * sh + i).wrapping_sub(ph);
                    let out = &mut row[r..r + fw];
                    r += fw;
                    if iy >= h {
                        out.fill(0.0);
                        continue;
                    }
                    let src = &plane[iy * w..(iy + 1) * w];
                    let x0 = (ox * sw).wrapping_sub(pw);
                    if x0 < w && x0 + fw <= w {
                        out.copy_from_slice(&src[x0..x0 + fw]);
                    } else {
                        for (j, o) in out.iter_mut().enumerate() {
                            let ix = (ox * sw + j).wrapping_sub(pw);
                            *o = if ix < w { src[ix] } else { 0.0 };
                        }
                    }
                }
            }
        }
    }
}

/// The adjoint of [`im2col`]: adds each entry of `cols` back onto the input position it came
/// from. `dx` is accumulated into, not overwritten.
#[inline(always)]
pub fn col2im(
    cols: &[f32],
    dx: &mut [f32],
    [d, h, w]: [usize; 3],
    [fh, fw]: [usize; 2],
    [sh, sw]: [usize; 2],
    [ph, pw]: [usize; 2],
) {
    let oh = (h + 2 * ph - fh) / sh + 1;
    let ow = (w + 2 * pw - fw) / sw + 1;
    debug_assert!(dx.len() >= d * h * w && cols.len() >= d * fh * fw * oh * ow);
    let mut rows = cols.chunks_exact(oh * ow);
    for c in 0..d {
        let plane = &mut dx[c * h * w..(c + 1) * h * w];
        for i in 0..fh {
            for j in 0..fw {
                let row = rows.next().expect("cols holds d*fh*fw rows");
                for oy in 0..oh {
                    let iy = (oy * sh + i).wrapping_sub(ph);
                    if iy >= h {
                        continue;
                    }
                    let dst = &mut plane[iy * w..(iy + 1) * w];
                    for (ox, &g) in row[oy * ow..(oy + 1) * ow].iter().enumerate() {
                        let ix = (ox * sw + j).wrapping_sub(pw);
                        if ix < w {
                            dst[ix] += g;
                        }
                    }
                }
            }
        }
    }
}

impl<
        const D: usize,
        const H: usize,
        const W: usize,
        const K: usize,
        const FH: usize,
        const FW: usize,
        const SH: usize,
        const SW: usize,
        const PH: usize,
        const PW: usize,
        const BIAS: bool,
    > Layer for Conv2d<D, H, W, K, FH, FW, SH, SW, PH, PW, BIAS>
{
    const IN: usize = D * H * W;
    const OUT: usize = K * Self::N;
    const PARAMS: usize = Self::WEIGHTS + if BIAS { K } else { 0 };
    const SCRATCH: usize = Self::R * Self::N;
    const STATE: usize = 0;
    const FLOPS: u64 = 2 * (K * Self::R * Self::N) as u64;

    fn init(&self, p: &mut [f32], _: &mut [f32], rng: &mut crate::init::Rng) {
        crate::init::pytorch_default(p, Self::R, rng);
    }

    fn forward(
        &self,
        n: usize,
        x: &[f32],
        y: &mut [f32],
        p: &[f32],
        _: &mut [f32],
        scratch: &mut [f32],
        _: &mut [u32],
        _: Mode,
    ) {
        let (w, b) = p[..Self::PARAMS].split_at(Self::WEIGHTS);
        let len = chunk_len(n);
        y[..n * Self::OUT]
            .par_chunks_mut(len * Self::OUT)
            .zip(x[..n * Self::IN].par_chunks(len * Self::IN))
            .zip(scratch[..chunk_count(n) * Self::SCRATCH].par_chunks_mut(Self::SCRATCH.max(1)))
            .for_each(|((y, x), cols)| {
                for (y, x) in y.chunks_exact_mut(Self::OUT).zip(x.chunks_exact(Self::IN)) {
                    Self::im2col(x, cols);
                    // shape: [K, R] x [R, N] -> [K, N]
                    gemm(
                        1.0,
                        Mat::new(w, K, Self::R),
                        Mat::new(cols, Self::R, Self::N),
                        0.0,
                        MatMut::new(y, K, Self::N),
                    );
                    for (k, row) in y.chunks_exact_mut(Self::N).enumerate() {
                        let bias = if BIAS { b[k] } else { 0.0 };
                        row.iter_mut().for_each(|v| *v = self.act.apply(*v + bias));
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
        scratch: &mut [f32],
        partial: &mut [f32],
        _: &[u32],
    ) {
        let w = &p[..Self::WEIGHTS];
        let len = chunk_len(n);
        let count = chunk_count(n);
        let dx = dx.map(|dx| &mut dx[..n * Self::IN]);
        dy[..n * Self::OUT]
            .par_chunks_mut(len * Self::OUT)
            .zip(y[..n * Self::OUT].par_chunks(len * Self::OUT))
            .zip(x[..n * Self::IN].par_chunks(len * Self::IN))
            .zip(scratch[..count * Self::SCRATCH].par_chunks_mut(Self::SCRATCH.max(1)))
            .zip(partial[..count * Self::PARAMS].par_chunks_mut(Self::PARAMS))
            .zip(dx_chunks(dx, len * Self::IN, count))
            .for_each(|(((((dy, y), x), cols), part), mut dx)| {
                part.fill(0.0);
                let (dw, db) = part.split_at_mut(Self::WEIGHTS);
                for (s, ((dz, y), x)) in dy
                    .chunks_exact_mut(Self::OUT)
                    .zip(y.chunks_exact(Self::OUT))
                    .zip(x.chunks_exact(Self::IN))
                    .enumerate()
                {
                    // dz = dy * act'(y), folded in place.
                    self.act.backward_in_place(y, dz);
                    im2row(x, cols, [D, H, W], [FH, FW], [SH, SW], [PH, PW]);
                    // dW [K, R] += dz [K, N] x rows [N, R]
                    gemm(
                        1.0,
                        Mat::new(dz, K, Self::N),
                        Mat::new(cols, Self::N, Self::R),
                        1.0,
                        MatMut::new(dw, K, Self::R),
                    );
                    for (g, row) in db.iter_mut().zip(dz.chunks_exact(Self::N)) {
                        *g += row.iter().sum::<f32>();
                    }
                    if let Some(dx) = dx.as_deref_mut() {
                        // dcols [R, N] = W^T [R, K] x dz [K, N], then fold back onto the input.
                        gemm(
                            1.0,
                            Mat::new(w, K, Self::R).t(),
                            Mat::new(dz, K, Self::N),
                            0.0,
                            MatMut::new(cols, Self::R, Self::N),
                        );
                        let dx = &mut dx[s * Self::IN..(s + 1) * Self::IN];
                        dx.fill(0.0);
                        col2im(cols, dx, [D, H, W], [FH, FW], [SH, SW], [PH, PW]);
                    }
                }
            });
        reduce_partials(n, &partial[..count * Self::PARAMS], &mut dp[..Self::PARAMS]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testutil::{assert_close, forward, layer_gradient_errors, random_vec};

    /// Direct convolution straight from the definition, for comparison.
    fn reference<
        const D: usize,
        const H: usize,
        const W: usize,
        const K: usize,
        const FH: usize,
        const FW: usize,
        const SH: usize,
        const SW: usize,
        const PH: usize,
        const PW: usize,
    >(
        x: &[f32],
        p: &[f32],
    ) -> Vec<f32> {
        type C<
            const D: usize,
            const H: usize,
            const W: usize,
            const K: usize,
            const FH: usize,
            const FW: usize,
            const SH: usize,
            const SW: usize,
            const PH: usize,
            const PW: usize,
        > = Conv2d<D, H, W, K, FH, FW, SH, SW, PH, PW>;
        let (oh, ow) = (C::<D, H, W, K, FH, FW, SH, SW, PH, PW>::OH, C::<D, H, W, K, FH, FW, SH, SW, PH, PW>::OW);
        let mut y = vec![0.0; K * oh * ow];
        for k in 0..K {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut s = p[K * D * FH * FW + k] as f64;
                    for c in 0..D {
                        for i in 0..FH {
                            for j in 0..FW {
                                let (iy, ix) =
                                    ((oy * SH + i) as isize - PH as isize, (ox * SW + j) as isize - PW as isize);
                                if iy >= 0 && ix >= 0 && (iy as usize) < H && (ix as usize) < W {
                                    s += x[(c * H + iy as usize) * W + ix as usize] as f64
                                        * p[((k * D + c) * FH + i) * FW + j] as f64;
                                }
                            }
                        }
                    }
                    y[(k * oh + oy) * ow + ox] = s as f32;
                }
            }
        }
        y
    }

    #[test]
    fn forward_matches_direct_convolution() {
        // Odd sizes, stride and padding on both axes, rectangular filter.
        type L = Conv2d<3, 7, 9, 4, 3, 2, 2, 3, 1, 2>;
        let n = 5;
        let x = random_vec(n * L::IN, 1);
        let p = random_vec(L::PARAMS, 2);
        let y = forward(&L { act: Act::Identity }, n, &x, &p).0;
        for s in 0..n {
            let want = reference::<3, 7, 9, 4, 3, 2, 2, 3, 1, 2>(&x[s * L::IN..(s + 1) * L::IN], &p);
            assert_close(&y[s * L::OUT..(s + 1) * L::OUT], &want, 1e-5, &format!("sample {s}"));
        }
    }

    #[test]
    fn relu_is_fused_into_the_output() {
        type L = Conv2d<2, 5, 5, 3, 3, 3, 1, 1, 1, 1>;
        let x = random_vec(L::IN, 3);
        let p = random_vec(L::PARAMS, 4);
        let lin = forward(&L { act: Act::Identity }, 1, &x, &p).0;
        let relu = forward(&L { act: Act::Relu }, 1, &x, &p).0;
        assert!(lin.iter().any(|&v| v < 0.0));
        let want: Vec<f32> = lin.iter().map(|v| v.max(0.0)).collect();
        assert_eq!(relu, want);
    }

    #[test]
    fn padding_wider_than_the_input() {
        // A 1x1 input padded by 3 under a 7x7 filter: every window but the middle one is padding.
        let x = [2.0];
        let mut cols = vec![f32::NAN; 49];
        im2col(&x, &mut cols, [1, 1, 1], [7, 7], [1, 1], [3, 3]);
        let want: Vec<f32> = (0..49).map(|i| if i == 24 { 2.0 } else { 0.0 }).collect();
        assert_eq!(cols, want);
    }

    #[test]
    fn im2row_is_im2col_transposed() {
        let (dims, f, st, pad) = ([3, 7, 6], [3, 2], [2, 1], [1, 1]);
        let (oh, ow) = ((7 + 2 - 3) / 2 + 1, (6 + 2 - 2) + 1);
        let (r, n) = (3 * 3 * 2, oh * ow);
        let x = random_vec(3 * 7 * 6, 9);
        let (mut cols, mut rows) = (vec![0.0; r * n], vec![f32::NAN; r * n]);
        im2col(&x, &mut cols, dims, f, st, pad);
        im2row(&x, &mut rows, dims, f, st, pad);
        for i in 0..r {
            for j in 0..n {
                assert_eq!(rows[j * r + i], cols[i * n + j], "tap {i}, position {j}");
            }
        }
    }

    #[test]
    fn col2im_is_the_adjoint_of_im2col() {
        // <im2col(x), c> == <x, col2im(c)> for any x, c.
        let (dims, f, s, pad) = ([2, 6, 5], [3, 2], [2, 1], [1, 0]);
        let (oh, ow) = ((6 + 2 - 3) / 2 + 1, (5 - 2) + 1);
        let x = random_vec(2 * 6 * 5, 5);
        let c = random_vec(2 * 3 * 2 * oh * ow, 6);
        let mut cols = vec![0.0; c.len()];
        im2col(&x, &mut cols, dims, f, s, pad);
        let mut back = vec![0.0; x.len()];
        col2im(&c, &mut back, dims, f, s, pad);
        let lhs: f64 = cols.iter().zip(&c).map(|(a, b)| (a * b) as f64).sum();
        let rhs: f64 = x.iter().zip(&back).map(|(a, b)| (a * b) as f64).sum();
        assert!((lhs - rhs).abs() < 1e-4, "{lhs} vs {rhs}");
    }

    fn check_gradients<L: Layer>(layer: L, n: usize, seed: u64) {
        let (ex, ep) = layer_gradient_errors(&layer, n, seed);
        println!("conv: max relative error dx {ex:e}, dparams {ep:e}");
        assert!(ex < 1e-2 && ep < 1e-2, "dx {ex}, dparams {ep}");
    }

    #[test]
    fn gradients_match_finite_differences() {
        check_gradients(Conv2d::<2, 6, 6, 3, 3, 3, 1, 1, 0, 0> { act: Act::Identity }, 2, 10);
        check_gradients(Conv2d::<2, 7, 8, 3, 3, 2, 2, 3, 1, 2> { act: Act::Identity }, 3, 20);
        check_gradients(Conv2d::<1, 8, 8, 2, 5, 5, 1, 1, 2, 2> { act: Act::Relu }, 2, 30);
        // More samples than chunks, so several samples share a chunk.
        check_gradients(Conv2d::<1, 5, 5, 2, 3, 3, 2, 2, 1, 1> { act: Act::Relu }, 37, 40);
        check_gradients(Conv2d::<2, 6, 5, 3, 3, 3, 2, 1, 1, 1, false> { act: Act::Tanh }, 3, 50);
    }

    #[test]
    fn without_bias_is_with_a_zero_bias() {
        type Biased = Conv2d<2, 5, 6, 3, 3, 2, 1, 2, 1, 0>;
        type Unbiased = Conv2d<2, 5, 6, 3, 3, 2, 1, 2, 1, 0, false>;
        assert_eq!(Unbiased::PARAMS + 3, Biased::PARAMS);
        let (x, mut p) = (random_vec(2 * Biased::IN, 8), random_vec(Biased::PARAMS, 9));
        p[Unbiased::PARAMS..].fill(0.0);
        let act = Act::Sigmoid;
        let want = forward(&Biased { act }, 2, &x, &p).0;
        assert_eq!(forward(&Unbiased { act }, 2, &x, &p[..Unbiased::PARAMS]).0, want);
    }
}
