// A block needs layers.
cnn::cnn! {
    struct Net < input(8x8x4) residual() fc(3) softmax >
}

fn main() {}
