// `conv` without its number of filters.
cnn::cnn! {
    struct Net < input(28x28x1) conv(3x3) relu fc(10) softmax >
}

fn main() {}
