//! Giving each layer its meaning: the layer names, their arguments and their ranges, with
//! suggestions for names other libraries use and for typos.

use proc_macro2::TokenStream;

use super::args::{at_least_one, compact, float, float_in, list, number, numbers, pair, Args};
use super::syntax::LayerSyntax;
use crate::errors::Errors;
use crate::ir::{ActKind, Float, Kind, Layer, LossKind, Pair, PoolOp, LRN_DEFAULTS};

/// Largest size accepted for any single number (a width, a filter count, ...).
pub const MAX_NUMBER: usize = 1 << 24;

/// The names of every layer, for errors and suggestions.
pub const LAYER_NAMES: [&str; 21] = [
    "input",
    "conv",
    "pool",
    "maxpool",
    "avgpool",
    "l2pool",
    "fc",
    "relu",
    "relu6",
    "leaky_relu",
    "sigmoid",
    "tanh",
    "softmax",
    "dropout",
    "sparsity",
    "batchnorm",
    "lrn",
    "residual",
    "concat",
    "heads",
    "loss",
];

/// Names other libraries use, mapped to ours.
const ALIASES: [(&str, &str); 31] = [
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
    ("cat", "concat"),
    ("inception", "concat"),
    ("multihead", "heads"),
    ("outputs", "heads"),
    ("flatten", "fc"),
    ("log_softmax", "softmax"),
    ("mse", "loss(mse)"),
    ("cross_entropy", "loss(cross_entropy)"),
    ("bce", "loss(bce)"),
];

/// Lowers a list of layers, blocks included, recording each bad layer's mistake in `errors`
/// (the layer stays, as [`Kind::Invalid`]).
pub fn lower_list(syntax: &[LayerSyntax], errors: &mut Errors) -> Vec<Layer> {
    let mut layers = Vec::with_capacity(syntax.len());
    for layer in syntax {
        let branches = match (&layer.block, &layer.branches) {
            (Some(block), _) => {
                let body = lower_list(&block.body, errors);
                let shortcut = block.shortcut.as_ref().map(|(_, s)| lower_list(s, errors)).unwrap_or_default();
                vec![body, shortcut]
            }
            (None, Some(branches)) => branches.iter().map(|b| lower_list(b, errors)).collect(),
            (None, None) => match &layer.heads {
                Some(heads) => heads.iter().map(|(_, b)| lower_list(b, errors)).collect(),
                None => Vec::new(),
            },
        };
        let kind = lower_layer(layer).unwrap_or_else(|error| {
            errors.push(error);
            Kind::Invalid
        });
        layers.push(Layer::new(kind, layer.original(), branches));
    }
    layers
}

