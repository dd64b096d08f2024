//! Element-wise activations, fused into the layer before them or standing alone.

#[cfg(not(feature = "std"))]
use crate::math::Float;

use super::{chunk, chunk_count, chunk_len, for_each_chunk, ChunksMut, Layer, Mode};

/// An element-wise activation function.
///
/// Its derivative is computed from the activation's output `y`, so a layer that applies it keeps
/// no extra state: the backward pass of ReLU is the mask `y > 0`, that of ReLU6 the mask
/// `0 < y < 6`, that of the sigmoid `y(1 − y)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Act {
    /// `y = x`.
    Identity,
    /// `y = max(x, 0)`.
    Relu,
    /// `y = min(max(x, 0), 6)` (PyTorch's `ReLU6`); the gradient passes where `0 < x < 6`, as
    /// PyTorch's, whose kinks at 0 and 6 get none.
    Relu6,
    /// `y = x` for `x > 0`, else `a·x`, with a slope `a ≥ 0` (PyTorch's `LeakyReLU(a)`).
    LeakyRelu(f32),
    /// `y = 1 / (1 + e^−x)`.
    Sigmoid,
    /// `y = tanh(x)`.
    Tanh,
}

/// The logistic function, without overflow for large `|x|`.
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// The odd series of `tanh` up to `x^21`: `tanh(x) = Σ TANH_SERIES[i]·x^(2i+1)`.
const TANH_SERIES: [f32; 11] = [
    1.0,
    -1.0 / 3.0,
    2.0 / 15.0,
    -17.0 / 315.0,
    62.0 / 2835.0,
    -1382.0 / 155_925.0,
    21844.0 / 6_081_075.0,
    -929_569.0 / 638_512_875.0,
    6_404_582.0 / 10_854_718_875.0,
    -443_861_162.0 / 1_856_156_927_625.0,
    18_888_466_084.0 / 194_896_477_400_625.0,
];

/// `e^t` for `0 ≤ t ≤ 18.2`, within 1.2 units in the last place: `t = k·ln 2 + r` with `|r| ≤
/// ln 2 / 2`, the Taylor polynomial of degree 7 in `r` times `2^k`.
#[inline(always)]
fn exp_of_small(t: f32) -> f32 {
    // Adding and taking away 1.5·2^23 rounds to the nearest integer.
    const ROUND: f32 = 12_582_912.0;
    const LN2_HI: f32 = 0.693_145_75; // ln 2 in 16 bits: `k·LN2_HI` is exact.
    const LN2_LO: f32 = 1.428_606_8e-6;
    let k = (t * core::f32::consts::LOG2_E + ROUND) - ROUND;
    let r = (t - k * LN2_HI) - k * LN2_LO;
    let mut p = 1.0 / 5040.0;
    for c in [1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0] {
        p = p * r + c;
    }
    p * f32::from_bits(((k as i32 + 127) as u32) << 23)
}

/// `tanh(x)` within 1.3 units in the last place, from plain `f32` operations without branches
/// or library calls: loops over it vectorise, and every processor and C library gives the same
/// bits. The odd series below `|x| = 0.625`, `1 − 2/(e^(2|x|) + 1)` above (1 from 9.1 on, as
/// `f32` rounds it), with the sign of `x`.
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    let a = x.abs();
    let a2 = a * a;
    let mut p = TANH_SERIES[10];
    for &c in TANH_SERIES[1..10].iter().rev() {
        p = p * a2 + c;
    }
    let series = a + a * a2 * p;
    let e = exp_of_small(2.0 * a.min(9.1));
    let tail = 1.0 - 2.0 / (e + 1.0);
    let t = if a < 0.625 { series } else { tail };
    if x.is_nan() {
        x
    } else {
        t.copysign(x)
    }
}

/// Runs the loop macro `$each` with the function of the activation `$act` (a closure or a
/// function's name), chosen once outside the loop.
macro_rules! by_activation {
    ($act:expr, $each:ident) => {
        match $act {
            Act::Identity => $each!(|v: f32| v),
            Act::Relu => $each!(|v: f32| v.max(0.0)),
            Act::Relu6 => $each!(|v: f32| v.clamp(0.0, 6.0)),
            Act::LeakyRelu(a) => $each!(|v: f32| if v > 0.0 { v } else { a * v }),
            Act::Sigmoid => $each!(sigmoid),
            Act::Tanh => $each!(tanh),
        }
    };
}

