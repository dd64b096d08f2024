// Only the height fails: the message shows that axis alone.
cnn::cnn! {
    struct Net < input(32x15x3) conv(3x3, 8, pad=1) relu pool(2) fc(10) softmax >
}

fn main() {}
