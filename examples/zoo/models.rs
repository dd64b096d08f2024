//! The networks of an introductory CNN course, each declared in one `cnn!` and shape-checked
//! while compiling. Their summary tables are in the README.

use cnn::cnn;

cnn! {
    /// Rosenblatt's perceptron in its logistic form: one weighted sum of two inputs and a
    /// sigmoid, trained with binary cross-entropy.
    pub struct Perceptron < input(2) fc(1) sigmoid >
}

cnn! {
    /// A multilayer perceptron for 28x28 digits: two hidden layers of tanh units and dropout.
    pub struct Mlp <
        input(784)
        fc(128) tanh dropout(0.2)
        fc(64) tanh
        fc(10) softmax
    >
}

cnn! {
    /// LeNet-5 for 28x28 digits, with ReLU and max pooling.
    pub struct LeNet5 <
        input(28x28x1)
        conv(5x5, 6, pad=2) relu pool(2)
        conv(5x5, 16) relu pool(2)
        fc(120) relu fc(84) relu fc(10) softmax
    >
}

cnn! {
    /// AlexNet's design scaled to 32x32 colour images: large first filters with a stride,
    /// local response normalisation, overlapping 3/2 max pooling, three stacked 3x3
    /// convolutions and a classifier regularised by dropout.
    pub struct AlexNet32 <
        input(32x32x3)
        conv(5x5, 64, stride=2, pad=1) relu lrn(5, k=2) maxpool(3, stride=2)
        conv(5x5, 192, pad=2) relu lrn(5, k=2) maxpool(3, stride=2)
        conv(3x3, 384, pad=1) relu
        conv(3x3, 256, pad=1) relu
        conv(3x3, 256, pad=1) relu
        fc(1024) relu dropout(0.5)
        fc(1024) relu dropout(0.5)
        fc(10) softmax
    >
}

cnn! {
    /// A small ResNet for 32x32 colour images: a 3x3 stem, three residual stages (identity
    /// shortcut, then two projections that halve the resolution and double the width), batch
    /// normalisation after every convolution (which therefore has no bias, as in PyTorch's
    /// ResNets), global average pooling.
    pub struct ResNet8 <
        input(32x32x3)
        conv(3x3, 16, pad=1, bias=false) batchnorm relu
        residual(
            conv(3x3, 16, pad=1, bias=false) batchnorm relu
            conv(3x3, 16, pad=1, bias=false) batchnorm
        ) relu
        residual(
            conv(3x3, 32, stride=2, pad=1, bias=false) batchnorm relu
            conv(3x3, 32, pad=1, bias=false) batchnorm,
            shortcut=conv(1x1, 32, stride=2, bias=false) batchnorm
        ) relu
        residual(
            conv(3x3, 64, stride=2, pad=1, bias=false) batchnorm relu
            conv(3x3, 64, pad=1, bias=false) batchnorm,
            shortcut=conv(1x1, 64, stride=2, bias=false) batchnorm
        ) relu
        avgpool(8) fc(10) softmax
    >
}

cnn! {
    /// ZFNet's changes to AlexNet, scaled to 32x32 colour images as AlexNet32 is: a smaller first
    /// filter with stride 1 (ZFNet's 7x7/2 where AlexNet had 11x11/4, found by visualising the
    /// first layer's features), a strided second convolution, and wider middle convolutions.
    pub struct ZFNet32 <
        input(32x32x3)
        conv(3x3, 64, pad=1) relu lrn(5, k=2) maxpool(3, stride=2, pad=1)
        conv(5x5, 192, stride=2, pad=2) relu lrn(5, k=2) maxpool(3, stride=2, pad=1)
        conv(3x3, 384, pad=1) relu
        conv(3x3, 384, pad=1) relu
        conv(3x3, 256, pad=1) relu
        maxpool(2)
        fc(1024) relu dropout(0.5)
        fc(1024) relu dropout(0.5)
        fc(10) softmax
    >
}

cnn! {
    /// GoogLeNet in miniature for 32x32 colour images: a stem, three inception modules (1x1,
    /// 3x3 and 5x5 convolutions and a pooled branch side by side, the wide ones after 1x1
    /// reductions), max pooling between the stages, global average pooling and dropout before the
    /// classifier.
    pub struct GoogLeNetMini <
        input(32x32x3)
        conv(3x3, 32, pad=1, bias=false) batchnorm relu
        maxpool(3, stride=2, pad=1)
        concat(
            conv(1x1, 16) relu,
            conv(1x1, 16) relu conv(3x3, 24, pad=1) relu,
            conv(1x1, 4) relu conv(5x5, 8, pad=2) relu,
            maxpool(3, stride=1, pad=1) conv(1x1, 8) relu
        )
        concat(
            conv(1x1, 24) relu,
            conv(1x1, 24) relu conv(3x3, 32, pad=1) relu,
            conv(1x1, 6) relu conv(5x5, 12, pad=2) relu,
            maxpool(3, stride=1, pad=1) conv(1x1, 12) relu
        )
        maxpool(3, stride=2, pad=1)
        concat(
            conv(1x1, 32) relu,
            conv(1x1, 24) relu conv(3x3, 48, pad=1) relu,
            conv(1x1, 8) relu conv(5x5, 16, pad=2) relu,
            maxpool(3, stride=1, pad=1) conv(1x1, 16) relu
        )
        avgpool(8) dropout(0.2) fc(10) softmax
    >
}
