//! The check stage: every layer's input and output volume by `W2 = (W1 − F + 2P)/S + 1`
//! (height likewise, depth = number of filters), the loss the model trains with, and an error
//! with the arithmetic and a fix wherever a layer does not fit what comes before it. It reads the
//! model and returns what it learns in a side table, [`Checked`], or every mistake found.

mod blocks;
mod loss;
mod windows;

use cnn_shape::Shape;

use crate::errors::Errors;
use crate::ir::{Kind, Layer, LossKind, Model};
use blocks::{concat, heads, residual};
use loss::losses;
use windows::{geometry, size_keeping, windows};

/// Largest number of values a layer may output per sample, or hold as parameters.
pub const MAX_VALUES: usize = 1 << 31;

/// What the check learnt about a model that fits: each layer's shapes and the losses.
pub struct Checked {
    /// The input and output shape of each layer, by [`Layer::id`].
    shapes: Vec<(Shape, Shape)>,
    /// The loss the model trains with (for a model with heads, its first head's).
    pub loss: LossKind,
    /// For a model ending in `heads`, each head's loss and weight, in order; empty otherwise.
    pub heads: Vec<(LossKind, f32)>,
}

impl Checked {
    /// The shape `layer` reads.
    pub fn input(&self, layer: &Layer) -> Shape {
        self.shapes[layer.id].0
    }

    /// The shape `layer` gives.
    pub fn output(&self, layer: &Layer) -> Shape {
        self.shapes[layer.id].1
    }
}

/// Why a layer does not fit.
enum Misfit {
    /// This message, to report at the layer.
    Message(String),
    /// A mistake inside it (in a block), reported where it is.
    Reported,
}

impl From<String> for Misfit {
    fn from(message: String) -> Self {
        Misfit::Message(message)
    }
}

/// The check's state: the errors so far, the shapes known, and the trail of layers from the
/// input to the layer being checked.
struct Cx {
    errors: Errors,
    shapes: Vec<Option<(Shape, Shape)>>,
    trail: Vec<Step>,
}

/// A layer on the way to the one being checked, as a shape error shows it.
struct Step {
    /// The layer as written (a block: its name and the branch).
    text: String,
    /// The layer and its shapes, for a layer that changes the shape.
    layer: Option<(Kind, Shape, Shape)>,
}

impl Cx {
    /// Records `message` at `layer`, whose input was `input`, with the trail of shapes that led
    /// to it and, where a window no longer fits, the layers that lost the size.
    fn misfit(&mut self, layer: &Layer, input: Shape, message: String) {
        let mut trail: Vec<String> = self.trail.iter().map(|s| s.text.clone()).collect();
        trail.push(format!("`{}` ✗", layer.kind));
        let trail = format!("\ntrail: {}", trail.join(" → "));
        let lost = shrinking_fixes(&self.trail, &layer.kind, input);
        let message = match message.split_once("\nhelp: ") {
            Some((head, help)) if lost.is_empty() => format!("{head}{trail}\nhelp: {help}"),
            Some((head, help)) => format!("{head}{trail}\nhelp: {}, or {help}", lost.join(", or ")),
            None if lost.is_empty() => format!("{message}{trail}"),
            None => format!("{message}{trail}\nhelp: {}", lost.join(", or ")),
        };
        self.errors.spanned(layer, message);
    }
}

/// Where `kind`, a window layer, is larger than its (padded) `input`: the unpadded stride-1
/// window layers on the trail that shrank the width or height, each with the padding that would
/// have kept it, nearest first (at most three).
fn shrinking_fixes(trail: &[Step], kind: &Kind, input: Shape) -> Vec<String> {
    let Some((window, _, pad)) = geometry(kind) else { return Vec::new() };
    if window.w <= input.w + 2 * pad.w && window.h <= input.h + 2 * pad.h {
        return Vec::new();
    }
    trail
        .iter()
        .rev()
        .filter_map(|step| {
            let (kind, from, to) = step.layer.as_ref()?;
            let fixed = size_keeping(kind).filter(|_| (to.w, to.h) != (from.w, from.h))?;
            Some(format!("`{kind}` turned {from} into {to}: `{fixed}` keeps {}x{}", from.w, from.h))
        })
        .take(3)
        .collect()
}

