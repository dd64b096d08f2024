//! Local response normalisation across channels.

#[cfg(not(feature = "std"))]
use crate::math::Float;

use super::{chunk, chunk_count, chunk_len, for_each_chunk, ChunksMut, Layer, Mode};

/// Local response normalisation of `C` channels of `S` values each per sample, as in
/// `torch.nn.LocalResponseNorm(size, alpha, beta, k)`.
///
/// `b_c = a_c / s_c^β` with `s_c = k + (α/size)·Σ a_{c'}²` over the channels
/// `c' ∈ [c − size/2, c + (size − 1)/2]` at the same position; channels outside `[0, C)`
/// count as zero, and the divisor is always `size`. No parameters.
#[derive(Clone, Copy, Debug)]
pub struct Lrn<const C: usize, const S: usize> {
    /// Number of neighbouring channels in a window (at least 1).
    pub size: usize,
    /// Scale of the sum of squares, divided by `size`.
    pub alpha: f32,
    /// Exponent of the denominator.
    pub beta: f32,
    /// Additive constant of the denominator.
    pub k: f32,
}

impl<const C: usize, const S: usize> Lrn<C, S> {
    /// A window of `size` channels with PyTorch's defaults `alpha = 1e-4`, `beta = 0.75`,
    /// `k = 1`.
    pub const fn new(size: usize) -> Self {
        Lrn { size, alpha: 1e-4, beta: 0.75, k: 1.0 }
    }

    /// Channels `[lo, hi)` summed into the denominator of channel `c`.
    fn window(&self, c: usize) -> (usize, usize) {
        (c.saturating_sub(self.size / 2), (c + (self.size - 1) / 2 + 1).min(C))
    }

    /// Channels `[lo, hi)` whose window holds channel `j`.
    fn windows_holding(&self, j: usize) -> (usize, usize) {
        (j.saturating_sub((self.size - 1) / 2), (j + self.size / 2 + 1).min(C))
    }

    /// `s^β`, with square roots for the usual exponents (PyTorch's default 0.75, and 0.5),
    /// which run several times faster than `powf` and round within two units in the last place.
    #[cfg(test)]
    fn power(&self, s: f32) -> f32 {
        match self.exponent() {
            THREE_QUARTERS => power::<THREE_QUARTERS>(s, self.beta),
            HALF => power::<HALF>(s, self.beta),
            _ => power::<ANY>(s, self.beta),
        }
    }

    /// Which of [`power`]'s ways computes `s^β`.
    fn exponent(&self) -> u8 {
        if self.beta == 0.75 {
            THREE_QUARTERS
        } else if self.beta == 0.5 {
            HALF
        } else {
            ANY
        }
    }

    /// Writes the denominators' bases `s` of one sample `x` to `s`.
    fn bases(&self, x: &[f32], s: &mut [f32]) {
        let scale = self.alpha / self.size as f32;
        for (c, s) in s.chunks_exact_mut(S).enumerate() {
            let (lo, hi) = self.window(c);
            s.fill(0.0);
            for a in x[lo * S..hi * S].chunks_exact(S) {
                s.iter_mut().zip(a).for_each(|(s, &a)| *s += a * a);
            }
            s.iter_mut().for_each(|s| *s = self.k + scale * *s);
        }
    }
}

impl<const C: usize, const S: usize> Layer for Lrn<C, S> {
    const IN: usize = C * S;
    const OUT: usize = C * S;
    const PARAMS: usize = 0;
    const SCRATCH: usize = 0;
    const STATE: usize = 0;
    /// A multiply-add per window term at AlexNet's `size = 5` and one for the scale per value;
    /// the power and the division are not counted. (The count is a property of the type, so
    /// it cannot follow `size`.)
    const FLOPS: u64 = 12 * (C * S) as u64;

    fn forward(
        &self,
        n: usize,
        x: &[f32],
        y: &mut [f32],
        _: &[f32],
        _: &mut [f32],
        _: &mut [f32],
        _: &mut [u32],
        _: Mode,
    ) {
        debug_assert!(self.size > 0, "local response normalisation needs a window of at least one channel");
        match self.exponent() {
            THREE_QUARTERS => self.forward_with::<THREE_QUARTERS>(n, x, y),
            HALF => self.forward_with::<HALF>(n, x, y),
            _ => self.forward_with::<ANY>(n, x, y),
        }
    }

