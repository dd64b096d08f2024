//! The shape check: every layer's output volume by `W2 = (W1 − F + 2P)/S + 1` (height likewise,
//! depth = number of filters), and an error with the arithmetic and a fix wherever a layer does
//! not fit what comes before it.

use std::fmt;

use crate::errors::Errors;
use crate::model::{Kind, Layer, Model};

/// Largest number of values a layer may output per sample, or hold as parameters.
pub const MAX_VALUES: u64 = 1 << 31;

/// A volume `w x h x d`, or a flat vector of `w` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    /// Width (columns), or the length of a flat vector.
    pub w: u64,
    /// Height (rows); 1 when flat.
    pub h: u64,
    /// Depth (channels); 1 when flat.
    pub d: u64,
    /// A flat vector rather than a volume.
    pub flat: bool,
}

impl Shape {
    /// Number of values.
    pub fn len(&self) -> u64 {
        self.w * self.h * self.d
    }

    fn vector(n: u64) -> Self {
        Shape { w: n, h: 1, d: 1, flat: true }
    }

    fn volume(w: u64, h: u64, d: u64) -> Self {
        Shape { w, h, d, flat: false }
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.flat {
            write!(f, "{}", self.w)
        } else {
            write!(f, "{}x{}x{}", self.w, self.h, self.d)
        }
    }
}

/// Every layer's output shape, in layer order, or every mistake found.
///
/// After a layer whose shape cannot be computed, the layers below it are not shape-checked
/// (their input is unknown), so one mistake gives one error.
pub fn check(model: &Model<'_>) -> syn::Result<Vec<Shape>> {
    let mut errors = Errors::default();
    let Some(first) = model.layers.first() else {
        return Err(syn::Error::new(model.open, "the model has no layers: start with `input(WxHxD)` or `input(N)`"));
    };
    let mut current = match first.kind {
        Kind::InputVolume { w, h, d } => Some(Shape::volume(w, h, d)),
        Kind::InputFlat { n } => Some(Shape::vector(n)),
        _ => {
            errors.spanned(first, format!("a model starts with `input(WxHxD)` or `input(N)`, found `{}`", first.kind));
            None
        }
    };
    if let Some(shape) = current {
        if shape.len() > MAX_VALUES {
            errors.spanned(
                first,
                format!("the input holds {} values; the most a layer may hold is {MAX_VALUES}", shape.len()),
            );
            current = None;
        }
    }
    let mut shapes = vec![current.unwrap_or(Shape::vector(0))];
    for (i, layer) in model.layers.iter().enumerate().skip(1) {
        if layer.kind.is_input() {
            errors.spanned(layer, "`input` may appear only once, as the first layer");
        } else if layer.kind == Kind::Softmax && i + 1 < model.layers.len() {
            let next = &model.layers[i + 1];
            errors.spanned(layer, format!("`softmax` must be the last layer, but `{}` follows it", next.kind));
        }
        if let Some(input) = current.filter(|_| !layer.kind.is_input()) {
            current = match output(layer, &describe(&model.layers[..i]), input) {
                Ok(shape) => Some(shape),
                Err(message) => {
                    errors.spanned(layer, message);
                    None
                }
            };
        }
        shapes.push(current.unwrap_or(Shape::vector(0)));
    }
    let last = model.layers.last().expect("the model has a layer");
    if errors.is_empty() && last.kind != Kind::Softmax {
        let what = if last.kind.is_input() {
            "has no layers after its input".to_string()
        } else {
            format!("ends with `{}`", last.kind)
        };
        errors.spanned(
            last,
            format!("the model {what}: end it with `softmax` after `fc(N)` (N = number of classes), so that it gives class probabilities to train on"),
        );
    }
    errors.finish(shapes)
}

