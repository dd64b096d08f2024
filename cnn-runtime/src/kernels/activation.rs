//! Element-wise activations, fused into the layer before them or standing alone.

use super::{chunk, chunk_count, chunk_len, for_each_chunk, ChunksMut, Layer, Mode};

/// An element-wise activation function.
///
/// Its derivative is computed from the activation's output `y`, so a layer that applies it keeps
/// no extra state: the backward pass of ReLU is the mask `y > 0`, that of the sigmoid `y(1 − y)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Act {
    /// `y = x`.
    Identity,
    /// `y = max(x, 0)`.
    Relu,
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

impl Act {
    /// `f(x)`.
    #[inline(always)]
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Act::Identity => x,
            Act::Relu => x.max(0.0),
            Act::LeakyRelu(a) => {
                if x > 0.0 {
                    x
                } else {
                    a * x
                }
            }
            Act::Sigmoid => sigmoid(x),
            Act::Tanh => x.tanh(),
        }
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

    /// Applies `f` to every value of `v` in place.
    #[inline]
    pub fn apply_in_place(self, v: &mut [f32]) {
        match self {
            Act::Identity => {}
            Act::Relu => v.iter_mut().for_each(|v| *v = v.max(0.0)),
            _ => v.iter_mut().for_each(|v| *v = self.apply(*v)),
        }
    }

    /// Multiplies the gradient `dy` in place by `f'` at the outputs `y`.
    #[inline]
    pub fn backward_in_place(self, y: &[f32], dy: &mut [f32]) {
        match self {
            Act::Identity => {}
            Act::Relu => dy.iter_mut().zip(y).for_each(|(g, &y)| *g = if y > 0.0 { *g } else { 0.0 }),
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
            y.iter_mut().zip(x).for_each(|(y, &x)| *y = self.act.apply(x));
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
    use crate::kernels::testutil::layer_gradient_errors;

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
        for act in [Act::Relu, Act::LeakyRelu(0.01), Act::LeakyRelu(0.3), Act::Sigmoid, Act::Tanh, Act::Identity] {
            let (ex, _) = layer_gradient_errors(&Activation::<10> { act }, 3, 11);
            println!("{act:?}: max relative error {ex:e}");
            assert!(ex < 1e-2, "{act:?}: max relative error {ex}");
        }
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
}