/// Gives one layer its meaning.
pub fn lower_layer(layer: &LayerSyntax) -> syn::Result<Kind> {
    let name = layer.name.to_string();
    match name.as_str() {
        "input" => input(layer),
        "conv" => conv(layer),
        "pool" | "maxpool" | "avgpool" | "l2pool" => pool(layer, &name),
        "fc" => {
            let args = Args::read(layer, &["bias"], "fc(10)", 1)?;
            let v = &args.positional[0].value;
            let out = number(v, "the number of outputs")?;
            at_least_one(v, &[out], "the number of outputs")?;
            let bias = args.flag("bias", true)?;
            Ok(Kind::Fc { out, bias })
        }
        "relu" | "relu6" | "softmax" | "sigmoid" | "tanh" | "batchnorm" => {
            if let Some(group) = &layer.args {
                return Err(syn::Error::new_spanned(group, format!("`{name}` takes no arguments: write `{name}`")));
            }
            Ok(match name.as_str() {
                "relu" => Kind::Act(ActKind::Relu),
                "relu6" => Kind::Act(ActKind::Relu6),
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
        "dropout" => dropout(layer),
        "sparsity" => {
            let args = Args::read(layer, &[], "sparsity(0.001)", 1)?;
            let v = &args.positional[0].value;
            let lambda = float_in(v, "the sparsity weight", |l| l >= 0.0, "at least 0")?;
            Ok(Kind::Sparsity { lambda })
        }
        "lrn" => lrn(layer),
        "residual" => match &layer.block {
            Some(block) if !block.body.is_empty() => Ok(Kind::Residual),
            _ => Err(syn::Error::new_spanned(
                layer,
                "`residual` needs the layers of its block, as in `residual(conv(3x3, 16, pad=1) relu conv(3x3, 16, pad=1))`",
            )),
        },
        "concat" => match &layer.branches {
            Some(branches) if !branches.is_empty() => Ok(Kind::Concat),
            _ => Err(syn::Error::new_spanned(
                layer,
                "`concat` needs its branches, separated by commas, as in `concat(conv(1x1, 16), conv(3x3, 16, pad=1), maxpool(3, stride=1, pad=1) conv(1x1, 16))`",
            )),
        },
        "heads" => match &layer.heads {
            Some(heads) if !heads.is_empty() => Ok(Kind::Heads { names: heads.iter().map(|(n, _)| n.clone()).collect() }),
            _ => Err(syn::Error::new_spanned(
                layer,
                "`heads` needs its named heads, separated by commas, as in `heads(digit: fc(10) softmax, parity: fc(2) softmax)`",
            )),
        },
        "loss" => loss(layer),
        _ => Err(unknown(layer, &name)),
    }
}

fn input(layer: &LayerSyntax) -> syn::Result<Kind> {
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

/// A stride argument: a pair of values of at least 1.
fn stride(value: &TokenStream) -> syn::Result<Pair> {
    let p = pair(value, "the stride")?;
    at_least_one(value, &[p.w, p.h], "the stride")?;
    Ok(p)
}

fn conv(layer: &LayerSyntax) -> syn::Result<Kind> {
    let usage = "conv(5x5, 16, stride=1, pad=0)";
    let args = Args::read(layer, &["stride", "pad", "bias", "groups"], usage, 2)?;
    let f = &args.positional[0].value;
    let filter = match numbers(f, "the filter size")?.as_slice() {
        [w, h] => Pair { w: *w, h: *h },
        _ => {
            return Err(syn::Error::new_spanned(
                f,
                format!("write the filter size as width x height, such as `5x5`; found `{f}`"),
            ))
        }
    };
    at_least_one(f, &[filter.w, filter.h], "the filter size")?;
    let k = &args.positional[1].value;
    let filters = number(k, "the number of filters")?;
    at_least_one(k, &[filters], "the number of filters")?;
    let stride = args.get("stride").map_or(Ok(Pair::square(1)), stride)?;
    let pad = args.get("pad").map_or(Ok(Pair::square(0)), |p| pair(p, "the padding"))?;
    let bias = args.flag("bias", true)?;
    let groups = match args.get("groups") {
        Some(g) => {
            let groups = number(g, "the number of groups")?;
            at_least_one(g, &[groups], "the number of groups")?;
            if !filters.is_multiple_of(groups) {
                return Err(syn::Error::new_spanned(
                    g,
                    format!("{groups} groups do not divide the {filters} filters: each group has as many filters, so `groups` must divide the number of filters"),
                ));
            }
            groups
        }
        None => 1,
    };
    Ok(Kind::Conv { filter, filters, stride, pad, bias, groups })
}

fn pool(layer: &LayerSyntax, name: &str) -> syn::Result<Kind> {
    let usage = format!("{name}(2, stride=2)");
    let args = Args::read(layer, &["stride", "pad"], &usage, 1)?;
    if let (Some(p), "l2pool") = (args.get("pad"), name) {
        return Err(syn::Error::new_spanned(
            p,
            "`l2pool` takes no `pad`, as PyTorch's `LPPool2d` has none: pad with `maxpool` or `avgpool`, or with the `conv` before it",
        ));
    }
    let w = &args.positional[0].value;
    let window = pair(w, "the pooling window")?;
    at_least_one(w, &[window.w, window.h], "the pooling window")?;
    let stride = args.get("stride").map_or(Ok(window), stride)?;
    let pad = args.get("pad").map_or(Ok(Pair::square(0)), |p| pair(p, "the padding"))?;
    if let Some(p) = args.get("pad").filter(|_| pad.w > window.w / 2 || pad.h > window.h / 2) {
        let most = Pair { w: window.w / 2, h: window.h / 2 };
        return Err(syn::Error::new_spanned(
            p,
            format!("a pooling window pads at most half its size on each side (as in PyTorch): for `{name}({window})`, at most `pad={most}`"),
        ));
    }
    let op = match name {
        "avgpool" => PoolOp::Avg,
        "l2pool" => PoolOp::L2,
        _ => PoolOp::Max,
    };
    Ok(Kind::Pool { op, window, stride, pad })
}

fn dropout(layer: &LayerSyntax) -> syn::Result<Kind> {
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

fn lrn(layer: &LayerSyntax) -> syn::Result<Kind> {
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

fn loss(layer: &LayerSyntax) -> syn::Result<Kind> {
    let usage = "loss(cross_entropy), loss(bce) or loss(mse)";
    let args = Args::read(layer, &["weight"], usage, 1)?;
    let weight = match args.get("weight") {
        Some(w) => float_in(w, "the loss weight", |w| w > 0.0 && w.is_finite(), "greater than 0")?,
        None => Float(1.0),
    };
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
    Ok(Kind::Loss(loss, weight))
}

/// The error for a layer name that is not ours, with the name it likely means.
fn unknown(layer: &LayerSyntax, name: &str) -> syn::Error {
    let hint = match ALIASES.iter().find(|(a, _)| *a == name.to_ascii_lowercase()) {
        Some((_, ours)) if name == "flatten" => format!("; flattening is implicit before the first `{ours}`"),
        Some((_, ours)) if ours.starts_with("loss") => format!("; a loss is written `{ours}` at the end of the model"),
        Some((_, ours)) => format!("; did you mean `{ours}`?"),
        None => match suggest(name, &LAYER_NAMES) {
            Some(s) => format!("; did you mean `{s}`?"),
            None => format!("; the layers are {}", list(&LAYER_NAMES)),
        },
    };
    syn::Error::new_spanned(&layer.name, format!("unknown layer `{name}`{hint}"))
}

/// The closest of `candidates` to `word`, if close enough to be a likely typo.
pub fn suggest<'c>(word: &str, candidates: &[&'c str]) -> Option<&'c str> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{list_text, Model};

    fn model(text: &str) -> syn::Result<Model> {
        let (model, errors) = crate::parse::parse(format!("struct M < {text} >").parse().unwrap())?;
        errors.map_or(Ok(model), Err)
    }

    fn lower(text: &str) -> syn::Result<Vec<Kind>> {
        model(text).map(|m| m.layers.into_iter().map(|l| l.kind).collect())
    }

    fn error(text: &str) -> String {
        lower(text).err().unwrap_or_else(|| panic!("`{text}` should not lower")).to_string()
    }

    #[test]
    fn reads_every_documented_form() {
        let kinds = lower("input(32x16x3) conv(5x3, 8, stride=2, pad=1) relu pool(2) maxpool(3, stride=2) conv(3x3, 4, stride=2x1, pad=0x1) fc(10) softmax").unwrap();
        assert_eq!(kinds[0], Kind::InputVolume { w: 32, h: 16, d: 3 });
        assert_eq!(
            kinds[1],
            Kind::Conv {
                filter: Pair { w: 5, h: 3 },
                filters: 8,
                stride: Pair::square(2),
                pad: Pair::square(1),
                bias: true,
                groups: 1,
            }
        );
        assert_eq!(
            kinds[3],
            Kind::Pool { op: PoolOp::Max, window: Pair::square(2), stride: Pair::square(2), pad: Pair::square(0) }
        );
        assert_eq!(
            kinds[4],
            Kind::Pool { op: PoolOp::Max, window: Pair::square(3), stride: Pair::square(2), pad: Pair::square(0) }
        );
        assert_eq!(
            kinds[5],
            Kind::Conv {
                filter: Pair::square(3),
                filters: 4,
                stride: Pair { w: 2, h: 1 },
                pad: Pair { w: 0, h: 1 },
                bias: true,
                groups: 1,
            }
        );
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
        assert_eq!(
            kinds[1],
            Kind::Pool { op: PoolOp::Avg, window: Pair::square(2), stride: Pair::square(2), pad: Pair::square(0) }
        );
        assert_eq!(
            kinds[2],
            Kind::Pool { op: PoolOp::L2, window: Pair::square(3), stride: Pair::square(1), pad: Pair::square(0) }
        );
        assert_eq!(kinds[3], Kind::Act(ActKind::LeakyRelu(Float(0.01))));
        assert_eq!(kinds[4], Kind::Act(ActKind::LeakyRelu(Float(0.2))));
        assert_eq!(kinds[7], Kind::Dropout { p: Float(0.5) });
        assert_eq!(kinds[9], Kind::Lrn { size: 5, alpha: Float(1e-4), beta: Float(0.75), k: Float(2.0) });
        assert_eq!(kinds[11], Kind::Loss(LossKind::Mse, Float(1.0)));
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
        let model = model("input(8x8x4) residual(conv(3x3,8,pad=1) relu, shortcut=conv(1x1,8))").unwrap();
        assert_eq!(list_text(&model.layers), "input(8x8x4) residual(conv(3x3, 8, pad=1) relu, shortcut=conv(1x1, 8))");
        assert!(error("input(4) residual(fc(4) rellu)").contains("did you mean `relu`"));
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
        assert!(error("l2pool(2, pad=1)").contains("`l2pool` takes no `pad`"));
        assert!(error("l2pool(2, padding=1)").contains("did you mean `pad`?"));
        assert!(error("maxpool(3, pad=2)").contains("at most `pad=1`"));
        assert_eq!(
            lower("input(8x8x1) maxpool(3, stride=2, pad=1)").unwrap()[1],
            Kind::Pool { op: PoolOp::Max, window: Pair::square(3), stride: Pair::square(2), pad: Pair::square(1) }
        );
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
        let errors: Vec<String> =
            model("input(4) rellu fc(0)").err().unwrap().into_iter().map(|e| e.to_string()).collect();
        assert_eq!(errors.len(), 2, "{errors:?}");
    }

    #[test]
    fn reads_groups_relu6_and_sparsity() {
        let kinds =
            lower("input(8x8x4) conv(3x3, 8, pad=1, groups=4) relu6 sparsity(0.001) conv(1x1, 8, groups=1)").unwrap();
        assert_eq!(kinds[1].to_string(), "conv(3x3, 8, pad=1, groups=4)");
        assert_eq!(kinds[2], Kind::Act(ActKind::Relu6));
        assert_eq!(kinds[3], Kind::Sparsity { lambda: Float(0.001) });
        assert_eq!(kinds[4].to_string(), "conv(1x1, 8)");
        assert!(error("conv(3x3, 8, groups=3)").contains("3 groups do not divide the 8 filters"));
        assert!(error("conv(3x3, 8, groups=0)").contains("at least 1"));
        assert!(error("sparsity(-1)").contains("at least 0"));
        assert!(error("relu6(2)").contains("takes no arguments"));
    }

    #[test]
    fn reads_heads_and_loss_weights() {
        let model =
            model("input(4) heads(a: fc(2) softmax loss(cross_entropy, weight=0.5), b: fc(1) loss(mse))").unwrap();
        let heads = &model.layers[1];
        let Kind::Heads { names } = &heads.kind else { panic!("heads") };
        assert_eq!(names.iter().map(ToString::to_string).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(heads.branches[0][2].kind, Kind::Loss(LossKind::CrossEntropy, Float(0.5)));
        assert_eq!(heads.branches[1][1].kind, Kind::Loss(LossKind::Mse, Float(1.0)));
        assert_eq!(
            list_text(&model.layers),
            "input(4) heads(a: fc(2) softmax loss(cross_entropy, weight=0.5), b: fc(1) loss(mse))"
        );
        assert_eq!(model.count, 7, "heads are numbered depth-first");
        assert!(error("heads").contains("needs its named heads"));
        assert!(error("heads()").contains("needs its named heads"));
        assert!(error("loss(mse, weight=0)").contains("greater than 0"));
        assert!(error("loss(mse, weight=inf)").contains("a number"), "{}", error("loss(mse, weight=inf)"));
        assert!(error("loss(mse, wieght=2)").contains("did you mean `weight`?"));
        assert!(error("input(4) heads(a: fc(2) rellu)").contains("did you mean `relu`"));
        assert!(error("multihead(a: fc(2))").contains("did you mean `heads`?"));
    }
}
