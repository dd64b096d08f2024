//! Window layers (`conv`, the pools): their output by `W2 = (W1 − F + 2P)/S + 1` along each
//! axis, or an error showing the arithmetic, with the nearest padding, stride or window that fit.

use cnn_shape::Shape;

use crate::ir::{Kind, Pair, PoolOp};

/// The width and height axes of a window layer reading `input`.
fn axes_of(input: Shape, window: Pair, stride: Pair, pad: Pair) -> [Axis; 2] {
    [
        Axis { input: input.w, window: window.w, stride: stride.w, pad: pad.w },
        Axis { input: input.h, window: window.h, stride: stride.h, pad: pad.h },
    ]
}

/// The output volume of `depth` channels when both axes fit.
fn output(axes: [Axis; 2], depth: usize) -> Option<Shape> {
    Some(Shape::volume(axes[0].output()?, axes[1].output()?, depth))
}

/// One axis of a window layer: its input length, window, stride and padding.
#[derive(Clone, Copy)]
struct Axis {
    input: usize,
    window: usize,
    stride: usize,
    pad: usize,
}

impl Axis {
    fn padded(&self) -> usize {
        self.input + 2 * self.pad
    }

    /// `(W − F + 2P)/S + 1` by the rule the runtime shares ([`cnn_shape::output_len`]): rounded
    /// down only where the division drops padding or what the stride skips anyway; `None` when
    /// the windows would leave input values at the edge unread.
    fn output(&self) -> Option<usize> {
        cnn_shape::output_len(self.input, self.window, self.stride, self.pad)
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
pub fn windows(
    kind: &Kind,
    input: Shape,
    window: Pair,
    stride: Pair,
    pad: Pair,
    depth: usize,
) -> Result<Shape, String> {
    let axes = axes_of(input, window, stride, pad);
    if let Some(shape) = output(axes, depth) {
        return Ok(shape);
    }
    let conv = matches!(kind, Kind::Conv { .. });
    let what = if conv { "filter" } else { "window" };
    // Convolutions always show their padding in the arithmetic, pools when they have one.
    let conv = conv || pad != Pair::square(0);
    let mut message = if axes.iter().any(|a| a.window > a.padded()) {
        let padded = format!("{}x{}", axes[0].padded(), axes[1].padded());
        let than = if pad == Pair::square(0) {
            format!("its {padded} input")
        } else {
            format!("its input padded to {padded}")
        };
        format!("`{kind}` does not fit its {input} input: the {}x{} {what} is larger than {than}", window.w, window.h)
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
        format!(
            "`{kind}` does not tile its {input} input: {}, not a whole number: the windows would leave the last input values unread",
            parts.join("; ")
        )
    };
    let fixes = fixes(kind, input, axes, depth);
    if !fixes.is_empty() {
        message.push_str(&format!("\nhelp: {}", fixes.join(", or ")));
    }
    Err(message)
}

/// The window, stride and padding of a window layer (`conv`, a pool).
pub fn geometry(kind: &Kind) -> Option<(Pair, Pair, Pair)> {
    match kind {
        Kind::Conv { filter, stride, pad, .. } => Some((*filter, *stride, *pad)),
        Kind::Pool { window, stride, pad, .. } => Some((*window, *stride, *pad)),
        _ => None,
    }
}

/// `kind`, a stride-1 window layer of odd window sizes that may pad (not `l2pool`), padded
/// so that it keeps its input's width and height; `None` when it does already, or cannot.
pub fn size_keeping(kind: &Kind) -> Option<Kind> {
    if matches!(kind, Kind::Pool { op: PoolOp::L2, .. }) {
        return None;
    }
    let (window, stride, pad) = geometry(kind)?;
    let keep = |f: usize| (f % 2 == 1).then_some((f - 1) / 2);
    let kept = Pair { w: keep(window.w)?, h: keep(window.h)? };
    (stride == Pair::square(1) && kept != pad).then(|| reshaped(kind, window, stride, kept))
}

/// `kind`, a window layer, with another window, stride and padding.
pub fn reshaped(kind: &Kind, window: Pair, stride: Pair, pad: Pair) -> Kind {
    let mut kind = kind.clone();
    if let Kind::Conv { filter: w, stride: s, pad: p, .. } | Kind::Pool { window: w, stride: s, pad: p, .. } = &mut kind
    {
        (*w, *s, *p) = (window, stride, pad);
    }
    kind
}

/// Nearby layers that fit: another padding, stride or window, each with the shape it gives.
fn fixes(kind: &Kind, input: Shape, axes: [Axis; 2], depth: usize) -> Vec<String> {
    // Searches outward from `start` (larger first on ties) for a value that makes `fits` true.
    let nearest = |start: usize, lowest: usize, highest: usize, fits: &dyn Fn(usize) -> bool| -> Option<usize> {
        (0..=highest.saturating_sub(lowest).max(start.saturating_sub(lowest)))
            .flat_map(|d| [start.checked_add(d), start.checked_sub(d)])
            .flatten()
            .find(|&v| (lowest..=highest).contains(&v) && fits(v))
    };
    let per_axis =
        |change: &dyn Fn(Axis, usize) -> Axis, start: &dyn Fn(Axis) -> usize, lowest: usize| -> Option<Pair> {
            let fit = |axis: Axis| {
                let highest = axis.padded() + axis.window + 2;
                nearest(start(axis), lowest, highest, &|v| change(axis, v).output().is_some())
            };
            Some(Pair { w: fit(axes[0])?, h: fit(axes[1])? })
        };
    let mut candidates = Vec::new();
    match kind {
        Kind::Conv { filter, stride, pad, .. } => {
            if let Some(p) = per_axis(&|a, v| Axis { pad: v, ..a }, &|a| a.pad, 0) {
                candidates.push(reshaped(kind, *filter, *stride, p));
            }
            if let Some(s) = per_axis(&|a, v| Axis { stride: v, ..a }, &|a| a.stride, 1) {
                candidates.push(reshaped(kind, *filter, s, *pad));
            }
            if let Some(f) = per_axis(&|a, v| Axis { window: v, ..a }, &|a| a.window, 1) {
                candidates.push(reshaped(kind, f, *stride, *pad));
            }
        }
        Kind::Pool { op, window, stride, pad } => {
            // Windows that tile the input exactly, nearest to the window written first.
            if let Some(k) = nearest(window.w, 1, input.w.max(input.h), &|k| {
                k >= 2
                    && k != window.w
                    && input.w.is_multiple_of(k)
                    && input.h.is_multiple_of(k)
                    && k <= input.w.min(input.h)
            }) {
                candidates.push(Kind::Pool {
                    op: *op,
                    window: Pair::square(k),
                    stride: Pair::square(k),
                    pad: Pair::square(0),
                });
            }
            if let Some(s) = per_axis(&|a, v| Axis { stride: v, ..a }, &|a| a.stride, 1) {
                candidates.push(Kind::Pool { op: *op, window: *window, stride: s, pad: *pad });
            }
            if let Some(w) = per_axis(&|a, v| Axis { window: v, ..a }, &|a| a.window, 1) {
                candidates.push(Kind::Pool { op: *op, window: w, stride: *stride, pad: *pad });
            }
            // Padding, as ResNet's stem pools, where the pool takes one (at most half its window).
            let fits = per_axis(&|a, v| Axis { pad: v, ..a }, &|a| a.pad, 0);
            if let Some(p) = fits.filter(|p| *op != PoolOp::L2 && p.w <= window.w / 2 && p.h <= window.h / 2) {
                candidates.push(Kind::Pool { op: *op, window: *window, stride: *stride, pad: p });
            }
        }
        _ => {}
    }
    candidates
        .into_iter()
        .filter(|c| c != kind)
        // A pooling window smaller than its stride would skip inputs: not a fix worth offering.
        .filter(|c| !matches!(c, Kind::Pool { window, stride, .. } if stride.w > window.w || stride.h > window.h))
        .filter_map(|c| {
            let (window, stride, pad) = geometry(&c)?;
            Some(format!("`{c}` gives {}", output(axes_of(input, window, stride, pad), depth)?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runtime_counts_outputs_as_the_macro_checks_them() {
        for input in 1..40usize {
            for window in 1..9usize {
                for stride in 1..6usize {
                    for pad in 0..4usize {
                        let axis = Axis { input, window, stride, pad };
                        let runtime = cnn_runtime::conv_output_len(input, window, stride, pad);
                        assert_eq!(axis.output(), runtime, "{input} {window} {stride} {pad}");
                    }
                }
            }
        }
    }
}
