//! A model's operation tree ([`crate::graph`]) lowered to ONNX nodes, in evaluation mode:
//! dropout and sparsity are the identity, batch normalisation uses the running statistics.

use std::collections::HashSet;

use super::proto::{self, Attr, Message};
use crate::graph::{Activation, Hw, Node, Op, PoolKind, BATCH_NORM_EPS};
use crate::optim::first_non_finite;
use crate::{Error, Result, Shape, TensorInfo};

/// The name of the graph's input.
pub(crate) const INPUT: &str = "input";
/// The name of the output of a model without heads.
pub(crate) const OUTPUT: &str = "output";

/// One ONNX node before encoding: one output, named as the node.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct OnnxNode {
    pub(crate) name: String,
    pub(crate) op: &'static str,
    pub(crate) inputs: Vec<String>,
    pub(crate) output: String,
    pub(crate) attrs: Vec<(&'static str, Attr)>,
}

/// Where the nodes find the model's tensors by their PyTorch names.
pub(crate) struct Weights<'a> {
    pub(crate) tensors: &'static [TensorInfo],
    pub(crate) params: &'a [f32],
    pub(crate) buffers: &'a [f32],
}

/// A model being lowered: its nodes in topological order and its initializers.
pub(crate) struct Lowering<'a> {
    weights: Weights<'a>,
    pub(crate) nodes: Vec<OnnxNode>,
    pub(crate) initializers: Vec<Message>,
    names: HashSet<String>,
}

/// A refusal to export, for something the model's tree or tensors hold.
fn refuse(reason: String) -> Error {
    Error::InvalidArgument { name: "model", reason }
}

/// `[h, w]` as an `INTS` attribute.
fn hw(pair: Hw) -> Attr {
    Attr::Ints(vec![pair.h as i64, pair.w as i64])
}

/// The window attributes of a convolution or pooling node: size, stride and padding on each
/// side.
pub(super) fn window(size: Hw, stride: Hw, pad: Hw) -> Vec<(&'static str, Attr)> {
    let pads = Attr::Ints(vec![pad.h as i64, pad.w as i64, pad.h as i64, pad.w as i64]);
    vec![("kernel_shape", hw(size)), ("strides", hw(stride)), ("pads", pads)]
}

/// The shape a chain of nodes gives when it reads `input`.
fn chain_output(chain: &[Node], input: Shape) -> Shape {
    chain.last().map_or(input, |n| n.output)
}

impl<'a> Lowering<'a> {
    /// An empty graph reading [`INPUT`].
    pub(crate) fn new(weights: Weights<'a>) -> Self {
        let names = HashSet::from([INPUT.to_string()]);
        Lowering { weights, nodes: Vec::new(), initializers: Vec::new(), names }
    }

    /// Lowers the model's top-level chain `graph`; returns the graph's outputs, each with its
    /// shape per sample: [`OUTPUT`], or one per head, named as the head.
    pub(crate) fn lower(&mut self, graph: &[Node]) -> Result<Vec<(String, Shape)>> {
        let Some(last) = graph.last() else { return Err(refuse("the model has no layers".into())) };
        let Op::Heads { names, heads } = last.op else {
            let value = self.chain(INPUT.into(), graph)?;
            self.bind(&[value], &[OUTPUT])?;
            return Ok(vec![(OUTPUT.into(), last.output)]);
        };
        if names.len() != heads.len() {
            return Err(refuse(format!("{} head names for {} heads", names.len(), heads.len())));
        }
        let trunk = self.chain(INPUT.into(), &graph[..graph.len() - 1])?;
        let values = heads.iter().map(|head| self.chain(trunk.clone(), head)).collect::<Result<Vec<_>>>()?;
        self.bind(&values, names)?;
        Ok(names.iter().zip(heads.iter()).map(|(n, head)| (n.to_string(), chain_output(head, last.input))).collect())
    }

    /// Lowers the layers of `chain`, the first reading value `x`; returns the last one's value.
    fn chain(&mut self, x: String, chain: &[Node]) -> Result<String> {
        chain.iter().try_fold(x, |x, node| self.layer(x, node))
    }

