//! From a float model and a calibration batch to the steps of its quantised form.

use super::run::{self, Scratch};
use super::{dot, Dense, Geometry, QParams, Quantized, Step};
use crate::graph::{Activation, Hw, Node, Op, PoolKind};
use crate::kernels::Act;
use crate::model::batch_len;
use crate::{Error, Model, Result, TensorInfo};

/// A step before calibration.
enum Plan {
    Dense(Box<Dense>),
    Pool(PoolKind, Geometry),
    Act(Vec<Act>, usize),
}

fn refuse(reason: String) -> Error {
    Error::InvalidArgument { name: "model", reason }
}

fn act(a: Activation) -> Act {
    match a {
        Activation::Relu => Act::Relu,
        Activation::Relu6 => Act::Relu6,
        Activation::LeakyRelu(s) => Act::LeakyRelu(s),
        Activation::Sigmoid => Act::Sigmoid,
        Activation::Tanh => Act::Tanh,
    }
}

/// The window of `node`, reading its input volume and writing its output.
fn geometry(node: &Node, filter: Hw, stride: Hw, pad: Hw) -> Geometry {
    let (s, out) = (node.input, Hw { h: node.output.h, w: node.output.w });
    Geometry { depth: s.d, height: s.h, width: s.w, filter, stride, pad, out }
}

/// `model`'s convolution or fully connected layer at `path`, `filters` rows of `k` weights,
/// with per-filter symmetric scales.
fn dense<M: Model>(
    model: &M,
    path: &'static str,
    geometry: Option<Geometry>,
    filters: usize,
    k: usize,
) -> Result<Dense> {
    let find =
        |suffix: &str| -> Option<&TensorInfo> { M::TENSORS.iter().find(|t| t.name.strip_suffix(suffix) == Some(path)) };
    let w = find(".weight").ok_or_else(|| refuse(format!("layer `{path}` has no weight")))?;
    let params = model.params();
    let w = &params[w.offset..w.offset + filters * k];
    let kp = dot::padded(k);
    let (mut weights, mut weight_scales, mut weight_sums) =
        (vec![0i8; filters * kp], vec![0.0; filters], vec![0; filters]);
    for (f, row) in w.chunks_exact(k).enumerate() {
        let max = row.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        if !max.is_finite() {
            return Err(refuse(format!("layer `{path}` holds a weight that is not finite")));
        }
        let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
        for (q, &v) in weights[f * kp..f * kp + k].iter_mut().zip(row) {
            *q = (v / scale).round_ties_even().clamp(-127.0, 127.0) as i8;
        }
        weight_scales[f] = scale;
        weight_sums[f] = weights[f * kp..f * kp + k].iter().map(|&q| i32::from(q)).sum();
    }
    let bias_real = match find(".bias") {
        Some(b) => params[b.offset..b.offset + filters].to_vec(),
        None => vec![0.0; filters],
    };
    let packed = dot::pack(&weights, kp);
    Ok(Dense {
        path,
        geometry,
        filters,
        k,
        kp,
        weights,
        packed,
        weight_scales,
        weight_sums,
        bias_real,
        bias: vec![],
        acts: vec![],
    })
}

/// The steps of `M`'s top-level chain before calibration, and whether a softmax ends it.
fn plan<M: Model>(model: &M) -> Result<(Vec<Plan>, bool)> {
    let nodes = M::GRAPH.get(1..).unwrap_or_default();
    let (mut plans, mut softmax) = (Vec::new(), false);
    for (i, node) in nodes.iter().enumerate() {
        let fused = matches!(plans.last(), Some(Plan::Dense(_)) | Some(Plan::Act(..)));
        match node.op {
            Op::Conv { filter, filters, stride, pad, groups: 1, .. } => {
                let g = geometry(node, filter, stride, pad);
                let k = g.depth * filter.h * filter.w;
                plans.push(Plan::Dense(Box::new(dense(model, node.path, Some(g), filters, k)?)));
            }
            Op::Fc { out, .. } => {
                plans.push(Plan::Dense(Box::new(dense(model, node.path, None, out, node.input.len())?)))
            }
            Op::Pool { kind: kind @ (PoolKind::Max | PoolKind::Avg), window, stride, pad } => {
                plans.push(Plan::Pool(kind, geometry(node, window, stride, pad)));
            }
            Op::Activation(a) => match plans.last_mut() {
                Some(Plan::Dense(d)) if fused => d.acts.push(act(a)),
                Some(Plan::Act(acts, _)) if fused => acts.push(act(a)),
                _ => plans.push(Plan::Act(vec![act(a)], node.input.len())),
            },
            Op::Dropout { .. } | Op::Sparsity { .. } => {}
            Op::Softmax if i + 1 == nodes.len() => softmax = true,
            _ => {
                let layer = M::LAYERS.iter().find(|l| l.path == node.path).map_or("?", |l| l.layer);
                return Err(refuse(format!(
                    "int8 inference does not support `{layer}` (layer `{}`): only convolutions without groups, \
                     fully connected layers, max and average pooling, activations, dropout and a final softmax",
                    node.path
                )));
            }
        }
    }
    match plans.last() {
        Some(Plan::Dense(_)) => Ok((plans, softmax)),
        _ => Err(refuse("int8 inference needs a model that ends with a convolution or fully connected layer".into())),
    }
}

