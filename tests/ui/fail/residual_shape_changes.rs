// A block that halves the resolution and doubles the width needs a projected shortcut.
cnn::cnn! {
    struct Net <
        input(32x32x16)
        residual(conv(3x3, 32, stride=2, pad=1) relu conv(3x3, 32, pad=1))
        fc(10) softmax
    >
}

fn main() {}
