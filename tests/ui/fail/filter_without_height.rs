// The filter size needs width and height.
cnn::cnn! {
    struct Net < input(28x28x1) conv(5, 6) relu fc(10) softmax >
}

fn main() {}
