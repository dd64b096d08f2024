//! The model as the macro understands it: one typed representation that [`crate::parse`]
//! builds, [`crate::check`] reads and [`crate::codegen`] generates from. It holds no syntax tree,
//! only values, the tokens each layer was written with (for errors) and the item's header.
//!
//! The layers form a tree: a chain, where a block layer (`residual`, `concat`) holds branches of
//! layers that read the block's input and are merged into its output; a multi-task model ends in
//! `heads`, whose branches are its named heads. Each layer has an `id`, its
//! position in a depth-first walk, by which later stages keep what they learn about it in side
//! tables (see [`crate::check::Checked`]).

use std::fmt;

use proc_macro2::{Ident, Span, TokenStream};

/// A whole model, with the header of the item that declares it.
pub struct Model {
    /// Outer attributes, doc comments included (item form only).
    pub attrs: Vec<TokenStream>,
    /// Visibility of the struct (item form only).
    pub vis: TokenStream,
    /// The struct's name, or `None` for the expression form.
    pub name: Option<Ident>,
    /// The `<` that opens the layer list, for errors about the list as a whole.
    pub open: Span,
    /// The layers in order, the first of which is normally `input`.
    pub layers: Vec<Layer>,
    /// Number of layers, blocks' layers included: one past the largest `id`.
    pub count: usize,
    /// The saved model file the layers were read from, if any.
    pub source: Option<crate::parse::Source>,
}

/// One layer with its meaning and the tokens it was written with.
pub struct Layer {
    /// Its position in a depth-first walk of the model (a block before its branches).
    pub id: usize,
    /// What the layer is.
    pub kind: Kind,
    /// The tokens it was written with (`name(args)`), for errors that cover the whole layer.
    pub tokens: TokenStream,
    /// The branches of a block layer: for `residual`, the body and the shortcut (empty for the
    /// identity); for `concat`, its branches in order; for `heads`, its heads in order. Empty for
    /// other layers.
    pub branches: Vec<Vec<Layer>>,
}

/// A width and a height, as a filter size, stride or padding has them. The DSL writes `WxH`
/// (or `N` for both), PyTorch and the kernels `(H, W)`; the names leave no order to mix up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pair {
    /// Along the width (columns).
    pub w: usize,
    /// Along the height (rows).
    pub h: usize,
}

impl Pair {
    /// The same value along both axes.
    pub const fn square(v: usize) -> Self {
        Pair { w: v, h: v }
    }
}

impl fmt::Display for Pair {
    /// `N` when both are equal, else `WxH`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.w == self.h {
            write!(f, "{}", self.w)
        } else {
            write!(f, "{}x{}", self.w, self.h)
        }
    }
}

/// A number written with a fraction, such as a dropout rate; compared by its bits.
#[derive(Clone, Copy, Debug)]
pub struct Float(pub f32);

impl PartialEq for Float {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl Eq for Float {}

impl fmt::Display for Float {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The reduction of a pooling layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolOp {
    /// The largest value of the window.
    Max,
    /// The mean of the window.
    Avg,
    /// The square root of the sum of squares of the window.
    L2,
}

/// An element-wise activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActKind {
    /// `relu`.
    Relu,
    /// `relu6`: `min(max(x, 0), 6)`, as MobileNet uses.
    Relu6,
    /// `leaky_relu(a)`.
    LeakyRelu(Float),
    /// `sigmoid`.
    Sigmoid,
    /// `tanh`.
    Tanh,
}

/// A training loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LossKind {
    /// Softmax cross-entropy.
    CrossEntropy,
    /// Binary cross-entropy on sigmoid outputs.
    Bce,
    /// Mean squared error.
    Mse,
}

impl LossKind {
    /// The DSL's name.
    pub fn name(self) -> &'static str {
        match self {
            LossKind::CrossEntropy => "cross_entropy",
            LossKind::Bce => "bce",
            LossKind::Mse => "mse",
        }
    }
}

/// PyTorch's `LocalResponseNorm` defaults: alpha, beta, k.
pub const LRN_DEFAULTS: [f32; 3] = [1e-4, 0.75, 1.0];