    /// Lowers one layer reading value `x`; returns its output value.
    fn layer(&mut self, x: String, node: &Node) -> Result<String> {
        let path = node.path;
        match node.op {
            Op::Input | Op::Dropout { .. } | Op::Sparsity { .. } => Ok(x),
            Op::Conv { filter, stride, pad, bias, groups, .. } => {
                let mut attrs = window(filter, stride, pad);
                attrs.push(("group", Attr::Int(groups as i64)));
                let inputs = self.weighted(x, path, bias)?;
                Ok(self.emit(path, "Conv", inputs, attrs))
            }
            Op::Pool { kind, window: size, stride, pad } => {
                Ok(self.pool(x, path, kind, window(size, stride, pad), size))
            }
            Op::Fc { bias, .. } => {
                let x = self.flatten(x, node.input, path);
                let inputs = self.weighted(x, path, bias)?;
                Ok(self.emit(path, "Gemm", inputs, vec![("transB", Attr::Int(1))]))
            }
            Op::Activation(act) => Ok(self.activation(x, path, act)),
            Op::Softmax => {
                let x = self.flatten(x, node.input, path);
                Ok(self.emit(path, "Softmax", vec![x], vec![("axis", Attr::Int(1))]))
            }
            Op::BatchNorm => self.batch_norm(x, node),
            Op::Lrn { size, alpha, beta, k } => self.lrn(x, node, size, [alpha, beta, k]),
            Op::Residual { body, shortcut } => {
                let body = self.branch(x.clone(), body, node)?;
                let shortcut = self.branch(x, shortcut, node)?;
                Ok(self.emit(path, "Add", vec![body, shortcut], Vec::new()))
            }
            Op::Concat { branches } => {
                let values = branches.iter().map(|b| self.branch(x.clone(), b, node)).collect::<Result<Vec<_>>>()?;
                Ok(self.emit(path, "Concat", values, vec![("axis", Attr::Int(1))]))
            }
            Op::Heads { .. } => Err(refuse(format!("`heads` at `{path}` is not the model's last layer"))),
        }
    }

    /// The inputs of a convolution or fully connected layer: `x`, `PATH.weight` and, with
    /// `bias`, `PATH.bias`.
    fn weighted(&mut self, x: String, path: &str, bias: bool) -> Result<Vec<String>> {
        let mut inputs = vec![x, self.tensor(path, "weight")?];
        if bias {
            inputs.push(self.tensor(path, "bias")?);
        }
        Ok(inputs)
    }

    /// Lowers a branch of block `block`, reading value `x`; a volume is flattened where the
    /// block gives a vector.
    fn branch(&mut self, x: String, chain: &[Node], block: &Node) -> Result<String> {
        let value = self.chain(x, chain)?;
        let shape = chain_output(chain, block.input);
        match (shape.flat, block.output.flat) {
            (false, true) => Ok(self.flatten(value, shape, block.path)),
            (true, false) => Err(refuse(format!("a branch of `{}` gives a vector, the block a volume", block.path))),
            _ => Ok(value),
        }
    }

