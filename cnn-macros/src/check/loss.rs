//! The loss a model trains with, from its last layers, or why the named loss does not fit them;
//! for a model ending in `heads`, the loss and weight of each head.

use crate::errors::Errors;
use crate::ir::{ActKind, Float, Kind, Layer, LossKind};

/// What PyTorch's `Module` already names: a head of that name could not be an attribute of the
/// `Heads` module that holds it.
const TORCH_NAMES: [&str; 47] = [
    "T_destination",
    "add_module",
    "apply",
    "bfloat16",
    "buffers",
    "call_super_init",
    "children",
    "compile",
    "cpu",
    "cuda",
    "double",
    "dump_patches",
    "eval",
    "extra_repr",
    "float",
    "forward",
    "get_buffer",
    "get_extra_state",
    "get_parameter",
    "get_submodule",
    "half",
    "ipu",
    "load_state_dict",
    "modules",
    "mtia",
    "named_buffers",
    "named_children",
    "named_modules",
    "named_parameters",
    "parameters",
    "register_backward_hook",
    "register_buffer",
    "register_forward_hook",
    "register_forward_pre_hook",
    "register_module",
    "register_parameter",
    "requires_grad_",
    "set_extra_state",
    "set_submodule",
    "share_memory",
    "state_dict",
    "to",
    "to_empty",
    "train",
    "training",
    "xpu",
    "zero_grad",
];

/// The loss and weight of each output of the model whose layers are `layers`: one for a plain
/// model, one per head for a model ending in `heads`; `None` after any mistake, recorded in
/// `errors`.
pub fn losses(layers: &[Layer], errors: &mut Errors) -> Option<Vec<(LossKind, Float)>> {
    let Some((last, trunk)) = layers.split_last().filter(|(l, _)| matches!(l.kind, Kind::Heads { .. })) else {
        let (loss, weight) = head(layers, 1, "the model", errors)?;
        if weight != Float(1.0) {
            let at = layers.last().expect("a model with a loss has layers");
            errors.spanned(
                at,
                "`weight=` weighs a head's loss against the other heads' in `heads(...)`; this model has one output and one loss: remove `weight=`",
            );
            return None;
        }
        return Some(vec![(loss, weight)]);
    };
    let mut fits = true;
    for layer in trunk.iter().filter(|l| matches!(l.kind, Kind::Softmax | Kind::Loss(..))) {
        let message = format!(
            "`{}` ends a head, not the trunk the heads share: put it at the end of each head that needs it",
            layer.kind
        );
        errors.spanned(layer, message);
        fits = false;
    }
    let Kind::Heads { names } = &last.kind else { unreachable!("the last layer is `heads`") };
    let mut losses = Vec::with_capacity(names.len());
    for (i, (name, layers)) in names.iter().zip(&last.branches).enumerate() {
        fits &= head_name(name, &names[..i], errors);
        let what = format!("head `{name}`");
        if !layers.iter().any(|l| matches!(l.kind, Kind::Fc { .. } | Kind::Conv { .. } | Kind::Invalid)) {
            errors.spanned(
                name,
                format!("{what} has no output layer of its own, so its outputs would be the trunk's: give it one, as in `{name}: fc(10) softmax`"),
            );
            fits = false;
            continue;
        }
        match head(layers, 0, &what, errors) {
            Some(loss) => losses.push(loss),
            None => fits = false,
        }
    }
    fits.then_some(losses)
}

/// Whether `name` may name a head that follows the heads `before`; if not, the error is in
/// `errors`.
fn head_name(name: &proc_macro2::Ident, before: &[proc_macro2::Ident], errors: &mut Errors) -> bool {
    let text = name.to_string();
    let message = if before.contains(name) {
        format!("two heads are named `{name}`: each head needs a name of its own")
    } else if text.starts_with('_') || TORCH_NAMES.contains(&text.as_str()) {
        format!("`{name}` cannot name a head: PyTorch's modules use the name already (or keep names starting with `_` for themselves), and the PyTorch model names its heads as written: rename it")
    } else {
        return true;
    };
    errors.spanned(name, message);
    false
}

