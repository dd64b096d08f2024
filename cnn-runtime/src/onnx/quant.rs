//! A quantised model ([`crate::quant::Quantized`]) as an ONNX file in the QDQ form: each
//! quantised value is a `QuantizeLinear` → `DequantizeLinear` pair with its scale and zero
//! point (uint8, `0..=127` through a `Clip` before it), each layer's weights int8 with one
//! scale per filter (`axis = 0`) and its bias int32 in units of input scale × weight scale, so
//! that a runtime computes what [`Quantized::forward`](crate::quant::Quantized::forward) does
//! (ONNX Runtime fuses the pairs into its own integer kernels).

use std::path::Path;

use super::encode;
use super::graph::{self, INPUT, OUTPUT};
use super::proto::{self, Attr, Message, FLOAT, INT32, INT8, UINT8};
use crate::data::file_error;
use crate::graph::PoolKind;
use crate::io::{write_atomic, Meta, MODEL_KEY};
use crate::kernels::Act;
use crate::quant::{Dense, Geometry, QParams, Quantized, Step};
use crate::{Error, Result, Shape};

/// Nodes and initializers being written; every name is `qN/what`, unique.
#[derive(Default)]
struct Writer {
    nodes: Vec<Message>,
    initializers: Vec<Message>,
    count: usize,
}

/// The window attributes of `g`.
fn window(g: &Geometry) -> Vec<(&'static str, Attr)> {
    graph::window(g.filter, g.stride, g.pad)
}

impl Writer {
    fn name(&mut self, what: &str) -> String {
        self.count += 1;
        format!("q{}/{what}", self.count)
    }

    /// A node of `op`; returns its output.
    fn node(&mut self, op: &'static str, inputs: Vec<String>, attrs: Vec<(&'static str, Attr)>) -> String {
        let out = self.name(op);
        self.nodes.push(proto::node(&out, op, &inputs, &out, &attrs));
        out
    }

    /// An initializer of `data_type` holding the little-endian bytes `raw`.
    fn tensor(&mut self, what: &str, dims: &[usize], data_type: i64, raw: Vec<u8>) -> String {
        let name = self.name(what);
        self.initializers.push(proto::raw_tensor(&name, dims, data_type, &raw));
        name
    }

    fn floats(&mut self, what: &str, dims: &[usize], values: &[f32]) -> String {
        self.tensor(what, dims, FLOAT, values.iter().flat_map(|v| v.to_le_bytes()).collect())
    }

    /// `x` rounded to the integers of `q` and back: `Clip` to what `0..=127` covers, then
    /// `QuantizeLinear` and `DequantizeLinear` (uint8).
    fn requantize(&mut self, x: String, q: QParams) -> String {
        let (lo, hi) = (self.floats("min", &[], &[q.dequantize(0)]), self.floats("max", &[], &[q.dequantize(127)]));
        let clipped = self.node("Clip", vec![x, lo, hi], vec![]);
        let scale = self.floats("scale", &[], &[q.scale]);
        let zero = self.tensor("zero_point", &[], UINT8, vec![q.zero]);
        let quantised = self.node("QuantizeLinear", vec![clipped, scale.clone(), zero.clone()], vec![]);
        self.node("DequantizeLinear", vec![quantised, scale, zero], vec![])
    }

    fn activation(&mut self, x: String, act: Act) -> String {
        match act {
            Act::Identity => x,
            Act::Relu => self.node("Relu", vec![x], vec![]),
            Act::Relu6 => {
                let (lo, hi) = (self.floats("min", &[], &[0.0]), self.floats("max", &[], &[6.0]));
                self.node("Clip", vec![x, lo, hi], vec![])
            }
            Act::LeakyRelu(a) => self.node("LeakyRelu", vec![x], vec![("alpha", Attr::Float(a))]),
            Act::Sigmoid => self.node("Sigmoid", vec![x], vec![]),
            Act::Tanh => self.node("Tanh", vec![x], vec![]),
        }
    }

    /// A convolution or fully connected layer reading `x` quantised with `input`.
    fn dense(&mut self, x: String, layer: &Dense, input: QParams) -> String {
        let filters = layer.filters;
        let weights: Vec<u8> =
            layer.weights.chunks_exact(layer.kp).flat_map(|row| row[..layer.k].iter().map(|&w| w as u8)).collect();
        let dims = match &layer.geometry {
            Some(g) => vec![filters, g.depth, g.filter.h, g.filter.w],
            None => vec![filters, layer.k],
        };
        let w = self.tensor("weight", &dims, INT8, weights);
        let w_scale = self.floats("weight_scale", &[filters], &layer.weight_scales);
        let w_zero = self.tensor("weight_zero_point", &[filters], INT8, vec![0; filters]);
        let axis = vec![("axis", Attr::Int(0))];
        let w = self.node("DequantizeLinear", vec![w, w_scale, w_zero], axis.clone());
        let bias: Vec<u8> = layer.bias.iter().flat_map(|b| b.to_le_bytes()).collect();
        let b = self.tensor("bias", &[filters], INT32, bias);
        let scales: Vec<f32> = layer.weight_scales.iter().map(|s| input.scale * s).collect();
        let b_scale = self.floats("bias_scale", &[filters], &scales);
        let b_zero = self.tensor("bias_zero_point", &[filters], INT32, vec![0; 4 * filters]);
        let b = self.node("DequantizeLinear", vec![b, b_scale, b_zero], axis);
        let y = match &layer.geometry {
            Some(g) => self.node("Conv", vec![x, w, b], window(g)),
            None => {
                let flat = self.node("Flatten", vec![x], vec![("axis", Attr::Int(1))]);
                self.node("Gemm", vec![flat, w, b], vec![("transB", Attr::Int(1))])
            }
        };
        layer.acts.iter().fold(y, |y, &act| self.activation(y, act))
    }

    fn step(&mut self, x: String, step: &Step) -> String {
        match step {
            Step::Dense { layer, input, output } => {
                let y = self.dense(x, layer, *input);
                output.map_or(y.clone(), |q| self.requantize(y, q))
            }
            Step::Pool { kind: PoolKind::Max, geometry, .. } => self.node("MaxPool", vec![x], window(geometry)),
            Step::Pool { geometry, input, .. } => {
                let mut attrs = window(geometry);
                attrs.push(("count_include_pad", Attr::Int(1)));
                let y = self.node("AveragePool", vec![x], attrs);
                self.requantize(y, *input)
            }
            Step::Act { acts, output, .. } => {
                let y = acts.iter().fold(x, |y, &act| self.activation(y, act));
                self.requantize(y, *output)
            }
        }
    }
}