    /// Pooling with the `attrs` of a `size` window; L2 pooling as `sqrt(area · mean(x²))`.
    fn pool(
        &mut self,
        x: String,
        path: &str,
        kind: PoolKind,
        mut attrs: Vec<(&'static str, Attr)>,
        size: Hw,
    ) -> String {
        if kind == PoolKind::Max {
            return self.emit(path, "MaxPool", vec![x], attrs);
        }
        // Padded zeros count in the divisor, as the kernels and PyTorch's default have it.
        attrs.push(("count_include_pad", Attr::Int(1)));
        if kind == PoolKind::Avg {
            return self.emit(path, "AveragePool", vec![x], attrs);
        }
        let square = self.emit(path, "Mul", vec![x.clone(), x], Vec::new());
        let mean = self.emit(path, "AveragePool", vec![square], attrs);
        let area = self.scalar(path, "area", (size.h * size.w) as f32);
        let sum = self.emit(path, "Mul", vec![mean, area], Vec::new());
        self.emit(path, "Sqrt", vec![sum], Vec::new())
    }

    /// An element-wise activation; relu6 as `Clip` between 0 and 6.
    fn activation(&mut self, x: String, path: &str, act: Activation) -> String {
        match act {
            Activation::Relu => self.emit(path, "Relu", vec![x], Vec::new()),
            Activation::Relu6 => {
                let (lo, hi) = (self.scalar(path, "min", 0.0), self.scalar(path, "max", 6.0));
                self.emit(path, "Clip", vec![x, lo, hi], Vec::new())
            }
            Activation::LeakyRelu(a) => self.emit(path, "LeakyRelu", vec![x], vec![("alpha", Attr::Float(a))]),
            Activation::Sigmoid => self.emit(path, "Sigmoid", vec![x], Vec::new()),
            Activation::Tanh => self.emit(path, "Tanh", vec![x], Vec::new()),
        }
    }

    /// Batch normalisation with the running statistics, over the channels of `[N, C, H, W]` or
    /// the features of `[N, C]`.
    fn batch_norm(&mut self, x: String, node: &Node) -> Result<String> {
        let path = node.path;
        let mut inputs = vec![x];
        for name in ["weight", "bias", "running_mean", "running_var"] {
            inputs.push(self.tensor(path, name)?);
        }
        Ok(self.emit(path, "BatchNormalization", inputs, vec![("epsilon", Attr::Float(BATCH_NORM_EPS))]))
    }

    /// Local response normalisation across channels, a vector's features read as channels.
    /// ONNX's `LRN` centres an even window one channel later than PyTorch's
    /// `LocalResponseNorm` (and the kernels) do: even windows are summed by a 1x1 convolution
    /// with a band of ones instead.
    fn lrn(&mut self, x: String, node: &Node, size: usize, [alpha, beta, k]: [f32; 3]) -> Result<String> {
        let path = node.path;
        let (channels, _) = node.input.channels();
        let x = if node.input.flat {
            let axes = self.ints(path, "axes", &[2, 3]);
            self.emit(path, "Unsqueeze", vec![x, axes], Vec::new())
        } else {
            x
        };
        let y = if size % 2 == 1 {
            let attrs = vec![
                ("alpha", Attr::Float(alpha)),
                ("beta", Attr::Float(beta)),
                ("bias", Attr::Float(k)),
                ("size", Attr::Int(size as i64)),
            ];
            self.emit(path, "LRN", vec![x], attrs)
        } else {
            self.band_lrn(x, path, channels, size, [alpha, beta, k])
        };
        if node.input.flat {
            Ok(self.emit(path, "Flatten", vec![y], vec![("axis", Attr::Int(1))]))
        } else {
            Ok(y)
        }
    }

    /// `x / (k + alpha/size · Σ x²)^beta`, the sum over channels `[c − size/2, c + (size − 1)/2]`
    /// of `[N, C, H, W]` by a convolution whose `[C, C, 1, 1]` weight holds that window's ones.
    fn band_lrn(&mut self, x: String, path: &str, channels: usize, size: usize, [alpha, beta, k]: [f32; 3]) -> String {
        let window = |c: usize, i: usize| c.saturating_sub(size / 2) <= i && i <= c + (size - 1) / 2;
        let band: Vec<f32> =
            (0..channels).flat_map(|c| (0..channels).map(move |i| if window(c, i) { 1.0 } else { 0.0 })).collect();
        let band = self.constant(path, "window", &[channels, channels, 1, 1], &band);
        let square = self.emit(path, "Mul", vec![x.clone(), x.clone()], Vec::new());
        let sum = self.emit(path, "Conv", vec![square, band], vec![("kernel_shape", Attr::Ints(vec![1, 1]))]);
        let scale = self.scalar(path, "scale", alpha / size as f32);
        let scaled = self.emit(path, "Mul", vec![sum, scale], Vec::new());
        let k = self.scalar(path, "k", k);
        let base = self.emit(path, "Add", vec![scaled, k], Vec::new());
        let beta = self.scalar(path, "beta", beta);
        let denominator = self.emit(path, "Pow", vec![base, beta], Vec::new());
        self.emit(path, "Div", vec![x, denominator], Vec::new())
    }

    /// `x` as `[N, len]`: flattened when `shape` is a volume.
    fn flatten(&mut self, x: String, shape: Shape, path: &str) -> String {
        if shape.flat {
            x
        } else {
            self.emit(path, "Flatten", vec![x], vec![("axis", Attr::Int(1))])
        }
    }

    /// Adds node `op` of layer `path`; returns its output, named as the node.
    fn emit(&mut self, path: &str, op: &'static str, inputs: Vec<String>, attrs: Vec<(&'static str, Attr)>) -> String {
        let name = self.fresh(format!("{path}/{op}"));
        self.nodes.push(OnnxNode { name: name.clone(), op, inputs, output: name.clone(), attrs });
        name
    }