/// What a layer is, with every argument resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `input(WxHxD)`: a volume.
    InputVolume { w: usize, h: usize, d: usize },
    /// `input(N)`: a flat vector.
    InputFlat { n: usize },
    /// `conv(FxG, K, stride=S, pad=P, bias=B, groups=G)`: with `groups`, the input depth and the
    /// filters split in `G` groups, each group's filters reading its group's channels only.
    Conv { filter: Pair, filters: usize, stride: Pair, pad: Pair, bias: bool, groups: usize },
    /// `pool(k)` / `maxpool(k)`, `avgpool(k)`, `l2pool(k)`, with optional `stride=` and (but for
    /// `l2pool`) `pad=`: max pooling pads with −∞, average pooling with zeros it counts.
    Pool { op: PoolOp, window: Pair, stride: Pair, pad: Pair },
    /// `fc(N, bias=B)`.
    Fc { out: usize, bias: bool },
    /// `relu`, `leaky_relu(a)`, `sigmoid`, `tanh`.
    Act(ActKind),
    /// `softmax`.
    Softmax,
    /// `dropout(p)`.
    Dropout { p: Float },
    /// `sparsity(λ)`: the identity, adding `λ · mean |a|` of its input to the training loss.
    Sparsity { lambda: Float },
    /// `batchnorm`.
    BatchNorm,
    /// `lrn(size, alpha=, beta=, k=)`.
    Lrn { size: usize, alpha: Float, beta: Float, k: Float },
    /// `residual(body, shortcut=...)`: the sum of its two branches ([`Layer::branches`]).
    Residual,
    /// `concat(branch, branch, ...)`: its branches' outputs stacked along the depth.
    Concat,
    /// `heads(name: layers, ...)`, the end of a multi-task model: each head ([`Layer::branches`],
    /// named as `names` says, in order) reads the trunk's output and ends as a model ends.
    Heads { names: Vec<Ident> },
    /// `loss(name, weight=W)`: the loss, weighted by `W` (1 unless given) among the heads' losses.
    Loss(LossKind, Float),
    /// A layer whose mistake the parse stage reported; its output is unknown, so the check
    /// reports only what is independent of it.
    Invalid,
}

impl Kind {
    /// Whether this is an `input(...)` layer.
    pub fn is_input(&self) -> bool {
        matches!(self, Kind::InputVolume { .. } | Kind::InputFlat { .. })
    }

    /// Whether this is an element-wise activation.
    pub fn is_act(&self) -> bool {
        matches!(self, Kind::Act(_))
    }

    /// The DSL's name of a pooling layer.
    fn pool_name(op: PoolOp) -> &'static str {
        match op {
            PoolOp::Max => "pool",
            PoolOp::Avg => "avgpool",
            PoolOp::L2 => "l2pool",
        }
    }
}

impl fmt::Display for Kind {
    /// The layer in the DSL's canonical spelling, such as `conv(5x5, 6, pad=2)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Kind::InputVolume { w, h, d } => write!(f, "input({w}x{h}x{d})"),
            Kind::InputFlat { n } => write!(f, "input({n})"),
            Kind::Conv { filter, filters, stride, pad, bias, groups } => {
                write!(f, "conv({}x{}, {filters}", filter.w, filter.h)?;
                if *stride != Pair::square(1) {
                    write!(f, ", stride={stride}")?;
                }
                if *pad != Pair::square(0) {
                    write!(f, ", pad={pad}")?;
                }
                if !bias {
                    write!(f, ", bias=false")?;
                }
                if *groups != 1 {
                    write!(f, ", groups={groups}")?;
                }
                write!(f, ")")
            }
            Kind::Pool { op, window, stride, pad } => {
                write!(f, "{}({window}", Kind::pool_name(*op))?;
                if stride != window {
                    write!(f, ", stride={stride}")?;
                }
                if *pad != Pair::square(0) {
                    write!(f, ", pad={pad}")?;
                }
                write!(f, ")")
            }
            Kind::Fc { out, bias: true } => write!(f, "fc({out})"),
            Kind::Fc { out, bias: false } => write!(f, "fc({out}, bias=false)"),
            Kind::Act(ActKind::Relu) => write!(f, "relu"),
            Kind::Act(ActKind::Relu6) => write!(f, "relu6"),
            Kind::Act(ActKind::LeakyRelu(a)) => write!(f, "leaky_relu({a})"),
            Kind::Act(ActKind::Sigmoid) => write!(f, "sigmoid"),
            Kind::Act(ActKind::Tanh) => write!(f, "tanh"),
            Kind::Softmax => write!(f, "softmax"),
            Kind::Dropout { p } => write!(f, "dropout({p})"),
            Kind::Sparsity { lambda } => write!(f, "sparsity({lambda})"),
            Kind::BatchNorm => write!(f, "batchnorm"),
            Kind::Lrn { size, alpha, beta, k } => {
                write!(f, "lrn({size}")?;
                let named = [("alpha", alpha), ("beta", beta), ("k", k)];
                for ((name, value), default) in named.into_iter().zip(LRN_DEFAULTS) {
                    if value.0 != default {
                        write!(f, ", {name}={value}")?;
                    }
                }
                write!(f, ")")
            }
            Kind::Residual => write!(f, "residual"),
            Kind::Concat => write!(f, "concat"),
            Kind::Heads { .. } => write!(f, "heads"),
            Kind::Loss(loss, weight) if weight.0 == 1.0 => write!(f, "loss({})", loss.name()),
            Kind::Loss(loss, weight) => write!(f, "loss({}, weight={weight})", loss.name()),
            Kind::Invalid => write!(f, "?"),
        }
    }
}

