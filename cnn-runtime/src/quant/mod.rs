//! Int8 inference: a trained model quantised after training from a calibration batch.
//!
//! [`quantize`] turns a model's convolutions and fully connected layers into 8-bit integer
//! products: each filter's weights get their own scale (symmetric, `−127..=127`), each
//! activation between layers a scale and zero point from the range it took on the calibration
//! batch (`0..=127`, so that real 0, the padding, is exact). The products are summed exactly in
//! `i32` (see [`Kernel`]); the bias joins them as an integer, and each layer's sums become real
//! values once, where its activation is applied and the next layer's input quantised. Max
//! pooling works on the integers directly, average pooling rounds their mean. The first
//! layer's input and the last layer's outputs (and the softmax after them) stay `f32`.
//!
//! The quantised model answers as the model does, through [`Quantized::predict`],
//! [`Quantized::classify`] and [`Quantized::forward`], on the fastest [`Kernel`] the processor
//! has; every kernel gives the same integers. Models of convolutions, fully connected layers,
//! max and average pooling, activations, dropout and a final softmax are supported; other
//! layers are an `Err` naming them.
//!
//! ```
//! use cnn::prelude::*;
//! use cnn::quant::quantize;
//!
//! cnn::cnn! { struct Tiny < input(8x8x1) conv(3x3, 4, pad=1) relu pool(2) fc(10) softmax > }
//!
//! let mut model = Tiny::with_seed(1);
//! let calibration: Vec<f32> = (0..64 * 64).map(|i| (i % 17) as f32 / 17.0).collect();
//! let mut int8 = quantize(&model, &calibration)?;
//! let x = &calibration[..64];
//! assert_eq!(int8.predict(x)?, model.predict(x)?);
//! # Ok::<(), cnn::Error>(())
//! ```

mod build;
mod dot;
mod run;

use rayon::prelude::*;

pub use build::quantize;
pub use dot::Kernel;
use run::Scratch;

use crate::graph::{Hw, PoolKind};
use crate::kernels::{in_pool, softmax_row, Act, Loss};
use crate::model::{accuracy, samples};
use crate::{Error, Result, Shape};

/// How real values map to the integers `0..=127`: `real = scale · (q − zero)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QParams {
    /// The real value of one step.
    pub scale: f32,
    /// The integer that stands for real 0.
    pub zero: u8,
}

impl QParams {
    /// The scale and zero point that cover `[lo, hi]` (widened to include 0) with `0..=127`.
    pub(crate) fn covering(lo: f32, hi: f32) -> QParams {
        let (lo, hi) = (lo.min(0.0), hi.max(0.0));
        let scale = (hi - lo) / 127.0;
        let scale = if scale.is_finite() && scale > 0.0 { scale } else { 1.0 };
        QParams { scale, zero: (-lo / scale).round_ties_even().clamp(0.0, 127.0) as u8 }
    }

    /// The integer nearest `v` (ties to even, as ONNX's `QuantizeLinear`), within `0..=127`.
    #[inline]
    pub(crate) fn quantize(self, v: f32) -> u8 {
        // Through `i32`, which runs on vectors where a direct `as u8` does not.
        (round_even(v / self.scale) + f32::from(self.zero)).clamp(0.0, 127.0) as i32 as u8
    }

    /// The real value of `q`.
    #[inline]
    pub(crate) fn dequantize(self, q: u8) -> f32 {
        (i32::from(q) - i32::from(self.zero)) as f32 * self.scale
    }
}

/// `x` rounded to the nearest integer, ties to even, as `f32::round_ties_even` but without a
/// call to the C library on processors without SSE 4.1: adding and subtracting 1.5 · 2^23
/// leaves an integer, rounded as the processor rounds, to nearest even. Values past ±2^22 are
/// clamped first (to ±4,000,000, far outside `0..=127`).
#[inline]
pub(crate) fn round_even(x: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0;
    (x.clamp(-4_000_000.0, 4_000_000.0) + MAGIC) - MAGIC
}

