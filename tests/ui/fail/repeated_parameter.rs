// The same parameter twice.
cnn::cnn! {
    struct Net < input(28x28x1) conv(3x3, 8, pad=1, pad=2) relu fc(10) softmax >
}

fn main() {}
