// A layer name from another library.
cnn::cnn! {
    struct Net < input(28x28x1) conv2d(3x3, 8) relu fc(10) softmax >
}

fn main() {}