impl Layer {
    /// A layer written as `tokens`; its `id` is given by [`Model::new`].
    pub fn new(kind: Kind, tokens: TokenStream, branches: Vec<Vec<Layer>>) -> Self {
        Layer { id: 0, kind, tokens, branches }
    }

    /// A layer as the DSL would spell it, for models built by hand (tests).
    #[cfg(test)]
    pub fn of(kind: Kind) -> Self {
        let text = kind.to_string();
        let tokens = text.parse().unwrap_or_else(|_| quote::quote!(layer));
        Layer::new(kind, tokens, Vec::new())
    }

    /// A `residual` block built by hand (tests).
    #[cfg(test)]
    pub fn residual(body: Vec<Layer>, shortcut: Vec<Layer>) -> Self {
        Layer::new(Kind::Residual, quote::quote!(residual), vec![body, shortcut])
    }

    /// The body of a `residual` block (empty for other layers).
    pub fn body(&self) -> &[Layer] {
        self.branches.first().map_or(&[], Vec::as_slice)
    }

    /// The shortcut of a `residual` block: empty for the identity (and for other layers).
    pub fn shortcut(&self) -> &[Layer] {
        self.branches.get(1).map_or(&[], Vec::as_slice)
    }

    /// The layer in the DSL's canonical spelling, a block with its layers.
    pub fn text(&self) -> String {
        match self.kind {
            Kind::Residual => {
                let mut text = format!("residual({}", list_text(self.body()));
                if !self.shortcut().is_empty() {
                    text.push_str(&format!(", shortcut={}", list_text(self.shortcut())));
                }
                text.push(')');
                text
            }
            Kind::Concat => {
                let branches: Vec<String> = self.branches.iter().map(|b| list_text(b)).collect();
                format!("concat({})", branches.join(", "))
            }
            Kind::Heads { ref names } => {
                let heads: Vec<String> =
                    names.iter().zip(&self.branches).map(|(name, b)| format!("{name}: {}", list_text(b))).collect();
                format!("heads({})", heads.join(", "))
            }
            _ => self.kind.to_string(),
        }
    }

    /// Whether the layer is a block, whose branches read its input.
    pub fn is_block(&self) -> bool {
        matches!(self.kind, Kind::Residual | Kind::Concat)
    }
}

/// Layers in the DSL's canonical spelling, separated by spaces.
pub fn list_text(layers: &[Layer]) -> String {
    layers.iter().map(Layer::text).collect::<Vec<_>>().join(" ")
}

impl Model {
    /// A model of `layers`, numbering every layer depth-first.
    pub fn new(attrs: Vec<TokenStream>, vis: TokenStream, name: Option<Ident>, open: Span, layers: Vec<Layer>) -> Self {
        let mut model = Model { attrs, vis, name, open, layers, count: 0, source: None };
        model.count = number(&mut model.layers, 0);
        model
    }

    /// A model of `layers` built by hand (tests): expression form, no attributes.
    #[cfg(test)]
    pub fn of(layers: Vec<Layer>) -> Self {
        Model::new(Vec::new(), TokenStream::new(), None, Span::call_site(), layers)
    }
}

/// Numbers `layers` depth-first from `next`; returns the next free number.
fn number(layers: &mut [Layer], mut next: usize) -> usize {
    for layer in layers {
        layer.id = next;
        next += 1;
        for branch in &mut layer.branches {
            next = number(branch, next);
        }
    }
    next
}

impl quote::ToTokens for Layer {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        tokens.extend(self.tokens.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_are_numbered_depth_first() {
        let model = Model::of(vec![
            Layer::of(Kind::InputFlat { n: 4 }),
            Layer::residual(vec![Layer::of(Kind::Fc { out: 4, bias: true })], vec![Layer::of(Kind::BatchNorm)]),
            Layer::of(Kind::Softmax),
        ]);
        let ids: Vec<usize> = model.layers.iter().map(|l| l.id).collect();
        assert_eq!(ids, [0, 1, 4]);
        assert_eq!((model.layers[1].body()[0].id, model.layers[1].shortcut()[0].id), (2, 3));
        assert_eq!(model.count, 5);
        assert_eq!(list_text(&model.layers), "input(4) residual(fc(4), shortcut=batchnorm) softmax");
    }

    #[test]
    fn pairs_print_width_first() {
        let conv = Kind::Conv {
            filter: Pair { w: 5, h: 3 },
            filters: 8,
            stride: Pair { w: 2, h: 1 },
            pad: Pair::square(1),
            bias: false,
            groups: 1,
        };
        assert_eq!(conv.to_string(), "conv(5x3, 8, stride=2x1, pad=1, bias=false)");
        let pool =
            Kind::Pool { op: PoolOp::L2, window: Pair::square(3), stride: Pair::square(2), pad: Pair::square(0) };
        assert_eq!(pool.to_string(), "l2pool(3, stride=2)");
    }
}
