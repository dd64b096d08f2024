// `softmax` straight after a convolution.
cnn::cnn! {
    struct Net < input(8x8x1) conv(3x3, 4) softmax >
}

fn main() {}
