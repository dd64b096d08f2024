//! The experiment's networks: plain and residual, 20 and 56 layers deep (the depths of the
//! paper's figure 1), without and with batch normalisation. All share ResNet's layout for CIFAR
//! (He et al., 2015, section 4.2) on a 28x28 image: a stride-2 3x3 convolution to 14x14x16,
//! three stages of 3x3 convolutions at 14x14x16, 7x7x32 and 4x4x64 (each later stage starting
//! with a stride-2 convolution), global average pooling and a linear classifier. The depth counts
//! the layers with weights on the main path: 1 + 6n convolutions + 1 fc, with n = 3 or 9 pairs of
//! convolutions per stage. A residual net adds each pair's input to its output; where the shape
//! changes, a 1x1 stride-2 convolution projects the shortcut (the paper's option B), two small
//! layers off the main path. With batch normalisation, every convolution is followed by one and
//! has no bias; a residual pair's second normalisation comes before the addition, its ReLU after.

use cnn::cnn;

cnn! {
    /// 20 layers, no shortcuts, no batch normalisation.
    pub struct Plain20 <
        input(28x28x1)
        conv(3x3, 16, stride=2, pad=1) relu
        conv(3x3, 16, pad=1) relu conv(3x3, 16, pad=1) relu
        conv(3x3, 16, pad=1) relu conv(3x3, 16, pad=1) relu
        conv(3x3, 16, pad=1) relu conv(3x3, 16, pad=1) relu
        conv(3x3, 32, stride=2, pad=1) relu conv(3x3, 32, pad=1) relu
        conv(3x3, 32, pad=1) relu conv(3x3, 32, pad=1) relu
        conv(3x3, 32, pad=1) relu conv(3x3, 32, pad=1) relu
        conv(3x3, 64, stride=2, pad=1) relu conv(3x3, 64, pad=1) relu
        conv(3x3, 64, pad=1) relu conv(3x3, 64, pad=1) relu
        conv(3x3, 64, pad=1) relu conv(3x3, 64, pad=1) relu
        avgpool(4) fc(10) softmax
    >
}

cnn! {
    /// 56 layers, no shortcuts, no batch normalisation.
    pub struct Plain56 <
        input(28x28x1)
        conv(3x3, 16, stride=2, pad=1) relu
        conv(3x3, 16, pad=1) relu conv(3x3, 16, pad=1) relu
        conv(3x3, 16, pad=1) relu conv(3x3, 16, pad=1) relu
        conv(3x3, 16, pad=1) relu conv(3x3, 16, pad=1) relu
        conv(3x3, 16, pad=1) relu conv(3x3, 16, pad=1) relu
        conv(3x3, 16, pad=1) relu conv(3x3, 16, pad=1) relu
        conv(3x3, 16, pad=1) relu conv(3x3, 16, pad=1) relu
        conv(3x3, 16, pad=1) relu conv(3x3, 16, pad=1) relu
        conv(3x3, 16, pad=1) relu conv(3x3, 16, pad=1) relu
        conv(3x3, 16, pad=1) relu conv(3x3, 16, pad=1) relu
        conv(3x3, 32, stride=2, pad=1) relu conv(3x3, 32, pad=1) relu
        conv(3x3, 32, pad=1) relu conv(3x3, 32, pad=1) relu
        conv(3x3, 32, pad=1) relu conv(3x3, 32, pad=1) relu
        conv(3x3, 32, pad=1) relu conv(3x3, 32, pad=1) relu
        conv(3x3, 32, pad=1) relu conv(3x3, 32, pad=1) relu
        conv(3x3, 32, pad=1) relu conv(3x3, 32, pad=1) relu
        conv(3x3, 32, pad=1) relu conv(3x3, 32, pad=1) relu
        conv(3x3, 32, pad=1) relu conv(3x3, 32, pad=1) relu
        conv(3x3, 32, pad=1) relu conv(3x3, 32, pad=1) relu
        conv(3x3, 64, stride=2, pad=1) relu conv(3x3, 64, pad=1) relu
        conv(3x3, 64, pad=1) relu conv(3x3, 64, pad=1) relu
        conv(3x3, 64, pad=1) relu conv(3x3, 64, pad=1) relu
        conv(3x3, 64, pad=1) relu conv(3x3, 64, pad=1) relu
        conv(3x3, 64, pad=1) relu conv(3x3, 64, pad=1) relu
        conv(3x3, 64, pad=1) relu conv(3x3, 64, pad=1) relu
        conv(3x3, 64, pad=1) relu conv(3x3, 64, pad=1) relu
        conv(3x3, 64, pad=1) relu conv(3x3, 64, pad=1) relu
        conv(3x3, 64, pad=1) relu conv(3x3, 64, pad=1) relu
        avgpool(4) fc(10) softmax
    >
}

