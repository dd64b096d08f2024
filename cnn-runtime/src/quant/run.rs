//! One sample through the steps of a quantised model.

use super::dot::{products, Kernel};
use super::{Dense, Geometry, QParams, Step};
use crate::graph::PoolKind;

/// The buffers one thread works in: two activations, the columns of a product, its sums and
/// its outputs before quantisation.
#[derive(Clone, Debug, Default)]
pub(crate) struct Scratch {
    pub(crate) a: Vec<u8>,
    pub(crate) b: Vec<u8>,
    pub(crate) columns: Vec<u8>,
    pub(crate) sums: Vec<i32>,
    pub(crate) real: Vec<f32>,
}

impl Scratch {
    /// Buffers large enough for every step of `steps`, reading `input_len` values.
    pub(crate) fn for_steps(steps: &[Step], input_len: usize) -> Scratch {
        let (mut act, mut columns, mut sums) = (input_len, 0, 0);
        for step in steps {
            act = act.max(step.output_len());
            if let Step::Dense { layer, .. } = step {
                columns = columns.max(layer.positions() * layer.kp);
                sums = sums.max(layer.positions() * layer.stride());
            }
        }
        Scratch {
            a: vec![0; act],
            b: vec![0; act],
            columns: vec![0; columns],
            sums: vec![0; sums],
            real: vec![0.0; act],
        }
    }
}

/// `x` quantised with `q` into `out`.
pub(crate) fn quantize(q: QParams, x: &[f32], out: &mut [u8]) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = q.quantize(v);
    }
}

/// Runs `steps` on one sample in `scratch.a` (`len` values quantised with `q`); returns the
/// length of the result, left in `scratch.real` when the last step is dense (its values before
/// quantisation) and dequantised there otherwise.
pub(crate) fn sample(kernel: Kernel, steps: &[Step], mut q: QParams, mut len: usize, scratch: &mut Scratch) -> usize {
    for (i, step) in steps.iter().enumerate() {
        let last = i + 1 == steps.len();
        let Scratch { a, b, columns, sums, real } = scratch;
        match step {
            Step::Dense { layer, input, output } => {
                len = dense(kernel, layer, *input, &a[..len], columns, sums, real);
                if let Some(out) = output {
                    quantize(*out, &real[..len], b);
                    q = *out;
                }
                if last {
                    return len;
                }
            }
            Step::Pool { kind, geometry, input } => {
                len = pool(*kind, geometry, input.zero, &a[..len], b);
                q = *input;
            }
            Step::Act { acts, input, output, .. } => {
                for (o, &v) in b.iter_mut().zip(&a[..len]) {
                    *o = output.quantize(acts.iter().fold(input.dequantize(v), |y, act| act.apply(y)));
                }
                q = *output;
            }
        }
        std::mem::swap(&mut scratch.a, &mut scratch.b);
    }
    for (r, &v) in scratch.real.iter_mut().zip(&scratch.a[..len]) {
        *r = q.dequantize(v);
    }
    len
}

/// A convolution or fully connected layer on the quantised `x`: its outputs after the fused
/// activations, in `real`; returns their number.
pub(crate) fn dense(
    kernel: Kernel,
    layer: &Dense,
    input: QParams,
    x: &[u8],
    columns: &mut [u8],
    sums: &mut [i32],
    real: &mut [f32],
) -> usize {
    let positions = layer.positions();
    let columns = &mut columns[..positions * layer.kp];
    match &layer.geometry {
        Some(g) => im2col(g, input.zero, x, layer.kp, columns),
        None => {
            columns[..x.len()].copy_from_slice(x);
            columns[x.len()..].fill(0);
        }
    }
    let stride = layer.stride();
    let sums = &mut sums[..positions * stride];
    products(kernel, &layer.weights, &layer.packed, columns, layer.kp, sums);
    let zero = i32::from(input.zero);
    for (k, out) in real[..positions * layer.filters].chunks_exact_mut(positions).enumerate() {
        // Σ w·(q − zero) + bias, in the units of input scale × weight scale.
        let (offset, scale) = (layer.bias[k] - zero * layer.weight_sums[k], input.scale * layer.weight_scales[k]);
        for (o, &s) in out.iter_mut().zip(sums[k..].iter().step_by(stride)) {
            *o = (s + offset) as f32 * scale;
        }
        for act in &layer.acts {
            act.apply_in_place(out);
        }
    }
    positions * layer.filters
}

