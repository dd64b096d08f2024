//! The model as the macro understands it: the layer list lowered from syntax, every argument
//! read and range-checked. Shapes are the next stage's business ([`crate::shape`]).

use std::fmt;

use proc_macro2::{Spacing, TokenStream, TokenTree};
use quote::ToTokens;

use crate::errors::Errors;
use crate::parse::{LayerSyntax, ModelSyntax, RESIDUAL};
use crate::shape::Shape;

/// Largest size accepted for any single number (a width, a filter count, ...).
pub const MAX_NUMBER: u64 = 1 << 24;

/// The names of every layer, for errors and suggestions.
pub(crate) const LAYER_NAMES: [&str; 17] = [
    "input",
    "conv",
    "pool",
    "maxpool",
    "avgpool",
    "l2pool",
    "fc",
    "relu",
    "leaky_relu",
    "sigmoid",
    "tanh",
    "softmax",
    "dropout",
    "batchnorm",
    "lrn",
    "residual",
    "loss",
];

/// Names other libraries use, mapped to ours.
const ALIASES: [(&str, &str); 27] = [
    ("conv2d", "conv"),
    ("convolution", "conv"),
    ("dense", "fc"),
    ("linear", "fc"),
    ("fully_connected", "fc"),
    ("maxpool2d", "maxpool"),
    ("max_pool", "maxpool"),
    ("max_pool2d", "maxpool"),
    ("avgpool2d", "avgpool"),
    ("avg_pool", "avgpool"),
    ("avg_pool2d", "avgpool"),
    ("average_pool", "avgpool"),
    ("lppool", "l2pool"),
    ("lppool2d", "l2pool"),
    ("leakyrelu", "leaky_relu"),
    ("batch_norm", "batchnorm"),
    ("batchnorm1d", "batchnorm"),
    ("batchnorm2d", "batchnorm"),
    ("bn", "batchnorm"),
    ("localresponsenorm", "lrn"),
    ("local_response_norm", "lrn"),
    ("resblock", "residual"),
    ("flatten", "fc"),
    ("log_softmax", "softmax"),
    ("mse", "loss(mse)"),
    ("cross_entropy", "loss(cross_entropy)"),
    ("bce", "loss(bce)"),
];

/// A checked model: the layers in order, the first of which is normally `input`.
pub struct Model<'a> {
    /// The layers, each with the syntax it came from.
    pub layers: Vec<Layer<'a>>,
    /// The `<` that opens the layer list, for errors about the list as a whole.
    pub open: proc_macro2::Span,
}

/// One layer with its meaning, its original tokens and (once [`crate::shape`] has run) its
/// input and output shapes.
pub struct Layer<'a> {
    /// What the layer is.
    pub kind: Kind,
    /// The tokens it was written with, for errors.
    pub syntax: &'a LayerSyntax,
    /// The layers of a `residual` block.
    pub block: Option<Block<'a>>,
    /// The shape it reads.
    pub input: Shape,
    /// The shape it gives.
    pub output: Shape,
}

/// The inside of a `residual` block.
pub struct Block<'a> {
    /// The layers whose output is added to the shortcut's.
    pub body: Vec<Layer<'a>>,
    /// The layers projecting the block's input (the identity when empty).
    pub shortcut: Vec<Layer<'a>>,
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

/// PyTorch's `LocalResponseNorm` defaults.
pub const LRN_DEFAULTS: [f32; 3] = [1e-4, 0.75, 1.0];

/// What a layer is, with every argument resolved. Pairs are `[width, height]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `input(WxHxD)`: a volume.
    InputVolume { w: u64, h: u64, d: u64 },
    /// `input(N)`: a flat vector.
    InputFlat { n: u64 },
    /// `conv(FxG, K, stride=S, pad=P, bias=B)`.
    Conv { filter: [u64; 2], filters: u64, stride: [u64; 2], pad: [u64; 2], bias: bool },
    /// `pool(k)` / `maxpool(k)`, `avgpool(k)`, `l2pool(k)`, with optional `stride=`.
    Pool { op: PoolOp, window: [u64; 2], stride: [u64; 2] },
    /// `fc(N, bias=B)`.
    Fc { out: u64, bias: bool },
    /// `relu`, `leaky_relu(a)`, `sigmoid`, `tanh`.
    Act(ActKind),
    /// `softmax`.
    Softmax,
    /// `dropout(p)`.
    Dropout { p: Float },
    /// `batchnorm`.
    BatchNorm,
    /// `lrn(size, alpha=, beta=, k=)`.
    Lrn { size: u64, alpha: Float, beta: Float, k: Float },
    /// `residual(...)`; its layers are in [`Layer::block`].
    Residual,
    /// `loss(name)`.
    Loss(LossKind),
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
}