cnn! {
    /// 20 layers, in residual pairs, no batch normalisation.
    pub struct Res20 <
        input(28x28x1)
        conv(3x3, 16, stride=2, pad=1) relu
        residual(conv(3x3, 16, pad=1) relu conv(3x3, 16, pad=1)) relu
        residual(conv(3x3, 16, pad=1) relu conv(3x3, 16, pad=1)) relu
        residual(conv(3x3, 16, pad=1) relu conv(3x3, 16, pad=1)) relu
        residual(conv(3x3, 32, stride=2, pad=1) relu conv(3x3, 32, pad=1),
            shortcut=conv(1x1, 32, stride=2)) relu
        residual(conv(3x3, 32, pad=1) relu conv(3x3, 32, pad=1)) relu
        residual(conv(3x3, 32, pad=1) relu conv(3x3, 32, pad=1)) relu
        residual(conv(3x3, 64, stride=2, pad=1) relu conv(3x3, 64, pad=1),
            shortcut=conv(1x1, 64, stride=2)) relu
        residual(conv(3x3, 64, pad=1) relu conv(3x3, 64, pad=1)) relu
        residual(conv(3x3, 64, pad=1) relu conv(3x3, 64, pad=1)) relu
        avgpool(4) fc(10) softmax
    >
}

cnn! {
    /// 56 layers, in residual pairs, no batch normalisation.
    pub struct Res56 <
        input(28x28x1)
        conv(3x3, 16, stride=2, pad=1) relu
        residual(conv(3x3, 16, pad=1) relu conv(3x3, 16, pad=1)) relu
        residual(conv(3x3, 16, pad=1) relu conv(3x3, 16, pad=1)) relu
        residual(conv(3x3, 16, pad=1) relu conv(3x3, 16, pad=1)) relu
        residual(conv(3x3, 16, pad=1) relu conv(3x3, 16, pad=1)) relu
        residual(conv(3x3, 16, pad=1) relu conv(3x3, 16, pad=1)) relu
        residual(conv(3x3, 16, pad=1) relu conv(3x3, 16, pad=1)) relu
        residual(conv(3x3, 16, pad=1) relu conv(3x3, 16, pad=1)) relu
        residual(conv(3x3, 16, pad=1) relu conv(3x3, 16, pad=1)) relu
        residual(conv(3x3, 16, pad=1) relu conv(3x3, 16, pad=1)) relu
        residual(conv(3x3, 32, stride=2, pad=1) relu conv(3x3, 32, pad=1),
            shortcut=conv(1x1, 32, stride=2)) relu
        residual(conv(3x3, 32, pad=1) relu conv(3x3, 32, pad=1)) relu
        residual(conv(3x3, 32, pad=1) relu conv(3x3, 32, pad=1)) relu
        residual(conv(3x3, 32, pad=1) relu conv(3x3, 32, pad=1)) relu
        residual(conv(3x3, 32, pad=1) relu conv(3x3, 32, pad=1)) relu
        residual(conv(3x3, 32, pad=1) relu conv(3x3, 32, pad=1)) relu
        residual(conv(3x3, 32, pad=1) relu conv(3x3, 32, pad=1)) relu
        residual(conv(3x3, 32, pad=1) relu conv(3x3, 32, pad=1)) relu
        residual(conv(3x3, 32, pad=1) relu conv(3x3, 32, pad=1)) relu
        residual(conv(3x3, 64, stride=2, pad=1) relu conv(3x3, 64, pad=1),
            shortcut=conv(1x1, 64, stride=2)) relu
        residual(conv(3x3, 64, pad=1) relu conv(3x3, 64, pad=1)) relu
        residual(conv(3x3, 64, pad=1) relu conv(3x3, 64, pad=1)) relu
        residual(conv(3x3, 64, pad=1) relu conv(3x3, 64, pad=1)) relu
        residual(conv(3x3, 64, pad=1) relu conv(3x3, 64, pad=1)) relu
        residual(conv(3x3, 64, pad=1) relu conv(3x3, 64, pad=1)) relu
        residual(conv(3x3, 64, pad=1) relu conv(3x3, 64, pad=1)) relu
        residual(conv(3x3, 64, pad=1) relu conv(3x3, 64, pad=1)) relu
        residual(conv(3x3, 64, pad=1) relu conv(3x3, 64, pad=1)) relu
        avgpool(4) fc(10) softmax
    >
}

