// A convolution on a flat input: the hint offers a volume of the same size.
cnn::cnn! {
    struct Net < input(784) conv(5x5, 6) relu fc(10) softmax >
}

fn main() {}