    fn backward(
        &self,
        n: usize,
        x: &[f32],
        _: &[f32],
        dy: &mut [f32],
        dx: Option<&mut [f32]>,
        _: &[f32],
        _: &mut [f32],
        _: &mut [f32],
        _: &mut [f32],
        _: &[u32],
    ) {
        let Some(dx) = dx else { return };
        match self.exponent() {
            THREE_QUARTERS => self.backward_with::<THREE_QUARTERS>(n, x, dy, dx),
            HALF => self.backward_with::<HALF>(n, x, dy, dx),
            _ => self.backward_with::<ANY>(n, x, dy, dx),
        }
    }
}

/// [`power`]'s ways: two square roots, one, or `powf`.
const THREE_QUARTERS: u8 = 0;
const HALF: u8 = 1;
const ANY: u8 = 2;

/// `s^β` the way `E` says, chosen once per pass rather than per value: with a test per value,
/// the compiler may compute `powf` for every value and select (it has no side effects).
#[inline(always)]
fn power<const E: u8>(s: f32, beta: f32) -> f32 {
    match E {
        THREE_QUARTERS => {
            let root = s.sqrt();
            root * root.sqrt()
        }
        HALF => s.sqrt(),
        _ => s.powf(beta),
    }
}

impl<const C: usize, const S: usize> Lrn<C, S> {
    fn forward_with<const E: u8>(&self, n: usize, x: &[f32], y: &mut [f32]) {
        let len = chunk_len(n) * C * S;
        let ys = ChunksMut::new(&mut y[..n * C * S], len);
        let x = &x[..n * C * S];
        for_each_chunk(chunk_count(n), &|c| {
            let (y, x) = (ys.take(c), chunk(x, len, c));
            for (y, x) in y.chunks_exact_mut(C * S).zip(x.chunks_exact(C * S)) {
                self.bases(x, y);
                y.iter_mut().zip(x).for_each(|(y, &a)| *y = a / power::<E>(*y, self.beta));
            }
        });
    }

