// A filter larger than its (padded) input.
cnn::cnn! {
    struct Net < input(3x3x8) conv(5x5, 16) relu fc(2) softmax >
}

fn main() {}
