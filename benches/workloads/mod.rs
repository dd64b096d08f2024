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

cnn! {
    /// ResNet-18 (He et al., 2015) for 224x224 colour images and 1,000 classes, as torchvision
    /// builds it: a 7x7/2 stem and 3/2 max pooling, four stages of two basic blocks (64, 128,
    /// 256 and 512 filters; the first block of each later stage halves the resolution, with a
    /// projection shortcut), global average pooling. 5.5 GFLOP per training sample.
    pub struct ResNet18 <
        input(224x224x3)
        conv(7x7, 64, stride=2, pad=3, bias=false) batchnorm relu maxpool(3, stride=2, pad=1)
        residual(conv(3x3, 64, pad=1, bias=false) batchnorm relu conv(3x3, 64, pad=1, bias=false) batchnorm) relu
        residual(conv(3x3, 64, pad=1, bias=false) batchnorm relu conv(3x3, 64, pad=1, bias=false) batchnorm) relu
        residual(
            conv(3x3, 128, stride=2, pad=1, bias=false) batchnorm relu conv(3x3, 128, pad=1, bias=false) batchnorm,
            shortcut=conv(1x1, 128, stride=2, bias=false) batchnorm
        ) relu
        residual(conv(3x3, 128, pad=1, bias=false) batchnorm relu conv(3x3, 128, pad=1, bias=false) batchnorm) relu
        residual(
            conv(3x3, 256, stride=2, pad=1, bias=false) batchnorm relu conv(3x3, 256, pad=1, bias=false) batchnorm,
            shortcut=conv(1x1, 256, stride=2, bias=false) batchnorm
        ) relu
        residual(conv(3x3, 256, pad=1, bias=false) batchnorm relu conv(3x3, 256, pad=1, bias=false) batchnorm) relu
        residual(
            conv(3x3, 512, stride=2, pad=1, bias=false) batchnorm relu conv(3x3, 512, pad=1, bias=false) batchnorm,
            shortcut=conv(1x1, 512, stride=2, bias=false) batchnorm
        ) relu
        residual(conv(3x3, 512, pad=1, bias=false) batchnorm relu conv(3x3, 512, pad=1, bias=false) batchnorm) relu
        avgpool(7) fc(1000) softmax
    >
}

/// `n` samples of fixed pseudo-random inputs in [-0.5, 0.5) and labels cycling through the
/// model's classes.
pub fn data<M: Model>(n: usize) -> (Vec<f32>, Vec<usize>) {
    let x = (0..n * M::INPUT_LEN).map(|i| ((i * 7919) % 255) as f32 / 255.0 - 0.5).collect();
    let y = (0..n).map(|i| i % M::classes()).collect();
    (x, y)
}