cnn! {
    /// 20 layers, no shortcuts, batch normalisation after every convolution.
    pub struct Plain20Bn <
        input(28x28x1)
        conv(3x3, 16, stride=2, pad=1, bias=false) batchnorm relu
        conv(3x3, 16, pad=1, bias=false) batchnorm relu conv(3x3, 16, pad=1, bias=false) batchnorm relu
        conv(3x3, 16, pad=1, bias=false) batchnorm relu conv(3x3, 16, pad=1, bias=false) batchnorm relu
        conv(3x3, 16, pad=1, bias=false) batchnorm relu conv(3x3, 16, pad=1, bias=false) batchnorm relu
        conv(3x3, 32, stride=2, pad=1, bias=false) batchnorm relu conv(3x3, 32, pad=1, bias=false) batchnorm relu
        conv(3x3, 32, pad=1, bias=false) batchnorm relu conv(3x3, 32, pad=1, bias=false) batchnorm relu
        conv(3x3, 32, pad=1, bias=false) batchnorm relu conv(3x3, 32, pad=1, bias=false) batchnorm relu
        conv(3x3, 64, stride=2, pad=1, bias=false) batchnorm relu conv(3x3, 64, pad=1, bias=false) batchnorm relu
        conv(3x3, 64, pad=1, bias=false) batchnorm relu conv(3x3, 64, pad=1, bias=false) batchnorm relu
        conv(3x3, 64, pad=1, bias=false) batchnorm relu conv(3x3, 64, pad=1, bias=false) batchnorm relu
        avgpool(4) fc(10) softmax
    >
}