/// The columns of a convolution: for each output position, the `d · fh · fw` input values its
/// filter reads (`zero`, the quantised 0, where it reads padding), then zeros up to `kp`.
fn im2col(g: &Geometry, zero: u8, x: &[u8], kp: usize, columns: &mut [u8]) {
    let (_, w2) = g.output();
    let fw = g.filter.w;
    for (p, column) in columns.chunks_exact_mut(kp).enumerate() {
        let (oy, ox) = (p / w2, p % w2);
        let left = (ox * g.stride.w) as isize - g.pad.w as isize;
        let mut i = 0;
        for c in 0..g.depth {
            for fy in 0..g.filter.h {
                let y = (oy * g.stride.h + fy).wrapping_sub(g.pad.h);
                let out = &mut column[i..i + fw];
                i += fw;
                if y >= g.height {
                    out.fill(zero);
                    continue;
                }
                let row = &x[(c * g.height + y) * g.width..][..g.width];
                if left >= 0 && left as usize + fw <= g.width {
                    // A loop rather than `copy_from_slice`, which calls `memcpy` for a few bytes.
                    for (o, &v) in out.iter_mut().zip(&row[left as usize..left as usize + fw]) {
                        *o = v;
                    }
                } else {
                    for (fx, o) in out.iter_mut().enumerate() {
                        let at = left + fx as isize;
                        *o = if (0..g.width as isize).contains(&at) { row[at as usize] } else { zero };
                    }
                }
            }
        }
        column[i..].fill(0);
    }
}

/// Max or average pooling of the quantised `x` into `out`; returns the output's length.
/// Maximum and mean commute with the affine quantisation, so the values stay in the input's
/// scale: max pooling is exact, the mean rounds to the nearest (ties to even). Average
/// pooling counts padding as the quantised 0, as PyTorch's `count_include_pad=True`.
fn pool(kind: PoolKind, g: &Geometry, zero: u8, x: &[u8], out: &mut [u8]) -> usize {
    let (h2, w2) = g.output();
    let area = (g.filter.h * g.filter.w) as u32;
    let padded = g.pad.h > 0 || g.pad.w > 0;
    for c in 0..g.depth {
        let plane = &x[c * g.height * g.width..][..g.height * g.width];
        for oy in 0..h2 {
            for ox in 0..w2 {
                let (mut max, mut sum) = (0u8, 0u32);
                for fy in 0..g.filter.h {
                    let y = (oy * g.stride.h + fy).wrapping_sub(g.pad.h);
                    let left = ox * g.stride.w;
                    if !padded {
                        // Every window lies inside the input.
                        for &v in &plane[y * g.width + left..][..g.filter.w] {
                            max = max.max(v);
                            sum += u32::from(v);
                        }
                        continue;
                    }
                    for fx in 0..g.filter.w {
                        let x_at = (left + fx).wrapping_sub(g.pad.w);
                        let inside = y < g.height && x_at < g.width;
                        let v = if inside { plane[y * g.width + x_at] } else { zero };
                        max = if inside { max.max(v) } else { max };
                        sum += u32::from(v);
                    }
                }
                out[(c * h2 + oy) * w2 + ox] = match kind {
                    PoolKind::Max => max,
                    _ => mean(sum, area),
                };
            }
        }
    }
    g.depth * h2 * w2
}

/// `sum / area` rounded to the nearest integer, ties to even (as ONNX's `QuantizeLinear`).
fn mean(sum: u32, area: u32) -> u8 {
    let (q, r) = (sum / area, sum % area);
    let up = 2 * r > area || (2 * r == area && q % 2 == 1);
    (q + u32::from(up)) as u8
}