/// The last layer of `layers` as the user wrote it, with the activation before it if it ends
/// in one, such as `fc(100) relu`.
fn describe(layers: &[Layer<'_>]) -> String {
    match layers {
        [.., before, last] if last.kind == Kind::Relu && before.kind != Kind::Relu && !before.kind.is_input() => {
            format!("{} {}", before.kind, last.kind)
        }
        [.., last] => last.kind.to_string(),
        [] => String::new(),
    }
}

/// The output shape of `layer` given its input (which `prev` describes), or why it does not
/// fit.
fn output(layer: &Layer<'_>, prev: &str, input: Shape) -> Result<Shape, String> {
    let shape = match &layer.kind {
        // A repeated `input` is reported by the caller; the shape passes through unchanged.
        Kind::InputVolume { .. } | Kind::InputFlat { .. } => input,
        Kind::Conv { filter, filters, stride, pad } => {
            needs_volume(&layer.kind, prev, input)?;
            let out = windows(&layer.kind, input, *filter, *stride, *pad, *filters)?;
            let params = filter[0] * filter[1] * input.d * filters + filters;
            if params > MAX_VALUES {
                return Err(format!(
                    "`{}` would have {params} parameters; the most a layer may have is {MAX_VALUES}",
                    layer.kind
                ));
            }
            out
        }
        Kind::MaxPool { window, stride } => {
            needs_volume(&layer.kind, prev, input)?;
            windows(&layer.kind, input, *window, *stride, [0, 0], input.d)?
        }
        Kind::Fc { out } => {
            let params = (input.len() + 1) * out;
            if params > MAX_VALUES {
                return Err(format!(
                    "`{}` on {} inputs would have {params} parameters; the most a layer may have is {MAX_VALUES}",
                    layer.kind,
                    input.len()
                ));
            }
            Shape::vector(*out)
        }
        Kind::Relu => input,
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
        let side = |n: u64| (1..=n).find(|s| s * s >= n).filter(|s| s * s == n);
        let hint = match (side(n), (n % 3 == 0).then(|| side(n / 3)).flatten()) {
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

/// One axis of a window layer: its input length, window, stride and padding.
#[derive(Clone, Copy)]
struct Axis {
    input: u64,
    window: u64,
    stride: u64,
    pad: u64,
}

impl Axis {
    fn padded(&self) -> u64 {
        self.input + 2 * self.pad
    }

    /// `(W − F + 2P)/S + 1` when it is a whole number of at least 1.
    fn output(&self) -> Option<u64> {
        let padded = self.padded();
        (self.window <= padded && (padded - self.window) % self.stride == 0)
            .then(|| (padded - self.window) / self.stride + 1)
    }

    /// The rule with the actual numbers, such as `(28 − 5 + 2·0)/2 + 1 = 12.5`.
    fn arithmetic(&self, with_pad: bool) -> String {
        let pad = if with_pad { format!(" + 2·{}", self.pad) } else { String::new() };
        let value = (self.padded() as f64 - self.window as f64) / self.stride as f64 + 1.0;
        let value = format!("{value:.2}");
        let value = value.trim_end_matches('0').trim_end_matches('.');
        format!("({} − {}{pad})/{} + 1 = {value}", self.input, self.window, self.stride)
    }
}

/// Output of a convolution (`depth` = number of filters) or pooling (`depth` = input depth)
/// layer, or the error with its arithmetic and the nearest fixes.
fn windows(
    kind: &Kind,
    input: Shape,
    window: [u64; 2],
    stride: [u64; 2],
    pad: [u64; 2],
    depth: u64,
) -> Result<Shape, String> {
    let axes = [
        Axis { input: input.w, window: window[0], stride: stride[0], pad: pad[0] },
        Axis { input: input.h, window: window[1], stride: stride[1], pad: pad[1] },
    ];
    if let (Some(w), Some(h)) = (axes[0].output(), axes[1].output()) {
        return Ok(Shape::volume(w, h, depth));
    }
    let conv = matches!(kind, Kind::Conv { .. });
    let what = if conv { "filter" } else { "window" };
    let mut message = if axes.iter().any(|a| a.window > a.padded()) {
        let padded = format!("{}x{}", axes[0].padded(), axes[1].padded());
        let than = if pad == [0, 0] { format!("its {padded} input") } else { format!("its input padded to {padded}") };
        format!("`{kind}` does not fit its {input} input: the {}x{} {what} is larger than {than}", window[0], window[1])
    } else {
        let mut parts: Vec<String> = Vec::new();
        let failing: Vec<(usize, &Axis)> = axes.iter().enumerate().filter(|(_, a)| a.output().is_none()).collect();
        let same = failing.len() == 2 && axes[0].arithmetic(conv) == axes[1].arithmetic(conv);
        for (i, axis) in &failing {
            let name = if same {
                "width and height"
            } else if *i == 0 {
                "width"
            } else {
                "height"
            };
            parts.push(format!("{name}: {}", axis.arithmetic(conv)));
            if same {
                break;
            }
        }
        format!("`{kind}` does not tile its {input} input: {}, not a whole number", parts.join("; "))
    };
    let fixes = fixes(kind, input, axes, depth);
    if !fixes.is_empty() {
        message.push_str(&format!("\nhelp: {}", fixes.join(", or ")));
    }
    Err(message)
}

/// Nearby layers that fit: another padding, stride or window, each with the shape it gives.
fn fixes(kind: &Kind, input: Shape, axes: [Axis; 2], depth: u64) -> Vec<String> {
    // Searches outward from `start` (larger first on ties) for a value that makes `fits` true.
    let nearest = |start: u64, lowest: u64, highest: u64, fits: &dyn Fn(u64) -> bool| -> Option<u64> {
        (0..=highest.saturating_sub(lowest).max(start.saturating_sub(lowest)))
            .flat_map(|d| [start.checked_add(d), start.checked_sub(d)])
            .flatten()
            .find(|&v| (lowest..=highest).contains(&v) && fits(v))
    };
    let per_axis = |change: &dyn Fn(Axis, u64) -> Axis, start: &dyn Fn(Axis) -> u64, lowest: u64| -> Option<[u64; 2]> {
        let mut out = [0; 2];
        for (i, axis) in axes.iter().enumerate() {
            let highest = axis.padded() + axis.window + 2;
            out[i] = nearest(start(*axis), lowest, highest, &|v| change(*axis, v).output().is_some())?;
        }
        Some(out)
    };
    let mut candidates = Vec::new();
    match kind {
        Kind::Conv { filter, filters, stride, pad } => {
            if let Some(p) = per_axis(&|a, v| Axis { pad: v, ..a }, &|a| a.pad, 0) {
                candidates.push(Kind::Conv { filter: *filter, filters: *filters, stride: *stride, pad: p });
            }
            if let Some(s) = per_axis(&|a, v| Axis { stride: v, ..a }, &|a| a.stride, 1) {
                candidates.push(Kind::Conv { filter: *filter, filters: *filters, stride: s, pad: *pad });
            }
            if let Some(f) = per_axis(&|a, v| Axis { window: v, ..a }, &|a| a.window, 1) {
                candidates.push(Kind::Conv { filter: f, filters: *filters, stride: *stride, pad: *pad });
            }
        }
        Kind::MaxPool { window, stride } => {
            if let Some(s) = per_axis(&|a, v| Axis { stride: v, ..a }, &|a| a.stride, 1) {
                candidates.push(Kind::MaxPool { window: *window, stride: s });
            }
            if let Some(w) = per_axis(&|a, v| Axis { window: v, ..a }, &|a| a.window, 1) {
                candidates.push(Kind::MaxPool { window: w, stride: *stride });
            }
        }
        _ => {}
    }
    candidates
        .into_iter()
        .filter(|c| c != kind)
        .filter_map(|c| {
            let (window, stride, pad) = match &c {
                Kind::Conv { filter, stride, pad, .. } => (*filter, *stride, *pad),
                Kind::MaxPool { window, stride } => (*window, *stride, [0, 0]),
                _ => return None,
            };
            let w = Axis { input: input.w, window: window[0], stride: stride[0], pad: pad[0] }.output()?;
            let h = Axis { input: input.h, window: window[1], stride: stride[1], pad: pad[1] }.output()?;
            Some(format!("`{c}` gives {}", Shape::volume(w, h, depth)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::ModelSyntax;

    fn shapes(text: &str) -> Result<Vec<String>, Vec<String>> {
        let syntax: ModelSyntax = syn::parse_str(&format!("struct M < {text} >")).unwrap();
        let model = Model::lower(&syntax).unwrap();
        check(&model)
            .map(|s| s.iter().map(ToString::to_string).collect())
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
        assert!(e.contains("`conv(3x3, 8, stride=3, pad=2)` gives 12x12x8"), "{e}");
        // With stride 2 no padding can make 32 − 3 + 2P even: no pad is offered.
        let e = error("input(32x32x3) conv(3x3, 8, stride=2) fc(10) softmax");
        assert!(!e.contains("pad="), "{e}");
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
    fn structure_errors() {
        assert!(error("conv(3x3, 2) fc(2) softmax").contains("starts with `input"));
        assert!(error("input(4) input(4) fc(2) softmax").contains("only once"));
        assert!(
            error("input(4) fc(2) softmax fc(2)").contains("`softmax` must be the last layer, but `fc(2)` follows it")
        );
        assert!(error("input(4) fc(2)").contains("ends with `fc(2)`"));
        assert!(error("input(4)").contains("no layers after its input"));
        assert!(error("input(784) conv(3x3, 2) fc(2) softmax").contains("such as `input(28x28x1)`"));
        assert!(
            error("input(8x8x1) fc(10) conv(3x3, 2) softmax").contains("but `fc(10)` gives a flat vector of 10 values")
        );
        assert!(error("input(8x8x1) conv(3x3, 2) softmax").contains("put `fc(N)` before it"));
        assert!(error("input(100000x100000x1) fc(2) softmax").contains("the most a layer may hold"));
        assert!(error("input(4096x4096x1) fc(4096) softmax").contains("parameters"));
    }

    #[test]
    fn one_shape_mistake_gives_one_error() {
        // The bad pool makes every later shape unknown; only it is reported.
        let e = shapes("input(5x5x1) pool(2) conv(3x3, 4) pool(2) fc(3) softmax").unwrap_err();
        assert_eq!(e.len(), 1, "{e:?}");
    }
}