cnn! {
    /// 56 layers, no shortcuts, batch normalisation after every convolution.
    pub struct Plain56Bn <
        input(28x28x1)
        conv(3x3, 16, stride=2, pad=1, bias=false) batchnorm relu
        conv(3x3, 16, pad=1, bias=false) batchnorm relu conv(3x3, 16, pad=1, bias=false) batchnorm relu
        conv(3x3, 16, pad=1, bias=false) batchnorm relu conv(3x3, 16, pad=1, bias=false) batchnorm relu
        conv(3x3, 16, pad=1, bias=false) batchnorm relu conv(3x3, 16, pad=1, bias=false) batchnorm relu
        conv(3x3, 16, pad=1, bias=false) batchnorm relu conv(3x3, 16, pad=1, bias=false) batchnorm relu
        conv(3x3, 16, pad=1, bias=false) batchnorm relu conv(3x3, 16, pad=1, bias=false) batchnorm relu
        conv(3x3, 16, pad=1, bias=false) batchnorm relu conv(3x3, 16, pad=1, bias=false) batchnorm relu
        conv(3x3, 16, pad=1, bias=false) batchnorm relu conv(3x3, 16, pad=1, bias=false) batchnorm relu
        conv(3x3, 16, pad=1, bias=false) batchnorm relu conv(3x3, 16, pad=1, bias=false) batchnorm relu
        conv(3x3, 16, pad=1, bias=false) batchnorm relu conv(3x3, 16, pad=1, bias=false) batchnorm relu
        conv(3x3, 32, stride=2, pad=1, bias=false) batchnorm relu conv(3x3, 32, pad=1, bias=false) batchnorm relu
        conv(3x3, 32, pad=1, bias=false) batchnorm relu conv(3x3, 32, pad=1, bias=false) batchnorm relu
        conv(3x3, 32, pad=1, bias=false) batchnorm relu conv(3x3, 32, pad=1, bias=false) batchnorm relu
        conv(3x3, 32, pad=1, bias=false) batchnorm relu conv(3x3, 32, pad=1, bias=false) batchnorm relu
        conv(3x3, 32, pad=1, bias=false) batchnorm relu conv(3x3, 32, pad=1, bias=false) batchnorm relu
        conv(3x3, 32, pad=1, bias=false) batchnorm relu conv(3x3, 32, pad=1, bias=false) batchnorm relu
        conv(3x3, 32, pad=1, bias=false) batchnorm relu conv(3x3, 32, pad=1, bias=false) batchnorm relu
        conv(3x3, 32, pad=1, bias=false) batchnorm relu conv(3x3, 32, pad=1, bias=false) batchnorm relu
        conv(3x3, 32, pad=1, bias=false) batchnorm relu conv(3x3, 32, pad=1, bias=false) batchnorm relu
        conv(3x3, 64, stride=2, pad=1, bias=false) batchnorm relu conv(3x3, 64, pad=1, bias=false) batchnorm relu
        conv(3x3, 64, pad=1, bias=false) batchnorm relu conv(3x3, 64, pad=1, bias=false) batchnorm relu
        conv(3x3, 64, pad=1, bias=false) batchnorm relu conv(3x3, 64, pad=1, bias=false) batchnorm relu
        conv(3x3, 64, pad=1, bias=false) batchnorm relu conv(3x3, 64, pad=1, bias=false) batchnorm relu
        conv(3x3, 64, pad=1, bias=false) batchnorm relu conv(3x3, 64, pad=1, bias=false) batchnorm relu
        conv(3x3, 64, pad=1, bias=false) batchnorm relu conv(3x3, 64, pad=1, bias=false) batchnorm relu
        conv(3x3, 64, pad=1, bias=false) batchnorm relu conv(3x3, 64, pad=1, bias=false) batchnorm relu
        conv(3x3, 64, pad=1, bias=false) batchnorm relu conv(3x3, 64, pad=1, bias=false) batchnorm relu
        conv(3x3, 64, pad=1, bias=false) batchnorm relu conv(3x3, 64, pad=1, bias=false) batchnorm relu
        avgpool(4) fc(10) softmax
    >
}

cnn! {
    /// 20 layers, in residual pairs, batch normalisation after every convolution.
    pub struct Res20Bn <
        input(28x28x1)
        conv(3x3, 16, stride=2, pad=1, bias=false) batchnorm relu
        residual(conv(3x3, 16, pad=1, bias=false) batchnorm relu conv(3x3, 16, pad=1, bias=false) batchnorm) relu
        residual(conv(3x3, 16, pad=1, bias=false) batchnorm relu conv(3x3, 16, pad=1, bias=false) batchnorm) relu
        residual(conv(3x3, 16, pad=1, bias=false) batchnorm relu conv(3x3, 16, pad=1, bias=false) batchnorm) relu
        residual(conv(3x3, 32, stride=2, pad=1, bias=false) batchnorm relu conv(3x3, 32, pad=1, bias=false) batchnorm,
            shortcut=conv(1x1, 32, stride=2, bias=false) batchnorm) relu
        residual(conv(3x3, 32, pad=1, bias=false) batchnorm relu conv(3x3, 32, pad=1, bias=false) batchnorm) relu
        residual(conv(3x3, 32, pad=1, bias=false) batchnorm relu conv(3x3, 32, pad=1, bias=false) batchnorm) relu
        residual(conv(3x3, 64, stride=2, pad=1, bias=false) batchnorm relu conv(3x3, 64, pad=1, bias=false) batchnorm,
            shortcut=conv(1x1, 64, stride=2, bias=false) batchnorm) relu
        residual(conv(3x3, 64, pad=1, bias=false) batchnorm relu conv(3x3, 64, pad=1, bias=false) batchnorm) relu
        residual(conv(3x3, 64, pad=1, bias=false) batchnorm relu conv(3x3, 64, pad=1, bias=false) batchnorm) relu
        avgpool(4) fc(10) softmax
    >
}