    /// `base`, or `base_1`, `base_2`, ... if it is taken.
    fn fresh(&mut self, base: String) -> String {
        let mut name = base.clone();
        for i in 1.. {
            if self.names.insert(name.clone()) {
                break;
            }
            name = format!("{base}_{i}");
        }
        name
    }

    /// The initializer of the model's tensor `PATH.suffix`, added once.
    fn tensor(&mut self, path: &str, suffix: &str) -> Result<String> {
        let name = format!("{path}.{suffix}");
        let Some(info) = self.weights.tensors.iter().find(|t| t.name == name) else {
            return Err(refuse(format!("the model has no tensor `{name}`")));
        };
        let source = if info.kind.is_param() { self.weights.params } else { self.weights.buffers };
        let Some(values) = source.get(info.offset..info.offset + info.len()) else {
            return Err(refuse(format!("tensor `{name}` lies past the end of the model's values")));
        };
        if let Some(i) = first_non_finite(values) {
            return Err(refuse(format!("tensor `{name}` holds {} at index {i}: only finite values export", values[i])));
        }
        if self.names.insert(name.clone()) {
            self.initializers.push(proto::float_tensor(&name, info.shape, values));
        }
        Ok(name)
    }

    /// A float initializer of layer `path`, named for its `purpose`.
    fn constant(&mut self, path: &str, purpose: &str, dims: &[usize], values: &[f32]) -> String {
        let name = self.fresh(format!("{path}/{purpose}"));
        self.initializers.push(proto::float_tensor(&name, dims, values));
        name
    }

    /// A scalar float initializer.
    fn scalar(&mut self, path: &str, purpose: &str, value: f32) -> String {
        self.constant(path, purpose, &[], &[value])
    }

    /// A 1-D integer initializer.
    fn ints(&mut self, path: &str, purpose: &str, values: &[i64]) -> String {
        let name = self.fresh(format!("{path}/{purpose}"));
        self.initializers.push(proto::int_tensor(&name, &[values.len()], values));
        name
    }

    /// Makes `values` the graph outputs `names`: the node computing a value is renamed when
    /// nothing else reads it, else an `Identity` copies it.
    fn bind(&mut self, values: &[String], names: &[&str]) -> Result<()> {
        for name in names {
            if !self.names.insert(name.to_string()) {
                return Err(refuse(format!("output `{name}` would have the name of another value of the graph")));
            }
        }
        for (value, &name) in values.iter().zip(names) {
            let shared = values.iter().filter(|v| *v == value).count() > 1;
            let read = shared || self.nodes.iter().any(|n| n.inputs.contains(value));
            match self.nodes.iter_mut().find(|n| &n.output == value) {
                Some(node) if !read => node.output = name.to_string(),
                _ => {
                    let node = self.fresh(format!("{name}/Identity"));
                    let inputs = vec![value.clone()];
                    self.nodes.push(OnnxNode {
                        name: node,
                        op: "Identity",
                        inputs,
                        output: name.into(),
                        attrs: Vec::new(),
                    });
                }
            }
        }
        Ok(())
    }
}