/// The window of a convolution or pooling over a `depth × height × width` input, and the
/// height and width of its output (as the model's graph gives them).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Geometry {
    pub(crate) depth: usize,
    pub(crate) height: usize,
    pub(crate) width: usize,
    pub(crate) filter: Hw,
    pub(crate) stride: Hw,
    pub(crate) pad: Hw,
    pub(crate) out: Hw,
}

impl Geometry {
    /// The output's height and width.
    pub(crate) fn output(&self) -> (usize, usize) {
        (self.out.h, self.out.w)
    }
}

/// A convolution (with its window) or a fully connected layer (without), quantised.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Dense {
    /// The PyTorch path of the layer.
    pub(crate) path: &'static str,
    pub(crate) geometry: Option<Geometry>,
    /// Output channels (outputs of a fully connected layer).
    pub(crate) filters: usize,
    /// Values each filter reads, and that number rounded up to a multiple of 4.
    pub(crate) k: usize,
    pub(crate) kp: usize,
    /// `filters` rows of `kp` weights, zero past `k`.
    pub(crate) weights: Vec<i8>,
    /// The same, laid out for the AVX2 kernel ([`dot::pack`]).
    pub(crate) packed: Vec<i8>,
    /// Each filter's weight scale.
    pub(crate) weight_scales: Vec<f32>,
    /// Each filter's sum of quantised weights, for the input's zero point.
    pub(crate) weight_sums: Vec<i32>,
    /// The real bias, and as an integer in units of input scale × weight scale.
    pub(crate) bias_real: Vec<f32>,
    pub(crate) bias: Vec<i32>,
    /// The activations fused after it.
    pub(crate) acts: Vec<Act>,
}

impl Dense {
    /// The filters rounded up to a group of the products: the stride of their sums.
    pub(crate) fn stride(&self) -> usize {
        self.filters.div_ceil(dot::GROUP) * dot::GROUP
    }

    /// Output positions per channel: 1 for a fully connected layer.
    pub(crate) fn positions(&self) -> usize {
        self.geometry.as_ref().map_or(1, |g| {
            let (h, w) = g.output();
            h * w
        })
    }
}

/// One step of a quantised model.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Step {
    /// Integer products, then the fused activations; the result quantised with `output`
    /// (left real when it is the last step).
    Dense { layer: Box<Dense>, input: QParams, output: Option<QParams> },
    /// Max or average pooling in the input's scale.
    Pool { kind: PoolKind, geometry: Geometry, input: QParams },
    /// Activations on their own over `len` values: real values in, quantised with `output`.
    Act { acts: Vec<Act>, len: usize, input: QParams, output: QParams },
}

impl Step {
    /// Values the step writes per sample.
    pub(crate) fn output_len(&self) -> usize {
        match self {
            Step::Dense { layer, .. } => layer.positions() * layer.filters,
            Step::Pool { geometry, .. } => {
                let (h, w) = geometry.output();
                geometry.depth * h * w
            }
            Step::Act { len, .. } => *len,
        }
    }
}

/// A model quantised to 8-bit integers by [`quantize`], for inference.
#[derive(Clone, Debug)]
pub struct Quantized {
    pub(crate) input_shape: Shape,
    pub(crate) input: QParams,
    pub(crate) steps: Vec<Step>,
    output_len: usize,
    pub(crate) softmax: bool,
    loss: Loss,
    dsl: &'static str,
    kernel: Kernel,
    scratch: Vec<Scratch>,
    out: Vec<f32>,
}

impl Quantized {
    /// The model's input shape.
    pub fn input_shape(&self) -> Shape {
        self.input_shape
    }

    /// Values per output sample.
    pub fn output_len(&self) -> usize {
        self.output_len
    }

    /// The kernel the products run on: [`Kernel::best`] unless set.
    pub fn kernel(&self) -> Kernel {
        self.kernel
    }

    /// Runs the products on `kernel`; one this processor lacks is an `Err`. Every kernel gives
    /// the same results.
    pub fn set_kernel(&mut self, kernel: Kernel) -> Result<()> {
        if !kernel.available() {
            return Err(Error::InvalidArgument { name: "kernel", reason: format!("{kernel:?} is not available here") });
        }
        self.kernel = kernel;
        Ok(())
    }

