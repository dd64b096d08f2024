//! The small models the targets load files into and call the API on: one of each loss, and one
//! with batch normalisation (an `i64` count tensor, running statistics) and dropout (a noise
//! counter in checkpoints).

use cnn::cnn;

cnn! {
    /// Convolution, pooling and a softmax classifier.
    pub struct Small < input(8x8x1) conv(3x3, 4) relu pool(2) fc(10) softmax >
}

cnn! {
    /// Batch normalisation and dropout.
    pub struct Normed <
        input(8x8x1) conv(3x3, 4, bias=false) batchnorm relu pool(2) fc(16) relu dropout(0.5) fc(10) softmax
    >
}

cnn! {
    /// A linear regression: mean squared error.
    pub struct Regressor < input(4) fc(3) >
}

cnn! {
    /// One sigmoid output: binary cross-entropy.
    pub struct Binary < input(4) fc(1) sigmoid >
}

/// A batch of `n` samples for a model of `input_len` values per sample, with values in [0, 1].
pub fn batch(n: usize, input_len: usize) -> Vec<f32> {
    (0..n * input_len).map(|i| ((i * 7919) % 251) as f32 / 251.0).collect()
}

/// `n` labels below `classes`.
pub fn labels(n: usize, classes: usize) -> Vec<usize> {
    (0..n).map(|i| (i * 3) % classes).collect()
}