/// Writes a pair as `AxB`, or `A` when both are equal.
fn pair(p: [u64; 2]) -> String {
    if p[0] == p[1] {
        p[0].to_string()
    } else {
        format!("{}x{}", p[0], p[1])
    }
}

impl fmt::Display for Kind {
    /// The layer in the DSL's canonical spelling, such as `conv(5x5, 6, pad=2)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Kind::InputVolume { w, h, d } => write!(f, "input({w}x{h}x{d})"),
            Kind::InputFlat { n } => write!(f, "input({n})"),
            Kind::Conv { filter, filters, stride, pad, bias } => {
                write!(f, "conv({}x{}, {filters}", filter[0], filter[1])?;
                if *stride != [1, 1] {
                    write!(f, ", stride={}", pair(*stride))?;
                }
                if *pad != [0, 0] {
                    write!(f, ", pad={}", pair(*pad))?;
                }
                if !bias {
                    write!(f, ", bias=false")?;
                }
                write!(f, ")")
            }
            Kind::Pool { op, window, stride } => {
                let name = match op {
                    PoolOp::Max => "pool",
                    PoolOp::Avg => "avgpool",
                    PoolOp::L2 => "l2pool",
                };
                write!(f, "{name}({}", pair(*window))?;
                if stride != window {
                    write!(f, ", stride={}", pair(*stride))?;
                }
                write!(f, ")")
            }
            Kind::Fc { out, bias: true } => write!(f, "fc({out})"),
            Kind::Fc { out, bias: false } => write!(f, "fc({out}, bias=false)"),
            Kind::Act(ActKind::Relu) => write!(f, "relu"),
            Kind::Act(ActKind::LeakyRelu(a)) => write!(f, "leaky_relu({a})"),
            Kind::Act(ActKind::Sigmoid) => write!(f, "sigmoid"),
            Kind::Act(ActKind::Tanh) => write!(f, "tanh"),
            Kind::Softmax => write!(f, "softmax"),
            Kind::Dropout { p } => write!(f, "dropout({p})"),
            Kind::BatchNorm => write!(f, "batchnorm"),
            Kind::Lrn { size, alpha, beta, k } => {
                write!(f, "lrn({size}")?;
                for (name, value, default) in
                    [("alpha", alpha, LRN_DEFAULTS[0]), ("beta", beta, LRN_DEFAULTS[1]), ("k", k, LRN_DEFAULTS[2])]
                {
                    if value.0 != default {
                        write!(f, ", {name}={value}")?;
                    }
                }
                write!(f, ")")
            }
            Kind::Residual => write!(f, "residual"),
            Kind::Loss(loss) => write!(f, "loss({})", loss.name()),
        }
    }
}

impl Layer<'_> {
    /// The layer in the DSL's canonical spelling, a block with its layers.
    pub fn text(&self) -> String {
        match &self.block {
            Some(block) => {
                let mut text = format!("residual({}", list_text(&block.body));
                if !block.shortcut.is_empty() {
                    text.push_str(&format!(", shortcut={}", list_text(&block.shortcut)));
                }
                text.push(')');
                text
            }
            None => self.kind.to_string(),
        }
    }
}

/// Layers in the DSL's canonical spelling, separated by spaces.
pub fn list_text(layers: &[Layer<'_>]) -> String {
    layers.iter().map(Layer::text).collect::<Vec<_>>().join(" ")
}

impl<'a> Model<'a> {
    /// Gives each layer of `syntax` its meaning, reporting every bad layer at once.
    pub fn lower(syntax: &'a ModelSyntax) -> syn::Result<Self> {
        let mut errors = Errors::default();
        let layers = lower_list(&syntax.layers, &mut errors);
        errors.finish(Model { layers, open: syntax.open.span })
    }
}

/// Lowers a list of layers, blocks included, recording each bad layer in `errors`.
fn lower_list<'a>(syntax: &'a [LayerSyntax], errors: &mut Errors) -> Vec<Layer<'a>> {
    let mut layers = Vec::with_capacity(syntax.len());
    for layer in syntax {
        let block = layer.block.as_ref().map(|b| Block {
            body: lower_list(&b.body, errors),
            shortcut: b.shortcut.as_ref().map(|(_, s)| lower_list(s, errors)).unwrap_or_default(),
        });
        match lower_layer(layer) {
            Ok(kind) => layers.push(Layer { kind, syntax: layer, block, input: Shape::NONE, output: Shape::NONE }),
            Err(error) => errors.push(error),
        }
    }
    layers
}

