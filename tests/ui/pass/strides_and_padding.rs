// Non-square inputs, strides, padding, rectangular filters and overlapping pooling.
use cnn::{cnn, Model, Network, Shape};

cnn! {
    /// AlexNet's first layers: (227 − 11)/4 + 1 = 55, then (55 − 3)/2 + 1 = 27.
    struct AlexStem < input(227x227x3) conv(11x11, 8, stride=4) relu maxpool(3, stride=2) fc(10) softmax >
}

cnn! {
    struct Wide <
        input(32x16x3)
        conv(5x3, 4, stride=3x1, pad=0x1) relu
        conv(4x4, 8, stride=2, pad=1) relu
        pool(1x2)
        fc(5) softmax
    >
}

fn main() {
    assert_eq!(AlexStem::LAYERS[1].output, Shape::volume(55, 55, 8));
    assert_eq!(AlexStem::LAYERS[3].output, Shape::volume(27, 27, 8));
    assert_eq!(Wide::LAYERS[1].output, Shape::volume(10, 16, 4));
    assert_eq!(Wide::LAYERS[3].output, Shape::volume(5, 8, 8));
    assert_eq!(Wide::LAYERS[5].output, Shape::volume(5, 4, 8));
    let mut wide = Wide::with_seed(1);
    assert_eq!(wide.forward(&[0.5; 32 * 16 * 3]).unwrap().len(), 5);
}
