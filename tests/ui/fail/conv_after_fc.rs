// A convolution on the flat output of a fully connected layer.
cnn::cnn! {
    struct Net < input(28x28x1) fc(100) relu conv(3x3, 8) fc(10) softmax >
}

fn main() {}