/// One argument: `value` or `name = value`.
struct Arg {
    name: Option<proc_macro2::Ident>,
    value: TokenStream,
    all: TokenStream,
}

/// Splits a layer's argument tokens at top-level commas.
fn split_args(layer: &LayerSyntax) -> Vec<Arg> {
    let Some(group) = &layer.args else {
        return Vec::new();
    };
    let mut args = Vec::new();
    let mut current: Vec<TokenTree> = Vec::new();
    let mut flush = |current: &mut Vec<TokenTree>| {
        if current.is_empty() {
            return;
        }
        let all: TokenStream = current.iter().cloned().collect();
        // `name=value`, where `=` may be joined to a sign (`pad=-1`) but is not `==` or `=>`.
        let named = match (current.first(), current.get(1), current.get(2)) {
            (Some(TokenTree::Ident(name)), Some(TokenTree::Punct(eq)), next)
                if eq.as_char() == '='
                    && (eq.spacing() == Spacing::Alone
                        || matches!(next, Some(TokenTree::Punct(p)) if !matches!(p.as_char(), '=' | '>'))) =>
            {
                Some(name.clone())
            }
            _ => None,
        };
        let value = if named.is_some() { current[2..].iter().cloned().collect() } else { all.clone() };
        args.push(Arg { name: named, value, all });
        current.clear();
    };
    for tree in group.stream() {
        match &tree {
            TokenTree::Punct(p) if p.as_char() == ',' => flush(&mut current),
            _ => current.push(tree),
        }
    }
    flush(&mut current);
    args
}

/// Tokens as written without the spaces `to_string` puts between them, such as `-1`.
pub fn compact(tokens: &TokenStream) -> String {
    tokens.clone().into_iter().map(|t| t.to_string()).collect()
}

/// Reads `5`, `5x5` or `28x28x1`: a single literal of decimal numbers joined by `x`.
fn numbers(value: &TokenStream, what: &str) -> syn::Result<Vec<u64>> {
    let trees: Vec<TokenTree> = value.clone().into_iter().collect();
    let lit = match trees.as_slice() {
        [TokenTree::Literal(lit)] => lit,
        [] => return Err(syn::Error::new_spanned(value, format!("expected {what}"))),
        [TokenTree::Punct(minus), TokenTree::Literal(_)] if minus.as_char() == '-' => {
            let text = compact(value);
            return Err(syn::Error::new_spanned(value, format!("{what} cannot be negative, found `{text}`")));
        }
        _ => {
            return Err(syn::Error::new_spanned(
                value,
                format!("expected {what}, written as one token such as `5` or `5x5`, found `{value}`"),
            ))
        }
    };
    let text = lit.to_string();
    let parts: Vec<&str> = text.split('x').collect();
    let mut out = Vec::with_capacity(parts.len());
    for part in &parts {
        if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
            return Err(syn::Error::new_spanned(
                lit,
                format!("expected {what}, found `{text}`: write whole numbers, joined by `x` for sizes (`5x5`)"),
            ));
        }
        match part.parse::<u64>() {
            Ok(v) if v <= MAX_NUMBER => out.push(v),
            _ => {
                return Err(syn::Error::new_spanned(
                    lit,
                    format!("`{part}` is too large: the most this accepts is {MAX_NUMBER}"),
                ))
            }
        }
    }
    Ok(out)
}

/// Reads a single number.
fn number(value: &TokenStream, what: &str) -> syn::Result<u64> {
    let v = numbers(value, what)?;
    if v.len() != 1 {
        return Err(syn::Error::new_spanned(value, format!("expected {what}, a single number, found `{value}`")));
    }
    Ok(v[0])
}

