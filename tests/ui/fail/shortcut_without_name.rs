// The projection of a block is introduced by `shortcut=`.
cnn::cnn! {
    struct Net < input(8x8x4) residual(conv(3x3, 8, stride=2, pad=1), conv(1x1, 8, stride=2)) fc(3) softmax >
}

fn main() {}
