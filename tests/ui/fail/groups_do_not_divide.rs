// groups must divide the input depth.
cnn::cnn! {
    struct Net < input(28x28x6) conv(3x3, 8, pad=1, groups=4) relu fc(10) softmax >
}

fn main() {}
