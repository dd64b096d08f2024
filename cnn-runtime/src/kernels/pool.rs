//! Max pooling, keeping the argmax of each window for the backward pass.

use super::{chunk_count, chunk_len, dx_chunks, Layer, Mode};
use rayon::prelude::*;

/// Max pooling of a `D x H x W` input over `KH x KW` windows with strides `SH`/`SW`.
///
/// The forward pass records, per output, the index of the winning input inside its channel
/// plane; the backward pass routes each output gradient to that input alone.
#[derive(Clone, Copy, Debug, Default)]
pub struct MaxPool2d<
    const D: usize,
    const H: usize,
    const W: usize,
    const KH: usize,
    const KW: usize,
    const SH: usize,
    const SW: usize,
>;

impl<
        const D: usize,
        const H: usize,
        const W: usize,
        const KH: usize,
        const KW: usize,
        const SH: usize,
        const SW: usize,
    > MaxPool2d<D, H, W, KH, KW, SH, SW>
{
    /// Output height: `(H - KH) / SH + 1`.
    pub const OH: usize = (H - KH) / SH + 1;
    /// Output width: `(W - KW) / SW + 1`.
    pub const OW: usize = (W - KW) / SW + 1;

    /// Pools one sample, writing the maxima to `y` and their in-plane indices to `arg`.
    pub fn pool_sample(x: &[f32], y: &mut [f32], arg: &mut [u32]) {
        for c in 0..D {
            let plane = &x[c * H * W..(c + 1) * H * W];
            for oy in 0..Self::OH {
                for ox in 0..Self::OW {
                    let (mut best, mut at) = (f32::NEG_INFINITY, oy * SH * W + ox * SW);
                    for i in 0..KH {
                        let row = (oy * SH + i) * W + ox * SW;
                        for (j, &v) in plane[row..row + KW].iter().enumerate() {
                            // `>` keeps the first maximum, as PyTorch does; NaN wins so it propagates.
                            if v > best || v.is_nan() {
                                best = v;
                                at = row + j;
                            }
                        }
                    }
                    let o = (c * Self::OH + oy) * Self::OW + ox;
                    y[o] = best;
                    arg[o] = at as u32;
                }
            }
        }
    }
}

impl<
        const D: usize,
        const H: usize,
        const W: usize,
        const KH: usize,
        const KW: usize,
        const SH: usize,
        const SW: usize,
    > Layer for MaxPool2d<D, H, W, KH, KW, SH, SW>
{
    const IN: usize = D * H * W;
    const OUT: usize = D * Self::OH * Self::OW;
    const PARAMS: usize = 0;
    const SCRATCH: usize = 0;
    const STATE: usize = Self::OUT;
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
        _: Mode,
    ) {
        let len = chunk_len(n);
        y[..n * Self::OUT]
            .par_chunks_mut(len * Self::OUT)
            .zip(x[..n * Self::IN].par_chunks(len * Self::IN))
            .zip(state[..n * Self::STATE].par_chunks_mut(len * Self::STATE))
            .for_each(|((y, x), arg)| {
                for ((y, x), arg) in
                    y.chunks_exact_mut(Self::OUT).zip(x.chunks_exact(Self::IN)).zip(arg.chunks_exact_mut(Self::STATE))
                {
                    Self::pool_sample(x, y, arg);
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
        let len = chunk_len(n);
        let plane_out = Self::OH * Self::OW;
        dx_chunks(Some(&mut dx[..n * Self::IN]), len * Self::IN, chunk_count(n))
            .zip(dy[..n * Self::OUT].par_chunks(len * Self::OUT))
            .zip(state[..n * Self::STATE].par_chunks(len * Self::STATE))
            .for_each(|((dx, dy), arg)| {
                let dx = dx.expect("dx was given");
                dx.fill(0.0);
                for ((dx, dy), arg) in
                    dx.chunks_exact_mut(Self::IN).zip(dy.chunks_exact(Self::OUT)).zip(arg.chunks_exact(Self::STATE))
                {
                    for c in 0..D {
                        let plane = &mut dx[c * H * W..(c + 1) * H * W];
                        let range = c * plane_out..(c + 1) * plane_out;
                        for (&g, &at) in dy[range.clone()].iter().zip(&arg[range]) {
                            plane[at as usize] += g;
                        }
                    }
                }
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testutil::{forward, layer_gradient_errors};

    #[test]
    fn takes_the_window_maximum() {
        type L = MaxPool2d<1, 4, 4, 2, 2, 2, 2>;
        #[rustfmt::skip]
        let x = [
            1.0, 2.0, 0.0, -1.0,
            3.0, 0.5, -2.0, -3.0,
            0.0, 0.0, 7.0, 1.0,
            0.0, 9.0, 1.0, 1.0,
        ];
        let (y, arg) = forward(&L::default(), 1, &x, &[]);
        assert_eq!(y, [3.0, 0.0, 9.0, 7.0]);
        assert_eq!(arg, [4, 2, 13, 10]);
    }

    #[test]
    fn overlapping_windows_route_gradients_to_each_winner() {
        // 3x3 windows with stride 2 overlap; a shared maximum collects both gradients.
        type L = MaxPool2d<1, 5, 5, 3, 3, 2, 2>;
        let mut x = [0.0f32; 25];
        x[12] = 5.0; // centre: inside all four windows
        let (y, arg) = forward(&L::default(), 1, &x, &[]);
        assert_eq!(y, [5.0; 4]);
        let mut dy = [1.0, 2.0, 3.0, 4.0];
        let mut dx = [0.0; 25];
        L::default().backward(1, &x, &y, &mut dy, Some(&mut dx), &[], &mut [], &mut [], &mut [], &arg);
        assert_eq!(dx[12], 10.0);
        assert_eq!(dx.iter().sum::<f32>(), 10.0);
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let (ex, _) = layer_gradient_errors(&MaxPool2d::<3, 6, 8, 2, 3, 2, 1>, 4, 7);
        println!("maxpool: max relative error {ex:e}");
        assert!(ex < 1e-2, "max relative error {ex}");
    }
}
