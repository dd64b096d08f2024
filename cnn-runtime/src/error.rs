use core::fmt;
#[cfg(feature = "std")]
use std::path::PathBuf;

use crate::prelude::*;
use crate::Shape;

/// What went wrong in a runtime call. Every variant says what was expected and what was found.
///
/// `Debug` shows the variant's name before the message `Display` shows, such as
/// `File: out/w.safetensors: tensor `0.weight` is missing`, so that an error returned from
/// `fn main() -> Result<(), cnn::Error>` prints as a readable message.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An input buffer's length is not a whole number of samples of the model's input shape.
    #[error(
        "input has {found} values, which is not a whole number of samples of shape {shape} \
         ({per_sample} values each)"
    )]
    InputLength {
        /// The model's input shape.
        shape: Shape,
        /// Values per sample.
        per_sample: usize,
        /// Values given.
        found: usize,
    },
    /// An input value is NaN or infinite.
    #[error("input value {value} of sample {sample} (index {index} within the sample) is not finite")]
    NonFiniteInput {
        /// Index of the sample in the batch.
        sample: usize,
        /// Index of the value within the sample.
        index: usize,
        /// The value, as text (NaN, inf or -inf).
        value: String,
    },
    /// A batch holds no sample.
    #[error("the batch is empty: give at least one sample")]
    EmptyBatch,
    /// The number of labels differs from the number of samples.
    #[error("{samples} samples but {labels} labels")]
    LabelCount {
        /// Samples in the input.
        samples: usize,
        /// Labels given.
        labels: usize,
    },
    /// A label is not a valid class index.
    #[error("label {label} of sample {index} is out of range: the model has {classes} classes")]
    LabelOutOfRange {
        /// Index of the sample in the batch.
        index: usize,
        /// The label found.
        label: usize,
        /// Number of classes (outputs) of the model.
        classes: usize,
    },
    /// Dense targets are not one row of the model's outputs per sample.
    #[error("{found} target values for {samples} samples of {outputs} outputs: expected {}", product(.samples, .outputs))]
    TargetLength {
        /// Samples in the input.
        samples: usize,
        /// Outputs per sample.
        outputs: usize,
        /// Target values given.
        found: usize,
    },
    /// A dense target value is not one the loss can train towards.
    #[error("invalid target {output} of sample {sample}: {reason}")]
    InvalidTarget {
        /// Index of the sample in the batch.
        sample: usize,
        /// Index of the output within the sample.
        output: usize,
        /// The value found and why the loss cannot use it.
        reason: String,
    },
    /// A parameter buffer has the wrong length.
    #[error("expected {expected} parameters, found {found}")]
    ParamCount {
        /// Parameters of the model.
        expected: usize,
        /// Values given.
        found: usize,
    },
    /// An output buffer has the wrong length.
    #[error("output buffer holds {found} values, expected {expected}")]
    OutputLength {
        /// Values needed.
        expected: usize,
        /// Values given.
        found: usize,
    },
    /// A data, weight or checkpoint file could not be read, or is malformed.
    #[cfg(feature = "std")]
    #[error("{}: {reason}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Model bytes given in memory (to [`load_weights_from_bytes`](crate::io::load_weights_from_bytes)
    /// or [`read_meta_from_bytes`](crate::io::read_meta_from_bytes)) are malformed or do not fit
    /// the model.
    #[error("model bytes: {reason}")]
    Bytes {
        /// What is wrong with them.
        reason: String,
    },
    /// A training step would have left values that are not finite (a diverging run): the step
    /// was undone, and the model and optimizer are as they were before it.
    #[error(
        "training step {step} diverged in {layer}: {reason}; the step was undone and the model and optimizer \
         are as before it: lower the learning rate, or look for extreme inputs"
    )]
    Diverged {
        /// The model's count of training passes before the step ([`crate::Noise::step`]).
        step: u64,
        /// The first layer whose values went non-finite, as in the layer table: its index, its
        /// text and its PyTorch module name.
        layer: String,
        /// Which values: the loss, a layer's outputs, its gradient, or its updated parameters.
        reason: String,
    },
    /// The targets (or outputs) of one head of a multi-task model are wrong, as `error` says.
    #[error("head `{head}`: {error}")]
    Head {
        /// The head's name, as written in `heads(...)`.
        head: &'static str,
        /// What is wrong with them.
        error: Box<Error>,
    },
    /// Data-parallel training could not complete a step across its ranks: another rank failed
    /// (its own output says why), or the ranks could not exchange their gradients. The step
    /// was undone.
    #[error("distributed training: {reason}")]
    Distributed {
        /// What went wrong, naming the rank.
        reason: String,
    },
    /// An argument is outside its valid range.
    #[error("invalid {name}: {reason}")]
    InvalidArgument {
        /// The argument's name.
        name: &'static str,
        /// Why it is invalid.
        reason: String,
    },
}

impl Error {
    /// The variant's name, as written in the source.
    fn variant(&self) -> &'static str {
        match self {
            Error::InputLength { .. } => "InputLength",
            Error::NonFiniteInput { .. } => "NonFiniteInput",
            Error::EmptyBatch => "EmptyBatch",
            Error::LabelCount { .. } => "LabelCount",
            Error::LabelOutOfRange { .. } => "LabelOutOfRange",
            Error::TargetLength { .. } => "TargetLength",
            Error::InvalidTarget { .. } => "InvalidTarget",
            Error::ParamCount { .. } => "ParamCount",
            Error::OutputLength { .. } => "OutputLength",
            #[cfg(feature = "std")]
            Error::File { .. } => "File",
            Error::Bytes { .. } => "Bytes",
            Error::Diverged { .. } => "Diverged",
            Error::Head { .. } => "Head",
            Error::Distributed { .. } => "Distributed",
            Error::InvalidArgument { .. } => "InvalidArgument",
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {self}", self.variant())
    }
}

/// `a · b` as text, also when it passes `usize::MAX`.
fn product(a: &usize, b: &usize) -> String {
    (*a as u128 * *b as u128).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_the_variant_and_the_message_unescaped() {
        let missing = Error::File { path: "path/x.safetensors".into(), reason: "tensor `0.weight` is missing".into() };
        assert_eq!(format!("{missing:?}"), "File: path/x.safetensors: tensor `0.weight` is missing");
        // What `main` prints for an error it returns: `Error: ` and the `Debug` form.
        let length = Error::InputLength { shape: Shape::volume(28, 28, 1), per_sample: 784, found: 100 };
        assert_eq!(
            format!("{length:?}"),
            "InputLength: input has 100 values, which is not a whole number of samples of shape 28x28x1 \
             (784 values each)"
        );
        let two_lines = Error::File { path: "w".into(), reason: "written for\n    input(4) fc(2)".into() };
        assert_eq!(format!("{two_lines:?}"), "File: w: written for\n    input(4) fc(2)");
        assert_eq!(format!("{:?}", Error::EmptyBatch), "EmptyBatch: the batch is empty: give at least one sample");
        let head = Error::Head { head: "parity", error: Box::new(Error::LabelCount { samples: 2, labels: 3 }) };
        assert_eq!(format!("{head:?}"), "Head: head `parity`: 2 samples but 3 labels");
        let huge = Error::TargetLength { samples: usize::MAX, outputs: 2, found: 3 };
        assert!(huge.to_string().ends_with(&format!("expected {}", usize::MAX as u128 * 2)));
    }
}
