//! Blocks: the branches of `residual` and `concat`, checked from the block's input, and the
//! shape their outputs give together.

use cnn_shape::Shape;

use super::windows::size_keeping;
use super::{check_list, Cx, Misfit, Place, Step, MAX_VALUES};
use crate::ir::{list_text, Kind, Layer};

/// Checks a block's branch reading the block's `input`, its layers shown on the trail after
/// `label`; returns its output.
fn branch(layers: &[Layer], input: Shape, label: &str, place: Place, cx: &mut Cx) -> Option<Shape> {
    let mark = cx.trail.len();
    cx.trail.push(Step { text: label.to_string(), layer: None });
    let output = check_list(layers, Some(input), "the block's input", place, cx);
    cx.trail.truncate(mark);
    output
}

/// The output of a `residual` block reading `input`: its layers' output, which its shortcut
/// (the identity, or the layers given) must match.
pub fn residual(layer: &Layer, input: Shape, cx: &mut Cx) -> Result<Shape, Misfit> {
    let within = Place::Block("a `residual` block");
    let body = branch(layer.body(), input, "`residual` body:", within, cx);
    let shortcut = if layer.shortcut().is_empty() {
        Some(input)
    } else {
        branch(layer.shortcut(), input, "`residual` shortcut:", within, cx)
    };
    let (Some(body), Some(shortcut)) = (body, shortcut) else {
        return Err(Misfit::Reported);
    };
    if body == shortcut {
        return Ok(body);
    }
    let projection = projection(input, body);
    if !layer.shortcut().is_empty() {
        let fix = match projection {
            Some(p) => format!(": `shortcut={p}` would give {body}"),
            None => String::new(),
        };
        return Err(format!(
            "`residual` adds its shortcut to its layers' output, but its layers give {body} and its shortcut gives {shortcut}: both must give the same shape{fix}"
        ).into());
    }
    let layers = list_text(layer.body());
    let fix = match projection {
        Some(p) => format!(": project the shortcut the same way, as in `residual({layers}, shortcut={p})`"),
        None => format!(
            ": pad its convolutions so that they keep the width and height, or add a `shortcut=` that gives {body}"
        ),
    };
    Err(format!("`residual` adds its input to its layers' output, but its layers turn {input} into {body}{fix}").into())
}

/// The output of a `concat` block reading `input`: its branches' outputs stacked along the
/// depth (or joined, for flat vectors), which must all have the same width and height.
pub fn concat(layer: &Layer, input: Shape, cx: &mut Cx) -> Result<Shape, Misfit> {
    let within = Place::Block("a `concat` branch");
    let outputs: Vec<Option<Shape>> = (layer.branches.iter().enumerate())
        .map(|(k, b)| branch(b, input, &format!("`concat` branch {}:", k + 1), within, cx))
        .collect();
    let Some(outputs) = outputs.into_iter().collect::<Option<Vec<Shape>>>() else {
        return Err(Misfit::Reported);
    };
    let first = outputs[0];
    let stacked = if outputs.iter().all(|s| s.flat) {
        Some(Shape::vector(outputs.iter().map(Shape::len).sum()))
    } else if outputs.iter().all(|s| !s.flat && (s.w, s.h) == (first.w, first.h)) {
        Some(Shape::volume(first.w, first.h, outputs.iter().map(|s| s.d).sum()))
    } else {
        None
    };
    match stacked {
        Some(shape) if shape.len() > MAX_VALUES => {
            let message =
                format!("`concat` would output {} values; the most a layer may hold is {MAX_VALUES}", shape.len());
            return Err(message.into());
        }
        Some(shape) => return Ok(shape),
        None => {}
    }
    let listed: Vec<String> = outputs.iter().enumerate().map(|(k, s)| format!("branch {} gives {s}", k + 1)).collect();
    let mut message = format!(
        "`concat` stacks its branches' outputs along the depth, but {}: every branch must give the same width and height",
        listed.join(", ")
    );
    // The size to keep: the block's input's, when a branch keeps it, else the first branch's.
    let target = outputs.iter().find(|s| !s.flat && (s.w, s.h) == (input.w, input.h)).copied().unwrap_or(first);
    let fixes: Vec<String> = layer
        .branches
        .iter()
        .zip(&outputs)
        .enumerate()
        .filter(|(_, (_, s))| s.flat || (s.w, s.h) != (target.w, target.h))
        .flat_map(|(k, (branch, _))| keeping_fixes(branch, k + 1))
        .collect();
    if !fixes.is_empty() {
        message.push_str(&format!("\nhelp: {}", fixes.join(", and ")));
    }
    Err(message.into())
}

/// The heads of `heads`, each checked from the trunk's output `input`, which the layer passes on
/// (each head's output is its own).
pub fn heads(layer: &Layer, input: Shape, cx: &mut Cx) -> Result<Shape, Misfit> {
    let Kind::Heads { names } = &layer.kind else { unreachable!("a `heads` layer") };
    for (name, head) in names.iter().zip(&layer.branches) {
        branch(head, input, &format!("head `{name}`:"), Place::Head, cx);
    }
    Ok(input)
}

/// For the window layers of branch `k` that shrink their input with stride 1, the padding that
/// keeps its width and height, such as `in branch 2, \`conv(3x3, 8, pad=1)\``.
fn keeping_fixes(branch: &[Layer], k: usize) -> Vec<String> {
    branch
        .iter()
        .filter_map(|l| size_keeping(&l.kind))
        .map(|fixed| format!("in branch {k}, `{fixed}` keeps the width and height"))
        .collect()
}

/// A shortcut layer that turns `input` into `output`: a 1x1 convolution with a stride, or an
/// `fc` for vectors; `None` when no stride gives the output's width and height.
fn projection(input: Shape, output: Shape) -> Option<String> {
    if output.flat || input.flat {
        return Some(format!("fc({})", output.len()));
    }
    let stride = |from: usize, to: usize| (1..=from).find(|&s| cnn_shape::output_len(from, 1, s, 0) == Some(to));
    let (sw, sh) = (stride(input.w, output.w)?, stride(input.h, output.h)?);
    let s = if sw == sh { sw.to_string() } else { format!("{sw}x{sh}") };
    Some(if s == "1" { format!("conv(1x1, {})", output.d) } else { format!("conv(1x1, {}, stride={s})", output.d) })
}