/// Reads a number that may have a fraction or an exponent, such as `0.5` or `1e-4`.
fn float(value: &TokenStream, what: &str) -> syn::Result<f32> {
    let trees: Vec<TokenTree> = value.clone().into_iter().collect();
    let (negative, lit) = match trees.as_slice() {
        [TokenTree::Literal(lit)] => (false, lit),
        [TokenTree::Punct(minus), TokenTree::Literal(lit)] if minus.as_char() == '-' => (true, lit),
        _ => {
            let text = compact(value);
            return Err(syn::Error::new_spanned(
                value,
                format!("expected {what}, a number such as `0.5`, found `{text}`"),
            ));
        }
    };
    let text = lit.to_string();
    let digits = text.strip_suffix("f32").or_else(|| text.strip_suffix("f64")).unwrap_or(&text).replace('_', "");
    match digits.parse::<f64>() {
        Ok(v)
            if v.is_finite()
                && v.abs() <= MAX_NUMBER as f64
                && digits.bytes().all(|b| b.is_ascii_digit() || b"eE.+-".contains(&b)) =>
        {
            Ok(if negative { -v } else { v } as f32)
        }
        _ => {
            let text = compact(value);
            Err(syn::Error::new_spanned(value, format!("expected {what}, a number such as `0.5`, found `{text}`")))
        }
    }
}

/// Reads a [`float`] that must lie in `range` (described as `within`).
fn float_in(value: &TokenStream, what: &str, ok: impl Fn(f32) -> bool, within: &str) -> syn::Result<Float> {
    let v = float(value, what)?;
    if !ok(v) {
        let text = compact(value);
        return Err(syn::Error::new_spanned(value, format!("{what} must be {within}, found `{text}`")));
    }
    Ok(Float(v))
}

/// Reads `N` or `WxH` into a `[width, height]` pair.
fn pair_arg(value: &TokenStream, what: &str) -> syn::Result<[u64; 2]> {
    match numbers(value, what)?.as_slice() {
        [v] => Ok([*v, *v]),
        [w, h] => Ok([*w, *h]),
        _ => Err(syn::Error::new_spanned(value, format!("expected {what} as `N` or `WxH`, found `{value}`"))),
    }
}

fn at_least_one(value: &TokenStream, p: &[u64], what: &str) -> syn::Result<()> {
    if p.contains(&0) {
        let text = value.to_string();
        let hint = if text.starts_with("0x") { " (a size of 0; `0x...` is not a hex number here)" } else { "" };
        return Err(syn::Error::new_spanned(value, format!("{what} must be at least 1, found `{text}`{hint}")));
    }
    Ok(())
}

/// The positional and named arguments of a layer, checked against what it accepts.
struct Args {
    positional: Vec<Arg>,
    named: Vec<Arg>,
}

impl Args {
    fn read(layer: &LayerSyntax, allowed: &[&str], usage: &str, positional: usize) -> syn::Result<Args> {
        let mut args = Args { positional: Vec::new(), named: Vec::new() };
        let mut errors = Errors::default();
        for arg in split_args(layer) {
            match &arg.name {
                None if !args.named.is_empty() => {
                    errors.spanned(&arg.all, format!("positional arguments come before named ones: `{usage}`"))
                }
                None => args.positional.push(arg),
                Some(name) => {
                    let key = name.to_string();
                    if !allowed.contains(&key.as_str()) {
                        let hint = match suggest(&key, allowed) {
                            Some(s) => format!("; did you mean `{s}`?"),
                            None if allowed.is_empty() => format!("; `{}` takes none", layer.name),
                            None => format!("; `{}` accepts {}", layer.name, list(allowed)),
                        };
                        errors.spanned(name, format!("unknown parameter `{key}` for `{}`{hint}", layer.name));
                    } else if args.named.iter().any(|a| a.name.as_ref().is_some_and(|n| *n == key)) {
                        errors.spanned(&arg.all, format!("`{key}` is given twice"));
                    } else if arg.value.is_empty() {
                        errors.spanned(&arg.all, format!("`{key}=` needs a value, as in `{key}=2`"));
                    } else {
                        args.named.push(arg);
                    }
                }
            }
        }
        errors.finish(())?;
        if args.positional.len() != positional {
            let found = args.positional.len();
            let message = match positional {
                0 => format!("`{}` takes no arguments: write `{usage}`", layer.name),
                _ => format!("`{}` takes {}, found {found}: write `{usage}`", layer.name, count(positional)),
            };
            return Err(syn::Error::new_spanned(layer, message));
        }
        Ok(args)
    }

    fn get(&self, name: &str) -> Option<&TokenStream> {
        self.named.iter().find(|a| a.name.as_ref().is_some_and(|n| *n == name)).map(|a| &a.value)
    }