/// Every layer's shapes and the loss the model trains with, or every mistake found.
///
/// After a layer whose shape cannot be computed, the layers below it are not shape-checked
/// (their input is unknown), so one mistake gives one error.
pub fn check(model: &Model) -> syn::Result<Checked> {
    let mut cx = Cx { errors: Errors::default(), shapes: vec![None; model.count], trail: Vec::new() };
    let Some(first) = model.layers.first() else {
        return Err(syn::Error::new(model.open, "the model has no layers: start with `input(WxHxD)` or `input(N)`"));
    };
    let mut current = match first.kind {
        Kind::InputVolume { w, h, d } => Some(Shape::volume(w, h, d)),
        Kind::InputFlat { n } => Some(Shape::vector(n)),
        Kind::Invalid => None,
        _ => {
            let message = format!("a model starts with `input(WxHxD)` or `input(N)`, found `{}`", first.kind);
            cx.errors.spanned(first, message);
            None
        }
    };
    if let Some(shape) = current {
        if shape.len() > MAX_VALUES {
            let message = format!("the input holds {} values; the most a layer may hold is {MAX_VALUES}", shape.len());
            cx.errors.spanned(first, message);
            current = None;
        }
        cx.shapes[first.id] = Some((shape, shape));
    }
    cx.trail.push(Step { text: format!("`{}`", first.kind), layer: None });
    check_list(&model.layers[1..], current, &first.kind.to_string(), Place::Top, &mut cx);
    // A loss that does not fit could be the invalid layer's fault: not an independent mistake.
    let invalid = model.layers.iter().any(|l| l.kind == Kind::Invalid);
    let losses = if invalid { None } else { losses(&model.layers, &mut cx.errors) }.unwrap_or_default();
    let shapes = cx.shapes.into_iter().map(|s| s.unwrap_or((Shape::vector(0), Shape::vector(0)))).collect();
    let loss = losses.first().map_or(LossKind::Mse, |l| l.0);
    let heads = match model.layers.last().map(|l| &l.kind) {
        Some(Kind::Heads { .. }) => losses.iter().map(|(l, w)| (*l, w.0)).collect(),
        _ => Vec::new(),
    };
    cx.errors.finish(Checked { shapes, loss, heads })
}

/// Where a list of layers is, for the rules of what may stand where.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Place<'a> {
    /// The model's own list.
    Top,
    /// A branch of a block, which the text names (`a \`residual\` block`).
    Block(&'a str),
    /// One of the heads of `heads`.
    Head,
}

/// Checks `layers`, which read `input` (described by `before`) at `place`, recording each
/// layer's shapes; returns the shape of the last one, or `None` when it is unknown.
fn check_list(layers: &[Layer], mut current: Option<Shape>, before: &str, place: Place, cx: &mut Cx) -> Option<Shape> {
    for (i, layer) in layers.iter().enumerate() {
        if let Some(message) = misplaced(layers, i, place) {
            cx.errors.spanned(layer, message);
            if layer.kind.is_input() {
                continue;
            }
        }
        let Some(input) = current else {
            let inner = if matches!(layer.kind, Kind::Heads { .. }) { Place::Head } else { Place::Block("") };
            for branch in &layer.branches {
                check_list(branch, None, "", inner, cx);
            }
            continue;
        };
        let prev = if i == 0 { before.to_string() } else { describe(&layers[..i]) };
        let result = match layer.kind {
            Kind::Invalid => Err(Misfit::Reported),
            Kind::Residual => residual(layer, input, cx),
            Kind::Concat => concat(layer, input, cx),
            Kind::Heads { .. } => heads(layer, input, cx),
            _ => output(layer, &prev, input).map_err(Misfit::Message),
        };
        current = match result {
            Ok(shape) => {
                cx.shapes[layer.id] = Some((input, shape));
                if shape != input || layer.is_block() || geometry(&layer.kind).is_some() {
                    let text = if layer.is_block() { layer.kind.to_string() } else { layer.text() };
                    let step =
                        Step { text: format!("`{text}` {shape}"), layer: Some((layer.kind.clone(), input, shape)) };
                    cx.trail.push(step);
                }
                Some(shape)
            }
            Err(misfit) => {
                if let Misfit::Message(message) = misfit {
                    cx.misfit(layer, input, message);
                }
                None
            }
        };
    }
    current
}