cnn! {
    /// 56 layers, in residual pairs, batch normalisation after every convolution.
    pub struct Res56Bn <
        input(28x28x1)
        conv(3x3, 16, stride=2, pad=1, bias=false) batchnorm relu
        residual(conv(3x3, 16, pad=1, bias=false) batchnorm relu conv(3x3, 16, pad=1, bias=false) batchnorm) relu
        residual(conv(3x3, 16, pad=1, bias=false) batchnorm relu conv(3x3, 16, pad=1, bias=false) batchnorm) relu
        residual(conv(3x3, 16, pad=1, bias=false) batchnorm relu conv(3x3, 16, pad=1, bias=false) batchnorm) relu
        residual(conv(3x3, 16, pad=1, bias=false) batchnorm relu conv(3x3, 16, pad=1, bias=false) batchnorm) relu
        residual(conv(3x3, 16, pad=1, bias=false) batchnorm relu conv(3x3, 16, pad=1, bias=false) batchnorm) relu
        residual(conv(3x3, 16, pad=1, bias=false) batchnorm relu conv(3x3, 16, pad=1, bias=false) batchnorm) relu
        residual(conv(3x3, 16, pad=1, bias=false) batchnorm relu conv(3x3, 16, pad=1, bias=false) batchnorm) relu
        residual(conv(3x3, 16, pad=1, bias=false) batchnorm relu conv(3x3, 16, pad=1, bias=false) batchnorm) relu
        residual(conv(3x3, 16, pad=1, bias=false) batchnorm relu conv(3x3, 16, pad=1, bias=false) batchnorm) relu
        residual(conv(3x3, 32, stride=2, pad=1, bias=false) batchnorm relu conv(3x3, 32, pad=1, bias=false) batchnorm,
            shortcut=conv(1x1, 32, stride=2, bias=false) batchnorm) relu
        residual(conv(3x3, 32, pad=1, bias=false) batchnorm relu conv(3x3, 32, pad=1, bias=false) batchnorm) relu
        residual(conv(3x3, 32, pad=1, bias=false) batchnorm relu conv(3x3, 32, pad=1, bias=false) batchnorm) relu
        residual(conv(3x3, 32, pad=1, bias=false) batchnorm relu conv(3x3, 32, pad=1, bias=false) batchnorm) relu
        residual(conv(3x3, 32, pad=1, bias=false) batchnorm relu conv(3x3, 32, pad=1, bias=false) batchnorm) relu
        residual(conv(3x3, 32, pad=1, bias=false) batchnorm relu conv(3x3, 32, pad=1, bias=false) batchnorm) relu
        residual(conv(3x3, 32, pad=1, bias=false) batchnorm relu conv(3x3, 32, pad=1, bias=false) batchnorm) relu
        residual(conv(3x3, 32, pad=1, bias=false) batchnorm relu conv(3x3, 32, pad=1, bias=false) batchnorm) relu
        residual(conv(3x3, 32, pad=1, bias=false) batchnorm relu conv(3x3, 32, pad=1, bias=false) batchnorm) relu
        residual(conv(3x3, 64, stride=2, pad=1, bias=false) batchnorm relu conv(3x3, 64, pad=1, bias=false) batchnorm,
            shortcut=conv(1x1, 64, stride=2, bias=false) batchnorm) relu
        residual(conv(3x3, 64, pad=1, bias=false) batchnorm relu conv(3x3, 64, pad=1, bias=false) batchnorm) relu
        residual(conv(3x3, 64, pad=1, bias=false) batchnorm relu conv(3x3, 64, pad=1, bias=false) batchnorm) relu
        residual(conv(3x3, 64, pad=1, bias=false) batchnorm relu conv(3x3, 64, pad=1, bias=false) batchnorm) relu
        residual(conv(3x3, 64, pad=1, bias=false) batchnorm relu conv(3x3, 64, pad=1, bias=false) batchnorm) relu
        residual(conv(3x3, 64, pad=1, bias=false) batchnorm relu conv(3x3, 64, pad=1, bias=false) batchnorm) relu
        residual(conv(3x3, 64, pad=1, bias=false) batchnorm relu conv(3x3, 64, pad=1, bias=false) batchnorm) relu
        residual(conv(3x3, 64, pad=1, bias=false) batchnorm relu conv(3x3, 64, pad=1, bias=false) batchnorm) relu
        residual(conv(3x3, 64, pad=1, bias=false) batchnorm relu conv(3x3, 64, pad=1, bias=false) batchnorm) relu
        avgpool(4) fc(10) softmax
    >
}
