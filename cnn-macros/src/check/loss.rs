//! The loss a model trains with, from its last layers, or why the named loss does not fit them.

use crate::errors::Errors;
use crate::ir::{ActKind, Kind, Layer, LossKind};

/// The loss the model trains with, from its last layers, or the error saying why the named
/// loss does not fit them.
pub fn head(layers: &[Layer], errors: &mut Errors) -> Option<LossKind> {
    let last = layers.len() - 1;
    for (i, layer) in layers.iter().enumerate() {
        if i < last && matches!(layer.kind, Kind::Loss(_)) {
            errors
                .spanned(layer, format!("`{}` ends the model, but `{}` follows it", layer.kind, layers[i + 1].text()));
            return None;
        }
        if layer.kind == Kind::Softmax && i < last && !matches!(layers[i + 1].kind, Kind::Loss(_)) {
            errors
                .spanned(layer, format!("`softmax` must be the last layer, but `{}` follows it", layers[i + 1].text()));
            return None;
        }
    }
    let (named, output) = match &layers[last].kind {
        Kind::Loss(loss) if last > 0 => (Some((*loss, &layers[last])), last - 1),
        _ => (None, last),
    };
    if output == 0 {
        if !layers[0].kind.is_input() {
            // The missing `input` is reported already: one mistake, one error.
            return None;
        }
        errors.spanned(
            &layers[last],
            "the model has no layers after its input: add the layers it computes, such as `fc(10) softmax`",
        );
        return None;
    }
    let final_kind = &layers[output].kind;
    let (loss, fits) = match (final_kind, named.map(|(l, _)| l)) {
        (Kind::Softmax, None | Some(LossKind::CrossEntropy)) => (LossKind::CrossEntropy, Ok(())),
        (Kind::Softmax, Some(other)) => (other, Err(format!(
            "`loss({})` does not fit a `softmax` output: softmax is trained with `loss(cross_entropy)`, the default; for {} end the model without `softmax`{}",
            other.name(),
            if other == LossKind::Mse { "mean squared error," } else { "binary cross-entropy," },
            if other == LossKind::Bce { " and with `sigmoid`" } else { "" },
        ))),
        (Kind::Act(ActKind::Sigmoid), None | Some(LossKind::Bce)) => (LossKind::Bce, Ok(())),
        (Kind::Act(ActKind::Sigmoid), Some(LossKind::Mse)) => (LossKind::Mse, Ok(())),
        (_, None | Some(LossKind::Mse)) => (LossKind::Mse, Ok(())),
        (_, Some(LossKind::CrossEntropy)) => (LossKind::CrossEntropy, Err(format!(
            "`loss(cross_entropy)` needs class probabilities, but the model ends with `{}`: end it with `fc(N) softmax`, N being the number of classes{}",
            layers[output].text(),
            if *final_kind == Kind::Act(ActKind::Sigmoid) { ", or train the sigmoid outputs with `loss(bce)`" } else { "" }
        ))),
        (_, Some(LossKind::Bce)) => (LossKind::Bce, Err(format!(
            "`loss(bce)` needs probabilities from `sigmoid`, but the model ends with `{}`: add `sigmoid` before the loss",
            layers[output].text()
        ))),
    };
    match fits {
        Ok(()) => Some(loss),
        Err(message) => {
            let (_, at) = named.expect("only a named loss can misfit");
            errors.spanned(at, message);
            None
        }
    }
}
