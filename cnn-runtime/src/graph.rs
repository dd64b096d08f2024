//! A model as a tree of operations, every argument and shape resolved: what `cnn!` checked,
//! given to code that walks a model rather than runs it (the ONNX export, tools over layers).
//!
//! [`Network::GRAPH`](crate::Network::GRAPH) is the model's top-level chain: its `input`, then
//! each layer in order. A block ([`Op::Residual`], [`Op::Concat`], [`Op::Heads`]) holds the chains
//! of its branches, each reading the block's input. Every node carries the PyTorch module path of
//! its layer, so that its tensors are found in [`Network::TENSORS`](crate::Network::TENSORS) as
//! `PATH.weight`, `PATH.bias`, `PATH.running_mean`, ...
//!
//! ```
//! use cnn::{cnn, graph::Op, Network};
//!
//! cnn! { struct Tiny < input(8x8x1) conv(3x3, 4, pad=1) relu pool(2) fc(10) softmax > }
//!
//! let convs = Tiny::GRAPH.iter().filter(|n| matches!(n.op, Op::Conv { .. })).count();
//! assert_eq!(convs, 1);
//! assert_eq!(Tiny::GRAPH[1].path, "0");
//! assert_eq!(Tiny::GRAPH[3].output, cnn::Shape::volume(4, 4, 4));
//! ```

use crate::Shape;

/// One layer of a model, with the shapes it reads and writes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Node {
    /// What the layer computes.
    pub op: Op,
    /// The PyTorch module path of the layer, such as `3` or `4.body.0` (empty for `input`).
    pub path: &'static str,
    /// The shape it reads (the input's own shape for `input`).
    pub input: Shape,
    /// The shape it writes.
    pub output: Shape,
}

/// A height and a width, in PyTorch's order, as a filter size, stride or padding has them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hw {
    /// Along the height (rows).
    pub h: usize,
    /// Along the width (columns).
    pub w: usize,
}

/// The reduction of a pooling layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolKind {
    /// The largest value of the window (padding is −∞).
    Max,
    /// The mean of the window (padding is zeros, counted).
    Avg,
    /// The square root of the sum of squares of the window.
    L2,
}

/// An element-wise activation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, 0), 6)`.
    Relu6,
    /// `x` for positive `x`, else `a·x`.
    LeakyRelu(f32),
    /// `1 / (1 + e^−x)`.
    Sigmoid,
    /// `tanh x`.
    Tanh,
}

/// What a layer computes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Op {
    /// The model's input.
    Input,
    /// A convolution: weight `[filters, input depth / groups, filter.h, filter.w]`.
    Conv {
        /// The filter's size.
        filter: Hw,
        /// Number of filters (output depth).
        filters: usize,
        /// The stride.
        stride: Hw,
        /// Zeros added on each side.
        pad: Hw,
        /// Whether it adds a bias.
        bias: bool,
        /// Channel groups (1 for an ordinary convolution).
        groups: usize,
    },
    /// A pooling layer.
    Pool {
        /// Its reduction.
        kind: PoolKind,
        /// The window's size.
        window: Hw,
        /// The stride.
        stride: Hw,
        /// Padding on each side.
        pad: Hw,
    },
    /// A fully connected layer, weight `[out, input length]`; a volume it reads is flattened in
    /// PyTorch's order (channel, row, column).
    Fc {
        /// Number of outputs.
        out: usize,
        /// Whether it adds a bias.
        bias: bool,
    },
    /// An element-wise activation.
    Activation(Activation),
    /// Softmax over the outputs of a sample.
    Softmax,
    /// Dropout with rate `p` (the identity in evaluation).
    Dropout {
        /// The rate.
        p: f32,
    },
    /// The identity, penalising `lambda · mean |x|` in training.
    Sparsity {
        /// The penalty's weight.
        lambda: f32,
    },
    /// Batch normalisation per channel, with PyTorch's `eps` of 1e-5.
    BatchNorm,
    /// Local response normalisation across channels, as PyTorch's `LocalResponseNorm`.
    Lrn {
        /// Channels in the window.
        size: usize,
        /// Scale of the sum of squares.
        alpha: f32,
        /// Exponent.
        beta: f32,
        /// Additive constant.
        k: f32,
    },
    /// The sum of `body` and `shortcut` (the identity when empty), both reading the block's
    /// input.
    Residual {
        /// The body's layers.
        body: &'static [Node],
        /// The shortcut's layers.
        shortcut: &'static [Node],
    },
    /// The branches' outputs stacked along the depth (joined, for vectors).
    Concat {
        /// Each branch's layers.
        branches: &'static [&'static [Node]],
    },
    /// The heads of a multi-task model, each reading the trunk's output.
    Heads {
        /// The heads' names, in order.
        names: &'static [&'static str],
        /// Each head's layers.
        heads: &'static [&'static [Node]],
    },
}

/// The batch normalisation `eps` every model uses, as PyTorch's default.
pub const BATCH_NORM_EPS: f32 = 1e-5;