    /// A `name=true` / `name=false` argument, or `default` when absent.
    fn flag(&self, name: &str, default: bool) -> syn::Result<bool> {
        match self.get(name).map(|v| (v, v.to_string())) {
            None => Ok(default),
            Some((_, text)) if text == "true" => Ok(true),
            Some((_, text)) if text == "false" => Ok(false),
            Some((v, text)) => {
                Err(syn::Error::new_spanned(v, format!("`{name}=` takes `true` or `false`, found `{text}`")))
            }
        }
    }
}

fn count(n: usize) -> String {
    match n {
        1 => "one argument".into(),
        2 => "two arguments".into(),
        n => format!("{n} arguments"),
    }
}

fn list(names: &[&str]) -> String {
    names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
}

/// Gives one layer its meaning.
pub fn lower_layer(layer: &LayerSyntax) -> syn::Result<Kind> {
    let name = layer.name.to_string();
    match name.as_str() {
        "input" => {
            let args = Args::read(layer, &[], "input(28x28x1)", 1)?;
            let value = &args.positional[0].value;
            let dims = numbers(value, "the input size")?;
            at_least_one(value, &dims, "every input size")?;
            match dims.as_slice() {
                [n] => Ok(Kind::InputFlat { n: *n }),
                [w, h, d] => Ok(Kind::InputVolume { w: *w, h: *h, d: *d }),
                _ => Err(syn::Error::new_spanned(
                    value,
                    format!("write the input as width x height x depth, such as `input(28x28x1)`, or as a flat size, such as `input(784)`; found `{value}`"),
                )),
            }
        }
        "conv" => {
            let usage = "conv(5x5, 16, stride=1, pad=0)";
            let args = Args::read(layer, &["stride", "pad", "bias"], usage, 2)?;
            let f = &args.positional[0].value;
            let filter = match numbers(f, "the filter size")?.as_slice() {
                [w, h] => [*w, *h],
                _ => {
                    return Err(syn::Error::new_spanned(
                        f,
                        format!("write the filter size as width x height, such as `5x5`; found `{f}`"),
                    ))
                }
            };
            at_least_one(f, &filter, "the filter size")?;
            let k = &args.positional[1].value;
            let filters = number(k, "the number of filters")?;
            at_least_one(k, &[filters], "the number of filters")?;
            let stride = match args.get("stride") {
                Some(s) => pair_arg(s, "the stride").and_then(|p| at_least_one(s, &p, "the stride").map(|()| p))?,
                None => [1, 1],
            };
            let pad = match args.get("pad") {
                Some(p) => pair_arg(p, "the padding")?,
                None => [0, 0],
            };
            let bias = args.flag("bias", true)?;
            Ok(Kind::Conv { filter, filters, stride, pad, bias })
        }
        "pool" | "maxpool" | "avgpool" | "l2pool" => {
            let args = Args::read(layer, &["stride"], &format!("{name}(2, stride=2)"), 1)?;
            let w = &args.positional[0].value;
            let window = pair_arg(w, "the pooling window")?;
            at_least_one(w, &window, "the pooling window")?;
            let stride = match args.get("stride") {
                Some(s) => pair_arg(s, "the stride").and_then(|p| at_least_one(s, &p, "the stride").map(|()| p))?,
                None => window,
            };
            let op = match name.as_str() {
                "avgpool" => PoolOp::Avg,
                "l2pool" => PoolOp::L2,
                _ => PoolOp::Max,
            };
            Ok(Kind::Pool { op, window, stride })
        }
        "fc" => {
            let args = Args::read(layer, &["bias"], "fc(10)", 1)?;
            let v = &args.positional[0].value;
            let out = number(v, "the number of outputs")?;
            at_least_one(v, &[out], "the number of outputs")?;
            let bias = args.flag("bias", true)?;
            Ok(Kind::Fc { out, bias })
        }
        "relu" | "softmax" | "sigmoid" | "tanh" | "batchnorm" => {
            if let Some(group) = &layer.args {
                return Err(syn::Error::new_spanned(group, format!("`{name}` takes no arguments: write `{name}`")));
            }
            Ok(match name.as_str() {
                "relu" => Kind::Act(ActKind::Relu),
                "sigmoid" => Kind::Act(ActKind::Sigmoid),
                "tanh" => Kind::Act(ActKind::Tanh),
                "batchnorm" => Kind::BatchNorm,
                _ => Kind::Softmax,
            })
        }
        "leaky_relu" => {
            if layer.args.is_none() {
                return Ok(Kind::Act(ActKind::LeakyRelu(Float(0.01))));
            }
            let args = Args::read(layer, &[], "leaky_relu(0.01)", 1)?;
            let v = &args.positional[0].value;
            let slope = float_in(v, "the negative slope", |a| a >= 0.0, "at least 0")?;
            Ok(Kind::Act(ActKind::LeakyRelu(slope)))
        }
        "dropout" => {
            let args = Args::read(layer, &[], "dropout(0.5)", 1)?;
            let v = &args.positional[0].value;
            let within = if float(v, "the dropout rate").is_ok_and(|p| (1.0..=100.0).contains(&p)) {
                "in [0, 1), the fraction of values dropped (for 50 %, write 0.5)"
            } else {
                "in [0, 1), the fraction of values dropped"
            };
            let p = float_in(v, "the dropout rate", |p| (0.0..1.0).contains(&p), within)?;
            Ok(Kind::Dropout { p })
        }
        "lrn" => {
            let usage = "lrn(5, alpha=0.0001, beta=0.75, k=2)";
            let args = Args::read(layer, &["alpha", "beta", "k"], usage, 1)?;
            let v = &args.positional[0].value;
            let size = number(v, "the number of channels to sum over")?;
            at_least_one(v, &[size], "the size")?;
            let get = |key: &str, default: f32, ok: fn(f32) -> bool, within: &str| match args.get(key) {
                Some(v) => float_in(v, &format!("`{key}`"), ok, within),
                None => Ok(Float(default)),
            };
            let alpha = get("alpha", LRN_DEFAULTS[0], |a| a >= 0.0, "at least 0")?;
            let beta = get("beta", LRN_DEFAULTS[1], |b| b >= 0.0, "at least 0")?;
            let k = get("k", LRN_DEFAULTS[2], |k| k > 0.0, "greater than 0")?;
            Ok(Kind::Lrn { size, alpha, beta, k })
        }
        RESIDUAL => match &layer.block {
            Some(block) if !block.body.is_empty() => Ok(Kind::Residual),
            _ => Err(syn::Error::new_spanned(
                layer,
                "`residual` needs the layers of its block, as in `residual(conv(3x3, 16, pad=1) relu conv(3x3, 16, pad=1))`",
            )),
        },
        "loss" => {
            let usage = "loss(cross_entropy), loss(bce) or loss(mse)";
            let args = Args::read(layer, &[], usage, 1)?;
            let v = &args.positional[0].value;
            let text = compact(v);
            let loss = match text.replace('-', "_").to_ascii_lowercase().as_str() {
                "cross_entropy" | "crossentropy" | "ce" => LossKind::CrossEntropy,
                "bce" | "binary_cross_entropy" => LossKind::Bce,
                "mse" | "mean_squared_error" => LossKind::Mse,
                other => {
                    let hint = match suggest(other, &["cross_entropy", "bce", "mse"]) {
                        Some(s) => format!("; did you mean `loss({s})`?"),
                        None => format!(": write {usage}"),
                    };
                    return Err(syn::Error::new_spanned(v, format!("unknown loss `{text}`{hint}")));
                }
            };
            Ok(Kind::Loss(loss))
        }
        _ => {
            let hint = match ALIASES.iter().find(|(a, _)| *a == name.to_ascii_lowercase()) {
                Some((_, ours)) if name == "flatten" => {
                    format!("; flattening is implicit before the first `{ours}`")
                }
                Some((_, ours)) if ours.starts_with("loss") => {
                    format!("; a loss is written `{ours}` at the end of the model")
                }
                Some((_, ours)) => format!("; did you mean `{ours}`?"),
                None => match suggest(&name, &LAYER_NAMES) {
                    Some(s) => format!("; did you mean `{s}`?"),
                    None => format!("; the layers are {}", list(&LAYER_NAMES)),
                },
            };
            Err(syn::Error::new_spanned(&layer.name, format!("unknown layer `{name}`{hint}")))
        }
    }
}

