// The shortcut must give the same shape as the block.
cnn::cnn! {
    struct Net <
        input(32x32x16)
        residual(conv(3x3, 32, stride=2, pad=1) relu conv(3x3, 32, pad=1), shortcut=conv(1x1, 32))
        fc(10) softmax
    >
}

fn main() {}
