// The trunk that the heads share does not end in softmax: each head does.
cnn::cnn! {
    struct Net < input(16) fc(8) softmax heads(a: fc(2) softmax, b: fc(1)) >
}

fn main() {}
