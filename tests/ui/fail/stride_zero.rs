// A stride of 0.
cnn::cnn! {
    struct Net < input(28x28x1) conv(3x3, 8, stride=0) relu fc(10) softmax >
}

fn main() {}