/// Why layer `i` of `layers` (at `place`) does not belong where it is, if it does not.
fn misplaced(layers: &[Layer], i: usize, place: Place) -> Option<String> {
    let top = place == Place::Top;
    let layer = &layers[i];
    let prev_kind = i.checked_sub(1).map(|j| &layers[j].kind);
    match (&layer.kind, place) {
        (k, _) if k.is_input() => Some("`input` may appear only once, as the first layer".to_string()),
        (Kind::Softmax | Kind::Loss(..), Place::Block(within)) => {
            Some(format!("`{}` belongs at the end of the model, not inside {within}", layer.kind))
        }
        (Kind::Heads { .. }, Place::Block(within)) => {
            Some(format!("`heads` ends the model, so it cannot stand inside {within}: put it last, after the block"))
        }
        (Kind::Heads { .. }, Place::Head) => {
            Some("`heads` cannot stand inside a head: a head ends as a model ends, with its output layers".to_string())
        }
        (Kind::Heads { .. }, Place::Top) if i + 1 < layers.len() => Some(format!(
            "`heads` ends the model, but `{}` follows it: put the layers after it inside each head",
            layers[i + 1].text()
        )),
        _ => misplaced_norm(layer, prev_kind, top && i == 0),
    }
}

/// Why `layer`, a `batchnorm` after `prev_kind` (or right after `input`), is not useful there.
fn misplaced_norm(layer: &Layer, prev_kind: Option<&Kind>, after_input: bool) -> Option<String> {
    match &layer.kind {
        Kind::BatchNorm if after_input => Some(
            "`batchnorm` normalises what a layer computes; straight after `input` it would only standardise the data, which is better done once when loading it: put `batchnorm` after a `conv` or `fc`".to_string(),
        ),
        Kind::BatchNorm if prev_kind == Some(&Kind::BatchNorm) => {
            Some("`batchnorm` follows another `batchnorm`, which has already normalised its input: remove one".to_string())
        }
        _ => None,
    }
}

/// The last layer of `layers` as the user wrote it, with the activation before it if it ends
/// in one, such as `fc(100) relu`.
fn describe(layers: &[Layer]) -> String {
    match layers {
        [.., before, last] if last.kind.is_act() && !before.kind.is_act() && !before.kind.is_input() => {
            format!("{} {}", before.text(), last.text())
        }
        [.., last] => last.text(),
        [] => String::new(),
    }
}

/// The output shape of `layer` given its input (which `prev` describes), or why it does not
/// fit.
fn output(layer: &Layer, prev: &str, input: Shape) -> Result<Shape, String> {
    let shape = match &layer.kind {
        // A repeated `input` is reported by the caller; the shape passes through unchanged.
        Kind::InputVolume { .. } | Kind::InputFlat { .. } => input,
        Kind::Conv { filter, filters, stride, pad, groups, .. } => {
            needs_volume(&layer.kind, prev, input)?;
            if !input.d.is_multiple_of(*groups) {
                let divisors: Vec<String> = (2..=input.d)
                    .filter(|g| input.d.is_multiple_of(*g) && filters.is_multiple_of(*g))
                    .map(|g| g.to_string())
                    .collect();
                let fix = match divisors.as_slice() {
                    [] => String::new(),
                    d => format!(": `groups` may be {}", d.join(", ")),
                };
                return Err(format!(
                    "`{}` splits its input's {} channels in {groups} groups, but {groups} does not divide {}{fix}",
                    layer.kind, input.d, input.d
                ));
            }
            let out = windows(&layer.kind, input, *filter, *stride, *pad, *filters)?;
            let params = (filter.w * filter.h)
                .saturating_mul(input.d / groups)
                .saturating_mul(*filters)
                .saturating_add(*filters);
            if params > MAX_VALUES {
                return Err(format!(
                    "`{}` would have {params} parameters; the most a layer may have is {MAX_VALUES}",
                    layer.kind
                ));
            }
            out
        }
        Kind::Pool { window, stride, pad, .. } => {
            needs_volume(&layer.kind, prev, input)?;
            windows(&layer.kind, input, *window, *stride, *pad, input.d)?
        }
        Kind::Fc { out, .. } => {
            let params = (input.len() + 1).saturating_mul(*out);
            if params > MAX_VALUES {
                return Err(format!(
                    "`{}` on {} inputs would have {params} parameters; the most a layer may have is {MAX_VALUES}",
                    layer.kind,
                    input.len()
                ));
            }
            Shape::vector(*out)
        }
        Kind::Act(_)
        | Kind::Dropout { .. }
        | Kind::Sparsity { .. }
        | Kind::BatchNorm
        | Kind::Lrn { .. }
        | Kind::Loss(..)
        | Kind::Residual
        | Kind::Concat
        | Kind::Heads { .. }
        | Kind::Invalid => input,
        Kind::Softmax => {
            if !input.flat && (input.w, input.h) != (1, 1) {
                return Err(format!(
                    "`softmax` needs a flat vector of class scores, but `{prev}` gives a {input} volume: put `fc(N)` before it, N being the number of classes"
                ));
            }
            Shape::vector(input.len())
        }
    };
    if shape.len() > MAX_VALUES {
        return Err(format!(
            "`{}` would output {} values; the most a layer may hold is {MAX_VALUES}",
            layer.kind,
            shape.len()
        ));
    }
    Ok(shape)
}