/// The closest of `candidates` to `word`, if close enough to be a likely typo.
fn suggest<'c>(word: &str, candidates: &[&'c str]) -> Option<&'c str> {
    let word = word.to_ascii_lowercase();
    candidates
        .iter()
        .map(|c| (distance(&word, c), *c))
        .filter(|(d, c)| (*d <= 2.max(c.len() / 3) && *d < c.len()) || (word.starts_with(*c) && c.len() >= 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

impl ToTokens for Layer<'_> {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        self.syntax.to_tokens(tokens);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lower(text: &str) -> syn::Result<Vec<Kind>> {
        let syntax: ModelSyntax = syn::parse_str(&format!("struct M < {text} >"))?;
        Model::lower(&syntax).map(|m| m.layers.into_iter().map(|l| l.kind).collect())
    }

    fn error(text: &str) -> String {
        lower(text).err().unwrap_or_else(|| panic!("`{text}` should not lower")).to_string()
    }

    #[test]
    fn reads_every_documented_form() {
        let kinds = lower("input(32x16x3) conv(5x3, 8, stride=2, pad=1) relu pool(2) maxpool(3, stride=2) conv(3x3, 4, stride=2x1, pad=0x1) fc(10) softmax").unwrap();
        assert_eq!(kinds[0], Kind::InputVolume { w: 32, h: 16, d: 3 });
        assert_eq!(kinds[1], Kind::Conv { filter: [5, 3], filters: 8, stride: [2, 2], pad: [1, 1], bias: true });
        assert_eq!(kinds[3], Kind::Pool { op: PoolOp::Max, window: [2, 2], stride: [2, 2] });
        assert_eq!(kinds[4], Kind::Pool { op: PoolOp::Max, window: [3, 3], stride: [2, 2] });
        assert_eq!(kinds[5], Kind::Conv { filter: [3, 3], filters: 4, stride: [2, 1], pad: [0, 1], bias: true });
        assert_eq!(kinds[6], Kind::Fc { out: 10, bias: true });
        let kinds = lower("input(8x8x1) conv(3x3, 4, bias=false) fc(2, bias=false)").unwrap();
        assert_eq!(kinds[1].to_string(), "conv(3x3, 4, bias=false)");
        assert_eq!(kinds[2], Kind::Fc { out: 2, bias: false });
        assert!(error("fc(2, bias=no)").contains("takes `true` or `false`"));
        assert_eq!(lower("input(784)").unwrap()[0], Kind::InputFlat { n: 784 });
    }

    #[test]
    fn reads_the_course_layers() {
        let kinds = lower("input(8x8x3) avgpool(2) l2pool(3, stride=1) leaky_relu leaky_relu(0.2) sigmoid tanh dropout(0.5) batchnorm lrn(5, k=2) lrn(3, alpha=1e-3, beta=0.5) loss(mse)").unwrap();
        assert_eq!(kinds[1], Kind::Pool { op: PoolOp::Avg, window: [2, 2], stride: [2, 2] });
        assert_eq!(kinds[2], Kind::Pool { op: PoolOp::L2, window: [3, 3], stride: [1, 1] });
        assert_eq!(kinds[3], Kind::Act(ActKind::LeakyRelu(Float(0.01))));
        assert_eq!(kinds[4], Kind::Act(ActKind::LeakyRelu(Float(0.2))));
        assert_eq!(kinds[7], Kind::Dropout { p: Float(0.5) });
        assert_eq!(kinds[9], Kind::Lrn { size: 5, alpha: Float(1e-4), beta: Float(0.75), k: Float(2.0) });
        assert_eq!(kinds[11], Kind::Loss(LossKind::Mse));
        let text: Vec<String> = kinds.iter().map(ToString::to_string).collect();
        assert_eq!(text[1..3], ["avgpool(2)", "l2pool(3, stride=1)"]);
        assert_eq!(text[3..8], ["leaky_relu(0.01)", "leaky_relu(0.2)", "sigmoid", "tanh", "dropout(0.5)"]);
        assert_eq!(text[9..], ["lrn(5, k=2)", "lrn(3, alpha=0.001, beta=0.5)", "loss(mse)"]);
    }

    #[test]
    fn rejects_bad_rates_and_slopes() {
        assert!(error("dropout(1.0)").contains("dropout rate must be in [0, 1)"));
        assert!(error("dropout(-0.1)").contains("dropout rate must be in [0, 1)"));
        assert!(error("dropout(1)").contains("dropout rate must be in [0, 1)"));
        assert!(error("dropout(half)").contains("a number such as `0.5`"));
        assert!(error("dropout").contains("takes one argument"));
        assert!(error("leaky_relu(-0.1)").contains("at least 0"));
        assert!(error("lrn(5, k=0)").contains("greater than 0"));
        assert!(error("lrn(0)").contains("at least 1"));
        assert!(error("loss(hinge)").contains("unknown loss `hinge`"));
        assert!(lower("input(4) fc(2) softmax loss(cross-entropy)").is_ok());
        assert!(error("loss(crossentropyy)").contains("did you mean `loss(cross_entropy)`?"));
        assert!(error("dropout(50)").contains("for 50 %, write 0.5"));
        assert!(error("leaky_relu(-0.1)").contains("found `-0.1`"));
        assert!(error("conv(3x3, 2, pad=-1)").contains("the padding cannot be negative, found `-1`"));
        assert!(error("lrn(3, beta=-1)").contains("`beta` must be at least 0, found `-1`"));
        assert!(error("residual").contains("needs the layers of its block"));
        assert!(error("residual()").contains("needs the layers of its block"));
        assert!(error("BatchNorm2d").contains("did you mean `batchnorm`?"));
        assert!(error("mse").contains("`loss(mse)` at the end"));
    }

    #[test]
    fn blocks_print_with_their_layers() {
        let syntax: ModelSyntax =
            syn::parse_str("struct M < input(8x8x4) residual(conv(3x3,8,pad=1) relu, shortcut=conv(1x1,8)) >").unwrap();
        let model = Model::lower(&syntax).unwrap();
        assert_eq!(list_text(&model.layers), "input(8x8x4) residual(conv(3x3, 8, pad=1) relu, shortcut=conv(1x1, 8))");
        let syntax: ModelSyntax = syn::parse_str("struct M < input(4) residual(fc(4) rellu) >").unwrap();
        assert!(Model::lower(&syntax).err().unwrap().to_string().contains("did you mean `relu`"));
    }

    #[test]
    fn prints_the_canonical_spelling() {
        let kinds =
            lower("input(28x28x1) conv(5x5,6,pad=2) pool(2) maxpool(3,stride=2) conv(3x1, 4, stride=2x1) fc(10)")
                .unwrap();
        let text: Vec<String> = kinds.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "input(28x28x1)",
                "conv(5x5, 6, pad=2)",
                "pool(2)",
                "pool(3, stride=2)",
                "conv(3x1, 4, stride=2x1)",
                "fc(10)"
            ]
        );
    }

    #[test]
    fn rejects_literals_that_are_not_sizes() {
        assert!(error("input(0x3)").contains("not a hex number"));
        assert!(error("input(28x28)").contains("width x height x depth"));
        assert!(error("input(28 x 28 x 1)").contains("one token"));
        assert!(error("input(5x)").contains("whole numbers"));
        assert!(error("fc(1.5)").contains("whole numbers"));
        assert!(error("fc(10u8)").contains("whole numbers"));
        assert!(error("fc(-3)").contains("the number of outputs cannot be negative, found `-3`"));
        assert!(error("fc(5x5)").contains("a single number"));
        assert!(error("conv(5, 6)").contains("width x height"));
        assert!(error("fc(99999999999)").contains("too large"));
        assert!(error("fc(0)").contains("at least 1"));
        assert!(error("conv(3x3, 8, stride=0)").contains("stride must be at least 1"));
    }

    #[test]
    fn checks_names_and_counts_of_arguments() {
        assert!(error("conv(3x3, 8, padding=1)").contains("did you mean `pad`?"));
        assert!(error("conv(3x3, 8, pad=1, pad=2)").contains("given twice"));
        assert!(error("conv(3x3)").contains("takes two arguments, found 1"));
        assert!(error("conv(3x3, 8, pad=1, 4)").contains("positional arguments come before"));
        assert!(error("relu(2)").contains("takes no arguments"));
        assert!(error("dropout(0.5, stride=2)").contains("takes none"));
        assert!(error("fc(2, stride=2)").contains("accepts `bias`"));
        assert!(error("pool(2, pad=1)").contains("accepts `stride`"));
        assert!(error("conv(3x3, 8, stride=)").contains("needs a value"));
    }

    #[test]
    fn suggests_known_layers() {
        assert!(error("conv2d(3x3, 8)").contains("did you mean `conv`?"));
        assert!(error("dense(10)").contains("did you mean `fc`?"));
        assert!(error("rellu").contains("did you mean `relu`?"));
        assert!(error("softmx").contains("did you mean `softmax`?"));
        assert!(error("flatten").contains("implicit"));
        assert!(error("banana").contains("the layers are"));
    }

    #[test]
    fn reports_every_bad_layer() {
        let syntax: ModelSyntax = syn::parse_str("struct M < input(4) rellu fc(0) >").unwrap();
        let errors: Vec<String> = Model::lower(&syntax).err().unwrap().into_iter().map(|e| e.to_string()).collect();
        assert_eq!(errors.len(), 2, "{errors:?}");
    }
}
