//! The models and data of the speed workloads, shared by the benches that time them.
#![allow(dead_code)]

use cnn::{cnn, Model};

cnn! {
    /// The README's LeNet-5: 2.5 MFLOP per sample per training step.
    pub struct LeNet5 <
        input(28x28x1)
        conv(5x5, 6, pad=2) relu pool(2)
        conv(5x5, 16) relu pool(2)
        fc(120) relu fc(84) relu fc(10) softmax
    >
}

cnn! {
    /// The CIFAR-style net of the comparison with PyTorch: 153 MFLOP per sample per training
    /// step.
    pub struct CifarNet <
        input(32x32x3)
        conv(3x3, 32, pad=1) relu conv(3x3, 32, pad=1) relu pool(2)
        conv(3x3, 64, pad=1) relu conv(3x3, 64, pad=1) relu pool(2)
        fc(256) relu fc(10) softmax
    >
}

/// `n` samples of fixed pseudo-random inputs in [-0.5, 0.5) and labels cycling through the
/// model's classes.
pub fn data<M: Model>(n: usize) -> (Vec<f32>, Vec<usize>) {
    let x = (0..n * M::INPUT_LEN).map(|i| ((i * 7919) % 255) as f32 / 255.0 - 0.5).collect();
    let y = (0..n).map(|i| i % M::classes()).collect();
    (x, y)
}
