// A parameter name from another library.
cnn::cnn! {
    struct Net < input(28x28x1) conv(3x3, 8, padding=1) relu fc(10) softmax >
}

fn main() {}