    fn backward_with<const E: u8>(&self, n: usize, x: &[f32], dy: &mut [f32], dx: &mut [f32]) {
        let len = chunk_len(n) * C * S;
        let coef = 2.0 * self.alpha * self.beta / self.size as f32;
        let dxs = ChunksMut::new(&mut dx[..n * C * S], len);
        let dys = ChunksMut::new(&mut dy[..n * C * S], len);
        let x = &x[..n * C * S];
        for_each_chunk(chunk_count(n), &|c| {
            let (dx, dy, x) = (dxs.take(c), dys.take(c), chunk(x, len, c));
            for ((dx, dy), x) in dx.chunks_exact_mut(C * S).zip(dy.chunks_exact_mut(C * S)).zip(x.chunks_exact(C * S)) {
                // dx holds s, then the direct term dy·s^−β; dy becomes t = dy·a·s^(−β−1).
                self.bases(x, dx);
                for ((dx, dy), &a) in dx.iter_mut().zip(dy.iter_mut()).zip(x) {
                    let s = *dx;
                    let d = power::<E>(s, self.beta);
                    *dx = *dy / d;
                    *dy = *dy * a / (d * s);
                }
                // dx_j −= (2αβ/size)·a_j·Σ t_c over the windows c that hold j.
                for (j, (dx, a)) in dx.chunks_exact_mut(S).zip(x.chunks_exact(S)).enumerate() {
                    let (lo, hi) = self.windows_holding(j);
                    for (i, (dx, &a)) in dx.iter_mut().zip(a).enumerate() {
                        let t: f32 = (lo..hi).map(|c| dy[c * S + i]).sum();
                        *dx -= coef * a * t;
                    }
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testutil::{assert_close, forward, layer_gradient_errors, random_vec};

    /// The definition, in `f64`.
    fn reference<const C: usize, const S: usize>(layer: &Lrn<C, S>, n: usize, x: &[f32]) -> Vec<f32> {
        let (size, alpha, beta, k) = (layer.size as i64, layer.alpha as f64, layer.beta as f64, layer.k as f64);
        let mut y = vec![0.0; x.len()];
        for i in 0..n {
            for c in 0..C as i64 {
                for p in 0..S {
                    let at = |c: i64| x[(i * C + c as usize) * S + p] as f64;
                    let sum: f64 = (c - size / 2..=c + (size - 1) / 2)
                        .filter(|&c| (0..C as i64).contains(&c))
                        .map(|c| at(c).powi(2))
                        .sum();
                    y[(i * C + c as usize) * S + p] = (at(c) / (k + alpha / size as f64 * sum).powf(beta)) as f32;
                }
            }
        }
        y
    }

    /// The square-root powers agree with `powf` to two units in the last place, over the
    /// bases a layer meets (k plus a scaled sum of squares) and beyond.
    #[test]
    fn square_root_powers_match_powf() {
        for beta in [0.75f32, 0.5] {
            let layer = Lrn::<1, 1> { size: 1, alpha: 1e-4, beta, k: 1.0 };
            for i in 0..20_000 {
                let s = 1e-3 * 1.0009f32.powi(i);
                let (fast, want) = (layer.power(s), s.powf(beta));
                let ulps = (fast.to_bits() as i64 - want.to_bits() as i64).abs();
                assert!(ulps <= 2, "{s}^{beta}: {fast} against {want}");
            }
        }
    }

    #[test]
    fn forward_matches_the_definition() {
        let n = 3;
        let x: Vec<f32> = random_vec(n * 7 * 4, 1).iter().map(|v| 3.0 * v).collect();
        for (size, alpha, beta, k) in
            [(5, 1e-4, 0.75, 2.0), (5, 0.5, 0.75, 1.0), (4, 0.5, 0.6, 1.0), (1, 1.0, 1.0, 0.5), (9, 0.3, 0.75, 1.0)]
        {
            let layer = Lrn::<7, 4> { size, alpha, beta, k };
            let y = forward(&layer, n, &x, &[]).0;
            assert_close(&y, &reference(&layer, n, &x), 1e-6, &format!("size {size}"));
        }
        // A window of 4 spans two channels back and one forward.
        let layer = Lrn::<3, 1> { size: 4, alpha: 4.0, beta: 1.0, k: 1.0 };
        let y = forward(&layer, 1, &[1.0, 2.0, 3.0], &[]).0;
        // Windows: {0, 1} for channel 0, {0, 1, 2} for channels 1 and 2.
        assert_close(&y, &[1.0 / 6.0, 2.0 / 15.0, 3.0 / 15.0], 1e-6, "size 4 by hand");
    }

    #[test]
    fn gradient_matches_finite_differences() {
        for (size, alpha, beta, k) in
            [(5, 1.0, 0.75, 1.0), (4, 2.0, 0.75, 2.0), (2, 1.5, 0.5, 1.0), (1, 1.0, 1.0, 1.0), (5, 1e-4, 0.75, 2.0)]
        {
            let (ex, _) = layer_gradient_errors(&Lrn::<7, 3> { size, alpha, beta, k }, 3, 5);
            println!("lrn size {size}, alpha {alpha}, beta {beta}, k {k}: max relative error dx {ex:e}");
            assert!(ex < 1e-2, "size {size}: dx {ex}");
        }
    }

    #[test]
    fn single_channel() {
        let layer = Lrn::<1, 2> { size: 5, alpha: 2.5, beta: 0.5, k: 1.0 };
        let y = forward(&layer, 2, &[0.0, 2.0, -1.0, 4.0], &[]).0;
        // s = 1 + (2.5/5)·a² = 1 + a²/2
        assert_close(&y, &[0.0, 2.0 / 3f32.sqrt(), -1.0 / 1.5f32.sqrt(), 4.0 / 3.0], 1e-6, "one channel");
        let (ex, _) = layer_gradient_errors(&layer, 4, 9);
        println!("lrn one channel: max relative error dx {ex:e}");
        assert!(ex < 1e-2, "dx {ex}");
    }
}