/// The loss of `layers`, the output part of a model (from index `first`: after its input) or a
/// head, which `what` names; or the error saying why the named loss does not fit them.
pub fn head(layers: &[Layer], first: usize, what: &str, errors: &mut Errors) -> Option<(LossKind, Float)> {
    let last = layers.len() - 1;
    for (i, layer) in layers.iter().enumerate() {
        if i < last && matches!(layer.kind, Kind::Loss(..)) {
            errors.spanned(layer, format!("`{}` ends {what}, but `{}` follows it", layer.kind, layers[i + 1].text()));
            return None;
        }
        if layer.kind == Kind::Softmax && i < last && !matches!(layers[i + 1].kind, Kind::Loss(..)) {
            let of = if first == 0 { format!(" of {what}") } else { String::new() };
            let next = layers[i + 1].text();
            errors.spanned(layer, format!("`softmax` must be the last layer{of}, but `{next}` follows it"));
            return None;
        }
    }
    let (named, output) = match &layers[last].kind {
        Kind::Loss(loss, weight) if last >= first => (Some((*loss, *weight, &layers[last])), last.checked_sub(1)),
        _ => (None, Some(last)),
    };
    let output = match output.filter(|&o| o >= first) {
        Some(output) => output,
        None if first == 0 => {
            errors.spanned(
                &layers[last],
                format!("{what} has only its loss: give it output layers before it, such as `fc(10) softmax`"),
            );
            return None;
        }
        None if !layers[0].kind.is_input() => return None, // The missing `input` is reported already.
        None => {
            errors.spanned(
                &layers[last],
                "the model has no layers after its input: add the layers it computes, such as `fc(10) softmax`",
            );
            return None;
        }
    };
    let weight = named.map_or(Float(1.0), |(_, w, _)| w);
    let final_kind = &layers[output].kind;
    let ends = format!("{what} ends with `{}`", layers[output].text());
    let (loss, fits) = match (final_kind, named.map(|(l, _, _)| l)) {
        (Kind::Softmax, None | Some(LossKind::CrossEntropy)) => (LossKind::CrossEntropy, Ok(())),
        (Kind::Softmax, Some(other)) => (other, Err(format!(
            "`loss({})` does not fit a `softmax` output: softmax is trained with `loss(cross_entropy)`, the default; for {} end {what} without `softmax`{}",
            other.name(),
            if other == LossKind::Mse { "mean squared error," } else { "binary cross-entropy," },
            if other == LossKind::Bce { " and with `sigmoid`" } else { "" },
        ))),
        (Kind::Act(ActKind::Sigmoid), None | Some(LossKind::Bce)) => (LossKind::Bce, Ok(())),
        (Kind::Act(ActKind::Sigmoid), Some(LossKind::Mse)) => (LossKind::Mse, Ok(())),
        (_, None | Some(LossKind::Mse)) => (LossKind::Mse, Ok(())),
        (_, Some(LossKind::CrossEntropy)) => (LossKind::CrossEntropy, Err(format!(
            "`loss(cross_entropy)` needs class probabilities, but {ends}: end it with `fc(N) softmax`, N being the number of classes{}",
            if *final_kind == Kind::Act(ActKind::Sigmoid) { ", or train the sigmoid outputs with `loss(bce)`" } else { "" }
        ))),
        (_, Some(LossKind::Bce)) => (LossKind::Bce, Err(format!(
            "`loss(bce)` needs probabilities from `sigmoid`, but {ends}: add `sigmoid` before the loss"
        ))),
    };
    match fits {
        Ok(()) => Some((loss, weight)),
        Err(message) => {
            let (_, _, at) = named.expect("only a named loss can misfit");
            errors.spanned(at, message);
            None
        }
    }
}
