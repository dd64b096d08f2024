// `0x3` lexes as a hex number, and as a size it holds a 0.
cnn::cnn! {
    struct Net < input(0x3) fc(10) softmax >
}

fn main() {}