/// The smallest and largest of `values`.
fn range(values: &[f32]) -> (f32, f32) {
    values.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)))
}

/// Quantises `model` for int8 inference, with the activation ranges it takes on
/// `calibration`, a batch of inputs like those it will see (a few hundred samples of the
/// training set serve). Each layer is calibrated on the outputs of the quantised layers before
/// it, so that their rounding is accounted for.
///
/// A model with a layer int8 inference does not support, a weight that is not finite, or a
/// calibration batch that is empty, of the wrong length or not finite is an `Err`.
pub fn quantize<M: Model>(model: &M, calibration: &[f32]) -> Result<Quantized> {
    let n = batch_len::<M>(calibration)?;
    let (plans, softmax) = plan(model)?;
    let (lo, hi) = range(calibration);
    let input = QParams::covering(lo, hi);
    let mut len = M::INPUT_LEN;
    let mut current: Vec<u8> = calibration.iter().map(|&v| input.quantize(v)).collect();
    let (mut q, mut steps) = (input, Vec::new());
    let last = plans.len() - 1;
    for (i, plan) in plans.into_iter().enumerate() {
        let (step, real, out_len) = calibrate(plan, q, &current, len, n)?;
        len = out_len;
        let output = match (&step, i == last) {
            (Step::Pool { .. }, _) | (_, true) => None,
            _ => {
                let (lo, hi) = range(&real);
                Some(QParams::covering(lo, hi))
            }
        };
        let step = match (step, output) {
            (Step::Dense { layer, input, .. }, Some(o)) => Step::Dense { layer, input, output: Some(o) },
            (Step::Act { acts, len, input, .. }, Some(o)) => Step::Act { acts, len, input, output: o },
            (step, _) => step,
        };
        if let Some(o) = output {
            current = real.iter().map(|&v| o.quantize(v)).collect();
            q = o;
        } else if let Step::Pool { .. } = step {
            current = real.iter().map(|&v| q.quantize(v)).collect();
        }
        steps.push(step);
    }
    Ok(Quantized {
        input_shape: M::INPUT,
        input,
        steps,
        output_len: M::OUTPUT_LEN,
        softmax,
        loss: M::LOSS,
        dsl: M::DSL,
        kernel: dot::Kernel::best(),
        scratch: Vec::new(),
        out: Vec::new(),
    })
}

/// The step of `plan` reading values quantised with `q`, and its real outputs on the
/// calibration batch `current` (`n` samples of `len`) with their length per sample.
fn calibrate(plan: Plan, q: QParams, current: &[u8], len: usize, n: usize) -> Result<(Step, Vec<f32>, usize)> {
    let kernel = dot::Kernel::best();
    let step = match plan {
        Plan::Dense(mut layer) => {
            layer.bias = bias(&layer, q)?;
            Step::Dense { layer, input: q, output: None }
        }
        Plan::Pool(kind, geometry) => Step::Pool { kind, geometry, input: q },
        Plan::Act(acts, len) => Step::Act { acts, len, input: q, output: q },
    };
    let steps = std::slice::from_ref(&step);
    let mut scratch = Scratch::for_steps(steps, len);
    let mut real = Vec::new();
    for x in current.chunks_exact(len).take(n) {
        scratch.a[..len].copy_from_slice(x);
        let out = match &step {
            Step::Act { acts, .. } => {
                scratch.real[..len]
                    .iter_mut()
                    .zip(x)
                    .for_each(|(r, &v)| *r = acts.iter().fold(q.dequantize(v), |y, a| a.apply(y)));
                len
            }
            _ => run::sample(kernel, steps, q, len, &mut scratch),
        };
        real.extend_from_slice(&scratch.real[..out]);
    }
    let out_len = real.len() / n;
    Ok((step, real, out_len))
}

/// `layer`'s bias in units of the input scale of `q` times each filter's weight scale.
fn bias(layer: &Dense, q: QParams) -> Result<Vec<i32>> {
    let limit = (1u32 << 30) as f32;
    layer
        .bias_real
        .iter()
        .zip(&layer.weight_scales)
        .map(|(&b, &s)| {
            let v = (b / (q.scale * s)).round_ties_even();
            if v.is_finite() && v.abs() < limit {
                Ok(v as i32)
            } else {
                Err(refuse(format!("layer `{}`: a bias of {b} is out of the integer range at this scale", layer.path)))
            }
        })
        .collect()
}
