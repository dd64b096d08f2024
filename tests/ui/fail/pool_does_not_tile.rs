// A pooling window that does not tile its input.
cnn::cnn! {
    struct Net < input(28x28x1) conv(3x3, 8) relu pool(4) fc(10) softmax >
}

fn main() {}
