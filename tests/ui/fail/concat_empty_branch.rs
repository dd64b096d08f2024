// Each branch of a concat holds at least one layer.
cnn::cnn! {
    struct Net < input(28x28x3) concat(conv(1x1, 8), , conv(3x3, 8, pad=1)) fc(10) softmax >
}

fn main() {}