fn needs_volume(kind: &Kind, prev: &str, input: Shape) -> Result<(), String> {
    if !input.flat {
        return Ok(());
    }
    let mut message = format!(
        "`{kind}` needs a volume (width x height x depth), but `{prev}` gives a flat vector of {} values",
        input.w
    );
    if prev.starts_with("input(") {
        let n = input.w;
        let side = |n: usize| (1..=n).find(|s| s * s >= n).filter(|s| s * s == n);
        let hint = match (side(n), n.is_multiple_of(3).then(|| side(n / 3)).flatten()) {
            (Some(s), _) => format!(": declare the input as a volume, such as `input({s}x{s}x1)`"),
            (None, Some(s)) => {
                format!(": declare the input as a volume, such as `input({s}x{s}x3)`")
            }
            _ => ": declare the input as a volume, `input(WxHxD)`".to_string(),
        };
        message.push_str(&hint);
    }
    Err(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The model written `text`, which must parse.
    pub(crate) fn model(text: &str) -> Model {
        let (model, errors) = crate::parse::parse(format!("struct M < {text} >").parse().unwrap()).unwrap();
        assert!(errors.is_none(), "`{text}` should parse");
        model
    }

    fn shapes(text: &str) -> Result<Vec<String>, Vec<String>> {
        let model = model(text);
        check(&model)
            .map(|checked| model.layers.iter().map(|l| checked.output(l).to_string()).collect())
            .map_err(|e| e.into_iter().map(|e| e.to_string()).collect())
    }

    fn error(text: &str) -> String {
        let errors = shapes(text).err().unwrap_or_else(|| panic!("`{text}` should not check"));
        assert_eq!(errors.len(), 1, "one mistake, one error: {errors:?}");
        errors[0].clone()
    }

    #[test]
    fn lenet5_shapes_follow_the_rule() {
        let s = shapes("input(28x28x1) conv(5x5, 6, pad=2) relu pool(2) conv(5x5, 16) relu pool(2) fc(120) relu fc(84) relu fc(10) softmax").unwrap();
        assert_eq!(
            s,
            [
                "28x28x1", "28x28x6", "28x28x6", "14x14x6", "10x10x16", "10x10x16", "5x5x16", "120", "120", "84", "84",
                "10", "10"
            ]
        );
    }

    #[test]
    fn strides_padding_and_rectangles() {
        // AlexNet's first layer: (227 − 11)/4 + 1 = 55; overlapping pooling (55 − 3)/2 + 1 = 27.
        let s = shapes("input(227x227x3) conv(11x11, 96, stride=4) relu maxpool(3, stride=2) fc(10) softmax").unwrap();
        assert_eq!(s[1], "55x55x96");
        assert_eq!(s[3], "27x27x96");
        // Width (32 − 5 + 2·0)/3 + 1 = 10, height (16 − 3 + 2·1)/1 + 1 = 16.
        let s = shapes("input(32x16x3) conv(5x3, 4, stride=3x1, pad=0x1) fc(2) softmax").unwrap();
        assert_eq!(s[1], "10x16x4", "{s:?}");
    }

    #[test]
    fn the_readme_typo_shows_the_arithmetic_and_fixes() {
        let e = error("input(28x28x1) conv(5x5, 6, stride=2) relu pool(2) fc(10) softmax");
        assert!(e.contains("`conv(5x5, 6, stride=2)` does not tile its 28x28x1 input"), "{e}");
        assert!(e.contains("width and height: (28 − 5 + 2·0)/2 + 1 = 12.5"), "{e}");
        assert!(e.contains("`conv(5x5, 6)` gives 24x24x6"), "{e}");
        assert!(e.contains("`conv(6x6, 6, stride=2)` gives 12x12x6"), "{e}");
    }

    #[test]
    fn a_fixing_pad_is_offered_when_one_exists() {
        let e = error("input(32x32x3) conv(3x3, 8, stride=3) fc(10) softmax");
        assert!(e.contains("(32 − 3 + 2·0)/3 + 1 = 10.67"), "{e}");
        assert!(e.contains("`conv(3x3, 8, stride=3, pad=1)` gives 11x11x8"), "{e}");
        // With stride 2, pad 1 leaves only padding unread, as in ResNet.
        let e = error("input(32x32x3) conv(3x3, 8, stride=2) fc(10) softmax");
        assert!(e.contains("`conv(3x3, 8, stride=2, pad=1)` gives 16x16x8"), "{e}");
        assert!(e.contains("the last input values unread"), "{e}");
    }

    #[test]
    fn filter_larger_than_input() {
        let e = error("input(3x3x8) conv(5x5, 16) fc(2) softmax");
        assert!(e.contains("the 5x5 filter is larger"), "{e}");
        assert!(e.contains("`conv(5x5, 16, pad=1)` gives 1x1x16"), "{e}");
    }

    #[test]
    fn pooling_must_tile() {
        let e = error("input(5x5x1) pool(2) fc(2) softmax");
        assert!(e.contains("(5 − 2)/2 + 1 = 2.5"), "{e}");
        assert!(e.contains("`pool(3, stride=2)` gives 2x2x1"), "{e}");
        // Only the failing axis is shown.
        let e = error("input(6x5x1) pool(2) fc(2) softmax");
        assert!(e.contains("height: (5 − 2)/2 + 1 = 2.5") && !e.contains("width"), "{e}");
    }

    #[test]
    fn pooling_fixes_tile_without_skipping() {
        let e = error("input(8x8x1) pool(3) fc(2)");
        assert!(e.contains("`pool(2)` gives 4x4x1") || e.contains("`pool(4)` gives 2x2x1"), "{e}");
        assert!(!e.contains("stride=4"), "{e}");
        let e = error("input(6x6x2) avgpool(8) fc(2)");
        assert!(e.contains("`avgpool(6)` gives 1x1x2"), "{e}");
    }

    #[test]
    fn structure_errors() {
        assert!(error("conv(3x3, 2) fc(2) softmax").contains("starts with `input"));
        assert!(error("input(4) input(4) fc(2) softmax").contains("only once"));
        assert!(
            error("input(4) fc(2) softmax fc(2)").contains("`softmax` must be the last layer, but `fc(2)` follows it")
        );
        assert!(error("input(4)").contains("no layers after its input"));
        // A loss alone, or after a missing input: one error, for the input (found by fuzzing).
        assert!(error("loss(bce)").contains("starts with `input"));
        assert!(error("relu loss(mse)").contains("starts with `input"));
        assert!(error("input(4) loss(mse)").contains("no layers after its input"));
        assert!(error("input(784) conv(3x3, 2) fc(2) softmax").contains("such as `input(28x28x1)`"));
        assert!(
            error("input(8x8x1) fc(10) conv(3x3, 2) softmax").contains("but `fc(10)` gives a flat vector of 10 values")
        );
        assert!(error("input(8x8x1) conv(3x3, 2) softmax").contains("put `fc(N)` before it"));
        assert!(error("input(100000x100000x1) fc(2) softmax").contains("the most a layer may hold"));
        assert!(error("input(4096x4096x1) fc(4096) softmax").contains("parameters"));
    }

    #[test]
    fn windows_may_skip_only_padding_or_what_the_stride_skips() {
        // ResNet's downsampling: (32 − 3 + 2·1)/2 + 1 = 16.5, only padding is left unread.
        let s = shapes("input(32x32x3) conv(3x3, 8, stride=2, pad=1) conv(1x1, 8, stride=2) fc(2) softmax").unwrap();
        assert_eq!(s[1..3], ["16x16x8", "8x8x8"]);
        // Overlapping pooling on an even input would leave the last column unread.
        let e = error("input(32x32x3) maxpool(3, stride=2) fc(2) softmax");
        assert!(e.contains("(32 − 3)/2 + 1 = 15.5"), "{e}");
        let s = shapes("input(31x31x3) maxpool(3, stride=2) avgpool(3, stride=2) l2pool(3, stride=2) fc(2) softmax")
            .unwrap();
        assert_eq!(s[1..4], ["15x15x3", "7x7x3", "3x3x3"]);
    }

    #[test]
    fn the_loss_follows_the_last_layer_or_must_fit_it() {
        let loss = |text: &str| check(&model(text)).map(|c| c.loss).map_err(|e| e.to_string());
        assert_eq!(loss("input(4) fc(3) softmax"), Ok(LossKind::CrossEntropy));
        assert_eq!(loss("input(4) fc(3) softmax loss(cross_entropy)"), Ok(LossKind::CrossEntropy));
        assert_eq!(loss("input(4) fc(1) sigmoid"), Ok(LossKind::Bce));
        assert_eq!(loss("input(4) fc(1) sigmoid loss(mse)"), Ok(LossKind::Mse));
        assert_eq!(loss("input(4) fc(2)"), Ok(LossKind::Mse));
        assert_eq!(loss("input(8x8x1) conv(3x3, 1, pad=1) tanh"), Ok(LossKind::Mse));
        assert!(error("input(4) fc(3) softmax loss(mse)").contains("`loss(mse)` does not fit a `softmax` output"));
        assert!(error("input(4) fc(3) loss(cross_entropy)").contains("end it with `fc(N) softmax`"));
        assert!(error("input(4) fc(3) sigmoid loss(cross_entropy)").contains("`loss(bce)`"));
        assert!(error("input(4) fc(3) loss(bce)").contains("add `sigmoid` before the loss"));
        assert!(error("input(4) loss(mse) fc(3)").contains("`loss(mse)` ends the model, but `fc(3)` follows it"));
        assert!(error("input(4) fc(4) residual(fc(4) softmax)").contains("not inside a `residual` block"));
    }

    #[test]
    fn batchnorm_must_follow_a_layer() {
        assert!(error("input(4) batchnorm fc(2)").contains("straight after `input`"));
        assert!(error("input(4) fc(4) batchnorm batchnorm fc(2)").contains("follows another `batchnorm`"));
        let s = shapes("input(8x8x2) conv(3x3, 4) batchnorm relu fc(4) batchnorm fc(2)").unwrap();
        assert_eq!(s[2], "6x6x4");
    }

    #[test]
    fn residual_blocks_check_both_paths() {
        let s = shapes("input(8x8x4) residual(conv(3x3, 4, pad=1) relu conv(3x3, 4, pad=1)) relu residual(conv(3x3, 8, stride=2, pad=1), shortcut=conv(1x1, 8, stride=2)) fc(2)").unwrap();
        assert_eq!(s[1..4], ["8x8x4", "8x8x4", "4x4x8"]);
        let e = error("input(8x8x4) residual(conv(3x3, 8, stride=2, pad=1) relu conv(3x3, 8, pad=1)) fc(2)");
        assert!(e.contains("its layers turn 8x8x4 into 4x4x8"), "{e}");
        assert!(e.contains("shortcut=conv(1x1, 8, stride=2))`"), "{e}");
        let e = error("input(8x8x4) residual(conv(3x3, 8, pad=1), shortcut=conv(1x1, 8, stride=2)) fc(2)");
        assert!(e.contains("its layers give 8x8x8 and its shortcut gives 4x4x8"), "{e}");
        assert!(e.contains("`shortcut=conv(1x1, 8)` would give 8x8x8"), "{e}");
        let e = error("input(8x8x4) residual(conv(3x3, 4, pad=1) relu conv(3x3, 4)) fc(2)");
        assert!(e.contains("pad its convolutions"), "{e}");
        let e = error("input(8) residual(fc(4)) fc(2)");
        assert!(e.contains("shortcut=fc(4)"), "{e}");
        // A mistake inside a block is reported once, at its layer.
        let e = error("input(8x8x4) residual(conv(3x3, 4, stride=2)) fc(2)");
        assert!(e.contains("does not tile"), "{e}");
        // Blocks nest.
        let s = shapes("input(6x6x2) residual(residual(conv(3x3, 2, pad=1)) relu) fc(2)").unwrap();
        assert_eq!(s[1], "6x6x2");
    }

    #[test]
    fn one_shape_mistake_gives_one_error() {
        // The bad pool makes every later shape unknown; only it is reported.
        let e = shapes("input(5x5x1) pool(2) conv(3x3, 4) pool(2) fc(3) softmax").unwrap_err();
        assert_eq!(e.len(), 1, "{e:?}");
    }

    #[test]
    fn concat_stacks_branches_of_one_width_and_height() {
        let s = shapes(
            "input(8x8x3) concat(conv(1x1, 4), conv(3x3, 8, pad=1) relu, maxpool(3, stride=1, pad=1)) relu fc(2)",
        )
        .unwrap();
        assert_eq!(s[1..3], ["8x8x15", "8x8x15"]);
        let s = shapes("input(8) concat(fc(3), fc(5) relu, concat(fc(1), fc(1))) fc(2)").unwrap();
        assert_eq!(s[1], "10");
        let e = error(
            "input(32768x32768x1) concat(avgpool(2, stride=1), avgpool(2, stride=1), avgpool(2, stride=1)) fc(2)",
        );
        assert!(e.contains("`concat` would output 3221028867 values"), "{e}");
        let e = error("input(8x8x3) concat(conv(1x1, 4), conv(3x3, 8) relu, maxpool(3, stride=1)) fc(2)");
        assert!(e.contains("branch 1 gives 8x8x4, branch 2 gives 6x6x8, branch 3 gives 6x6x3"), "{e}");
        assert!(e.contains("in branch 2, `conv(3x3, 8, pad=1)` keeps the width and height"), "{e}");
        assert!(e.contains("in branch 3, `pool(3, stride=1, pad=1)` keeps the width and height"), "{e}");
        assert!(error("input(8) concat(fc(2) softmax, fc(2)) fc(2)").contains("not inside a `concat` branch"));
        // A mistake inside a branch is reported once, at its layer.
        let e = error("input(8x8x3) concat(conv(3x3, 4, stride=2), conv(1x1, 4)) fc(2)");
        assert!(e.contains("does not tile"), "{e}");
    }

    #[test]
    fn pools_pad_as_the_resnet_stem_does() {
        let s = shapes("input(32x32x3) conv(7x7, 8, stride=2, pad=3) maxpool(3, stride=2, pad=1) avgpool(3, stride=1, pad=1) fc(2)").unwrap();
        assert_eq!(s[1..4], ["16x16x8", "8x8x8", "8x8x8"]);
        let e = error("input(32x32x3) maxpool(3, stride=2) fc(2) softmax");
        assert!(e.contains("`pool(3, stride=2, pad=1)` gives 16x16x3"), "{e}");
    }

    #[test]
    fn groups_must_divide_the_input_depth() {
        let s = shapes("input(8x8x6) conv(3x3, 6, pad=1, groups=6) relu6 conv(1x1, 4, groups=2) fc(2)").unwrap();
        assert_eq!(s[1..4], ["8x8x6", "8x8x6", "8x8x4"]);
        let e = error("input(8x8x6) conv(3x3, 8, groups=4) fc(2)");
        assert!(
            e.contains("splits its input's 6 channels in 4 groups, but 4 does not divide 6: `groups` may be 2"),
            "{e}"
        );
    }

    #[test]
    fn a_shape_error_shows_the_trail_and_the_layers_that_lost_the_size() {
        let e = error(
            "input(7x7x3) conv(3x3, 8, pad=1) relu conv(3x3, 8) relu conv(3x3, 8) relu conv(3x3, 8) relu pool(2) fc(2)",
        );
        assert!(e.contains("the 2x2 window is larger than its 1x1 input"), "{e}");
        assert!(
            e.contains("\ntrail: `input(7x7x3)` → `conv(3x3, 8, pad=1)` 7x7x8 → `conv(3x3, 8)` 5x5x8 → `conv(3x3, 8)` 3x3x8 → `conv(3x3, 8)` 1x1x8 → `pool(2)` ✗\n"),
            "{e}"
        );
        assert!(e.contains("help: `conv(3x3, 8)` turned 3x3x8 into 1x1x8: `conv(3x3, 8, pad=1)` keeps 3x3, or `conv(3x3, 8)` turned 5x5x8 into 3x3x8"), "{e}");
        // Inside a block, the trail names the branch.
        let e = error("input(8x8x4) conv(1x1, 4) concat(conv(1x1, 2), conv(3x3, 4, stride=2)) fc(2)");
        assert!(
            e.contains(
                "trail: `input(8x8x4)` → `conv(1x1, 4)` 8x8x4 → `concat` branch 2: → `conv(3x3, 4, stride=2)` ✗"
            ),
            "{e}"
        );
    }

    #[test]
    fn mistakes_independent_of_a_bad_layer_are_reported_with_it() {
        let (model, parsed) = crate::parse::parse(
            "struct M < input(28x28x1) conv(5x5, 6, stride=2) relu conv(3x3, 8, padding=1) fc(10) softmax loss(mse) >"
                .parse()
                .unwrap(),
        )
        .unwrap();
        assert!(parsed.unwrap().to_string().contains("did you mean `pad`?"));
        let errors: Vec<String> = check(&model).err().unwrap().into_iter().map(|e| e.to_string()).collect();
        assert_eq!(errors.len(), 1, "the loss, after the bad layer, is not judged: {errors:?}");
        assert!(errors[0].contains("does not tile its 28x28x1 input"), "{errors:?}");
        // A bad first layer leaves nothing else to report.
        let (model, _) = crate::parse::parse("struct M < input(28x28) conv(3x3, 2) fc(2) >".parse().unwrap()).unwrap();
        assert!(check(&model).is_ok());
    }

    #[test]
    fn heads_check_each_head_from_the_trunk_and_take_its_loss() {
        let checked = check(&model(
            "input(8x8x1) conv(3x3, 4) relu heads(a: fc(3) softmax, b: conv(3x3, 2) fc(1) sigmoid loss(bce, weight=0.5), c: fc(2))",
        ))
        .unwrap();
        assert_eq!(checked.heads, [(LossKind::CrossEntropy, 1.0), (LossKind::Bce, 0.5), (LossKind::Mse, 1.0)]);
        let m = model("input(8x8x1) conv(3x3, 4) heads(a: fc(3) softmax, b: conv(3x3, 2) relu)");
        let checked = check(&m).unwrap();
        assert_eq!(checked.output(&m.layers[2]), Shape::volume(6, 6, 4), "`heads` passes the trunk's output on");
        assert_eq!(checked.output(&m.layers[2].branches[1][0]), Shape::volume(4, 4, 2));
        assert!(check(&model("input(4) fc(2) softmax")).unwrap().heads.is_empty());
    }

    #[test]
    fn heads_refuse_what_does_not_belong_in_them() {
        assert!(
            error("input(4) heads(a: fc(2), b: fc(3)) relu").contains("`heads` ends the model, but `relu` follows it")
        );
        assert!(error("input(4) residual(fc(4) heads(a: fc(2)))").contains("cannot stand inside a `residual` block"));
        assert!(error("input(4) heads(a: fc(2) heads(b: fc(1)))").contains("cannot stand inside a head"));
        assert!(error("input(4) fc(4) softmax heads(a: fc(2))").contains("ends a head, not the trunk"));
        assert!(error("input(4) fc(4) loss(mse) heads(a: fc(2))").contains("ends a head, not the trunk"));
        assert!(error("input(4) heads(a: fc(2), a: fc(3))").contains("two heads are named `a`"));
        assert!(error("input(4) heads(eval: fc(2))").contains("`eval` cannot name a head"));
        assert!(error("input(4) heads(_x: fc(2))").contains("`_x` cannot name a head"));
        assert!(error("input(4) heads(a: fc(2), b: relu)").contains("head `b` has no output layer of its own"));
        assert!(error("input(4) heads(a: loss(mse))").contains("head `a` has no output layer"));
        assert!(error("input(4) heads(a: fc(2) softmax relu)").contains("the last layer of head `a`, but `relu`"));
        assert!(error("input(4) heads(a: fc(2) loss(bce))").contains("but head `a` ends with `fc(2)`"));
        assert!(error("input(4) heads(a: fc(2) softmax loss(mse))").contains("end head `a` without `softmax`"));
        assert!(error("input(4) fc(2) loss(mse, weight=2)").contains("this model has one output and one loss"));
        assert!(error("input(4) heads(a: fc(2) loss(mse) fc(2))").contains("`loss(mse)` ends head `a`, but `fc(2)`"));
        assert!(error("input(4) heads(a: fc(2) conv(3x3, 2))").contains("needs a volume"));
        // Mistakes in two heads are both reported.
        let errors = shapes("input(4) heads(a: fc(2) loss(bce), b: relu)").unwrap_err();
        assert_eq!(errors.len(), 2, "{errors:?}");
    }
}