/// The quantised model as the bytes of an ONNX file (QDQ form, operator set 17), with `meta`
/// in its metadata: input `input`, output `output`, as [`super::to_bytes`] writes the float
/// model.
///
/// An `Err` when `meta` does not fit the model.
pub fn quantized_to_bytes(model: &Quantized, meta: &Meta) -> Result<Vec<u8>> {
    let shape = model.input_shape();
    meta.check(if shape.flat { 1 } else { shape.d }, model.output_len())
        .map_err(|reason| Error::InvalidArgument { name: "meta", reason })?;
    let mut w = Writer::default();
    let mut x = w.requantize(INPUT.to_string(), model.input);
    for step in &model.steps {
        x = w.step(x, step);
    }
    let output = match model.steps.last() {
        Some(Step::Dense { layer: l, .. }) if l.geometry.is_none() || model.softmax => {
            Shape::vector(model.output_len())
        }
        Some(Step::Dense { layer, .. }) => {
            let g = layer.geometry.as_ref().expect("a convolution has a window");
            let (h, wd) = g.output();
            Shape::volume(wd, h, layer.filters)
        }
        _ => Shape::vector(model.output_len()),
    };
    if model.softmax {
        let flat = w.node("Flatten", vec![x], vec![("axis", Attr::Int(1))]);
        x = w.node("Softmax", vec![flat], vec![("axis", Attr::Int(1))]);
    }
    w.nodes.push(proto::node(&format!("{OUTPUT}/identity"), "Identity", &[x], OUTPUT, &[]));
    let mut props = vec![(MODEL_KEY.to_string(), model.dsl().to_string()), ("cnn.quantized".into(), "int8".into())];
    props.extend(meta.entries());
    encode(&w.nodes, &w.initializers, shape, &[(OUTPUT.to_string(), output)], &props)
}

/// Writes the quantised model to the ONNX file `path`; see [`quantized_to_bytes`]. The write
/// is atomic.
pub fn save_quantized(model: &Quantized, meta: &Meta, path: &Path) -> Result<()> {
    let bytes = quantized_to_bytes(model, meta).map_err(|e| match e {
        Error::InvalidArgument { reason, .. } => file_error(path, format!("cannot save: {reason}")),
        other => other,
    })?;
    write_atomic(path, &bytes)
}