    /// The model's layer list, as `cnn!` was given it.
    pub fn dsl(&self) -> &'static str {
        self.dsl
    }

    /// Number of samples in `x`, or the error the float model gives.
    fn batch_len(&self, x: &[f32]) -> Result<usize> {
        samples(self.input_shape, x)
    }

    /// The outputs of a batch (class probabilities for a classifier): `n * output_len` values,
    /// sample after sample. Samples are spread over rayon's threads.
    pub fn forward(&mut self, x: &[f32]) -> Result<&[f32]> {
        let n = self.batch_len(x)?;
        let (il, ol) = (self.input_shape.len(), self.output_len);
        if self.out.len() < n * ol {
            self.out.resize(n * ol, 0.0);
        }
        let threads = if n == 1 { 1 } else { rayon::current_num_threads().clamp(1, n) };
        while self.scratch.len() < threads {
            self.scratch.push(Scratch::for_steps(&self.steps, il));
        }
        let per = n.div_ceil(threads);
        let (steps, input, kernel, softmax) = (&self.steps, self.input, self.kernel, self.softmax);
        let job = |(xs, outs): (&[f32], &mut [f32]), scratch: &mut Scratch| {
            for (x, out) in xs.chunks_exact(il).zip(outs.chunks_exact_mut(ol)) {
                run::quantize(input, x, &mut scratch.a);
                let len = run::sample(kernel, steps, input, il, scratch);
                if softmax {
                    softmax_row(&scratch.real[..len], out);
                } else {
                    out.copy_from_slice(&scratch.real[..len]);
                }
            }
        };
        let out = &mut self.out[..n * ol];
        if threads == 1 {
            job((x, out), &mut self.scratch[0]);
        } else {
            let scratch = &mut self.scratch[..threads];
            in_pool(|| {
                x.par_chunks(per * il)
                    .zip(out.par_chunks_mut(per * ol))
                    .zip(scratch.par_iter_mut())
                    .for_each(|(pair, scratch)| job(pair, scratch))
            });
        }
        Ok(&self.out[..n * ol])
    }

    /// The most probable class of each sample, written into `out` (one per sample).
    pub fn predict_into(&mut self, x: &[f32], out: &mut [usize]) -> Result<()> {
        let n = self.batch_len(x)?;
        if out.len() != n {
            return Err(Error::OutputLength { expected: n, found: out.len() });
        }
        let (loss, k) = (self.loss, self.output_len);
        for (o, p) in out.iter_mut().zip(self.forward(x)?.chunks_exact(k)) {
            *o = loss.classify(p);
        }
        Ok(())
    }

    /// The most probable class of each sample.
    pub fn predict(&mut self, x: &[f32]) -> Result<Vec<usize>> {
        let mut out = vec![0; self.batch_len(x)?];
        self.predict_into(x, &mut out)?;
        Ok(out)
    }

    /// The most probable class of one sample (`x` holds exactly one).
    pub fn classify(&mut self, x: &[f32]) -> Result<usize> {
        let per = self.input_shape.len();
        if x.len() != per {
            return Err(Error::InputLength { shape: self.input_shape, per_sample: per, found: x.len() });
        }
        let mut out = [0];
        self.predict_into(x, &mut out)?;
        Ok(out[0])
    }

    /// The fraction of samples whose predicted class is their label.
    pub fn accuracy(&mut self, x: &[f32], labels: &[usize]) -> Result<f32> {
        accuracy(&self.predict(x)?, labels)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_is_to_nearest_even() {
        for i in -400_000..400_000 {
            let x = i as f32 / 1000.0;
            assert_eq!(round_even(x), x.round_ties_even(), "{x}");
        }
        for x in [0.5f32, 1.5, 2.5, -0.5, -1.5, -2.5, 126.5, 127.49999, 1e9, -1e9] {
            assert_eq!(round_even(x), x.round_ties_even().clamp(-4e6, 4e6), "{x}");
        }
    }
}