impl Act {
    /// `f(x)`.
    #[inline(always)]
    pub fn apply(self, x: f32) -> f32 {
        macro_rules! at {
            ($f:expr) => {
                $f(x)
            };
        }
        by_activation!(self, at)
    }

    /// `f'(x)` expressed through `y = f(x)`.
    #[inline(always)]
    pub fn derivative_from_output(self, y: f32) -> f32 {
        match self {
            Act::Identity => 1.0,
            Act::Relu => {
                if y > 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
            Act::Relu6 => {
                if y > 0.0 && y < 6.0 {
                    1.0
                } else {
                    0.0
                }
            }
            Act::LeakyRelu(a) => {
                if y > 0.0 {
                    1.0
                } else {
                    a
                }
            }
            Act::Sigmoid => y * (1.0 - y),
            Act::Tanh => 1.0 - y * y,
        }
    }

    /// `y[i] = f(pre(y[i], x[i]))` over the pairs of `y` and `x` (as many as the shorter holds),
    /// with the activation chosen once for the loop, which then vectorises: the fused output
    /// passes of the layers (bias, normalisation) go through here. The same values as
    /// [`apply`](Act::apply).
    #[inline(always)]
    pub fn map_zip(self, y: &mut [f32], x: &[f32], pre: impl Fn(f32, f32) -> f32) {
        macro_rules! each {
            ($f:expr) => {
                y.iter_mut().zip(x).for_each(|(y, &x)| *y = $f(pre(*y, x)))
            };
        }
        by_activation!(self, each);
    }

    /// `v[i] = f(pre(v[i]))`, as [`map_zip`](Act::map_zip).
    #[inline(always)]
    pub fn map_in_place(self, v: &mut [f32], pre: impl Fn(f32) -> f32) {
        macro_rules! each {
            ($f:expr) => {
                v.iter_mut().for_each(|v| *v = $f(pre(*v)))
            };
        }
        by_activation!(self, each);
    }

    /// Applies `f` to every value of `v` in place.
    #[inline]
    pub fn apply_in_place(self, v: &mut [f32]) {
        if self != Act::Identity {
            self.map_in_place(v, |v| v);
        }
    }

    /// Multiplies the gradient `dy` in place by `f'` at the outputs `y`.
    #[inline]
    pub fn backward_in_place(self, y: &[f32], dy: &mut [f32]) {
        match self {
            Act::Identity => {}
            Act::Relu => dy.iter_mut().zip(y).for_each(|(g, &y)| *g = if y > 0.0 { *g } else { 0.0 }),
            Act::Relu6 => dy.iter_mut().zip(y).for_each(|(g, &y)| *g = if y > 0.0 && y < 6.0 { *g } else { 0.0 }),
            _ => dy.iter_mut().zip(y).for_each(|(g, &y)| *g *= self.derivative_from_output(y)),
        }
    }
}

/// Multiplies the gradient `dy` of `n` samples of `len` values by `act'` at the outputs `y`,
/// in place (the backward pass of an activation fused into a residual addition).
pub fn act_backward(n: usize, len: usize, act: Act, y: &[f32], dy: &mut [f32]) {
    if act == Act::Identity {
        return;
    }
    let size = (chunk_len(n) * len).max(1);
    let dys = ChunksMut::new(&mut dy[..n * len], size);
    let y = &y[..n * len];
    for_each_chunk(chunk_count(n), &|c| act.backward_in_place(chunk(y, size, c), dys.take(c)));
}

/// An activation on its own, for the places where no layer before it can absorb it (after a
/// pooling layer or straight after the input). `LEN` values per sample.
#[derive(Clone, Copy, Debug)]
pub struct Activation<const LEN: usize> {
    /// The function applied.
    pub act: Act,
}

impl<const LEN: usize> Layer for Activation<LEN> {
    const IN: usize = LEN;
    const OUT: usize = LEN;
    const PARAMS: usize = 0;
    const SCRATCH: usize = 0;
    const STATE: usize = 0;
    const FLOPS: u64 = 0;

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
        let len = chunk_len(n) * LEN;
        let ys = ChunksMut::new(&mut y[..n * LEN], len);
        let x = &x[..n * LEN];
        for_each_chunk(chunk_count(n), &|c| {
            let (y, x) = (ys.take(c), chunk(x, len, c));
            self.act.map_zip(y, x, |_, x| x);
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
        let len = chunk_len(n) * LEN;
        let dxs = ChunksMut::new(&mut dx[..n * LEN], len);
        let (dy, y) = (&dy[..n * LEN], &y[..n * LEN]);
        for_each_chunk(chunk_count(n), &|c| {
            let (dx, dy, y) = (dxs.take(c), chunk(dy, len, c), chunk(y, len, c));
            for ((dx, &dy), &y) in dx.iter_mut().zip(dy).zip(y) {
                *dx = dy * self.act.derivative_from_output(y);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testutil::{gradient_errors_at, layer_gradient_errors, random_vec};
    use crate::kernels::{add_forward, BatchNorm, Conv2d, Linear};

    #[test]
    fn relu_forward_and_mask() {
        let layer = Activation::<4> { act: Act::Relu };
        let x = [-1.0, 0.5, 2.0, -0.1];
        let mut y = [0.0; 4];
        layer.forward(1, &x, &mut y, &[], &mut [], &mut [], &mut [], Mode::Eval);
        assert_eq!(y, [0.0, 0.5, 2.0, 0.0]);
        let mut dy = [1.0, 2.0, 3.0, 4.0];
        let mut dx = [9.0; 4];
        layer.backward(1, &x, &y, &mut dy, Some(&mut dx), &[], &mut [], &mut [], &mut [], &[]);
        assert_eq!(dx, [0.0, 2.0, 3.0, 0.0]);
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let acts =
            [Act::Relu, Act::Relu6, Act::LeakyRelu(0.01), Act::LeakyRelu(0.3), Act::Sigmoid, Act::Tanh, Act::Identity];
        for act in acts {
            let (ex, _) = layer_gradient_errors(&Activation::<10> { act }, 3, 11);
            println!("{act:?}: max relative error {ex:e}");
            assert!(ex < 1e-2, "{act:?}: max relative error {ex}");
        }
    }

    /// The `f32` tanh is within 1.3 units in the last place of `f64`'s over [−10, 10] and at
    /// small values, odd, NaN for NaN and ±1 at the ends.
    #[test]
    fn tanh_is_within_two_units_in_the_last_place() {
        let mut worst = 0.0f64;
        let small = (0..20_000).map(|i| 10f32.powf(-8.0 + 8.0 * i as f32 / 20_000.0));
        for x in (0..400_001).map(|i| -10.0 + 20.0 * i as f32 / 400_000.0).chain(small) {
            let (t, want) = (tanh(x), (x as f64).tanh());
            let rounded = want as f32;
            if rounded == 0.0 {
                continue;
            }
            let ulp = f64::from(f32::from_bits(rounded.abs().to_bits() + 1) - rounded.abs());
            worst = worst.max((f64::from(t) - want).abs() / ulp);
            assert_eq!(tanh(-x).to_bits(), (-t).to_bits(), "tanh(-{x})");
        }
        assert!(worst < 1.3, "{worst} units in the last place");
        assert!(tanh(f32::NAN).is_nan());
        assert_eq!((tanh(f32::INFINITY), tanh(f32::NEG_INFINITY), tanh(100.0)), (1.0, -1.0, 1.0));
        assert_eq!(tanh(-0.0).to_bits(), (-0.0f32).to_bits());
    }

    #[test]
    fn values_match_their_definitions() {
        for x in [-30.0f32, -2.0, -0.5, 0.0, 0.5, 2.0, 30.0] {
            let want = 1.0 / (1.0 + (-(x as f64)).exp());
            assert!((Act::Sigmoid.apply(x) as f64 - want).abs() < 1e-7, "sigmoid({x})");
            assert!((Act::Tanh.apply(x) - x.tanh()).abs() < 1e-7);
            assert_eq!(Act::LeakyRelu(0.1).apply(x), if x > 0.0 { x } else { 0.1 * x });
        }
        assert_eq!(Act::Sigmoid.apply(-1000.0), 0.0);
        assert_eq!(Act::Sigmoid.apply(1000.0), 1.0);
    }

    #[test]
    fn relu6_clamps_and_passes_the_gradient_strictly_inside() {
        let layer = Activation::<8> { act: Act::Relu6 };
        let x = [-1.0, 0.0, 0.5, 5.9, 6.0, 7.5, -0.0, 1e9];
        let mut y = [f32::NAN; 8];
        layer.forward(1, &x, &mut y, &[], &mut [], &mut [], &mut [], Mode::Eval);
        assert_eq!(y, [0.0, 0.0, 0.5, 5.9, 6.0, 6.0, 0.0, 6.0]);
        let mut dy = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
        let mut dx = [f32::NAN; 8];
        layer.backward(1, &x, &y, &mut dy, Some(&mut dx), &[], &mut [], &mut [], &mut [], &[]);
        // As PyTorch's hardtanh backward: nothing at 0 and 6 themselves.
        assert_eq!(dx, [0.0, 0.0, 3.0, 4.0, 0.0, 0.0, 0.0, 0.0]);
        // The in-place forms, which the fused layers use, agree with the element-wise ones.
        let mut v = x;
        Act::Relu6.apply_in_place(&mut v);
        assert_eq!(v, y);
        let mut g = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
        Act::Relu6.backward_in_place(&y, &mut g);
        assert_eq!(g, dx);
        let mut g = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
        act_backward(2, 4, Act::Relu6, &y, &mut g);
        assert_eq!(g, dx);
        // A NaN stays one, as in PyTorch, and passes no gradient.
        assert!(Act::Relu6.apply(f32::NAN).is_nan());
        assert_eq!(Act::Relu6.derivative_from_output(f32::NAN), 0.0);
    }

    /// `len` values spread over [-2, 8), across both of ReLU6's kinks.
    fn around_relu6(len: usize, seed: u64) -> Vec<f32> {
        random_vec(len, seed).iter().map(|v| 5.0 * v + 3.0).collect()
    }

    #[test]
    fn relu6_gradient_matches_finite_differences() {
        let layer = Activation::<40> { act: Act::Relu6 };
        let x = around_relu6(3 * 40, 1);
        assert!(x.iter().any(|&v| v > 6.0) && x.iter().any(|&v| v < 0.0));
        let (ex, _) = gradient_errors_at(&layer, 3, &x, &[], 2);
        assert!(ex < 1e-2, "max relative error {ex}");
    }

    #[test]
    fn relu6_fused_into_other_layers() {
        // Inputs large enough that the outputs before the activation cross 0 and 6.
        macro_rules! check {
            ($layer:expr, $n:expr, $x:expr, $p:expr) => {{
                let (layer, n) = ($layer, $n);
                let (x, p): (Vec<f32>, Vec<f32>) = ($x, $p);
                let y = crate::kernels::testutil::forward(&layer, n, &x, &p).0;
                assert!(y.contains(&6.0) && y.contains(&0.0), "{}: both kinks reached", stringify!($layer));
                let (ex, ep) = gradient_errors_at(&layer, n, &x, &p, 9);
                assert!(ex < 1e-2 && ep < 1e-2, "{}: dx {ex}, dparams {ep}", stringify!($layer));
            }};
        }
        let act = Act::Relu6;
        type C = Conv2d<2, 5, 6, 3, 3, 3, 1, 1, 1, 1>;
        check!(C { act }, 2, around_relu6(2 * C::IN, 3), random_vec(C::PARAMS, 4));
        check!(Linear::<9, 20> { act }, 3, around_relu6(27, 5), random_vec(200, 6));
        // γ = 4 and β = 3 spread the normalised values over both kinks.
        let p: Vec<f32> = (0..8).map(|i| if i < 4 { 4.0 } else { 3.0 }).collect();
        check!(BatchNorm::<4, 5> { act }, 3, random_vec(60, 7), p);
        // A residual addition.
        let (a, b) = (around_relu6(30, 8), around_relu6(30, 9));
        let mut y = vec![f32::NAN; 30];
        add_forward(3, 10, &a, &b, &mut y, act);
        let want: Vec<f32> = a.iter().zip(&b).map(|(a, b)| (a + b).clamp(0.0, 6.0)).collect();
        assert_eq!(y, want);
    }
}
